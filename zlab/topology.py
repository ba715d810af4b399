"""Topology builders: the usual socket patterns, built in a Lab, named, and waited on.

Each builder makes real sockets through :meth:`Lab.socket`, binds one side on a
fresh loopback endpoint (tcp 127.0.0.1 with a random port, a private ipc
file, or inproc), connects the other, and by default waits until every
connection's ZMTP handshake succeeded, so the first message is not lost to the
slow-joiner effect. Over inproc libzmq emits no monitor events at all (measured,
libzmq 4.3.5): the builder records a NOTE saying so instead of waiting.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zmq

if TYPE_CHECKING:
    from .lab import Lab

__all__ = ["DealerRouter", "PubSub", "PushPull", "ReqRep", "Topology", "dealer_router", "pubsub", "pushpull", "reqrep"]

TRANSPORTS = ("tcp", "ipc", "inproc")
INPROC_NOTE = "inproc connections produce no monitor events at all (libzmq 4.3.5): nothing to show"


@dataclass
class Topology:
    """Sockets by label and the endpoints that were bound, in the order they were made."""

    lab: Lab
    transport: str
    sockets: dict[str, zmq.Socket] = field(default_factory=dict)
    endpoints: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def endpoint(self) -> str:
        """The first bound endpoint (``tcp://127.0.0.1:PORT``)."""
        return self.endpoints[0]

    def name_of(self, sock: zmq.Socket) -> str:
        """The label a socket of this topology has in the EventLog."""
        for name, candidate in self.sockets.items():
            if candidate is sock:
                return name
        raise ValueError("that socket is not part of this topology")

    def close(self) -> None:
        """Close every socket of the topology (LINGER as set); the Lab stays open."""
        for sock in self.sockets.values():
            if not sock.closed:
                sock.close()


@dataclass
class PubSub(Topology):
    pub: zmq.Socket | None = None
    subs: list[zmq.Socket] = field(default_factory=list)
    pub_binds: bool = True


@dataclass
class ReqRep(Topology):
    req: zmq.Socket | None = None
    rep: zmq.Socket | None = None


@dataclass
class PushPull(Topology):
    push: zmq.Socket | None = None
    pulls: list[zmq.Socket] = field(default_factory=list)


@dataclass
class DealerRouter(Topology):
    dealer: zmq.Socket | None = None
    router: zmq.Socket | None = None


def _check(transport: str, count: int, what: str) -> None:
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}; use one of {', '.join(TRANSPORTS)}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"{what} must be a whole number >= 1; got {count!r}")


