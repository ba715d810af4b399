"""The ``zlab`` command line: the same experiments as the notebooks, headless.

Each sub-command is one ``_cmd_*`` function plus its ``_add_*`` parser
function, registered in :data:`COMMANDS`. A user mistake raises
:class:`UsageError`: one line on stderr, exit status 2, no traceback, nothing
left running. The library's validators raise ``ValueError``; a command turns
those into :class:`UsageError` only around the checks of the user's input
(``with _user_input():``). Any other exception during a run is a bug: one line
``zlab: internal error: ...``, exit status 1 (the traceback with ZLAB_DEBUG=1).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

__all__ = ["UsageError", "main"]


# Every character str.splitlines() breaks on, shown escaped: an argument may hold any text.
_LINE_BREAKS = {c: repr(chr(c))[1:-1] for c in (0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029)}


def _one_line(exc: BaseException) -> str:
    """An error's message on one line: line breaks (from user input echoed back) are escaped."""
    return str(exc).translate(_LINE_BREAKS)


class UsageError(ValueError):
    """A mistake in the command line: reported in one line, exit status 2."""


@contextlib.contextmanager
def _user_input() -> Iterator[None]:
    """Wrap the checks of what the user typed: a ``ValueError`` from the library's validators there is
    the user's mistake and becomes :class:`UsageError` (exit 2). Elsewhere a ``ValueError`` is a bug."""
    try:
        yield
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own mistakes: one line, exit 2
        raise UsageError(message)


# -- demo ---------------------------------------------------------------------------
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the first lesson, headless: a PUB loses its SUB, loops, and reconnects")
    p.add_argument("--cycles", type=int, default=3, help="retry cycles to watch before the SUB returns (default 3)")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .render import HEADER, format_event
    from .scenarios import get

    if args.cycles < 1 or args.cycles > 50:
        raise UsageError(f"--cycles must be between 1 and 50; got {args.cycles}")
    lock = threading.Lock()

    def show(ev) -> None:  # called on the EventLog's dispatcher thread, as events arrive
        with lock:
            print(format_event(ev), flush=True)

    print("zlab demo: a PUB connects to a bound SUB; the SUB dies; a new SUB binds the same port.")
    print(HEADER, flush=True)
    result = get("disconnect-keeps-socket").run(on_event=show, cycles=args.cycles)
    s = result.summary
    with lock:
        print()
        print(f"1. DISCONNECTED (fd {s['disconnected_fd']}) ended one TCP connection; the PUB socket stayed open.")
        print(f"2. With no SUB listening the PUB looped CONNECT_RETRIED -> CONNECT_DELAYED -> CLOSED "
              f"({s['retry_cycles']} CLOSED, one per failed attempt).")
        print(f"3. A new SUB on the same port: the same PUB reconnected after {s['reconnected_after_ms']:.0f} ms "
              f"and delivered {s['delivered_after']!r}.")
    return 0


