"""``backoff``: RECONNECT_IVL vs RECONNECT_IVL_MAX, the wait announced and the wait observed per attempt.

A PUB connects to a bound SUB that dies; each CONNECT_RETRIED announces the
wait (ms) before the next attempt, whose CONNECT_DELAYED marks when it began.
libzmq 4.3.5 (src/stream_connecter_base.cpp ``get_new_reconnect_ivl``): with
RECONNECT_IVL_MAX > 0 the wait starts at RECONNECT_IVL and doubles exactly up
to the max -- even when the max is *below* RECONNECT_IVL, where
zmq_setsockopt(3) says the max is ignored; with RECONNECT_IVL_MAX = 0 each wait
is RECONNECT_IVL plus random jitter in [0, RECONNECT_IVL). libzmq 4.3.4 still
added jitter with a max set and could exceed it. After ``attempts`` retries a
SUB binds the endpoint again during the last wait, so that attempt connects and
the loop ends. With ``compare`` on, the two
other regimes run after the main one (sockets ``pub_nomax`` and ``pub_below``).
"""

from __future__ import annotations

from typing import Any

from ..lab import Lab
from ._base import Range, scenario
from ._measure import attempt_gaps

#: How far an observed gap may be from the announced wait and still "match" (ms).
GAP_TOLERANCE_MS = 50.0


def expected_waits(ivl: int, ivl_max: int, attempts: int) -> list[int] | None:
    """The waits libzmq 4.3.5 announces with a max set: ivl, 2 ivl, 4 ivl... capped at ``ivl_max``.

    None when ``ivl_max`` is 0 (no backoff: the waits are random).
    """
    if ivl_max <= 0:
        return None
    waits, current = [], -1
    for _ in range(attempts):
        candidate = ivl if current == -1 else current * 2
        current = min(candidate, ivl_max)
        waits.append(current)
    return waits


def _measure(lab: Lab, label: str, ivl: int, ivl_max: int, attempts: int, budget: float,
             timeout: float) -> dict[str, Any]:
    """One regime: a SUB dies, its connecting PUB retries; returns waits announced and observed."""
    sub = lab.socket("SUB", label.replace("pub", "sub"), bind="tcp", subscribe=b"")
    endpoint = lab.endpoint(sub)
    pub = lab.socket("PUB", label, connect=endpoint, reconnect_ivl=ivl, reconnect_ivl_max=ivl_max)
    lab.wait_for("HANDSHAKE_SUCCEEDED", label, timeout=timeout)
    fault = lab.mark("FAULT", f"{label}: the bound SUB dies (reconnect_ivl={ivl}, reconnect_ivl_max={ivl_max})",
                     socket=label.replace("pub", "sub"), endpoint=endpoint)
    sub.close()
    disconnected = lab.wait_for("DISCONNECTED", label, since=fault.t, timeout=timeout)
    complete = True
    returned = None
    try:
        last = lab.wait_for("CONNECT_RETRIED", label, since=disconnected.t, count=attempts,
                            timeout=max(0.0, budget - (lab.now() - disconnected.t)))
        # The SUB returns during the last announced wait: that attempt connects, the loop ends.
        back = lab.socket("SUB", label.replace("pub", "sub2"), subscribe=b"")
        lab.bind(back, endpoint)
        lab.mark("NOTE", f"a SUB binds {endpoint} again during the {last.value} ms wait", socket=label.replace("pub", "sub2"),
                 endpoint=endpoint)
        returned = lab.wait_for("HANDSHAKE_SUCCEEDED", label, since=last.t,
                                timeout=min(timeout, max(0.0, budget - (lab.now() - disconnected.t)))
                                + min(last.value / 1000, budget))
    except TimeoutError:
        complete = False
    pub.close()  # measured: stop it so later regimes are not interleaved with it
    lab.mark("NOTE", f"{label} closed after {attempts if complete else 'fewer'} attempts", socket=label)
    events = lab.events(label, since=disconnected.t)
    pairs = attempt_gaps(events)[:attempts]
    values = [v for v, _ in pairs]
    gaps = [g for _, g in pairs]
    return {
        "reconnect_ivl": ivl,
        "reconnect_ivl_max": ivl_max,
        "values_ms": values,
        "gaps_ms": gaps,
        "max_gap_error_ms": round(max((abs(g - v) for v, g in pairs), default=0.0), 1),
        "attempts_seen": len(pairs),
        "complete": complete,
        "reconnected_after_ms": round((returned.t - disconnected.t) * 1000, 1) if returned else None,
    }


