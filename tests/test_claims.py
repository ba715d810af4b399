"""The claims checker: the manual's statements, judged live against this libzmq."""

from __future__ import annotations

import json

from zlab.claims import CHECK_SETTINGS, CLAIMS, VERDICTS, Claim, check


def _claims(*ids: str) -> list[Claim]:
    return [c for c in CLAIMS if c.id in ids]


def test_the_table_covers_the_documented_claims_with_page_and_version():
    ids = {c.id for c in CLAIMS}
    assert len(CLAIMS) >= 10 and len(ids) == len(CLAIMS)
    assert {"disconnected-closes-socket", "closed-event", "connect-delayed-value", "connect-retried-value",
            "reconnect-ivl-max-backoff", "reconnect-stop-draft", "heartbeat-timeout", "heartbeat-timeout-default",
            "linger-ctx-term", "one-socket-many-connections", "close-emits"} <= ids
    pages = {"zmq_socket_monitor(3)", "zmq_setsockopt(3)", "zmq_ctx_term(3)", "zmq_disconnect(3)"}
    assert all(any(page in c.source for page in pages) and "libzmq 4.3" in c.source for c in CLAIMS)
    assert all(c.scenario in CHECK_SETTINGS for c in CLAIMS)


def test_disconnected_claim_differs_the_socket_is_not_closed():
    report = check(_claims("disconnected-closes-socket", "monitor-transports"))
    r = report.get("disconnected-closes-socket")
    assert r.verdict == "differs"
    assert "stayed open" in r.observed and "reconnected" in r.observed
    assert [ev.event for ev in r.evidence][:2] == ["DISCONNECTED", "CONNECT_RETRIED"]
    assert report.get("monitor-transports").verdict == "holds"


def test_claims_sharing_a_scenario_share_one_run():
    seen: list[str] = []
    report = check(_claims("closed-event", "connect-delayed-value"), on_progress=seen.append)
    assert seen == ["retry-loop"]
    assert report.get("connect-delayed-value").verdict == "partly"  # "unspecified", always EINPROGRESS
    assert "115" in report.get("connect-delayed-value").observed
    assert all(r.verdict in VERDICTS for r in report.results)


def test_a_claim_whose_scenario_fails_is_unchecked_not_guessed():
    broken = Claim("broken", "a statement", "zmq_socket_monitor(3), libzmq 4.3.5", "no-such-scenario",
                   lambda r: None)
    r = check([broken]).get("broken")
    assert r.verdict == "unchecked" and "no-such-scenario" in r.observed


def test_report_json_has_libzmq_pyzmq_and_claims_with_their_keys():
    data = json.loads(json.dumps(check(_claims("monitor-transports")).to_json()))
    assert {"libzmq", "pyzmq", "claims"} <= set(data)
    assert {"id", "documented", "source", "observed", "verdict"} <= set(data["claims"][0])
