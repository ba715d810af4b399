"""Operator control: a small admin endpoint that another process can query and command.

"Let operators intervene": when a peer will not come back, a person (or a
script) should be able to see each endpoint's state and drop, re-dial, pause
or resume it without restarting the program. :class:`AdminEndpoint` serves
that on a ZeroMQ REP socket, bound to 127.0.0.1 unless told otherwise, one
JSON object per request and per reply::

    {"cmd": "status"}                                  -> lab time, versions, table, limiters
    {"cmd": "list"}                                    -> the connection table
    {"cmd": "disconnect", "endpoint": "tcp://...", "socket": "sub"}   (socket optional)
    {"cmd": "reconnect",  "endpoint": "tcp://...", "socket": "sub"}
    {"cmd": "pause-retrying"}   / {"cmd": "pause-retrying", "socket": "pub"}
    {"cmd": "resume-retrying"}  / {"cmd": "resume-retrying", "socket": "pub"}
    {"cmd": "help"}

Every reply has ``"ok"``; a failure has ``"ok": false`` and an ``"error"``
saying what was expected. Malformed JSON, a multi-frame request, an unknown
command or a bad argument get such a reply, never a crash: the endpoint keeps
serving. ``zlab admin ENDPOINT status|disconnect|reconnect|pause|resume`` is the
command-line client (:func:`request`).

Threads and contexts: the REP socket lives in the endpoint's own thread and
its own zmq Context, so operator control still answers when the Lab's context
is stuck (context isolation, one of the practices). Actions on Lab sockets go
through :mod:`zlab.policies` (the socket's lock, then a settled disconnect);
sockets the user only watches are refused, because only their own thread may
touch them. Each action leaves a POLICY marker in the log
(``disconnected ENDPOINT (operator)``, ``reconnected ENDPOINT (operator)``),
which is also how :mod:`zlab.connections` knows the endpoint was dropped on
purpose: ``disconnect()`` itself emits no monitor event.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any

import zmq

from .policies import RetryLimiter, SerializedSocket, connect_endpoint, disconnect_endpoint, limiter_for, limiters

if TYPE_CHECKING:
    from .lab import Lab

__all__ = ["COMMANDS", "AdminEndpoint", "AdminError", "Operator", "request"]

#: Commands the admin endpoint understands, with the arguments each takes.
COMMANDS: dict[str, str] = {
    "status": "lab time, versions, the connection table and the retry limiters",
    "list": "the connection table only",
    "disconnect": "drop a connected endpoint: endpoint (required), socket (if several connect to it)",
    "reconnect": "disconnect (if connected) and connect again, counting afresh: endpoint, socket",
    "pause-retrying": "disconnect every endpoint that is retrying, now and until resumed: socket (optional)",
    "resume-retrying": "reconnect the endpoints pause-retrying dropped: socket (optional)",
    "help": "this list",
}

_MAX_REQUEST = 65536  # bytes; a larger message makes libzmq drop the connection (ZMQ_MAXMSGSIZE)


class AdminError(ValueError):
    """A request the admin endpoint cannot carry out; its text is the reply's ``error``."""


