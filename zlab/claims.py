"""The documented-claims checker: what libzmq's manual says, checked live against this libzmq.

Each :class:`Claim` paraphrases one statement of the libzmq 4.3.5 manual
(zmq_socket_monitor(3), zmq_setsockopt(3), zmq_ctx_term(3), zmq_disconnect(3)),
names the scenario that tests it, and judges that scenario's result: verdict
``holds``, ``differs`` or ``partly``, what was observed (with numbers from this
run) and the events that prove it. Claims that share a scenario share one run,
with short durations, so :func:`check` takes about 15 s. Nothing here is a
stored answer: a claim that cannot be checked (a scenario failed) is
``unchecked``.

    >>> report = zlab.claims.check()
    >>> print(report.table())
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .events import Event
from .lab import Lab, versions
from .scenarios import ScenarioResult, get

__all__ = ["CHECK_SETTINGS", "CLAIMS", "VERDICTS", "CheckReport", "Claim", "ClaimResult", "Judgement", "check"]

VERDICTS = ("holds", "differs", "partly")
MANUAL = "libzmq 4.3.5"

#: Settings each scenario runs with for the checker: short, yet long enough to show the behaviour.
CHECK_SETTINGS: dict[str, dict[str, Any]] = {
    "disconnect-keeps-socket": {},
    "retry-loop": {"duration": 1.0},
    "backoff": {"reconnect_ivl": 100, "reconnect_ivl_max": 800, "attempts": 5, "compare": True},
    "stop-retrying": {"duration": 1.0},
    "heartbeat": {"heartbeat_ivl": 100, "heartbeat_timeout": 300, "duration": 2.5},
    "context-freeze": {"linger_ms": 300, "timeout_s": 1.5},
    "many-connections": {"duration": 0.5},
    "lifecycle": {},
    "probe:inproc": {},
}


@dataclass(frozen=True)
class Judgement:
    """A verdict on one claim: ``holds`` / ``differs`` / ``partly``, what was seen, the proof."""

    verdict: str
    observed: str
    evidence: Sequence[Event] = ()


@dataclass(frozen=True)
class Claim:
    """One statement of the manual and how to check it.

    ``documented`` paraphrases the manual; ``source`` names the page and the
    libzmq version; ``scenario`` is the scenario (or ``probe:*``) whose result
    ``judge`` reads.
    """

    id: str
    documented: str
    source: str
    scenario: str
    judge: Callable[[ScenarioResult], Judgement]


@dataclass
class ClaimResult:
    """A checked claim: the claim's text, the verdict of this run, what was observed, the evidence."""

    id: str
    documented: str
    source: str
    observed: str
    verdict: str
    scenario: str
    evidence: list[Event] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``id``, ``documented``, ``source``, ``observed``, ``verdict``, ``scenario``, ``evidence`` (events)."""
        return {
            "id": self.id,
            "documented": self.documented,
            "source": self.source,
            "observed": self.observed,
            "verdict": self.verdict,
            "scenario": self.scenario,
            "evidence": [{"t": round(ev.t, 6), "socket": ev.socket, "event": ev.event, "value": ev.value,
                          "endpoint": ev.endpoint, "meaning": ev.meaning} for ev in self.evidence],
        }


@dataclass
class CheckReport:
    """Every claim's result, with the versions they were checked against and the wall time (s)."""

    versions: dict[str, Any]
    results: list[ClaimResult]
    elapsed_s: float

    @property
    def libzmq(self) -> str:
        return str(self.versions["libzmq"])

    @property
    def pyzmq(self) -> str:
        return str(self.versions["pyzmq"])

    def get(self, claim_id: str) -> ClaimResult:
        """The result of one claim; ``KeyError`` names the known ids."""
        for r in self.results:
            if r.id == claim_id:
                return r
        raise KeyError(f"no claim {claim_id!r}; claims: {', '.join(r.id for r in self.results)}")

    def to_json(self) -> dict[str, Any]:
        """``libzmq``, ``pyzmq``, ``draft``, ``elapsed_s`` and ``claims`` (see :meth:`ClaimResult.to_json`)."""
        return {
            "libzmq": self.libzmq,
            "pyzmq": self.pyzmq,
            "draft": self.versions.get("draft"),
            "elapsed_s": round(self.elapsed_s, 2),
            "claims": [r.to_json() for r in self.results],
        }

    def table(self, width: int = 100) -> str:
        """The verdict table as text: one block per claim (verdict, id, source, documented, observed)."""
        import textwrap

        lines = [f"libzmq {self.libzmq}, pyzmq {self.pyzmq}, draft API {self.versions.get('draft')}; "
                 f"checked live in {self.elapsed_s:.1f} s", ""]
        for r in self.results:
            lines.append(f"[{r.verdict.upper():^9}] {r.id}  ({r.source})")
            lines += textwrap.wrap(f"manual:   {r.documented}", width, subsequent_indent=" " * 10)
            lines += textwrap.wrap(f"observed: {r.observed}", width, subsequent_indent=" " * 10)
            lines.append("")
        counts = {v: sum(1 for r in self.results if r.verdict == v) for v in (*VERDICTS, "unchecked")}
        lines.append(", ".join(f"{n} {v}" for v, n in counts.items() if n))
        return "\n".join(lines)


