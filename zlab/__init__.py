"""zlab: a lab kit that shows how ZeroMQ socket monitor events really behave.

    >>> import zlab
    >>> with zlab.Lab() as lab:
    ...     topo = lab.pubsub(pub_binds=False)      # PUB connects to a bound SUB
    ...     topo.subs[0].close()                     # the SUB dies
    ...     lab.wait_for("CONNECT_RETRIED", "pub")   # ...and the PUB starts to loop

``import zlab`` stays light: matplotlib, ipywidgets and pandas are imported only
by the functions that draw or export.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import Any

from .events import Event, describe
from .eventlog import EventLog, Subscription
from .lab import Lab, versions
from .options import OPTIONS, SOCKET_TYPES, OptionSpec

# Everything beyond the core (events, log, Lab, options) loads on first use: `import zlab`
# stays light, and so does the start-up of every child peer (which imports zlab).
_LAZY = {
    "AdminEndpoint": "admin",
    "ConnectionState": "connections",
    "DealerRouter": "topology",
    "PubSub": "topology",
    "PushPull": "topology",
    "ReqRep": "topology",
    "Topology": "topology",
    "Peer": "peer",
    "Proxy": "proxy",
    "RetryLimiter": "policies",
    "recommended_options": "policies",
    "safe_shutdown": "shutdown",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AdminEndpoint",
    "ConnectionState",
    "DealerRouter",
    "Event",
    "EventLog",
    "Lab",
    "OPTIONS",
    "OptionSpec",
    "Peer",
    "Proxy",
    "PubSub",
    "PushPull",
    "ReqRep",
    "RetryLimiter",
    "SOCKET_TYPES",
    "Subscription",
    "Topology",
    "__version__",
    "describe",
    "recommended_options",
    "safe_shutdown",
    "versions",
]
