"""The fault proxy: a real TCP relay between real ZeroMQ sockets, broken on demand."""

from __future__ import annotations

import socket
import struct
import time

import pytest

import zlab
import zlab.traffic


def _through_proxy(lab: zlab.Lab, **pub_options):
    """A SUB bound in the Lab, a proxy in front of it, a PUB connected to the proxy, delivering."""
    sub = lab.socket("SUB", "sub", bind="tcp", subscribe=b"")
    proxy = lab.proxy(lab.endpoint(sub))
    pub = lab.socket("PUB", "pub", connect=proxy.endpoint, **pub_options)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", timeout=5.0)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "sub", timeout=5.0)
    zlab.traffic.deliver(pub, sub, b"hello|0", timeout=5.0)
    while sub.poll(50):
        sub.recv()
    return pub, sub, proxy


def _fault(lab: zlab.Lab, text: str) -> zlab.Event:
    found = [ev for ev in lab.events(event="FAULT") if ev.detail == text]
    assert found, f"no FAULT marker {text!r}"
    return found[-1]


def _thread_cpu_ticks(thread) -> int:
    with open(f"/proc/self/task/{thread.native_id}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks (1/100 s)


def test_pass_relays_both_ways_and_counts_bytes(lab):
    pub, sub, proxy = _through_proxy(lab)
    assert proxy.mode == "pass" and proxy.connections == 1
    stats = proxy.stats()
    assert stats["accepted"] == 1 and stats["bytes_to_target"] > 0 and stats["bytes_from_target"] > 0
    assert lab.endpoint(pub) == proxy.endpoint != proxy.target


def test_blackhole_is_detected_only_by_heartbeats(lab):
    _, _, px = _through_proxy(lab, heartbeat_ivl=100, heartbeat_timeout=300)
    px.blackhole()
    fault = _fault(lab, f"blackhole {px.name}")
    assert px.mode == "blackhole"
    disconnected = lab.wait_for("DISCONNECTED", "pub", since=fault.t, timeout=3.0)
    assert 0.25 <= disconnected.t - fault.t <= 1.5
    # The reconnect reaches the proxy's kernel (CONNECTED) but no handshake: CONNECTED is not proof of life.
    connected = lab.wait_for("CONNECTED", "pub", since=disconnected.t, timeout=3.0)
    assert not lab.events("pub", "HANDSHAKE_SUCCEEDED", since=connected.t)
    px.heal()
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", since=connected.t, timeout=3.0)


def test_blackhole_without_heartbeats_goes_unnoticed_and_delivers_held_bytes_after_heal(lab):
    pub, sub, proxy = _through_proxy(lab)
    proxy.blackhole()
    fault = _fault(lab, f"blackhole {proxy.name}")
    pub.send(b"held|1")
    with pytest.raises(TimeoutError):
        lab.wait_for("DISCONNECTED", "pub", since=fault.t, timeout=3.0)
    assert not sub.poll(0), "a message crossed the blackhole"
    assert not lab.events("sub", "DISCONNECTED")
    proxy.heal()
    assert sub.poll(3000), "the held message was dropped instead of delivered after heal"
    assert sub.recv() == b"held|1"


def test_refuse_reproduces_the_retry_cycle_and_heal_ends_it_with_connected(lab):
    pub, sub, proxy = _through_proxy(lab)
    port = proxy.port
    proxy.refuse()
    refused = _fault(lab, f"refuse {proxy.name}")
    disconnected = lab.wait_for("DISCONNECTED", "pub", since=refused.t, timeout=2.0)
    third = lab.wait_for("CLOSED", "pub", since=disconnected.t, count=3, timeout=4.0)
    seen = [ev.event for ev in lab.events("pub", since=disconnected.t) if ev.t <= third.t]
    cycle = ["CONNECT_DELAYED", "CLOSED", "CONNECT_RETRIED"]
    assert seen == ["DISCONNECTED", "CONNECT_RETRIED"] + cycle * 2 + cycle[:2]

    proxy.heal()
    healed = _fault(lab, f"heal {proxy.name}")
    assert proxy.port == port and proxy.mode == "pass"
    connected = lab.wait_for("CONNECTED", "pub", since=healed.t, timeout=3.0)
    shaken = lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", since=connected.t, timeout=3.0)
    between = [ev.event for ev in lab.events("pub", since=connected.t) if ev.t <= shaken.t]
    assert "CLOSED" not in between and "CONNECT_RETRIED" not in between
    zlab.traffic.deliver(pub, sub, b"after|1", timeout=5.0)


def test_cut_resets_both_sides_and_the_socket_reconnects_by_itself(lab):
    pub, sub, proxy = _through_proxy(lab)
    assert proxy.cut() == 1
    fault = _fault(lab, f"cut {proxy.name}")
    assert proxy.mode == "pass"
    mine = lab.wait_for("DISCONNECTED", "pub", since=fault.t, timeout=2.0)
    theirs = lab.wait_for("DISCONNECTED", "sub", since=fault.t, timeout=2.0)
    assert mine.t - fault.t < 0.5 and theirs.t - fault.t < 0.5
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", since=mine.t, timeout=3.0)
    zlab.traffic.deliver(pub, sub, b"again|1", timeout=5.0)


def test_cut_keep_resets_every_new_connection_until_heal(lab):
    pub, sub, proxy = _through_proxy(lab)
    proxy.cut(keep=True)
    fault = _fault(lab, f"cut {proxy.name} (and every new connection)")
    assert proxy.mode == "cut"
    lab.wait_for("CONNECT_RETRIED", "pub", since=fault.t, count=3, timeout=4.0)
    assert not lab.events("pub", "HANDSHAKE_SUCCEEDED", since=fault.t)
    assert proxy.stats()["cut"] >= 2
    proxy.heal()
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", since=_fault(lab, f"heal {proxy.name}").t, timeout=3.0)


def test_delay_adds_latency_to_every_byte(lab):
    pull = lab.socket("PULL", "pull", bind="tcp")
    proxy = lab.proxy(lab.endpoint(pull))
    push = lab.socket("PUSH", "push", connect=proxy.endpoint)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "push", timeout=5.0)
    push.send(b"warm")
    assert pull.poll(3000) and pull.recv() == b"warm"
    proxy.delay(150)
    assert proxy.mode == "delay" and proxy.delay_ms == 150
    sent = time.monotonic()
    push.send(b"late")
    assert pull.poll(3000)
    took = time.monotonic() - sent
    assert pull.recv() == b"late"
    assert 0.145 <= took < 1.5
    proxy.delay(0)
    assert proxy.mode == "pass"


