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

from .events import Event, describe
from .eventlog import EventLog, Subscription
from .lab import Lab, versions
from .options import OPTIONS, SOCKET_TYPES, OptionSpec
from .topology import DealerRouter, PubSub, PushPull, ReqRep, Topology

__all__ = [
    "DealerRouter",
    "Event",
    "EventLog",
    "Lab",
    "OPTIONS",
    "OptionSpec",
    "PubSub",
    "PushPull",
    "ReqRep",
    "SOCKET_TYPES",
    "Subscription",
    "Topology",
    "__version__",
    "describe",
    "versions",
]
