"""The scenario machinery: a registry of named experiments and the result they return.

A scenario is a function ``body(lab, settings) -> (summary, findings)`` that
builds a topology in the given Lab, injects its fault, collects for a bounded
time and measures. :func:`run` opens the Lab, validates the settings, runs the
body and packs everything -- settings, library versions, every event, summary,
findings -- into a :class:`ScenarioResult`. Renderers (the CLI table, plots,
widgets) only draw that result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..events import Event
from ..lab import Lab, versions
from ..options import OPTIONS, validate_option

__all__ = ["SCENARIOS", "Scenario", "ScenarioResult", "get", "run", "scenario", "validate_settings"]

#: Longest a scenario may be asked to collect, in seconds.
MAX_DURATION = 120.0

Body = Callable[[Lab, dict[str, Any]], tuple[dict[str, Any], list[str]]]


@dataclass
class ScenarioResult:
    """What one run of a scenario saw: settings, versions, every event, measured figures, findings."""

    scenario: str
    versions: dict[str, Any]
    settings: dict[str, Any]
    events: list[Event]
    summary: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with keys ``scenario``, ``versions``, ``settings``, ``events``, ``summary``, ``findings``."""
        return {
            "scenario": self.scenario,
            "versions": self.versions,
            "settings": self.settings,
            "events": [
                {"t": round(ev.t, 6), "socket": ev.socket, "event": ev.event, "value": ev.value,
                 "endpoint": ev.endpoint, "meaning": ev.meaning}
                for ev in self.events
            ],
            "summary": self.summary,
            "findings": self.findings,
        }

    def filter(self, socket: str | None = None, event: str | None = None) -> list[Event]:
        """This result's events for one socket and/or one event name."""
        return [ev for ev in self.events if (socket is None or ev.socket == socket) and (event is None or ev.event == event)]


@dataclass(frozen=True)
class Scenario:
    """A named experiment: its one-line description, its default settings and its body."""

    name: str
    description: str
    defaults: Mapping[str, Any]
    body: Body

    def run(self, *, on_event: Callable[[Event], None] | None = None, lab: Lab | None = None,
            **overrides: Any) -> ScenarioResult:
        """Run in a fresh Lab (or ``lab``); ``on_event`` is called live for each event."""
        settings = validate_settings(self, overrides)
        own = lab is None
        lab = Lab() if own else lab
        subscription = lab.log.subscribe(on_event) if on_event is not None else None
        try:
            summary, findings = self.body(lab, settings)
        finally:
            if own:
                lab.close()
            if subscription is not None:
                subscription.close()
        return ScenarioResult(self.name, versions(), settings, lab.events(), summary, findings)


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, description: str, **defaults: Any) -> Callable[[Body], Body]:
    """Register ``body`` as the scenario ``name`` with its default settings."""

    def register(body: Body) -> Body:
        SCENARIOS[name] = Scenario(name, description, dict(defaults), body)
        return body

    return register


def get(name: str) -> Scenario:
    """The scenario called ``name``; ``ValueError`` lists the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(sorted(SCENARIOS))}") from None


def run(name: str, **overrides: Any) -> ScenarioResult:
    """Run the scenario ``name`` with ``overrides`` of its settings (see :meth:`Scenario.run`)."""
    return get(name).run(**overrides)


def validate_settings(sc: Scenario, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated by ``overrides``; each override checked.

    Unknown keys raise ``ValueError`` listing the scenario's settings. Socket
    options are checked by :mod:`zlab.options`; ``duration`` must be in
    (0, 120] s; other settings must have the default's type.
    """
    settings = dict(sc.defaults)
    for key, value in overrides.items():
        if key not in settings:
            allowed = ", ".join(sorted(settings)) or "none"
            raise ValueError(f"scenario {sc.name!r} has no setting {key!r}; its settings: {allowed}")
        settings[key] = _check_setting(key, value, sc.defaults[key])
    return settings


def _check_setting(key: str, value: Any, default: Any) -> Any:
    if key in OPTIONS:
        return validate_option(key, value)
    if key == "duration" or key.endswith("_s"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_DURATION:
            raise ValueError(f"{key} is in seconds and must be in (0, {MAX_DURATION:g}]; got {value!r}")
        return float(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false; got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} must be a whole number >= 0; got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key} must be a number >= 0; got {value!r}")
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ValueError(f"{key} must be text; got {value!r}")
    return value