def _wait_ready(topo: Topology, connectors: list[str], binders: list[str], links: int, timeout: float) -> None:
    """Wait until each connecting socket and each bound socket logged its handshakes."""
    if topo.transport == "inproc":
        topo.note = INPROC_NOTE
        topo.lab.mark("NOTE", INPROC_NOTE)
        return
    per_connector = max(1, links // max(1, len(connectors)))
    per_binder = max(1, links // max(1, len(binders)))
    for name in connectors:
        topo.lab.wait_for("HANDSHAKE_SUCCEEDED", name, timeout=timeout, count=per_connector)
    for name in binders:
        topo.lab.wait_for("HANDSHAKE_SUCCEEDED", name, timeout=timeout, count=per_binder)


@contextmanager
def _building(topo: Topology) -> Iterator[Topology]:
    """Close every socket made so far if building fails: no half-built topology stays open."""
    try:
        yield topo
    except BaseException:
        topo.close()
        raise


def _opts(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(options or {})


def pubsub(
    lab: Lab,
    *,
    subscribers: int = 1,
    pub_binds: bool = True,
    transport: str = "tcp",
    pub_options: Mapping[str, Any] | None = None,
    sub_options: Mapping[str, Any] | None = None,
    prefix: str = "",
    wait: bool = True,
    timeout: float = 5.0,
) -> PubSub:
    """One PUB and ``subscribers`` SUBs (subscribed to everything), labelled ``pub``, ``sub0``...

    ``pub_binds=True``: the PUB binds one endpoint and each SUB connects (the
    recommended direction). ``pub_binds=False``: each SUB binds its own endpoint
    and the PUB connects to all of them -- the direction whose PUB loops
    CONNECT_RETRIED / CONNECT_DELAYED / CLOSED when a SUB dies. ``timeout`` (s)
    bounds the wait for handshakes; ``TimeoutError`` if they do not come.
    """
    _check(transport, subscribers, "subscribers")
    with _building(PubSub(lab, transport, pub_binds=pub_binds)) as topo:
        pub_name = f"{prefix}pub"
        pub = lab.socket("PUB", pub_name, **_opts(pub_options))
        topo.pub, topo.sockets[pub_name] = pub, pub
        sub_opts = {"subscribe": b"", **_opts(sub_options)}
        if pub_binds:
            topo.endpoints.append(lab.bind(pub, transport))
        for i in range(subscribers):
            name = f"{prefix}sub{i}"
            sub = lab.socket("SUB", name, **sub_opts)
            topo.subs.append(sub)
            topo.sockets[name] = sub
            if pub_binds:
                lab.connect(sub, topo.endpoint)
            else:
                endpoint = lab.bind(sub, transport)
                topo.endpoints.append(endpoint)
                lab.connect(pub, endpoint)
        if wait:
            subs = [n for n in topo.sockets if n != pub_name]
            if pub_binds:
                _wait_ready(topo, subs, [pub_name], subscribers, timeout)
            else:
                _wait_ready(topo, [pub_name], subs, subscribers, timeout)
    return topo


def reqrep(
    lab: Lab,
    *,
    transport: str = "tcp",
    req_options: Mapping[str, Any] | None = None,
    rep_options: Mapping[str, Any] | None = None,
    prefix: str = "",
    wait: bool = True,
    timeout: float = 5.0,
) -> ReqRep:
    """A REP that binds and a REQ that connects, labelled ``req`` and ``rep``."""
    _check(transport, 1, "count")
    with _building(ReqRep(lab, transport)) as topo:
        rep = topo.rep = topo.sockets[f"{prefix}rep"] = lab.socket("REP", f"{prefix}rep", **_opts(rep_options))
        topo.endpoints.append(lab.bind(rep, transport))
        topo.req = topo.sockets[f"{prefix}req"] = lab.socket("REQ", f"{prefix}req", connect=topo.endpoint,
                                                             **_opts(req_options))
        if wait:
            _wait_ready(topo, [f"{prefix}req"], [f"{prefix}rep"], 1, timeout)
    return topo


def pushpull(
    lab: Lab,
    *,
    pullers: int = 1,
    transport: str = "tcp",
    push_options: Mapping[str, Any] | None = None,
    pull_options: Mapping[str, Any] | None = None,
    prefix: str = "",
    wait: bool = True,
    timeout: float = 5.0,
) -> PushPull:
    """A PUSH that binds and ``pullers`` PULLs that connect, labelled ``push``, ``pull0``..."""
    _check(transport, pullers, "pullers")
    with _building(PushPull(lab, transport)) as topo:
        push = topo.push = topo.sockets[f"{prefix}push"] = lab.socket("PUSH", f"{prefix}push", **_opts(push_options))
        topo.endpoints.append(lab.bind(push, transport))
        for i in range(pullers):
            name = f"{prefix}pull{i}"
            pull = topo.sockets[name] = lab.socket("PULL", name, connect=topo.endpoint, **_opts(pull_options))
            topo.pulls.append(pull)
        if wait:
            pulls = [n for n in topo.sockets if n != f"{prefix}push"]
            _wait_ready(topo, pulls, [f"{prefix}push"], pullers, timeout)
    return topo


def dealer_router(
    lab: Lab,
    *,
    transport: str = "tcp",
    dealer_options: Mapping[str, Any] | None = None,
    router_options: Mapping[str, Any] | None = None,
    prefix: str = "",
    wait: bool = True,
    timeout: float = 5.0,
) -> DealerRouter:
    """A ROUTER that binds and a DEALER that connects, labelled ``dealer`` and ``router``."""
    _check(transport, 1, "count")
    with _building(DealerRouter(lab, transport)) as topo:
        router = topo.router = topo.sockets[f"{prefix}router"] = lab.socket(
            "ROUTER", f"{prefix}router", **_opts(router_options))
        topo.endpoints.append(lab.bind(router, transport))
        topo.dealer = topo.sockets[f"{prefix}dealer"] = lab.socket(
            "DEALER", f"{prefix}dealer", connect=topo.endpoint, **_opts(dealer_options))
        if wait:
            _wait_ready(topo, [f"{prefix}dealer"], [f"{prefix}router"], 1, timeout)
    return topo