# -- scenarios, run, check, probe -----------------------------------------------------
def _add_scenarios(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scenarios", help="list the named experiments, one line each")
    p.add_argument("-v", "--settings", action="store_true", help="also list each scenario's settings and defaults")


def _show_value(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from .scenarios import SCENARIOS

    width = max(len(name) for name in SCENARIOS)
    for name in sorted(SCENARIOS):
        sc = SCENARIOS[name]
        print(f"{name:<{width}}  {sc.description}")
        if args.settings:
            for key, default in sc.defaults.items():
                print(f"{'':<{width}}    --set {key}={_show_value(default)}  ({sc.setting_unit(key)})")
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one scenario: event table, summary and findings (names: zlab scenarios)")
    p.add_argument("name", help="the scenario, e.g. retry-loop (zlab scenarios lists them)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set heartbeat_ivl=100 (repeatable; zlab scenarios -v lists them)")
    p.add_argument("--duration", type=float, metavar="S", help="seconds to collect (the scenario's duration setting)")
    p.add_argument("--json", action="store_true", help="print one JSON object (scenario, versions, settings, "
                                                       "events, summary, findings) and nothing else")
    p.add_argument("--jsonl", metavar="FILE", help="also write every event to FILE, one JSON object a line")
    p.add_argument("--plot", metavar="FILE", help="also save the plot of the run to FILE (png, svg, pdf)")
    p.add_argument("--rows", type=int, default=200, metavar="N", help="event table rows to print (default 200)")


def _settings_from_args(sc, sets: list[str], duration: float | None) -> dict:
    from .scenarios._base import parse_value, validate_settings

    overrides: dict = {}
    for item in sets:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"--set expects KEY=VALUE (e.g. --set reconnect_ivl=200); got {item!r}; "
                             f"{sc.name} settings: {', '.join(sc.defaults) or 'none'}")
        overrides[key] = parse_value(sc, key, text)
    if duration is not None:
        if "duration" not in sc.defaults:
            raise UsageError(f"scenario {sc.name!r} has no duration setting (--duration); its settings: "
                             f"{', '.join(sc.defaults)}")
        overrides["duration"] = duration
    validate_settings(sc, overrides)
    return overrides


def _check_writable(option: str, path: str) -> None:
    import os

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write there (need a file path in an existing, writable folder)")


class _Progress:
    """Shows on stderr that a long run is alive: after ``delay`` s, a spinner line (a terminal)
    or one 'running...' line (a pipe); ``stop()`` ends it. A daemon thread, stopped by ``stop()``."""

    def __init__(self, label: str, delay: float = 1.0, stream=None):
        import time

        self.label = label
        self.delay = delay
        self.stream = stream if stream is not None else sys.stderr
        self.events = 0
        self.shown = False
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="zlab-progress", daemon=True)

    def count(self, _event: object = None) -> None:
        self.events += 1

    def start(self) -> "_Progress":
        self._thread.start()
        return self

    def _run(self) -> None:
        import time

        if self._stop.wait(self.delay):
            return
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        spinner = "|/-\\"
        i = 0
        while True:
            elapsed = time.monotonic() - self._started
            try:
                if tty:
                    self.stream.write(f"\r{spinner[i % 4]} {self.label}: {elapsed:4.1f} s, {self.events} events ")
                    self.stream.flush()
                elif not self.shown:
                    self.stream.write(f"zlab: {self.label}...\n")
                    self.stream.flush()
            except (OSError, ValueError):
                return
            self.shown = True
            i += 1
            if self._stop.wait(0.1 if tty else 3600):
                return

    def stop(self, done: bool = True) -> None:
        """End the progress line, once (later calls do nothing). ``done``: the work finished, say
        'done in X s'; otherwise (failed, Ctrl-C) only clear a spinner line: the error line follows."""
        import time

        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        if not self.shown:
            return
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        elapsed = time.monotonic() - self._started
        end = "\r\033[K" if tty else ""
        events = f" ({self.events} events)" if self.events else ""
        try:
            if done:
                self.stream.write(f"{end}zlab: {self.label}: done in {elapsed:.1f} s{events}\n")
            elif end:
                self.stream.write(end)
            self.stream.flush()
        except (OSError, ValueError):
            pass


def _json_default(value: object) -> object:
    import dataclasses

    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _print_result(result, rows: int) -> None:
    import json

    from .render import EventTable

    v = result.versions
    print(f"zlab run {result.scenario}: {_scenario_description(result.scenario)}")
    print(f"pyzmq {v['pyzmq']}, libzmq {v['libzmq']}, draft API {v['draft']}")
    print("settings: " + ", ".join(f"{k}={_show_value(val)}" for k, val in result.settings.items()))
    print()
    print(EventTable(result.events, limit=rows))
    print()
    print("summary:")
    for key, value in result.summary.items():
        text = value if isinstance(value, str) else json.dumps(value, default=_json_default)
        print(f"  {key}: {text}")
    print()
    print("findings:")
    for i, finding in enumerate(result.findings, 1):
        print(f"  {i}. {finding}")


def _scenario_description(name: str) -> str:
    from .scenarios import SCENARIOS

    sc = SCENARIOS.get(name)
    return sc.description if sc else ""