# -- helpers for judges --------------------------------------------------------------
def _first(result: ScenarioResult, socket: str, event: str, since: float | None = None) -> Event | None:
    for ev in result.filter(socket, event):
        if since is None or ev.t >= since:
            return ev
    return None


def _some(events: Iterable[Event | None]) -> list[Event]:
    return [ev for ev in events if ev is not None]


# -- the judges ----------------------------------------------------------------------
def _disconnected(r: ScenarioResult) -> Judgement:
    s = r.summary
    disc = _first(r, "pub", "DISCONNECTED")
    back = _first(r, "pub", "HANDSHAKE_SUCCEEDED", disc.t) if disc else None
    retry = _first(r, "pub", "CONNECT_RETRIED", disc.t) if disc else None
    stays = not s["pub_closed"] and s["delivered_after"] == "after"
    observed = (f"DISCONNECTED carried fd {s['disconnected_fd']}, one TCP connection; the ZeroMQ socket stayed "
                f"open (closed={s['pub_closed']}), retried {s['retry_cycles']} times, reconnected by itself after "
                f"{s['reconnected_after_ms']:.0f} ms and delivered {s['delivered_after']!r}.")
    return Judgement("differs" if stays else "holds", observed, _some([disc, retry, back]))


def _closed(r: ScenarioResult) -> Judgement:
    s = r.summary
    closed = r.filter("pub", "CLOSED")
    delayed = s["connect_delayed"]
    observed = (f"CLOSED fired {s['closed']} times in {s['duration_s']:g} s for {delayed} failed connect attempts "
                f"(fds {s['closed_fds']}: each attempt's own descriptor) while the ZeroMQ socket stayed open; "
                "the value is a closed network fd, but 'the socket was closed' it is not.")
    return Judgement("partly" if s["closed"] > 0 else "holds", observed, closed[:3])


def _connect_delayed(r: ScenarioResult) -> Judgement:
    s = r.summary
    values = s["connect_delayed_values"]
    delayed = r.filter("pub", "CONNECT_DELAYED")
    if values == [115]:
        return Judgement("partly", f"'Unspecified', yet all {s['connect_delayed']} CONNECT_DELAYED carried 115 = "
                                   "EINPROGRESS, the errno of the non-blocking connect() (a constant, not a value "
                                   "to act on).", delayed[:2])
    return Judgement("holds", f"CONNECT_DELAYED values seen: {values}.", delayed[:2])


def _connect_retried(r: ScenarioResult) -> Judgement:
    s = r.summary
    nomax = s["regimes"].get("pub_nomax", {})
    pairs = list(zip(nomax.get("values_ms", []), nomax.get("gaps_ms", []))) + \
        list(zip(s["retried_values_ms"], s["observed_gaps_ms"]))
    matches = bool(pairs) and all(abs(v - g) <= 50 for v, g in pairs)
    disc = _first(r, "pub", "DISCONNECTED")
    after = [ev for ev in r.filter("pub") if disc and ev.t > disc.t and not ev.is_marker]
    first_is_retry = bool(after) and after[0].event == "CONNECT_RETRIED"
    observed = (f"The value is the wait before the next attempt, in ms, and the wait observed matched it "
                f"({'within 50 ms' if matches else 'NOT within 50 ms'}: announced/observed "
                f"{[(v, round(g)) for v, g in pairs[:5]]}); without a max it includes random jitter. "
                + ("But the first CONNECT_RETRIED follows DISCONNECTED before any connect attempt has failed: "
                   "it announces a retry, it does not report a failure." if first_is_retry else ""))
    verdict = "partly" if matches and first_is_retry else "holds" if matches else "differs"
    return Judgement(verdict, observed, _some([disc] + [ev for ev in after[:3]]))


