"""Named experiments: each builds a topology, injects a fault, measures, and explains.

``zlab.scenarios.run("retry-loop", duration=2)`` returns a
:class:`ScenarioResult`; ``SCENARIOS`` lists them all.
"""

from __future__ import annotations

from . import disconnect  # noqa: F401  (registers its scenario)
from ._base import SCENARIOS, Scenario, ScenarioResult, get, run, scenario, validate_settings

__all__ = ["SCENARIOS", "Scenario", "ScenarioResult", "get", "run", "scenario", "validate_settings"]
