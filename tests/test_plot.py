"""zlab.plot: what the figures draw, checked on events from real sockets on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import zmq

import zlab
from zlab import plot
from zlab.scenarios import ScenarioResult


# -- helpers ------------------------------------------------------------------------------------
def lost_sub(lab: zlab.Lab, *, cycles: int = 3, subscribers: int = 1, **pub_options):
    """A PUB connected to bound SUBs; sub0 closes (marked FAULT) and the PUB retries ``cycles`` times."""
    topo = lab.pubsub(pub_binds=False, subscribers=subscribers, pub_options=pub_options)
    lab.mark("FAULT", "close sub0", socket="sub0")
    topo.subs[0].close()
    gone = lab.wait_for("DISCONNECTED", "pub", timeout=5)
    lab.wait_for("CLOSED", "pub", since=gone.t, count=cycles, timeout=10)
    return topo


def event_lines(ax):
    """Marker lines the timeline drew for single events: gid ``zlab-events:LANE:EVENT``."""
    return [line for line in ax.get_lines() if (line.get_gid() or "").startswith("zlab-events:")]


def drawn_points(ax) -> int:
    return sum(len(line.get_xdata()) for line in event_lines(ax))


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def by_gid(ax, prefix: str):
    return [a for a in ax.get_children() if (a.get_gid() or "").startswith(prefix)]


def lane_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


# -- timeline ---------------------------------------------------------------------------------------
def test_timeline_has_one_labelled_lane_per_socket_and_time_in_ms(lab):
    lost_sub(lab)
    events = lab.events()  # the PUB keeps retrying: take one snapshot
    fig, ax = plot.timeline(events)
    assert lane_labels(ax) == ["pub", "sub0"]
    assert "ms" in ax.get_xlabel()
    lo, hi = ax.get_xlim()
    assert lo <= events[0].t * 1000 and hi >= events[-1].t * 1000 > 10  # the axis is in ms, not s
    assert fig.axes == [ax]


def test_timeline_draws_each_event_once_with_a_legend_naming_its_family(lab):
    lost_sub(lab)
    events = lab.events()
    _, ax = plot.timeline(events)
    monitor_events = [ev for ev in events if not ev.is_marker]
    assert drawn_points(ax) == len(monitor_events)
    texts = legend_texts(ax)
    for name in ("DISCONNECTED", "CONNECT_RETRIED", "CONNECT_DELAYED", "CLOSED", "HANDSHAKE_SUCCEEDED"):
        assert any(t.startswith(name + "  (") for t in texts), f"{name} missing from legend {texts}"
    assert "CONNECT_RETRIED  (retry scheduled)" in texts
    assert "DISCONNECTED  (close/disconnect)" in texts
    # families differ in colour and marker; events of one family differ in fill
    lines = {line.get_gid().split(":")[2]: line for line in event_lines(ax) if line.get_gid().endswith(
        (":CONNECT_RETRIED", ":DISCONNECTED", ":CLOSED", ":CONNECT_DELAYED"))}
    assert lines["CONNECT_RETRIED"].get_marker() != lines["DISCONNECTED"].get_marker()
    assert lines["CONNECT_RETRIED"].get_color() != lines["DISCONNECTED"].get_color()
    assert lines["DISCONNECTED"].get_fillstyle() != lines["CLOSED"].get_fillstyle()


def test_fault_and_note_markers_are_labelled_vertical_lines_across_all_lanes(lab):
    topo = lost_sub(lab)
    lab.mark("NOTE", "a new SUB binds the same endpoint")
    lab.mark("FAULT", "second fault")
    _, ax = plot.timeline(lab.events())
    (faults,) = by_gid(ax, "zlab-marker:FAULT")
    (notes,) = by_gid(ax, "zlab-marker:NOTE")
    assert len(faults.get_segments()) == 2
    assert len(notes.get_segments()) == 1
    assert all(seg[0][1] == 0 and seg[1][1] == 1 for seg in faults.get_segments())  # full height (axes coords)
    labels = [t.get_text().strip() for t in by_gid(ax, "zlab-marker-label:")]
    assert sorted(labels) == ["a new SUB binds the same endpoint", "close sub0", "second fault"]
    texts = legend_texts(ax)
    assert any(t.startswith("FAULT") for t in texts) and any(t.startswith("NOTE") for t in texts)
    assert topo.pub is not None and not topo.pub.closed


def test_socket_connected_to_several_endpoints_gets_a_lane_per_endpoint(lab):
    topo = lost_sub(lab, subscribers=2)
    _, ax = plot.timeline(lab.events())
    labels = lane_labels(ax)
    ports = [ep.rsplit(":", 1)[1] for ep in topo.endpoints]
    assert labels[:2] == [f"pub → 127.0.0.1:{ports[0]}", f"pub → 127.0.0.1:{ports[1]}"]
    assert labels[2:] == ["sub0", "sub1"]
    # the retry loop belongs to the lost SUB's lane only
    retry_lanes = {line.get_gid().split(":")[1] for line in event_lines(ax) if line.get_gid().endswith(":CLOSED")}
    assert "0" in retry_lanes and "1" not in retry_lanes


def test_connection_events_carry_their_fd_so_disconnected_matches_connected(lab):
    lost_sub(lab, cycles=1)
    _, ax = plot.timeline(lab.events())
    fds = {t.get_text() for t in by_gid(ax, "zlab-fd")}
    disconnected = lab.wait_for("DISCONNECTED", "pub")
    connected = lab.wait_for("CONNECTED", "pub")
    assert disconnected.value == connected.value  # one TCP connection: the same descriptor
    assert f"fd {disconnected.value}" in fds


def test_retry_storm_is_drawn_as_bounded_bands_with_counts(lab):
    # reconnect_ivl = 1 ms: ~900 retry cycles per second on loopback (measured), thousands of events.
    lost_sub(lab, cycles=700, reconnect_ivl=1)
    events = lab.events()
    assert len(events) > 2000
    _, ax = plot.timeline(events, max_markers=250)
    bands = by_gid(ax, "zlab-density:")
    banded = {b.get_gid().split(":")[2] for b in bands}
    assert {"CONNECT_RETRIED", "CONNECT_DELAYED", "CLOSED"} <= banded
    assert drawn_points(ax) < 100  # only the sparse events are single markers
    assert len(ax.get_children()) < 80  # bounded whatever the number of events
    assert all(len(b.get_paths()) <= plot.DENSITY_BINS for b in bands)
    (label,) = by_gid(ax, "zlab-density-label")
    retried = sum(1 for ev in events if ev.event == "CONNECT_RETRIED")
    assert f"CONNECT_RETRIED ×{retried}" in label.get_text()
    assert any("more than 250 events" in t for t in legend_texts(ax))


def test_timeline_of_a_scenario_result():
    result = zlab.scenarios.run("disconnect-keeps-socket", cycles=2)
    _, ax = plot.timeline(result.events, title="disconnect keeps the socket")
    assert set(lane_labels(ax)) == {"pub", "sub", "sub2"}
    assert len(by_gid(ax, "zlab-marker:FAULT")[0].get_segments()) == 1
    assert len(by_gid(ax, "zlab-marker:NOTE")[0].get_segments()) == 1
    assert ax.get_title(loc="left") == "disconnect keeps the socket"


def test_timeline_without_events_says_so():
    fig, ax = plot.timeline([])
    assert [t.get_text() for t in ax.texts] == ["no events"]
    with pytest.raises(TypeError, match="expected zlab Event"):
        plot.timeline([{"t": 0.1, "event": "CLOSED"}])


# -- intervals ----------------------------------------------------------------------------------------
def test_intervals_show_backoff_doubling_to_the_cap_and_the_observed_waits(lab):
    topo = lab.pubsub(pub_binds=False, pub_options={"reconnect_ivl": 20, "reconnect_ivl_max": 160})
    topo.subs[0].close()
    lab.wait_for("CONNECT_RETRIED", "pub", count=7, timeout=10)
    events = lab.events()
    retried = [ev.value for ev in events if ev.event == "CONNECT_RETRIED"]
    _, ax = plot.intervals(events, reconnect_ivl=20, reconnect_ivl_max=160)
    (announced,) = by_gid(ax, "zlab-announced")
    (observed,) = by_gid(ax, "zlab-observed")
    assert list(announced.get_ydata()) == retried  # what is drawn is what libzmq announced
    assert list(announced.get_xdata()) == list(range(1, len(retried) + 1))
    assert max(retried) <= 160 and retried[0] >= 20
    if zmq.zmq_version_info() >= (4, 3, 5):  # 4.3.5 doubles exactly (BRIEF); 4.3.4 adds jitter
        assert retried[:6] == [20, 40, 80, 160, 160, 160]
    waits = dict(zip(observed.get_xdata(), observed.get_ydata()))
    for n, value in enumerate(retried, start=1):
        if n in waits:  # the timer fires no earlier than announced; scheduling on 2 busy cores may add
            assert value - 5 <= waits[n] <= value + 150, (n, value, waits[n])
    assert len(waits) >= len(retried) - 1
    assert ax.get_yscale() == "log"  # 20 -> 160 spans 8x
    assert "ms" in ax.get_ylabel()
    assert {a.get_gid() for a in ax.get_lines()} >= {"zlab-ref:reconnect_ivl", "zlab-ref:reconnect_ivl_max"}
    assert any("CONNECT_RETRIED value" in t for t in legend_texts(ax))


def test_intervals_without_max_show_the_jitter_band(lab):
    lost_sub(lab, cycles=4, reconnect_ivl=30)
    _, ax = plot.intervals(lab.events(), "pub", reconnect_ivl=30, reconnect_ivl_max=0)
    (announced,) = by_gid(ax, "zlab-announced")
    assert all(30 <= v < 60 for v in announced.get_ydata())  # [ivl, 2*ivl): jitter, no backoff
    assert by_gid(ax, "zlab-ref:jitter")
    assert ax.get_yscale() == "linear"


def test_intervals_compare_sockets_one_colour_each(lab):
    capped = lab.pubsub(pub_binds=False, prefix="a", pub_options={"reconnect_ivl": 20, "reconnect_ivl_max": 80})
    jitter = lab.pubsub(pub_binds=False, prefix="b", pub_options={"reconnect_ivl": 20})
    capped.subs[0].close()
    jitter.subs[0].close()
    lab.wait_for("CONNECT_RETRIED", "apub", count=4, timeout=5)
    lab.wait_for("CONNECT_RETRIED", "bpub", count=4, timeout=5)
    events = lab.events()
    _, ax = plot.intervals(events, ["apub", "bpub"])
    (a_line,) = by_gid(ax, "zlab-announced:apub")
    (b_line,) = by_gid(ax, "zlab-announced:bpub")
    assert a_line.get_color() != b_line.get_color()
    announced = [ev.value for ev in events if ev.socket == "apub" and ev.event == "CONNECT_RETRIED"]
    assert list(a_line.get_ydata()) == announced
    assert all(20 <= v < 40 for v in b_line.get_ydata())  # no max: jitter only
    assert "apub" in ax.get_title(loc="left") and "bpub" in ax.get_title(loc="left")
    assert any(t.startswith("bpub: observed") for t in legend_texts(ax))


def test_intervals_without_retries_raise_a_teaching_error(lab):
    lab.pubsub()
    with pytest.raises(ValueError, match="needs CONNECT_RETRIED events.*sockets seen: pub, sub0"):
        plot.intervals(lab.events())
    with pytest.raises(ValueError, match="'sub0' has no CONNECT_RETRIED"):
        plot.intervals(lab.events(), "sub0")


def test_retry_attempts_measure_ipc_attempts_by_their_closed(lab):
    topo = lab.pubsub(pub_binds=False, transport="ipc", pub_options={"reconnect_ivl": 20, "reconnect_ivl_max": 80})
    topo.subs[0].close()
    lab.wait_for("CONNECT_RETRIED", "pub", count=4, timeout=5)
    socket, attempts = plot.retry_attempts(lab.events())
    assert socket == "pub"
    assert [a.announced_ms for a in attempts[:3]] == ([20, 40, 80] if zmq.zmq_version_info() >= (4, 3, 5)
                                                       else [a.announced_ms for a in attempts[:3]])
    measured = [a for a in attempts if a.observed_ms is not None]
    assert len(measured) >= 3  # ipc logs no CONNECT_DELAYED: the attempt shows as CLOSED
    assert all(a.announced_ms - 5 <= a.observed_ms <= a.announced_ms + 150 for a in measured)


# -- detection ----------------------------------------------------------------------------------------
def test_detection_draws_the_timeout_as_the_floor_and_marks_misses():
    results = [
        {"heartbeat_ivl": 100, "heartbeat_timeout": 300, "detected_ms": 340.0},
        {"heartbeat_ivl": 100, "heartbeat_timeout": 300, "detected_ms": 373.0},
        SimpleNamespace(heartbeat_ivl=100, heartbeat_timeout=-1, detected_ms=150.0),
        {"heartbeat_ivl": 0, "heartbeat_timeout": None, "detected_ms": None},
    ]
    _, ax = plot.detection(results)
    (floor,) = by_gid(ax, "zlab-timeout")
    segments = floor.get_segments()
    assert sorted(seg[0][1] for seg in segments) == [100, 300]  # -1 means "same as ivl"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ivl 100\ntimeout 100", "ivl 100\ntimeout 300",
                                                            "no heartbeats"]
    (detected,) = by_gid(ax, "zlab-detected")
    assert sorted(detected.get_ydata()) == [150.0, 340.0, 373.0]
    (missed,) = by_gid(ax, "zlab-missed")
    assert len(missed.get_xdata()) == 1
    assert "ms" in ax.get_ylabel()
    assert any("no run can detect sooner" in t for t in legend_texts(ax))


def test_detection_rejects_a_result_without_detected_ms():
    with pytest.raises(ValueError, match=r"result #1 has no 'detected_ms'"):
        plot.detection([{"heartbeat_ivl": 100, "heartbeat_timeout": 300, "detected_ms": 320},
                        {"heartbeat_ivl": 100, "heartbeat_timeout": 300}])
    with pytest.raises(ValueError, match="needs at least one result"):
        plot.detection([])


@pytest.mark.skipif(not hasattr(zlab.Lab, "peer"), reason="child-process peers (zlab.peer) are not available")
def test_detection_of_a_real_paused_peer_never_beats_the_timeout(lab):
    peer = lab.peer("SUB", "sub0", bind="tcp")
    pub = lab.socket("PUB", "pub", connect=peer.endpoint, heartbeat_ivl=50, heartbeat_timeout=150)
    lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", timeout=5)
    results = []
    for _ in range(2):
        paused = lab.now()
        peer.pause()
        gone = lab.wait_for("DISCONNECTED", "pub", since=paused, timeout=5)
        results.append({"heartbeat_ivl": 50, "heartbeat_timeout": 150, "detected_ms": (gone.t - paused) * 1000})
        peer.resume()
        lab.wait_for("HANDSHAKE_SUCCEEDED", "pub", since=gone.t, timeout=5)
    _, ax = plot.detection(results)
    (detected,) = by_gid(ax, "zlab-detected")
    assert all(ms >= 150 for ms in detected.get_ydata())  # physics: the timeout is a floor
    assert not pub.closed


# -- saving, the CLI hook, notebooks ------------------------------------------------------------------------
def test_save_writes_by_suffix_and_explains_bad_paths(lab, tmp_path):
    lost_sub(lab, cycles=1)
    p = plot.timeline(lab.events())
    png = plot.save(p, tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = p.save(tmp_path / "t.svg")
    assert b"<svg" in svg.read_bytes()[:500]
    with pytest.raises(ValueError, match=r"matplotlib writes .*\.png.*got '\.foo'"):
        plot.save(p.fig, tmp_path / "t.foo")
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        plot.save(p.fig, tmp_path / "missing" / "t.png")


def test_one_lane_timeline_with_long_marker_labels_saves_without_a_layout_warning(lab, tmp_path):
    import warnings

    lab.socket("PUB", "pub", bind="tcp")
    lab.wait_for("LISTENING", "pub", timeout=5)
    lab.mark("NOTE", "child pid 1234: its PUB publishes a sequence number every 5 ms to the observer")
    lab.mark("FAULT", "monitor unread: reconnect storm to 20 refused ports")
    p = plot.timeline(lab.events())
    assert lane_labels(p.ax) == ["pub"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied because axes sizes collapsed to zero"
        plot.save(p, tmp_path / "one-lane.png")
    box = p.ax.get_position()
    assert box.height > 0.5  # the plot area keeps most of the figure; the labels fit inside it
    renderer = p.fig._get_renderer()  # the renderer the last savefig() laid the figure out with
    axes_box = p.ax.get_window_extent(renderer)
    for label in by_gid(p.ax, "zlab-marker-label:"):
        assert label.get_window_extent(renderer).height <= axes_box.height + 1


def test_save_checks_the_suffix_before_drawing(tmp_path):
    assert plot.check_suffix(tmp_path / "a.PNG") == "png"
    assert plot.check_suffix("b.svg") == "svg" and plot.check_suffix("c.pdf") == "pdf"
    with pytest.raises(ValueError, match=r"matplotlib writes .*\.png.*got '\.txt'"):
        plot.check_suffix("plot.txt")
    with pytest.raises(ValueError, match="got 'no suffix'"):
        plot.check_suffix("plot")


def test_plot_result_adds_an_intervals_panel_for_a_backoff_scenario(lab, tmp_path):
    topo = lab.pubsub(pub_binds=False, pub_options={"reconnect_ivl": 20, "reconnect_ivl_max": 80})
    lab.mark("FAULT", "close sub0", socket="sub0")
    topo.subs[0].close()
    lab.wait_for("CONNECT_RETRIED", "pub", count=4, timeout=5)
    result = ScenarioResult("backoff", zlab.versions(), {"reconnect_ivl": 20, "reconnect_ivl_max": 80},
                            lab.events(), {}, [])
    out = tmp_path / "backoff.png"
    fig, ax = plot.plot_result(result, out)
    assert out.stat().st_size > 10_000
    timeline_ax, intervals_ax = fig.axes
    assert ax is timeline_ax
    assert lane_labels(timeline_ax) == ["pub", "sub0"]
    assert len(by_gid(timeline_ax, "zlab-marker:FAULT")[0].get_segments()) == 1
    assert "reconnect intervals of pub" in intervals_ax.get_title(loc="left")
    assert by_gid(intervals_ax, "zlab-ref:reconnect_ivl_max")
    only, _ = plot.plot_result(result, kind="timeline")
    assert len(only.axes) == 1
    with pytest.raises(ValueError, match="kind must be one of"):
        plot.plot_result(result, kind="pie")
    with pytest.raises(ValueError, match="no detection results"):
        plot.plot_result(result, kind="detection")


@pytest.mark.skipif("heartbeat" not in zlab.scenarios.SCENARIOS, reason="no heartbeat scenario")
def test_plot_result_of_the_heartbeat_scenario_has_a_detection_panel(tmp_path):
    result = zlab.scenarios.run("heartbeat", duration=1.0)
    fig, ax = plot.plot_result(result, tmp_path / "hb.png")
    timeline_ax, detection_ax = fig.axes
    assert "peer" in lane_labels(timeline_ax)
    assert "time to detect" in detection_ax.get_ylabel()
    (floor,) = by_gid(detection_ax, "zlab-timeout")
    timeout = result.settings["heartbeat_timeout"]
    assert timeout in {seg[0][1] for seg in floor.get_segments()}
    if result.summary["detected"]:
        assert result.summary["detection_s"] * 1000 >= timeout  # measured, never below the floor


def test_plot_shows_as_png_in_a_notebook_and_a_bare_figure_too(lab):
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure

    lost_sub(lab, cycles=1)
    shell = InteractiveShell.instance()
    try:
        p = plot.timeline(lab.events())
        assert p._repr_png_()[:4] == b"\x89PNG"
        data, _ = shell.display_formatter.format(p.fig)
        assert "image/png" in data  # registered by zlab.plot: no pyplot needed
        shell.display_formatter.formatters["image/png"].pop(Figure, None)
    finally:
        InteractiveShell.clear_instance()


def test_import_zlab_and_zlab_plot_does_not_import_matplotlib():
    code = "import sys, zlab, zlab.plot, zlab.widgets; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "('matplotlib', 'ipywidgets', 'pandas')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_families_give_every_libzmq_event_a_style():
    from zlab.events import EVENT_NUMBERS

    styled = {name for fam in plot.FAMILIES for name, _ in fam.events}
    assert set(EVENT_NUMBERS) - styled == {"PIPES_STATS"}  # a draft event: drawn as "other"
    colors = [fam.color for fam in plot.FAMILIES]
    markers = [fam.marker for fam in plot.FAMILIES]
    assert len(set(colors)) == len(colors) and len(set(markers)) == len(markers)
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in colors)
