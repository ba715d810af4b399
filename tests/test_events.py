"""The pure decoder and the value meanings: bytes in, record out, no socket needed."""

import struct

import pytest
import zmq

from zlab.events import EVENT_NUMBERS, Event, decode, describe, event_name, value_kind


def frame(event: int, value: int) -> bytes:
    return struct.pack("=Hi", event, value)


def test_decode_returns_number_value_endpoint():
    assert decode([frame(0x0004, 200), b"tcp://127.0.0.1:5555"]) == (4, 200, "tcp://127.0.0.1:5555")


def test_decode_rejects_a_short_first_frame_and_shows_it():
    with pytest.raises(ValueError, match=r"at least 6 bytes.*got 3"):
        decode([b"\x01\x00\x00", b"tcp://x"])


def test_decode_rejects_wrong_frame_count():
    with pytest.raises(ValueError, match="2 frames"):
        decode([frame(1, 2)])


def test_unknown_event_numbers_are_kept_as_numbers():
    number, value, _ = decode([frame(0x8000, 7), b""])
    assert (number, value) == (0x8000, 7)
    assert event_name(number) == "0x8000"


def test_event_numbers_match_pyzmq_constants():
    for name, number in EVENT_NUMBERS.items():
        if hasattr(zmq, f"EVENT_{name}"):
            assert getattr(zmq, f"EVENT_{name}") == number, name


@pytest.mark.parametrize(
    "event,value,expected",
    [
        ("CONNECTED", 22, "fd 22"),
        ("CONNECT_DELAYED", 115, "EINPROGRESS"),
        ("BIND_FAILED", 98, "EADDRINUSE"),
        ("HANDSHAKE_FAILED_NO_DETAIL", 104, "ECONNRESET"),
        ("CONNECT_RETRIED", 200, "reconnect in 200 ms"),
        ("HANDSHAKE_FAILED_PROTOCOL", 0x11000002, "ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH"),
        ("HANDSHAKE_FAILED_AUTH", 400, "ZAP 400 (authentication failure)"),
        ("DISCONNECTED", 15, "fd 15"),
    ],
)
def test_describe_names_what_the_value_is(event, value, expected):
    assert expected in describe(event, value)


def test_fd_22_is_not_printed_as_event_flags():
    # pyzmq's recv_monitor_message wraps values in zmq.Event: fd 22 prints as flags.
    ev = Event(0.0, "pub", "CONNECTED", 22, "tcp://127.0.0.1:1")
    assert type(ev.value) is int
    assert ev.meaning == "fd 22"
    assert "CONNECT_DELAYED" not in str(ev)


def test_every_libzmq_43_event_has_a_value_kind():
    for name in EVENT_NUMBERS:
        assert value_kind(name) != "int", name


def test_marker_meaning_is_its_text():
    ev = Event(1.0, "sub0", "FAULT", 0, "", "kill sub0")
    assert ev.is_marker and ev.meaning == "kill sub0"
    assert ev.to_record()["detail"] == "kill sub0"


def test_an_event_prints_its_value_and_what_it_means():
    text = str(Event(0.0123, "pub", "CONNECT_DELAYED", 115, "tcp://127.0.0.1:5"))
    assert "12.3" in text and "115: EINPROGRESS" in text and "tcp://127.0.0.1:5" in text