class Operator:
    """The actions behind the admin endpoint, callable directly (a dashboard's buttons use this).

    Each method returns a JSON-ready dict with ``"ok": True`` or raises
    :class:`AdminError` saying what went wrong; :meth:`handle` turns any
    request into a reply dict and never raises.
    """

    def __init__(self, lab: Lab, *, silent_after_s: float = 1.0):
        self._lab_ref = weakref.ref(lab)  # the Lab owns its admin endpoint, not the other way round
        self.silent_after_s = silent_after_s

    @property
    def lab(self) -> Lab:
        lab = self._lab_ref()
        if lab is None:
            raise AdminError("the Lab behind this admin endpoint is gone")
        return lab

    # -- the dispatcher ---------------------------------------------------------------------
    def handle(self, req: Any) -> dict[str, Any]:
        """Answer one decoded request (a dict with ``"cmd"``); never raises."""
        try:
            if not isinstance(req, dict):
                raise AdminError(f'a request is a JSON object such as {{"cmd": "status"}}; got {type(req).__name__}')
            cmd = req.get("cmd")
            if not isinstance(cmd, str) or cmd not in COMMANDS:
                raise AdminError(f"unknown command {cmd!r}; commands: {', '.join(COMMANDS)}")
            if self.lab.closed:
                raise AdminError("the Lab behind this admin endpoint is closed")
            endpoint, socket = req.get("endpoint"), req.get("socket")
            for name, value in (("endpoint", endpoint), ("socket", socket)):
                if value is not None and not isinstance(value, str):
                    raise AdminError(f"{name} must be a string; got {value!r}")
            if cmd == "status":
                reply = self.status()
            elif cmd == "list":
                reply = {"ok": True, "connections": self.list()}
            elif cmd == "help":
                reply = {"ok": True, "commands": COMMANDS}
            elif cmd in ("disconnect", "reconnect"):
                if not endpoint:
                    raise AdminError(f'{cmd} needs an endpoint, e.g. {{"cmd": "{cmd}", "endpoint": "tcp://127.0.0.1:5555"}}')
                reply = getattr(self, cmd)(endpoint, socket)
            elif cmd == "pause-retrying":
                reply = self.pause(socket)
            else:
                reply = self.resume(socket)
        except AdminError as exc:
            return {"ok": False, "cmd": req.get("cmd") if isinstance(req, dict) else None, "error": str(exc)}
        except Exception as exc:  # a bug or a race must not stop the endpoint
            return {"ok": False, "cmd": req.get("cmd") if isinstance(req, dict) else None,
                    "error": f"{type(exc).__name__}: {exc}"}
        reply.setdefault("cmd", cmd)
        return reply

    # -- queries --------------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        """The connection table as records (see :class:`zlab.connections.ConnectionState`)."""
        return [row.to_record() for row in self.lab.connections(silent_after_s=self.silent_after_s)]

    def status(self) -> dict[str, Any]:
        """Lab time (s), versions, sockets, the connection table, state counts and limiters."""
        rows = self.list()
        return {
            "ok": True,
            "t": round(self.lab.now(), 4),
            "versions": self.lab.versions(),
            "sockets": sorted(self.lab.sockets),
            "states": dict(Counter(r["state"] for r in rows)),
            "connections": rows,
            "limiters": [
                {"socket": name, "max_attempts": lim.max_attempts, "give_up_after_s": lim.give_up_after_s,
                 "paused": lim.paused, "gave_up": len(lim.gave_up)}
                for name, lim in sorted(limiters(self.lab).items())
            ],
        }

    # -- actions --------------------------------------------------------------------------------
    def disconnect(self, endpoint: str, socket: str | None = None) -> dict[str, Any]:
        """Drop ``endpoint`` from the Lab socket that connects to it; records ``disconnected ... (operator)``."""
        name, sock = self._resolve(endpoint, socket)
        outcome = self._guard(disconnect_endpoint, sock, endpoint)
        if outcome != "disconnected":
            raise AdminError(f"{name} {outcome} {endpoint}" if outcome == "was not connected"
                             else f"cannot disconnect {endpoint}: {outcome}")
        marker = self.lab.mark("POLICY", f"disconnected {endpoint} (operator)", socket=name, endpoint=endpoint)
        return {"ok": True, "socket": name, "endpoint": endpoint, "result": "disconnected", "t": round(marker.t, 4)}

    def reconnect(self, endpoint: str, socket: str | None = None) -> dict[str, Any]:
        """Disconnect ``endpoint`` if connected, connect it again; the retry count starts afresh."""
        name, sock = self._resolve(endpoint, socket)
        first = self._guard(disconnect_endpoint, sock, endpoint)
        outcome = self._guard(connect_endpoint, sock, endpoint)
        if outcome != "connected":
            raise AdminError(f"cannot reconnect {endpoint}: {outcome}")
        marker = self.lab.mark("POLICY", f"reconnected {endpoint} (operator)", socket=name, endpoint=endpoint)
        return {"ok": True, "socket": name, "endpoint": endpoint, "result": "reconnected",
                "was": first, "t": round(marker.t, 4)}

    def pause(self, socket: str | None = None) -> dict[str, Any]:
        """Stop retrying on ``socket`` (or on every Lab socket that connects somewhere): a
        :class:`~zlab.policies.RetryLimiter` is attached where none is, and paused."""
        paused: dict[str, list[str]] = {}
        for name in self._targets(socket):
            limiter = limiter_for(self.lab, name) or RetryLimiter(self.lab, name, max_attempts=None)
            paused[name] = limiter.pause()
        return {"ok": True, "result": "paused", "paused": paused}

    def resume(self, socket: str | None = None) -> dict[str, Any]:
        """Reconnect what :meth:`pause` dropped, on ``socket`` or everywhere."""
        resumed: dict[str, list[str]] = {}
        for name, limiter in sorted(limiters(self.lab).items()):
            if (socket is None or name == socket) and limiter.paused:
                resumed[name] = limiter.resume()
        if socket is not None and socket not in resumed:
            raise AdminError(f"retrying is not paused on {socket!r}")
        return {"ok": True, "result": "resumed", "resumed": resumed}

    # -- helpers --------------------------------------------------------------------------------
    def _lab_socket(self, name: str) -> SerializedSocket:
        sock = self.lab.sockets.get(name)
        if sock is None:
            raise AdminError(f"no open socket named {name!r}; open sockets: {', '.join(sorted(self.lab.sockets)) or 'none'}")
        if not isinstance(sock, SerializedSocket):
            raise AdminError(f"{name!r} is the user's own socket (lab.watch): only the thread that uses it may "
                             "touch it; make it with lab.socket() to control it from here")
        return sock

    def _resolve(self, endpoint: str, socket: str | None) -> tuple[str, SerializedSocket]:
        if socket is not None:
            return socket, self._lab_socket(socket)
        rows = self.lab.connections(silent_after_s=self.silent_after_s)
        names = sorted({r.socket for r in rows if r.endpoint == endpoint and r.role == "connect"
                        and r.socket in self.lab.sockets})
        if not names:
            known = sorted({r.endpoint for r in rows if r.role == "connect"})
            raise AdminError(f"no open socket of this lab connects to {endpoint}; connected endpoints: "
                             f"{', '.join(known) or 'none'}")
        if len(names) > 1:
            raise AdminError(f"{endpoint} is connected by several sockets ({', '.join(names)}); say which with socket")
        return names[0], self._lab_socket(names[0])

    def _targets(self, socket: str | None) -> list[str]:
        if socket is not None:
            self._lab_socket(socket)
            return [socket]
        rows = self.lab.connections(silent_after_s=self.silent_after_s)
        open_sockets = self.lab.sockets
        return sorted({r.socket for r in rows if r.role == "connect" and r.socket in open_sockets
                       and isinstance(open_sockets[r.socket], SerializedSocket)})

    @staticmethod
    def _guard(action: Any, sock: SerializedSocket, endpoint: str) -> str:
        try:
            return action(sock, endpoint)
        except (TimeoutError, ValueError) as exc:
            raise AdminError(str(exc)) from None