@scenario(
    "backoff",
    "RECONNECT_IVL vs RECONNECT_IVL_MAX: the wait announced and observed per attempt (doubling, jitter, a low max)",
    reconnect_ivl=Range(100, 1, 5000),
    reconnect_ivl_max=Range(800, 0, 30000),
    attempts=Range(5, 1, 30),
    compare=True,
    duration=10.0,
    timeout_s=5.0,
)
def backoff(lab: Lab, s: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    ivl, ivl_max, attempts = s["reconnect_ivl"], s["reconnect_ivl_max"], s["attempts"]
    if ivl <= 0:
        raise ValueError(f"backoff needs reconnect_ivl > 0 (ms) to reconnect at all; got {ivl}")
    main = _measure(lab, "pub", ivl, ivl_max, attempts, s["duration"], s["timeout_s"])
    expected = expected_waits(ivl, ivl_max, main["attempts_seen"])
    regimes = {"pub": main}
    if s["compare"]:
        quick = min(attempts, 5)
        if ivl_max == 0:
            regimes["pub_double"] = _measure(lab, "pub_double", ivl, 8 * ivl, quick,
                                               min(s["duration"], 24 * ivl / 1000 + 1), s["timeout_s"])
        else:
            regimes["pub_nomax"] = _measure(lab, "pub_nomax", ivl, 0, quick,
                                            min(s["duration"], 2.5 * ivl * quick / 1000 + 1), s["timeout_s"])
        if ivl >= 2 and not 0 < ivl_max < ivl:
            regimes["pub_below"] = _measure(lab, "pub_below", ivl, ivl // 2, quick,
                                            min(s["duration"], 1.5 * ivl * quick / 1000 + 1), s["timeout_s"])
    within = all(abs(g - v) <= GAP_TOLERANCE_MS for v, g in zip(main["values_ms"], main["gaps_ms"]))
    exact = expected is not None and main["values_ms"] == expected
    summary = {
        "reconnect_ivl": ivl,
        "reconnect_ivl_max": ivl_max,
        "retried_values_ms": main["values_ms"],
        "observed_gaps_ms": main["gaps_ms"],
        "expected_doubling_ms": expected,
        "doubles_exactly": exact,
        "exceeds_max": ivl_max > 0 and any(v > ivl_max for v in main["values_ms"]),
        "gaps_match_within_50ms": within,
        "max_gap_error_ms": main["max_gap_error_ms"],
        "regimes": regimes,
    }
    findings = []
    if not main["complete"]:
        findings.append(f"Only {main['attempts_seen']} of {attempts} attempts fitted in duration={s['duration']:g} s; "
                        "raise duration to see them all.")
    if ivl_max > 0:
        how = ("doubled exactly as libzmq 4.3.5 does" if exact else
               f"did not follow the exact doubling {expected} (older libzmq adds jitter)")
        findings.append(f"reconnect_ivl={ivl}, reconnect_ivl_max={ivl_max}: CONNECT_RETRIED announced "
                        f"{main['values_ms']} ms -- {how}"
                        + ("; some exceed the max." if summary["exceeds_max"] else "."))
    else:
        findings.append(f"reconnect_ivl={ivl}, reconnect_ivl_max=0: CONNECT_RETRIED announced {main['values_ms']} ms "
                        f"-- no backoff, reconnect_ivl plus random jitter.")
    findings.append(f"The observed waits (CONNECT_RETRIED to the next attempt's CONNECT_DELAYED) were "
                    f"{main['gaps_ms']} ms: {'all' if within else 'not all'} within {GAP_TOLERANCE_MS:g} ms of "
                    f"the announced value (worst {main['max_gap_error_ms']:g} ms). The value is the real wait.")
    if main["reconnected_after_ms"] is not None:
        findings.append(f"A SUB bound the endpoint again during the last wait: the next attempt connected "
                        f"(HANDSHAKE_SUCCEEDED {main['reconnected_after_ms']:.0f} ms after the DISCONNECTED) and "
                        "the loop ended there.")
    for name in ("pub_nomax", "pub_double", "pub_below"):
        if name in regimes and not regimes[name]["values_ms"]:
            findings.append(f"The comparison run {name} saw no retry within duration={s['duration']:g} s; "
                            "raise duration to compare.")
            del regimes[name]
    if "pub_nomax" in regimes:
        r = regimes["pub_nomax"]
        in_range = all(ivl <= v < 2 * ivl for v in r["values_ms"])
        findings.append(f"Without a max (reconnect_ivl_max=0): {r['values_ms']} ms -- "
                        + (f"each in [{ivl}, {2 * ivl}): jitter, no growth." if in_range else "outside [ivl, 2 ivl)."))
    if "pub_double" in regimes:
        r = regimes["pub_double"]
        findings.append(f"With reconnect_ivl_max={8 * ivl}: {r['values_ms']} ms -- "
                        + ("exact doubling up to the max." if r["values_ms"] == expected_waits(ivl, 8 * ivl, len(
                            r["values_ms"])) else "not the exact doubling libzmq 4.3.5 does."))
    if "pub_below" in regimes:
        r = regimes["pub_below"]
        findings.append(f"A max below the interval (reconnect_ivl={ivl}, reconnect_ivl_max={ivl // 2}): "
                        f"{r['values_ms']} ms -- the manual says such a max is ignored; "
                        + ("here it caps every wait." if r["values_ms"] and all(v == ivl // 2 for v in r["values_ms"])
                           else "here it was not simply applied as a cap."))
    return summary, findings