def test_a_dead_target_shows_connected_then_a_failed_handshake_not_the_retry_cycle(lab):
    sub = lab.socket("SUB", "sub", bind="tcp")
    proxy = lab.proxy(lab.endpoint(sub))
    sub.close()
    time.sleep(0.05)  # libzmq closes the listener on its I/O thread
    lab.socket("PUB", "pub", connect=proxy.endpoint)
    failed = lab.wait_for(("HANDSHAKE_FAILED_NO_DETAIL", "DISCONNECTED"), "pub", timeout=3.0)
    assert lab.events("pub", "CONNECTED"), "through a relay the connect itself succeeds"
    assert failed.t >= lab.events("pub", "CONNECTED")[0].t
    assert proxy.stats()["target_refused"] >= 1


def test_blackhole_does_not_spin_on_a_connection_that_hung_up(lab):
    sub = lab.socket("SUB", "sub", bind="tcp", subscribe=b"")
    proxy = lab.proxy(lab.endpoint(sub))
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0)
    lab.wait_for("ACCEPTED", "sub", timeout=3.0)
    proxy.blackhole()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # RST: the proxy's side now reports POLLHUP|POLLERR whatever it asks for
    time.sleep(0.1)
    before = _thread_cpu_ticks(proxy.thread)
    time.sleep(0.5)
    used = _thread_cpu_ticks(proxy.thread) - before
    assert used <= 10, f"the relay thread used {used / 100:.2f} s of CPU in 0.5 s (spinning on POLLHUP)"
    assert proxy.connections == 1  # the partition hides the hang-up until it heals
    proxy.heal()
    lab.wait_for("DISCONNECTED", "sub", timeout=3.0)
    deadline = time.monotonic() + 2.0
    while proxy.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.connections == 0


def test_mode_changes_are_marked_in_the_log(lab):
    pull = lab.socket("PULL", "pull", bind="tcp")
    proxy = lab.proxy(lab.endpoint(pull), name="net")
    proxy.delay(20)
    proxy.refuse(cut=False)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0).close()
    proxy.blackhole()  # re-opens the listener: a connect succeeds, then stalls
    socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0).close()
    proxy.heal()
    proxy.cut()
    marks = [(ev.socket, ev.detail) for ev in lab.events(event="FAULT")]
    assert marks == [("net", "delay net 20 ms"), ("net", "refuse net"), ("net", "blackhole net"),
                     ("net", "heal net"), ("net", "cut net")]
    assert all(ev.endpoint == proxy.endpoint for ev in lab.events(event="FAULT"))


def test_close_stops_the_relay_thread_and_frees_the_port(lab):
    pull = lab.socket("PULL", "pull", bind="tcp")
    first = lab.proxy(lab.endpoint(pull))
    second = lab.proxy(first)  # a proxy in front of a proxy
    assert (first.name, second.name) == ("proxy0", "proxy1")
    first.close()
    first.close()  # idempotent
    assert not first.thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", first.port), timeout=2.0).close()
    with pytest.raises(RuntimeError, match="closed"):
        first.blackhole()
    lab.close()
    assert not second.thread.is_alive()


def test_listener_port_is_below_the_ephemeral_range_so_retries_cannot_self_connect(lab):
    with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
        low = int(fh.read().split()[0])
    pull = lab.socket("PULL", "pull", bind="tcp")
    proxy = lab.proxy(lab.endpoint(pull))
    assert 1024 <= proxy.port < low


def test_proxy_arguments_are_checked_with_clear_errors(lab):
    with pytest.raises(ValueError, match="TCP only"):
        lab.proxy("ipc:///tmp/x.ipc")
    with pytest.raises(ValueError, match="concrete port"):
        lab.proxy("tcp://127.0.0.1:*")
    pull = lab.socket("PULL", "pull", bind="tcp")
    proxy = lab.proxy(lab.endpoint(pull))
    with pytest.raises(ValueError, match="delay is in ms"):
        proxy.delay(-1)