def _backoff(r: ScenarioResult) -> Judgement:
    s = r.summary
    values, ivl_max = s["retried_values_ms"], s["reconnect_ivl_max"]
    retried = r.filter("pub", "CONNECT_RETRIED")[: len(values)]
    if s["exceeds_max"]:
        return Judgement("differs", f"With reconnect_ivl={s['reconnect_ivl']}, max={ivl_max}: waits {values} ms "
                                    "exceed the max (libzmq before 4.3.5 adds jitter after capping).", retried)
    if s["doubles_exactly"]:
        return Judgement("holds", f"With reconnect_ivl={s['reconnect_ivl']}, max={ivl_max}: waits {values} ms "
                                  f"(observed {[round(g) for g in s['observed_gaps_ms']]}): exact doubling up to "
                                  "the max, as in libzmq 4.3.5 (4.3.4 added jitter).", retried)
    return Judgement("partly", f"With reconnect_ivl={s['reconnect_ivl']}, max={ivl_max}: waits {values} ms -- "
                               f"not the exact doubling {s['expected_doubling_ms']}, but within the max.", retried)


def _max_below(r: ScenarioResult) -> Judgement:
    below = r.summary["regimes"].get("pub_below")
    if not below:
        return Judgement("partly", "not measured (compare was off)")
    values, ivl_max, ivl = below["values_ms"], below["reconnect_ivl_max"], below["reconnect_ivl"]
    evidence = r.filter("pub_below", "CONNECT_RETRIED")[:3]
    if values and all(v == ivl_max for v in values):
        return Judgement("differs", f"reconnect_ivl={ivl}, reconnect_ivl_max={ivl_max}: every wait was {ivl_max} ms "
                                    f"({values}): the lower max is not ignored, it caps the interval.", evidence)
    if values and all(ivl <= v < 2 * ivl for v in values):
        return Judgement("holds", f"reconnect_ivl={ivl}, reconnect_ivl_max={ivl_max}: waits {values} ms, as "
                                  "without a max.", evidence)
    return Judgement("partly", f"reconnect_ivl={ivl}, reconnect_ivl_max={ivl_max}: waits {values} ms.", evidence)


def _reconnect_stop(r: ScenarioResult) -> Judgement:
    s = r.summary
    v = s["variants"]["pub_stop"]
    evidence = [ev for ev in r.filter("pub_stop") if ev.event != "MONITOR_STOPPED"][-5:]
    draft = s["draft_api"]
    if not s["reconnect_stop_accepted"]:
        return Judgement("holds", f"This build (draft API {draft}) rejects ZMQ_RECONNECT_STOP.", evidence)
    if s["reconnect_stop_honoured"]:
        return Judgement("differs", f"This build reports no draft API (zmq.has('draft') is {draft}), yet it accepts "
                                    "ZMQ_RECONNECT_STOP (109) and honours CONN_REFUSED: "
                                    f"{' -> '.join(v['events'])}, then {v['retried_after_first_refused']} "
                                    "CONNECT_RETRIED after the first refused attempt. No event says it gave up.",
                         evidence)
    return Judgement("partly", f"Accepted on a build with draft API {draft}, but the loop went on "
                               f"({v['retried_after_first_refused']} CONNECT_RETRIED after the refusal).", evidence)


def _ivl_minus_one(r: ScenarioResult) -> Judgement:
    v = r.summary["variants"]["pub_ivl-1"]
    evidence = [ev for ev in r.filter("pub_ivl-1") if not ev.is_marker][-3:]
    if v["connect_retried"] == 0:
        return Judgement("holds", f"reconnect_ivl=-1: after the peer died the socket logged {v['events']} and "
                                  "never tried again (no CONNECT_RETRIED, no event saying so either).", evidence)
    return Judgement("differs", f"reconnect_ivl=-1: {v['connect_retried']} CONNECT_RETRIED.", evidence)


