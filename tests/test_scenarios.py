"""Named scenarios: each one's key finding, measured live, and their settings' validation."""

from __future__ import annotations

import os
import pkgutil
import sys
import time

import pytest
import zmq

import zlab.scenarios as scenarios
from zlab.scenarios import SCENARIOS, get, run
from zlab.scenarios._base import parse_value, validate_settings
from conftest import children_of

LIBZMQ_435 = zmq.zmq_version_info() >= (4, 3, 5)


# -- the registry and settings ---------------------------------------------------------
def test_every_scenario_module_is_imported_and_registers():
    modules = {m.name for m in pkgutil.iter_modules(scenarios.__path__) if not m.name.startswith("_")}
    assert modules and all(f"zlab.scenarios.{m}" in sys.modules for m in modules)
    assert {"lifecycle", "disconnect-keeps-socket", "many-connections", "retry-loop", "direction", "backoff",
            "heartbeat", "stop-retrying", "monitor-freeze", "context-freeze", "hwm", "handshake-failure",
            "bind-failed"} <= set(SCENARIOS)


def test_every_scenario_has_a_one_line_description_and_valid_defaults():
    for name, sc in SCENARIOS.items():
        assert sc.description and "\n" not in sc.description, name
        assert validate_settings(sc, {}) == dict(sc.defaults)


def test_unknown_setting_names_the_scenario_and_lists_its_settings():
    with pytest.raises(ValueError, match=r"scenario 'retry-loop' has no setting 'heartbeat'; its settings: "
                                         r"duration, reconnect_ivl, timeout_s"):
        run("retry-loop", heartbeat=1)


def test_settings_are_checked_by_kind_range_and_choice():
    with pytest.raises(ValueError, match="reconnect_ivl must be in -1"):
        validate_settings(get("backoff"), {"reconnect_ivl": -7})
    with pytest.raises(ValueError, match=r"duration is in seconds and must be in \(0, 120\]"):
        validate_settings(get("retry-loop"), {"duration": 0})
    with pytest.raises(ValueError, match=r"attempts must be in 1\.\.30"):
        validate_settings(get("backoff"), {"attempts": 31})
    with pytest.raises(ValueError, match="reader must be one of unread, none, rcvhwm0"):
        validate_settings(get("monitor-freeze"), {"reader": "lazy"})


def test_text_values_are_parsed_by_the_type_of_the_default():
    assert parse_value(get("backoff"), "reconnect_ivl", "250") == 250
    assert parse_value(get("backoff"), "compare", "no") is False
    assert parse_value(get("retry-loop"), "duration", "1.5") == 1.5
    assert parse_value(get("lifecycle"), "transport", "ipc") == "ipc"
    with pytest.raises(ValueError, match="heartbeat_ivl must be a whole number"):
        parse_value(get("heartbeat"), "heartbeat_ivl", "1e2")
    with pytest.raises(ValueError, match="compare must be true or false; got 'maybe'"):
        parse_value(get("backoff"), "compare", "maybe")


def test_a_failing_scenario_leaves_no_socket_or_thread():
    import threading

    before = threading.active_count()
    with pytest.raises(ValueError, match="foreign_address must be an IP address"):
        run("bind-failed", foreign_address="not-an-ip")
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= before


# -- each scenario's key finding -----------------------------------------------------------
def test_lifecycle_close_of_a_connected_socket_emits_only_monitor_stopped():
    r = run("lifecycle")
    s = r.summary
    assert s["client_close_emits"] == ["MONITOR_STOPPED"]
    assert s["server_close_emits"] == ["CLOSED", "MONITOR_STOPPED"]
    assert s["disconnect_call_emits_on_client"] == []
    assert s["connect_delayed_values"] == [115]
    assert {"LISTENING", "ACCEPTED", "CONNECTED", "HANDSHAKE_SUCCEEDED", "DISCONNECTED", "CONNECT_RETRIED",
            "CLOSED", "MONITOR_STOPPED"} <= set(s["events_seen"])
    assert r.findings and r.versions["libzmq"] == zmq.zmq_version()


def test_disconnect_keeps_socket_reconnects_and_delivers():
    s = run("disconnect-keeps-socket", cycles=2).summary
    assert s["pub_closed"] is False and s["delivered_after"] == "after" and s["retry_cycles"] >= 2