class AdminEndpoint:
    """Serve :class:`Operator` on a REP socket in its own thread and context.

    ``endpoint`` defaults to ``tcp://127.0.0.1:*`` (a free loopback port; read
    the real one from :attr:`endpoint`). Another address is used only when
    passed explicitly. Adopted by the Lab (kind ``"admin"``): ``lab.close()``
    stops the thread and closes the socket. Counters: :attr:`requests`,
    :attr:`errors` (requests answered with ``"ok": false``).
    """

    def __init__(self, lab: Lab, endpoint: str = "tcp://127.0.0.1:*", *, operator: Operator | None = None,
                 poll_ms: int = 100):
        if not isinstance(endpoint, str) or "://" not in endpoint:
            raise ValueError(f"endpoint must look like tcp://127.0.0.1:5555 (or tcp://127.0.0.1:* for a free port); "
                             f"got {endpoint!r}")
        self._lab_ref = weakref.ref(lab)
        self.operator = operator or Operator(lab)
        self.requests = 0
        self.errors = 0
        self._poll_ms = poll_ms
        self._stop = threading.Event()
        self._closed = False
        self._context = zmq.Context()  # its own: operator control must outlive a stuck Lab context
        sock = self._context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, _MAX_REQUEST)
        try:
            sock.bind(endpoint)
            #: The bound endpoint, port filled in: give it to ``zlab admin``.
            self.endpoint: str = sock.last_endpoint.decode()
            lab.adopt(self, "admin")
        except zmq.ZMQError as exc:
            sock.close(0)
            self._context.term()
            raise ValueError(f"cannot bind the admin endpoint {endpoint}: {exc.strerror}") from None
        except BaseException:
            sock.close(0)
            self._context.term()
            raise
        self._socket = sock  # from here on only the admin thread uses it (Thread.start is the barrier)
        self._thread = threading.Thread(target=self._serve, name="zlab-admin", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sock = self._socket
        while not self._stop.is_set():
            try:
                if not sock.poll(self._poll_ms):
                    continue
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                continue
            except zmq.ZMQError:
                return  # context gone: nothing left to serve
            reply = self._answer(frames)
            self.requests += 1
            if not reply.get("ok"):
                self.errors += 1
            try:
                sock.send(json.dumps(reply, default=str).encode())
            except zmq.ZMQError:
                return

    def _answer(self, frames: list[bytes]) -> dict[str, Any]:
        if len(frames) != 1:
            return {"ok": False, "error": f"a request is one frame holding a JSON object; got {len(frames)} frames"}
        try:
            req = json.loads(frames[0].decode("utf-8"))
        except UnicodeDecodeError:
            return {"ok": False, "error": f"a request must be UTF-8 JSON; got bytes {frames[0][:40]!r}"}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f'malformed JSON ({exc.msg} at char {exc.pos}); send e.g. {{"cmd": "status"}}'}
        return self.operator.handle(req)

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving: the thread stops within ``poll_ms``; then the socket and context close. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():  # only then is the socket ours to close
            self._socket.close(0)
            self._context.term()
        lab = self._lab_ref()
        if lab is not None and not lab.closed:
            lab.release(self)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> AdminEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "serving" if self.alive else "closed"
        return f"<AdminEndpoint {self.endpoint} {state}, {self.requests} requests>"