def _heartbeat_timeout(r: ScenarioResult) -> Judgement:
    s = r.summary
    evidence = _some([_first(r, "peer", "FAULT"), _first(r, "hb", "DISCONNECTED")])
    if not s["detected"]:
        return Judgement("differs", f"heartbeat_ivl={s['heartbeat_ivl']}, timeout={s['heartbeat_timeout']}: a frozen "
                                    f"peer was not detected in {s['duration_s']:g} s.", evidence)
    lo, hi = s["expected_window_s"]
    d = s["detection_s"]
    inside = lo - 0.01 <= d <= hi + 0.1
    observed = (f"heartbeat_ivl={s['heartbeat_ivl']} ms, timeout={s['heartbeat_timeout']} ms: a SIGSTOPped peer "
                f"was dropped (DISCONNECTED) {d * 1000:.0f} ms after it froze -- between TIMEOUT and TIMEOUT+IVL "
                f"({lo * 1000:.0f}..{hi * 1000:.0f} ms), because the unanswered PING leaves up to one interval "
                "after the freeze.")
    return Judgement("holds" if inside else "partly", observed, evidence)


def _heartbeat_default(r: ScenarioResult) -> Judgement:
    s = r.summary
    d = s["compare"].get("hb_default")
    reads = s["heartbeat_timeout_default_reads"]
    evidence = _some([_first(r, "peer", "FAULT"), _first(r, "hb_default", "DISCONNECTED")])
    if d is None:
        return Judgement("partly", f"getsockopt(ZMQ_HEARTBEAT_TIMEOUT) reads {reads}; behaviour not measured.")
    ivl = s["heartbeat_ivl"]
    behaves = d["detected"] and ivl / 1000 - 0.01 <= d["detection_s"] <= 2 * ivl / 1000 + 0.1
    observed = (f"getsockopt(ZMQ_HEARTBEAT_TIMEOUT) reads {reads}, not 0; with only heartbeat_ivl={ivl} set the "
                f"frozen peer was dropped after {d['detection_s']} s, i.e. the timeout was HEARTBEAT_IVL.")
    if behaves and reads != 0:
        return Judgement("partly", observed, evidence)
    return Judgement("holds" if behaves else "differs", observed, evidence)


def _linger(r: ScenarioResult) -> Judgement:
    children = r.summary["children"]
    default = children["default"]
    zero = children["linger_0"]
    label = next(k for k in children if k not in ("default", "linger_0"))
    n = children[label]
    n_ms = n["linger"]
    ok_default = default["hung"] and default["linger"] == -1
    ok_zero = zero["term_ms"] is not None and zero["term_ms"] < 100
    ok_n = n["term_ms"] is not None and n_ms - 50 <= n["term_ms"] <= n_ms + 500
    observed = (f"Messages queued for a dead peer: default LINGER (reads {default['linger']}): ctx.term() "
                + (f"still blocked after {r.summary['timeout_s']:g} s (child killed)" if default["hung"]
                   else f"returned after {default['term_ms']} ms")
                + f"; LINGER 0: {zero['term_ms']} ms; LINGER {n_ms}: {n['term_ms']} ms.")
    evidence = [ev for ev in r.events if ev.event == "NOTE" and "ctx.term()" in ev.detail][:6]
    if ok_default and ok_zero and ok_n:
        return Judgement("holds", observed, evidence)
    return Judgement("partly" if (ok_default or ok_zero or ok_n) else "differs", observed, evidence)


def _many(r: ScenarioResult) -> Judgement:
    s = r.summary
    connected = r.filter("sub", "CONNECTED")
    disc = _first(r, "sub", "DISCONNECTED")
    observed = (f"One SUB socket reported {s['connections']} CONNECTED with {s['distinct_fds']} different fds "
                f"{s['fds']}; killing {s['killed']} gave DISCONNECTED fd {s['disconnected_fd']} (that connection "
                f"only) while the others kept delivering ({s['survivors_delivering']}). Each event's fd is one of "
                "several network sockets the ZeroMQ socket owns.")
    verdict = "partly" if s["distinct_fds"] > 1 and s["survivors_delivering"] else "holds"
    return Judgement(verdict, observed, _some(list(connected[:3]) + [disc]))