def test_retry_loop_only_the_connecting_side_loops_one_closed_per_attempt():
    r = run("retry-loop", duration=1.0)
    s = r.summary
    assert s["cycles"] >= 4  # ~6.7/s at reconnect_ivl=100 (each wait in [100, 200) ms)
    assert s["closed"] == s["connect_delayed"]
    assert s["connect_delayed_values"] == [115]
    assert s["bound_side_retries"] == 0
    assert all(100 <= v < 200 for v in s["retry_intervals_ms"])
    pub = [ev.event for ev in r.filter("pub") if not ev.is_marker]
    assert pub[pub.index("DISCONNECTED") + 1] == "CONNECT_RETRIED"


def test_direction_a_binding_pub_does_not_loop_a_connecting_one_does():
    sides = run("direction", duration=0.8).summary["sides"]
    assert sides["bind_pub"]["counts"] == {"DISCONNECTED": 1}
    assert sides["conn_pub"]["cycles"] >= 3


@pytest.mark.skipif(not LIBZMQ_435, reason="exact doubling is libzmq >= 4.3.5 behaviour")
@pytest.mark.parametrize("ivl", [0, -1])
def test_retry_loop_without_reconnection_reports_no_cycle_and_claims_no_loop(ivl):
    r = run("retry-loop", reconnect_ivl=ivl, duration=0.5)
    assert r.summary["cycles"] == 0 and r.summary["connect_retried"] == 0  # measured: 4.3.5 treats 0 like -1
    text = "\n".join(r.findings)
    assert "no CONNECT_RETRIED -> CONNECT_DELAYED -> CLOSED cycle" in text and f"reconnect_ivl={ivl}" in text
    assert "full" not in text and "[]" not in text and "only the connecting side loops" not in text.lower()


def test_direction_without_reconnection_does_not_claim_a_connecting_pub_loops():
    r = run("direction", reconnect_ivl=0, duration=0.3)
    assert r.summary["sides"]["conn_pub"]["cycles"] == 0
    assert "no retry cycle" in r.findings[1] and "endless loop" not in "\n".join(r.findings)


def test_disconnect_keeps_socket_refuses_a_reconnect_ivl_that_never_reconnects():
    with pytest.raises(ValueError, match=r"reconnect_ivl must be in 1\.\.60000; got 0"):
        run("disconnect-keeps-socket", reconnect_ivl=0)


def test_backoff_doubles_exactly_and_the_value_is_the_real_wait():
    s = run("backoff", reconnect_ivl=100, reconnect_ivl_max=400, attempts=4).summary
    assert s["retried_values_ms"] == [100, 200, 400, 400]
    assert s["gaps_match_within_50ms"], s["observed_gaps_ms"]
    assert all(100 <= v < 200 for v in s["regimes"]["pub_nomax"]["values_ms"])
    assert s["regimes"]["pub_below"]["values_ms"] == [50, 50, 50, 50]  # the manual: "ignored"


def test_heartbeat_detects_a_paused_peer_between_timeout_and_timeout_plus_ivl():
    s = run("heartbeat", heartbeat_ivl=100, heartbeat_timeout=300, compare=False, duration=1.5).summary
    assert s["detected"] and 0.25 <= s["detection_s"] <= 1.5
    frozen = s["reconnect_to_frozen_peer"]
    assert frozen["connected_while_frozen"] and frozen["handshakes_while_frozen"] == 0
    assert frozen["handshake_after_resume_ms"] is not None


def test_heartbeat_keepalive_is_called_undetected_only_when_the_window_covers_its_give_up_time():
    short = run("heartbeat", duration=0.8)
    assert not short.summary["compare"]["keepalive"]["detected"]
    assert short.summary["keepalive"]["covered"] is False
    assert "too short to tell" in short.findings[2] and "kernel answers" not in short.findings[2]
    long = run("heartbeat", duration=3.0)
    k = long.summary["keepalive"]
    assert k["covered"] and k["window_s"] >= k["gives_up_s"] + 0.5  # 1 s idle + 1 s x 1 probe = 2 s
    assert not long.summary["compare"]["keepalive"]["detected"] and "kernel answers" in long.findings[2]


def test_heartbeat_off_never_detects_a_paused_peer():
    s = run("heartbeat", heartbeat_ivl=0, compare=False, duration=1.0).summary
    assert s["detected"] is False and s["detection_s"] is None


