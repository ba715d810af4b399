"""The socket options this kit teaches: units, libzmq defaults, valid ranges, validation.

The one place that answers "where are heartbeats (or backoff, or LINGER)
configured?". Defaults are libzmq 4.3.5's, read back with ``getsockopt`` on a
fresh socket and checked against zmq_setsockopt(3). zlab itself changes one
default: LINGER is 0 on sockets a Lab makes, unless the lesson is about LINGER.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import zmq

__all__ = ["OPTIONS", "SOCKET_TYPES", "OptionSpec", "apply_options", "socket_type", "validate_option"]

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class OptionSpec:
    """One socket option: its name (pyzmq's lower-case spelling), unit, libzmq default and range.

    ``minimum`` / ``maximum`` are inclusive; ``maximum=None`` means up to 2**31-1.
    ``doc`` says what it does in one line, with its source.
    """

    name: str
    unit: str
    default: int
    minimum: int
    maximum: int | None
    doc: str
    #: A value that means "libzmq's default" but that libzmq refuses to set (EINVAL):
    #: accepted by validation, and then left unset.
    unset: int | None = None

    @property
    def zmq_constant(self) -> int:
        return int(getattr(zmq, self.name.upper()))

    def allowed(self) -> str:
        top = "2147483647" if self.maximum is None else str(self.maximum)
        extra = f" (or {self.unset} for libzmq's default)" if self.unset is not None else ""
        return f"{self.minimum}..{top} {self.unit}{extra}".strip()


def _spec(name: str, unit: str, default: int, minimum: int, maximum: int | None, doc: str,
          unset: int | None = None) -> OptionSpec:
    return OptionSpec(name, unit, default, minimum, maximum, doc, unset)


OPTIONS: dict[str, OptionSpec] = {
    s.name: s
    for s in [
        _spec("heartbeat_ivl", "ms", 0, 0, None,
              "send a ZMTP PING every N ms; 0 = no heartbeats (zmq_setsockopt(3) ZMQ_HEARTBEAT_IVL)"),
        _spec("heartbeat_timeout", "ms", -1, 0, None,
              "drop the connection if nothing arrives N ms after a PING; 0 = never. The default reads "
              "-1 (= heartbeat_ivl; the manual says 0) and cannot be set: -1 here leaves it unset",
              unset=-1),
        _spec("heartbeat_ttl", "ms", 0, 0, 6553599,
              "ask the peer to time us out after N ms of silence; sent in deciseconds, so at most 6553.5 s"),
        _spec("reconnect_ivl", "ms", 100, -1, None,
              "wait before reconnecting; 0 or -1 = never reconnect (measured 4.3.5; the manual "
              "documents only -1) (ZMQ_RECONNECT_IVL)"),
        _spec("reconnect_ivl_max", "ms", 0, 0, None,
              "cap of exponential backoff; 0 = no backoff, each wait is reconnect_ivl plus jitter"),
        _spec("reconnect_stop", "flags", 0, 0, 7,
              "stop reconnecting on: 1 = ECONNREFUSED, 2 = failed handshake, 4 = after disconnect "
              "(documented as draft; released 4.3.5 wheels honour it)"),
        _spec("connect_timeout", "ms", 0, 0, None,
              "give up a TCP connect after N ms; 0 = the OS default"),
        _spec("handshake_ivl", "ms", 30000, 0, None,
              "drop a connection whose ZMTP handshake takes longer than N ms; 0 = never"),
        _spec("linger", "ms", -1, -1, None,
              "how long close()/term() wait to send queued messages; -1 = forever (zlab sockets use 0)"),
        _spec("sndhwm", "messages", 1000, 0, None,
              "queue limit per peer for outgoing messages; 0 = none. PUB drops silently beyond it"),
        _spec("rcvhwm", "messages", 1000, 0, None,
              "queue limit per peer for incoming messages; 0 = none"),
        _spec("tcp_keepalive", "flag", -1, -1, 1,
              "SO_KEEPALIVE: -1 = OS default, 0 = off, 1 = on"),
        _spec("tcp_keepalive_idle", "s", -1, -1, None,
              "TCP_KEEPIDLE: idle seconds before the first probe; -1 = OS default"),
        _spec("tcp_keepalive_intvl", "s", -1, -1, None,
              "TCP_KEEPINTVL: seconds between probes; -1 = OS default"),
        _spec("tcp_keepalive_cnt", "probes", -1, -1, None,
              "TCP_KEEPCNT: unanswered probes before the connection drops; -1 = OS default"),
    ]
}

#: Socket types a Lab can make (libzmq's non-draft types).
SOCKET_TYPES: dict[str, int] = {
    name: int(getattr(zmq, name))
    for name in ["PAIR", "PUB", "SUB", "REQ", "REP", "DEALER", "ROUTER", "PULL", "PUSH", "XPUB", "XSUB", "STREAM"]
}

# Options that take bytes rather than an int (passed through to pyzmq as they are).
_BYTES_OPTIONS = {"subscribe", "unsubscribe", "routing_id", "identity", "connect_routing_id",
                  "plain_username", "plain_password", "curve_publickey", "curve_secretkey",
                  "curve_serverkey", "zap_domain", "socks_proxy"}


def socket_type(kind: str | int) -> int:
    """The zmq constant for a socket type given as ``"PUB"``, ``"pub"`` or ``zmq.PUB``.

    Raises ``ValueError`` listing the valid types.
    """
    if isinstance(kind, bool):
        kind = str(kind)
    if isinstance(kind, int):
        if kind in SOCKET_TYPES.values():
            return kind
    elif isinstance(kind, str) and kind.upper() in SOCKET_TYPES:
        return SOCKET_TYPES[kind.upper()]
    raise ValueError(f"unknown socket type {kind!r}; valid types: {', '.join(SOCKET_TYPES)}")


def socket_type_name(number: int) -> str:
    for name, value in SOCKET_TYPES.items():
        if value == number:
            return name
    return str(number)


def validate_option(name: str, value: Any) -> Any:
    """Check one option; return the value to set.

    Taught options must be whole numbers in their range (``ValueError`` says the
    range and unit). Other pyzmq option names (``subscribe``, ``routing_id``,
    ``plain_server``...) are passed through; an unknown name raises ``ValueError``
    listing the taught options.
    """
    key = name.lower()
    spec = OPTIONS.get(key)
    if spec is None:
        if key in _BYTES_OPTIONS:
            if isinstance(value, str):
                return value.encode()
            if not isinstance(value, (bytes, bytearray)):
                raise ValueError(f"{key} takes bytes or str; got {value!r}")
            return bytes(value)
        constant = getattr(zmq, key.upper(), None)
        if not isinstance(constant, int) or key.startswith("event") or not _is_sockopt(key):
            raise ValueError(
                f"unknown socket option {name!r}; the options this kit teaches are: {', '.join(OPTIONS)} "
                "(other pyzmq option names such as subscribe, routing_id or plain_server also work)"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{key} must be a whole number in {spec.allowed()}; got {value!r}")
    top = _INT32_MAX if spec.maximum is None else spec.maximum
    if value == spec.unset:
        return value
    if not spec.minimum <= value <= top:
        raise ValueError(f"{key} must be in {spec.allowed()}; got {value}")
    return value


def _is_sockopt(key: str) -> bool:
    try:
        return zmq.SocketOption[key.upper()] is not None
    except (KeyError, AttributeError):
        return False


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate every option (see :func:`validate_option`); returns a new dict with lower-case names."""
    return {name.lower(): validate_option(name, value) for name, value in options.items()}


def apply_options(sock: zmq.Socket, options: Mapping[str, Any]) -> None:
    """Validate and set ``options`` on ``sock`` (from the socket's own thread).

    ``ValueError`` when a value that passed validation cannot be set: libzmq refuses it
    (EINVAL: e.g. ``subscribe`` on a PUB socket) or it has the wrong type for a pass-through
    option (text for ``plain_server``); the message names the option and the socket type.
    """
    for name, value in validate_options(options).items():
        spec = OPTIONS.get(name)
        if spec is not None and spec.unset is not None and value == spec.unset:
            continue  # libzmq's own default, which it refuses to be set to
        try:
            sock.setsockopt(getattr(zmq, name.upper()), value)
        except (zmq.ZMQError, TypeError, OverflowError) as exc:  # pass-through options are not range-checked
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            why = exc.strerror if isinstance(exc, zmq.ZMQError) else str(exc)
            raise ValueError(f"cannot set {name}={shown} on a {socket_type_name(sock.type)} socket: {why}; check "
                             "the option's type (number or bytes) and that it applies to this socket type") from None