def _close_emits(r: ScenarioResult) -> Judgement:
    s = r.summary
    client, server = s["client_close_emits"], s["server_close_emits"]
    evidence = _some([_first(r, "server", "CLOSED"), _first(r, "server", "MONITOR_STOPPED"),
                      r.filter("client", "MONITOR_STOPPED")[-1] if r.filter("client", "MONITOR_STOPPED") else None])
    observed = (f"close() of a connected client emitted {client} on it; close() of a bound server emitted {server}: "
                "CLOSED only for the listening fd, nothing for the connections it dropped; MONITOR_STOPPED last. "
                "CLOSED is about network fds, not about the ZeroMQ socket.")
    only_stop = client == ["MONITOR_STOPPED"]
    return Judgement("partly" if only_stop else "holds", observed, evidence)


def _disconnect(r: ScenarioResult) -> Judgement:
    v = r.summary["variants"]["pub_cap"]
    policy = _first(r, "pub_cap", "POLICY")
    evidence = _some([policy] + [ev for ev in r.filter("pub_cap", "CONNECT_RETRIED")][-2:])
    if v["stopped"] and (v["retried_after_policy"] or 0) <= 1:
        return Judgement("holds", f"disconnect() after {v['connect_retried']} CONNECT_RETRIED ended the endpoint's "
                                  f"reconnect loop ({v['retried_after_policy']} after the call); it emits no event "
                                  "on the disconnecting socket itself, and completes only when the socket's thread "
                                  "next uses it.", evidence)
    return Judgement("differs", f"the loop went on after disconnect(): {v['retried_after_policy']} CONNECT_RETRIED.",
                     evidence)


def _inproc(r: ScenarioResult) -> Judgement:
    s = r.summary
    tcp = r.filter("tcp_client")
    if s["inproc_events"] == 0 and s["tcp_events"] > 0:
        return Judgement("holds", f"An inproc pair connected and exchanged a message: {s['inproc_events']} monitor "
                                  f"events; the same over tcp: {s['tcp_events']}.", tcp[:3])
    return Judgement("differs", f"inproc produced {s['inproc_events']} monitor events.", r.filter("inproc_client")[:3])


def _probe_inproc(**_: Any) -> ScenarioResult:
    """A small probe: an inproc pair and a tcp pair, each exchanging one message; count monitor events."""
    from .traffic import deliver

    with Lab() as lab:
        for transport in ("inproc", "tcp"):
            server = lab.socket("PAIR", f"{transport}_server", bind=transport)
            client = lab.socket("PAIR", f"{transport}_client", connect=lab.endpoint(server))
            deliver(client, server, b"hello", timeout=3.0)
        lab.wait_for("HANDSHAKE_SUCCEEDED", "tcp_client", timeout=3.0)
        lab.wait_for("HANDSHAKE_SUCCEEDED", "tcp_server", timeout=3.0)
        events = lab.events()
    summary = {
        "inproc_events": sum(1 for ev in events if ev.socket.startswith("inproc") and not ev.is_marker
                             and ev.event != "MONITOR_STOPPED"),
        "tcp_events": sum(1 for ev in events if ev.socket.startswith("tcp") and ev.event != "MONITOR_STOPPED"),
    }
    return ScenarioResult("probe:inproc", versions(), {}, events, summary, [])


PROBES: dict[str, Callable[..., ScenarioResult]] = {"probe:inproc": _probe_inproc}

_SM = f"zmq_socket_monitor(3), {MANUAL}"
_SO = f"zmq_setsockopt(3), {MANUAL}"

