"""Named experiments: each builds a topology, injects a fault, measures, and explains.

``zlab.scenarios.run("retry-loop", duration=2)`` returns a
:class:`ScenarioResult`; ``SCENARIOS`` lists them all. One module per scenario
or small family; importing this package registers every one of them.
"""

from __future__ import annotations

from . import (  # noqa: F401  (each module registers its scenarios)
    backoff,
    disconnect,
    freeze,
    handshake,
    heartbeat,
    hwm,
    lifecycle,
    many_connections,
    retry_loop,
    stop_retrying,
)
from ._base import (
    SCENARIOS,
    Choice,
    Range,
    Scenario,
    ScenarioResult,
    get,
    parse_value,
    run,
    scenario,
    validate_settings,
)

__all__ = ["SCENARIOS", "Choice", "Range", "Scenario", "ScenarioResult", "get", "parse_value", "run", "scenario",
           "validate_settings"]
