"""The Event record and the pure decoder for libzmq monitor messages.

A monitor message (libzmq 4.x, zmq_socket_monitor(3)) has two frames: the first
is 6 bytes, a native-endian ``uint16`` event number followed by a ``uint32``
value; the second is the endpoint. :func:`decode` turns those frames into
numbers without touching a socket, and :func:`describe` says what a value
means for its event: a file descriptor, an errno, a reconnect interval in ms,
a ZMTP protocol-error code or a ZAP status code. Values stay plain ``int`` --
never pyzmq's ``zmq.Event`` flag type, which prints an fd of 22 as
``CONNECT_DELAYED|CONNECT_RETRIED|BIND_FAILED``.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
from dataclasses import asdict, dataclass
from collections.abc import Iterable
from typing import Any

__all__ = [
    "EVENT_NAMES",
    "EVENT_NUMBERS",
    "MARKER_KINDS",
    "Event",
    "check_event_names",
    "decode",
    "describe",
    "event_name",
    "value_kind",
]

# zmq.h (libzmq 4.3.5), ZMQ_EVENT_*; PIPES_STATS is a draft event.
EVENT_NUMBERS: dict[str, int] = {
    "CONNECTED": 0x0001,
    "CONNECT_DELAYED": 0x0002,
    "CONNECT_RETRIED": 0x0004,
    "LISTENING": 0x0008,
    "BIND_FAILED": 0x0010,
    "ACCEPTED": 0x0020,
    "ACCEPT_FAILED": 0x0040,
    "CLOSED": 0x0080,
    "CLOSE_FAILED": 0x0100,
    "DISCONNECTED": 0x0200,
    "MONITOR_STOPPED": 0x0400,
    "HANDSHAKE_FAILED_NO_DETAIL": 0x0800,
    "HANDSHAKE_SUCCEEDED": 0x1000,
    "HANDSHAKE_FAILED_PROTOCOL": 0x2000,
    "HANDSHAKE_FAILED_AUTH": 0x4000,
    "PIPES_STATS": 0x10000,
}
EVENT_NAMES: dict[int, str] = {number: name for name, number in EVENT_NUMBERS.items()}

#: Pseudo-events zlab itself writes into an EventLog: a fault it injected, a
#: policy decision (e.g. a retry limit reached), a note from a scenario.
MARKER_KINDS = ("FAULT", "POLICY", "NOTE")

# What the value of each event is (zmq_socket_monitor(3), checked against
# libzmq 4.3.5 src/socket_base.cpp event_* functions).
_VALUE_KIND: dict[str, str] = {
    "CONNECTED": "fd",
    "CONNECT_DELAYED": "errno",  # the manual: "unspecified"; observed: 115 EINPROGRESS
    "CONNECT_RETRIED": "ms",  # the reconnect interval now in force
    "LISTENING": "fd",
    "BIND_FAILED": "errno",
    "ACCEPTED": "fd",
    "ACCEPT_FAILED": "errno",
    "CLOSED": "fd",
    "CLOSE_FAILED": "errno",
    "DISCONNECTED": "fd",
    "MONITOR_STOPPED": "none",
    "HANDSHAKE_FAILED_NO_DETAIL": "errno",
    "HANDSHAKE_SUCCEEDED": "none",
    "HANDSHAKE_FAILED_PROTOCOL": "protocol",
    "HANDSHAKE_FAILED_AUTH": "zap",
    "PIPES_STATS": "count",
}

# zmq.h ZMQ_PROTOCOL_ERROR_* (libzmq 4.3.5).
PROTOCOL_ERRORS: dict[int, str] = {
    0x10000000: "ZMQ_PROTOCOL_ERROR_ZMTP_UNSPECIFIED",
    0x10000001: "ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND",
    0x10000002: "ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE",
    0x10000003: "ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE",
    0x10000011: "ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_UNSPECIFIED",
    0x10000012: "ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_MESSAGE",
    0x10000013: "ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_HELLO",
    0x10000014: "ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_INITIATE",
    0x10000015: "ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_ERROR",
    0x10000016: "ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_READY",
    0x10000017: "ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_WELCOME",
    0x10000018: "ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA",
    0x11000001: "ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC",
    0x11000002: "ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH",
    0x20000000: "ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED",
    0x20000001: "ZMQ_PROTOCOL_ERROR_ZAP_MALFORMED_REPLY",
    0x20000002: "ZMQ_PROTOCOL_ERROR_ZAP_BAD_REQUEST_ID",
    0x20000003: "ZMQ_PROTOCOL_ERROR_ZAP_BAD_VERSION",
    0x20000004: "ZMQ_PROTOCOL_ERROR_ZAP_INVALID_STATUS_CODE",
    0x20000005: "ZMQ_PROTOCOL_ERROR_ZAP_INVALID_METADATA",
    0x30000000: "ZMQ_PROTOCOL_ERROR_WS_UNSPECIFIED",
}

# ZAP status codes (RFC 27/ZAP): what HANDSHAKE_FAILED_AUTH carries.
ZAP_STATUS: dict[int, str] = {
    300: "temporary error",
    400: "authentication failure",
    500: "internal error",
}

# uint16 event number, then the value: libzmq writes a uint32, read here as int32 so that an
# invalid descriptor (-1) prints as -1; every documented value fits in 31 bits.
_HEADER = struct.Struct("=Hi")


def event_name(number: int) -> str:
    """libzmq's name for an event number, without ``ZMQ_EVENT_``; unknown numbers as ``"0x...``"."""
    return EVENT_NAMES.get(number, f"0x{number:x}")