def request(endpoint: str, message: dict[str, Any] | str | bytes, *, timeout: float = 3.0) -> dict[str, Any]:
    """Send one request to an admin endpoint and return the decoded reply (a client, e.g. ``zlab admin``).

    ``message`` is a dict (sent as JSON) or raw ``str``/``bytes`` (sent as
    they are, to test the endpoint's error handling). ``timeout`` in s: raises
    ``TimeoutError`` saying no lab answered. Uses its own context, LINGER 0.
    """
    if isinstance(message, dict):
        payload = json.dumps(message).encode()
    elif isinstance(message, str):
        payload = message.encode()
    elif isinstance(message, bytes):
        payload = message
    else:
        raise ValueError(f"message must be a dict, str or bytes; got {type(message).__name__}")
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise ValueError(f"cannot connect to admin endpoint {endpoint!r}: {exc.strerror}") from None
        sock.send(payload)
        if not sock.poll(int(timeout * 1000)):
            raise TimeoutError(f"no reply from the admin endpoint {endpoint} within {timeout:g} s; "
                               "is a lab serving it (lab.serve_admin())?")
        raw = sock.recv()
    finally:
        ctx.destroy(linger=0)
    try:
        reply = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"the admin endpoint answered something that is not JSON: {raw[:80]!r}") from None
    if not isinstance(reply, dict):
        raise ValueError(f"the admin endpoint answered {reply!r}, not a JSON object")
    return reply