def test_stop_retrying_ends_the_loop_three_ways():
    s = run("stop-retrying", duration=1.0).summary
    v = s["variants"]
    assert v["baseline"]["connect_retried"] >= 3 and not v["baseline"]["stopped"]
    if s["reconnect_stop_accepted"]:  # measured on this build, whatever zmq.has("draft") says
        assert v["pub_stop"]["retried_after_first_refused"] == 0 and s["reconnect_stop_honoured"]
    assert v["pub_cap"]["stopped"] and v["pub_cap"]["connect_retried"] <= 5  # 3, plus any in flight
    assert v["pub_ivl-1"]["connect_retried"] == 0


def test_monitor_freeze_an_unread_monitor_stops_another_sockets_traffic():
    before = children_of(os.getpid())
    s = run("monitor-freeze", baseline_s=0.3, duration=1.2).summary
    assert s["received_per_s_before"] > 50
    assert s["context_frozen"] and s["received_per_s_after_settle"] == 0
    assert s["child_sent_after_fault"] > 0
    assert children_of(os.getpid()) <= before


def test_monitor_freeze_a_rcvhwm_0_reader_keeps_the_context_moving():
    s = run("monitor-freeze", reader="rcvhwm0", baseline_s=0.3, duration=1.0).summary
    assert not s["context_frozen"] and s["received_per_s_after_settle"] > 50 and s["term_returned"]


def test_context_freeze_linger_decides_how_long_term_blocks():
    before = children_of(os.getpid())
    c = run("context-freeze", linger_ms=200, timeout_s=1.0).summary["children"]
    assert c["default"]["linger"] == -1 and c["default"]["hung"] and c["default"]["killed"]
    assert c["linger_0"]["term_ms"] < 100
    assert 150 <= c["linger_200"]["term_ms"] <= 700
    assert children_of(os.getpid()) <= before


def test_hwm_drops_are_silent_and_counted_by_sequence_numbers():
    s = run("hwm", messages=20000).summary
    assert s["send_errors"] == 0 and s["dropped"] > 0
    assert s["received"] + s["dropped"] == s["sent"]
    assert s["monitor_events_during_send"] == 0


def test_many_connections_one_socket_three_fds_kill_one_the_others_deliver():
    s = run("many-connections", duration=0.6).summary
    assert s["connections"] == 3 and s["distinct_fds"] == 3
    killed = s["per_peer"][s["killed"]]
    assert s["disconnected_fd"] == killed["fd"] and s["retrying_endpoints"] == [killed["endpoint"]]
    assert s["survivors_delivering"] and killed["after_kill"] == 0 and s["sub_closed"] is False


def test_handshake_failure_mechanism_mismatch_is_a_protocol_error_without_retry():
    s = run("handshake-failure", duration=0.3).summary
    assert s["server_event"] == s["client_event"] == "HANDSHAKE_FAILED_PROTOCOL"
    assert s["protocol_error"] == 0x11000002 and s["client_retries"] == 0
    assert s["bad_greeting"]["event"] == "HANDSHAKE_FAILED_PROTOCOL"


def test_bind_failed_reports_the_errno():
    s = run("bind-failed").summary
    assert s["in_use"]["event"] == "BIND_FAILED" and s["in_use"]["value"] == 98  # EADDRINUSE
    assert s["foreign"]["value"] == 99 and s["holder_unaffected"]  # EADDRNOTAVAIL


def test_bind_failed_on_an_address_of_this_machine_says_it_bound_and_uses_a_random_port():
    r = run("bind-failed", foreign_address="127.0.0.1")
    fo = r.summary["foreign"]
    assert fo["error"] is None and fo["event"] is None
    assert fo["bound"].startswith("tcp://127.0.0.1:") and not fo["bound"].endswith(":5555")
    assert "bind succeeded" in r.findings[1] and "that address is on this machine" in r.findings[1]
    assert "raised" not in r.findings[1]


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_bind_failed_refuses_a_wildcard_address_and_says_what_is_allowed(address):
    with pytest.raises(ValueError, match=r"must not be a wildcard.*192\.0\.2\.1.*127\.0\.0\.1"):
        run("bind-failed", foreign_address=address)


def test_results_serialise_to_json_with_the_documented_keys():
    import json

    data = json.loads(json.dumps(run("bind-failed").to_json()))
    assert list(data) == ["scenario", "versions", "settings", "events", "summary", "findings"]
    assert {"t", "socket", "event", "value", "endpoint"} <= set(data["events"][0])
    assert {"pyzmq", "libzmq", "draft"} <= set(data["versions"])