def check_event_names(names: Iterable[str]) -> None:
    """``ValueError`` for a name that is neither a libzmq event nor a zlab marker (a typo would
    otherwise wait out a whole timeout), suggesting the closest known name."""
    import difflib

    known = [*EVENT_NUMBERS, *MARKER_KINDS]
    for name in names:
        if name in EVENT_NUMBERS or name in MARKER_KINDS or name.startswith("0x"):
            continue
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known events: {', '.join(EVENT_NUMBERS)}"
        raise ValueError(f"unknown event name {name!r}{hint}")


def value_kind(event: str) -> str:
    """What an event's value is: ``fd``, ``errno``, ``ms``, ``protocol``, ``zap``, ``none``, ``count`` or ``int``."""
    return _VALUE_KIND.get(event, "int")


def decode(frames: list[bytes]) -> tuple[int, int, str]:
    """Decode the frames of one monitor message into ``(event number, value, endpoint)``.

    Pure: bytes in, numbers out. Raises ``ValueError`` naming the bad frame when
    the message is not a libzmq 4.x monitor message (two frames, the first at
    least 6 bytes). Unknown event numbers are returned as they are.
    """
    if len(frames) != 2:
        raise ValueError(
            f"a monitor message has 2 frames (event+value, endpoint); got {len(frames)}: {frames!r:.200}"
        )
    head, endpoint = frames
    if len(head) < _HEADER.size:
        raise ValueError(
            f"the first monitor frame must be at least {_HEADER.size} bytes (uint16 event, uint32 value); "
            f"got {len(head)}: {bytes(head)!r}"
        )
    number, value = _HEADER.unpack_from(head)
    return number, value, bytes(endpoint).decode("utf-8", "replace")


def describe(event: str, value: int) -> str:
    """Say what ``value`` means for ``event``, e.g. ``"fd 12"``, ``"EINPROGRESS (Operation now in progress)"``,
    ``"reconnect in 200 ms"``, ``"ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH"``.

    Source: zmq_socket_monitor(3) for libzmq 4.3, and zmq.h for the code tables.
    """
    kind = value_kind(event)
    if kind == "fd":
        return f"fd {value}"
    if kind == "errno":
        name = _errno.errorcode.get(value)
        if name is None:
            return f"errno {value}"
        return f"{name} ({os.strerror(value)})"
    if kind == "ms":
        return f"reconnect in {value} ms"
    if kind == "protocol":
        return PROTOCOL_ERRORS.get(value, f"protocol error 0x{value:08x}")
    if kind == "zap":
        text = ZAP_STATUS.get(value)
        return f"ZAP {value} ({text})" if text else f"ZAP status {value}"
    if kind == "none":
        return "-" if value == 0 else str(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class Event:
    """One monitor event (or a zlab marker) as captured.

    ``t`` is seconds since the Lab started (``time.monotonic`` clock), taken when
    zlab received the event; ``socket`` is the label the user gave the socket;
    ``event`` is libzmq's name without ``ZMQ_EVENT_`` (``"CONNECT_RETRIED"``), or
    a marker kind (``"FAULT"``, ``"POLICY"``, ``"NOTE"``); ``value`` is a plain
    int; ``endpoint`` the endpoint string; ``detail`` a marker's text.
    """

    t: float
    socket: str
    event: str
    value: int = 0
    endpoint: str = ""
    detail: str = ""

    @property
    def meaning(self) -> str:
        """What the value means (see :func:`describe`); a marker's detail text."""
        if self.event in MARKER_KINDS:
            return self.detail
        return describe(self.event, self.value)

    @property
    def is_marker(self) -> bool:
        """True for zlab's own FAULT / POLICY / NOTE records, False for libzmq's events."""
        return self.event in MARKER_KINDS

    def to_record(self) -> dict[str, Any]:
        """A plain dict: ``t``, ``socket``, ``event``, ``value``, ``endpoint``, ``detail``, ``meaning``."""
        record = asdict(self)
        record["meaning"] = self.meaning
        return record

    def __str__(self) -> str:
        from .render import format_event  # one place draws an event as text

        return format_event(self)