def _cmd_run(args: argparse.Namespace) -> int:
    import json

    from .scenarios import get

    with _user_input():
        sc = get(args.name)  # ValueError lists the known scenarios
        overrides = _settings_from_args(sc, args.sets, args.duration)
    if args.rows < 0:
        raise UsageError(f"--rows must be >= 0; got {args.rows}")
    for option, path in (("--jsonl", args.jsonl), ("--plot", args.plot)):
        if path:
            _check_writable(option, path)
    plot_result = None
    if args.plot:
        try:
            from .plot import check_suffix, plot_result
        except ImportError as exc:
            raise UsageError(f"--plot is not available here ({exc}); install matplotlib, or drop --plot") from None
        with _user_input():
            check_suffix(args.plot)  # before the run, not after it
    progress = _Progress(f"running {sc.name}").start()
    finished = False
    try:
        result = sc.run(on_event=progress.count, **overrides)
        finished = True
    except ValueError as exc:
        # A scenario may check a setting in its body ("foreign_address must be ..."): the user's mistake
        # when the message starts with a setting the user gave; any other ValueError is a bug.
        if str(exc).split(" ", 1)[0] not in overrides:
            raise
        raise UsageError(str(exc)) from None
    except (RuntimeError, OSError) as exc:
        progress.stop(done=False)
        print(f"zlab: {sc.name} failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        progress.stop(done=finished)
    if args.json:
        print(json.dumps(result.to_json(), default=_json_default))
    else:
        _print_result(result, args.rows)
    status = 0
    if args.jsonl:
        with open(args.jsonl, "w", encoding="utf-8") as fh:
            for ev in result.events:
                fh.write(json.dumps(ev.to_record(), default=_json_default) + "\n")
        print(f"zlab: {len(result.events)} events written to {args.jsonl}", file=sys.stderr)
    if plot_result is not None:
        try:
            plot_result(result, args.plot)
            print(f"zlab: plot saved to {args.plot}", file=sys.stderr)
        except (ValueError, OSError) as exc:
            print(f"zlab: could not plot {sc.name}: {exc}", file=sys.stderr)
            status = 1
    return status


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check what libzmq's manual says against this libzmq, live: a verdict table")
    p.add_argument("--json", action="store_true", help="print one JSON object (libzmq, pyzmq, claims)")


def _cmd_check(args: argparse.Namespace) -> int:
    import json

    from .claims import CLAIMS, check

    scenarios = list(dict.fromkeys(c.scenario for c in CLAIMS))
    progress = _Progress("checking the manual's claims").start()
    done = {"n": 0}

    def step(name: str) -> None:
        done["n"] += 1
        progress.label = f"checking the manual's claims ({done['n']}/{len(scenarios)}: {name})"

    finished = False
    try:
        report = check(on_progress=step)
        finished = True
    finally:
        progress.stop(done=finished)
    if args.json:
        print(json.dumps(report.to_json(), default=_json_default))
    else:
        print(report.table())
    return 0 if all(r.verdict != "unchecked" for r in report.results) else 1


_ENDPOINT_HELP = "expected tcp://HOST:PORT (e.g. tcp://127.0.0.1:5555) or ipc://PATH"


def parse_endpoint(text: str) -> str:
    """Check an endpoint to connect a probe to: ``tcp://HOST:PORT`` or ``ipc://PATH``; ``UsageError`` otherwise."""
    import ipaddress
    import re

    if text.startswith("ipc://"):
        if len(text) > len("ipc://") and "\0" not in text:
            return text
        raise UsageError(f"malformed endpoint {text!r}: the ipc path is empty; {_ENDPOINT_HELP}")
    m = re.fullmatch(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", text)
    if not m:
        raise UsageError(f"malformed endpoint {text!r}; {_ENDPOINT_HELP}")
    host, port = m.group(1), int(m.group(2))
    if not 1 <= port <= 65535:
        raise UsageError(f"malformed endpoint {text!r}: port {port} is not in 1..65535; {_ENDPOINT_HELP}")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UsageError(f"malformed endpoint {text!r}: {host} is not an IPv6 address; {_ENDPOINT_HELP}") from None
    return text


def _add_probe(sub: argparse._SubParsersAction) -> None:
    from .options import SOCKET_TYPES

    p = sub.add_parser("probe", help="connect to a real endpoint and stream its monitor events live")
    p.add_argument("endpoint", help="tcp://HOST:PORT or ipc://PATH of a running ZeroMQ service")
    p.add_argument("--type", dest="kind", type=str.upper, default="SUB", choices=list(SOCKET_TYPES), metavar="KIND",
                   help="socket type to connect with (default SUB, subscribed to nothing: it takes no data). "
                        "A receiving type (PULL, DEALER, REP...) may be handed messages meant for real consumers")
    p.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds to watch (default 10)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="OPTION=VALUE",
                   help="a socket option, e.g. --set heartbeat_ivl=1000 (repeatable)")


def _probe_options(sets: list[str]) -> dict:
    from .options import OPTIONS, validate_option

    options: dict = {}
    for item in sets:
        key, eq, text = item.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise UsageError(f"--set expects OPTION=VALUE (e.g. --set heartbeat_ivl=1000); got {item!r}")
        value: object = text
        if key in OPTIONS:
            try:
                value = int(text, 10)
            except ValueError:
                raise UsageError(f"{key} must be a whole number ({OPTIONS[key].allowed()}); got {text!r}") from None
        elif text.lstrip("-").isdigit():
            value = int(text)
        options[key] = validate_option(key, value)
    return options


def _cmd_probe(args: argparse.Namespace) -> int:
    import time

    from .lab import Lab
    from .render import HEADER, counts_line, format_event

    endpoint = parse_endpoint(args.endpoint)
    if not 0 < args.duration <= 3600:
        raise UsageError(f"--duration is in seconds and must be in (0, 3600]; got {args.duration:g}")
    with _user_input():
        options = _probe_options(args.sets)
    if endpoint.startswith("tcp://[") and "ipv6" not in options:
        options["ipv6"] = 1  # libzmq resolves an IPv6 literal only on a socket with ZMQ_IPV6 set (zmq_setsockopt)
    lock = threading.Lock()

    def show(ev) -> None:  # on the EventLog's dispatcher thread, as events arrive
        with lock:
            print(format_event(ev), flush=True)

    with Lab() as lab:
        with _user_input():  # libzmq refuses one of the user's options (EINVAL): exit 2
            sock = lab.socket(args.kind, "probe", **options)
        with lock:
            print(f"zlab probe: a {args.kind} socket connects to {endpoint} for {args.duration:g} s "
                  "(Ctrl-C to stop); its monitor events as they happen:", flush=True)
            print(HEADER, flush=True)
        lab.log.subscribe(show)
        with _user_input():  # libzmq refuses the user's endpoint (e.g. an ipc path too long): exit 2
            lab.connect(sock, endpoint)
        started = time.monotonic()
        try:
            threading.Event().wait(args.duration)
        except KeyboardInterrupt:
            pass
        events = lab.events("probe")
        elapsed = time.monotonic() - started
    shaken = sum(1 for ev in events if ev.event == "HANDSHAKE_SUCCEEDED")
    failed = [ev for ev in events if ev.event.startswith("HANDSHAKE_FAILED")]
    retries = sum(1 for ev in events if ev.event == "CONNECT_RETRIED")
    # A refused or failed TCP/ipc attempt logs CLOSED (tcp also CONNECT_DELAYED first) before each
    # CONNECT_RETRIED; an address that never resolves logs CONNECT_RETRIED alone: no connect() happened.
    attempted = any(ev.event in ("CONNECT_DELAYED", "CLOSED") for ev in events)
    with lock:
        print()
        print(f"in {elapsed:.1f} s: {counts_line(events)}")
        if shaken:
            print(f"verdict: a ZeroMQ peer answered ({shaken} handshake(s) succeeded).")
        elif failed:
            print(f"verdict: something listens but the ZMTP handshake failed ({failed[-1].event}: "
                  f"{failed[-1].meaning}): wrong socket type, security mechanism, or not ZeroMQ at all.")
        elif any(ev.event == "CONNECTED" for ev in events):
            print("verdict: the TCP connection was accepted but no handshake completed: the peer is hung, "
                  "busy, or not ZeroMQ (CONNECTED is not proof of life).")
        elif retries and not attempted:
            print(f"verdict: the address never resolved, so no connection was attempted ({retries} "
                  "CONNECT_RETRIED, no CONNECT_DELAYED or CLOSED): check the host name (DNS, /etc/hosts), "
                  "or set ipv6=1 for an IPv6 address.")
        elif retries:
            print(f"verdict: nobody accepted the connection ({retries} attempts refused or failed).")
        else:
            print("verdict: no connection yet (the connect is still pending).")
    return 0


# -- admin --------------------------------------------------------------------------
_ADMIN_ACTIONS = {"status": "status", "list": "list", "disconnect": "disconnect", "reconnect": "reconnect",
                  "pause": "pause-retrying", "resume": "resume-retrying", "help": "help"}


def _add_admin(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("admin", help="query or command a running lab's admin endpoint (lab.serve_admin())")
    p.add_argument("endpoint", help="the admin endpoint, e.g. tcp://127.0.0.1:5555")
    p.add_argument("action", choices=list(_ADMIN_ACTIONS), help="what to do")
    p.add_argument("arg", nargs="?", help="the endpoint to disconnect / reconnect")
    p.add_argument("--socket", help="the socket name, when several connect to the endpoint (or to pause one)")
    p.add_argument("--json", action="store_true", help="print the raw JSON reply")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the reply (default 3)")


def _cmd_admin(args: argparse.Namespace) -> int:
    import json

    from .admin import request
    from .connections import format_table

    endpoint = parse_endpoint(args.endpoint)
    cmd = _ADMIN_ACTIONS[args.action]
    if cmd in ("disconnect", "reconnect") and not args.arg:
        raise UsageError(f"{args.action} needs the endpoint to act on: zlab admin ENDPOINT {args.action} tcp://HOST:PORT")
    if cmd not in ("disconnect", "reconnect") and args.arg:
        raise UsageError(f"{args.action} takes no endpoint; got {args.arg!r} (use --socket NAME to pick a socket)")
    if not 0 < args.timeout <= 60:
        raise UsageError(f"--timeout must be in (0, 60] seconds; got {args.timeout}")
    message = {"cmd": cmd}
    if args.arg:
        message["endpoint"] = args.arg
    if args.socket:
        message["socket"] = args.socket
    try:
        reply = request(endpoint, message, timeout=args.timeout)
    except ValueError as exc:  # libzmq refused the endpoint, or the answer is not a zlab admin reply
        print(f"zlab: admin error: {_one_line(exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reply, indent=2))
    if args.json or not reply.get("ok"):
        pass
    elif cmd in ("status", "list"):
        if cmd == "status":
            v = reply.get("versions", {})
            print(f"lab at t={reply.get('t', 0):.3f} s, pyzmq {v.get('pyzmq')}, libzmq {v.get('libzmq')}, "
                  f"sockets: {', '.join(reply.get('sockets', [])) or 'none'}")
        print(format_table(reply.get("connections", [])))
    elif cmd == "help":
        for name, text in reply.get("commands", {}).items():
            print(f"{name:<16} {text}")
    else:
        detail = {k: v for k, v in reply.items() if k not in ("ok", "cmd")}
        print(f"{cmd}: " + ", ".join(f"{k}={v}" for k, v in detail.items()))
    if not reply.get("ok"):
        print(f"zlab: admin error: {reply.get('error')}", file=sys.stderr)
        return 1
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]] = {
    "demo": (_add_demo, _cmd_demo),
    "scenarios": (_add_scenarios, _cmd_scenarios),
    "run": (_add_run, _cmd_run),
    "check": (_add_check, _cmd_check),
    "probe": (_add_probe, _cmd_probe),
    "admin": (_add_admin, _cmd_admin),
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="zlab", description="See how ZeroMQ socket monitor events really behave.")
    parser.add_argument("--version", action="version", version=f"zlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:  # like argparse's own usage errors: help on stderr, exit 2
            parser.print_help(sys.stderr)
            return 2
        return COMMANDS[args.command][1](args)
    except UsageError as exc:
        print(f"zlab: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except TimeoutError as exc:
        print(f"zlab: timed out: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zlab: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's mistake: say so, in one line
        if os.environ.get("ZLAB_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        print(f"zlab: internal error: {type(exc).__name__}: {_one_line(exc)} (please report; "
              "ZLAB_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
