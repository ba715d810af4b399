"""EventLog: bounded, thread-safe, waits on what was logged before or after the call."""

import threading
import time

import pytest

from zlab.eventlog import EventLog
from zlab.events import Event


def ev(t, event="CONNECTED", socket="a", value=1):
    return Event(t, socket, event, value, "tcp://127.0.0.1:1")


def test_cap_discards_oldest_and_counts_them():
    log = EventLog(cap=10)
    log.extend([ev(i) for i in range(25)])
    assert len(log) == 10
    assert log.discarded == 15
    assert log.total == 25
    assert [e.t for e in log.filter()][0] == 15


def test_wait_for_finds_an_event_logged_before_the_call():
    log = EventLog()
    log.append(ev(0.1, "DISCONNECTED"))
    assert log.wait_for("DISCONNECTED", timeout=0).t == 0.1


def test_wait_for_wakes_on_an_event_logged_later():
    log = EventLog()
    threading.Timer(0.05, lambda: log.append(ev(0.2, "CLOSED"))).start()
    assert log.wait_for("CLOSED", timeout=2).event == "CLOSED"


def test_wait_for_count_and_since():
    log = EventLog()
    log.extend([ev(0.1, "CLOSED"), ev(0.2, "CLOSED"), ev(0.3, "CLOSED")])
    assert log.wait_for("CLOSED", count=2, timeout=0).t == 0.2
    assert log.wait_for("CLOSED", since=0.25, timeout=0).t == 0.3


def test_wait_for_timeout_names_what_it_waited_for_and_what_it_saw():
    log = EventLog()
    log.extend([ev(0.1, "CONNECT_RETRIED", "pub"), ev(0.2, "CLOSED", "pub")])
    with pytest.raises(TimeoutError, match=r"DISCONNECTED on 'pub'.*CONNECT_RETRIED x1"):
        log.wait_for("DISCONNECTED", "pub", timeout=0.05)


def test_filter_sorts_late_arrivals_by_time():
    log = EventLog()
    log.extend([ev(0.3), ev(0.1, socket="peer"), ev(0.2)])
    assert [e.t for e in log.filter()] == [0.1, 0.2, 0.3]
    assert [e.t for e in log.filter(socket="a")] == [0.2, 0.3]


def test_slow_subscriber_does_not_slow_the_writer():
    log = EventLog()
    seen = []
    log.subscribe(lambda e: (time.sleep(0.01), seen.append(e)))
    start = time.monotonic()
    for i in range(200):
        log.append(ev(i))
    assert time.monotonic() - start < 0.5  # 200 x 10 ms of callbacks would take 2 s
    log.wait_for("CONNECTED", count=200, timeout=0)
    log.close()
    assert len(seen) < 200  # the backlog was dropped on close


def test_subscriber_exceptions_are_counted_not_raised():
    log = EventLog()
    sub = log.subscribe(lambda e: 1 / 0)
    log.append(ev(0))
    deadline = time.monotonic() + 2
    while sub.errors == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sub.errors == 1 and isinstance(sub.last_error, ZeroDivisionError)
    log.close()


def test_batch_subscriber_gets_lists():
    log = EventLog()
    got = []
    done = threading.Event()
    log.subscribe(lambda batch: (got.extend(batch), done.set()), batch=True, event="CLOSED")
    log.extend([ev(0, "CLOSED"), ev(1, "CONNECTED"), ev(2, "CLOSED")])
    assert done.wait(2)
    deadline = time.monotonic() + 2
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.event for e in got] == ["CLOSED", "CLOSED"]
    log.close()


def test_exports(tmp_path):
    log = EventLog()
    log.extend([ev(0.1), ev(0.2, "CLOSED")])
    assert log.to_records()[1]["event"] == "CLOSED"
    path = tmp_path / "events.jsonl"
    assert log.to_jsonl(str(path)) == 2
    assert path.read_text().count("\n") == 2
    pd = pytest.importorskip("pandas")
    frame = log.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and list(frame["event"]) == ["CONNECTED", "CLOSED"]


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="cap"):
        EventLog(cap=0)
    with pytest.raises(ValueError, match="marker kind"):
        EventLog().mark("OOPS", "x")
    with pytest.raises(ValueError, match="timeout"):
        EventLog().wait_for("CLOSED", timeout=-1)


def test_a_misspelt_event_name_is_refused_at_once_with_a_suggestion():
    log = EventLog()
    with pytest.raises(ValueError, match="unknown event name 'DISCONECTED'; did you mean 'DISCONNECTED'"):
        log.wait_for("DISCONECTED", timeout=5)  # would otherwise wait out all 5 s
    with pytest.raises(ValueError, match="did you mean 'CONNECT_RETRIED'"):
        log.filter(event=["CLOSED", "CONNECT_RETRY"])
    assert log.filter(event=["FAULT", "0x8000"]) == []  # markers and unknown numbers are valid names