CLAIMS: list[Claim] = [
    Claim("disconnected-closes-socket",
          "ZMQ_EVENT_DISCONNECTED: the socket was disconnected unexpectedly; the value is the FD of the underlying "
          "network socket. Warning: \"this socket will be closed\".",
          _SM, "disconnect-keeps-socket", _disconnected),
    Claim("closed-event",
          "ZMQ_EVENT_CLOSED: \"the socket was closed\"; the value is the FD of the (now closed) network socket.",
          _SM, "retry-loop", _closed),
    Claim("connect-delayed-value",
          "ZMQ_EVENT_CONNECT_DELAYED: a connect request is pending; the event value is unspecified.",
          _SM, "retry-loop", _connect_delayed),
    Claim("connect-retried-value",
          "ZMQ_EVENT_CONNECT_RETRIED: a connect request failed and is being retried; the value is the reconnect "
          "interval in ms, recalculated at each retry.",
          _SM, "backoff", _connect_retried),
    Claim("reconnect-ivl-max-backoff",
          "ZMQ_RECONNECT_IVL_MAX: wait at most this long between attempts; the interval doubles with each attempt "
          "until it reaches the max.",
          _SO, "backoff", _backoff),
    Claim("reconnect-ivl-max-below-ivl",
          "ZMQ_RECONNECT_IVL_MAX must be >= ZMQ_RECONNECT_IVL, \"or else it will be ignored\".",
          _SO, "backoff", _max_below),
    Claim("reconnect-stop-draft",
          "ZMQ_RECONNECT_STOP (e.g. ZMQ_RECONNECT_STOP_CONN_REFUSED stops reconnecting on ECONNREFUSED) is \"in "
          "DRAFT state, not yet available in stable releases\".",
          _SO, "stop-retrying", _reconnect_stop),
    Claim("reconnect-ivl-minus-one",
          "ZMQ_RECONNECT_IVL: \"the value -1 means no reconnection\".",
          _SO, "stop-retrying", _ivl_minus_one),
    Claim("heartbeat-timeout",
          "ZMQ_HEARTBEAT_TIMEOUT: how long to wait before timing out a connection after sending a PING and "
          "receiving no traffic.",
          _SO, "heartbeat", _heartbeat_timeout),
    Claim("heartbeat-timeout-default",
          "ZMQ_HEARTBEAT_TIMEOUT default value: \"0 normally, ZMQ_HEARTBEAT_IVL if it is set\".",
          _SO, "heartbeat", _heartbeat_default),
    Claim("linger-ctx-term",
          "ZMQ_LINGER (default -1, infinite): with messages pending, zmq_ctx_term() blocks until they are sent; "
          "0 discards them at once; N > 0 blocks at most N ms.",
          f"zmq_setsockopt(3) and zmq_ctx_term(3), {MANUAL}", "context-freeze", _linger),
    Claim("one-socket-many-connections",
          "A monitor tracks events \"on a ZeroMQ socket\"; a connection event's value is \"the FD of the "
          "underlying network socket\" -- as if a socket had one.",
          _SM, "many-connections", _many),
    Claim("close-emits",
          "ZMQ_EVENT_CLOSED: \"the socket was closed\"; ZMQ_EVENT_MONITOR_STOPPED: monitoring on this socket ended.",
          _SM, "lifecycle", _close_emits),
    Claim("disconnect-stops-endpoint",
          "zmq_disconnect() disconnects the socket from the endpoint; the actual disconnect may happen later.",
          f"zmq_disconnect(3), {MANUAL}", "stop-retrying", _disconnect),
    Claim("monitor-transports",
          "zmq_socket_monitor() supports only connection-oriented transports: TCP, IPC and TIPC.",
          _SM, "probe:inproc", _inproc),
]


def check(claims: Sequence[Claim] | None = None, *,
          on_progress: Callable[[str], None] | None = None) -> CheckReport:
    """Check ``claims`` (default: all of :data:`CLAIMS`) live; each scenario runs once.

    ``on_progress(text)`` is called before each scenario. A scenario that fails
    (an exception) leaves its claims ``unchecked`` with the error as the
    observation; nothing is retried or guessed.
    """
    chosen = list(CLAIMS if claims is None else claims)
    started = time.monotonic()
    results: dict[str, ScenarioResult | BaseException] = {}
    for name in dict.fromkeys(c.scenario for c in chosen):
        if on_progress is not None:
            on_progress(name)
        settings = CHECK_SETTINGS.get(name, {})
        try:
            results[name] = PROBES[name](**settings) if name in PROBES else get(name).run(**settings)
        except (TimeoutError, RuntimeError, OSError, ValueError) as exc:
            results[name] = exc
    out: list[ClaimResult] = []
    for claim in chosen:
        result = results[claim.scenario]
        if isinstance(result, BaseException):
            out.append(ClaimResult(claim.id, claim.documented, claim.source,
                                   f"not checked: {claim.scenario} failed: {result}", "unchecked", claim.scenario))
            continue
        try:
            j = claim.judge(result)
        except (KeyError, TypeError, ValueError, IndexError, StopIteration) as exc:
            out.append(ClaimResult(claim.id, claim.documented, claim.source,
                                   f"not checked: the result of {claim.scenario} lacked {exc!r}", "unchecked",
                                   claim.scenario))
            continue
        out.append(ClaimResult(claim.id, claim.documented, claim.source, j.observed, j.verdict, claim.scenario,
                               list(j.evidence)))
    return CheckReport(versions(), out, time.monotonic() - started)
