"""The ``zlab`` command line: the same experiments as the notebooks, headless.

Each sub-command is one ``_cmd_*`` function plus its ``_add_*`` parser
function, registered in :data:`COMMANDS`. A user mistake raises
:class:`UsageError` (or ``ValueError`` from the library): one line on stderr,
exit status 2, no traceback, nothing left running.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Sequence

__all__ = ["UsageError", "main"]


class UsageError(ValueError):
    """A mistake in the command line: reported in one line, exit status 2."""


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


COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]] = {
    "demo": (_add_demo, _cmd_demo),
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
        if not args.command:
            parser.print_help()
            return 2
        return COMMANDS[args.command][1](args)
    except (UsageError, ValueError) as exc:
        print(f"zlab: error: {exc}", file=sys.stderr)
        return 2
    except TimeoutError as exc:
        print(f"zlab: timed out: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
