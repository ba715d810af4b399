"""The scenario machinery: a registry of named experiments and the result they return.

A scenario is a function ``body(lab, settings) -> (summary, findings)`` that
builds a topology in the given Lab, injects its fault, collects for a bounded
time and measures. :func:`run` opens the Lab, validates the settings, runs the
body and packs everything -- settings, library versions, every event, summary,
findings -- into a :class:`ScenarioResult`. Renderers (the CLI table, plots,
widgets) only draw that result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..events import Event, check_event_names
from ..lab import Lab, versions
from ..options import OPTIONS, validate_option

__all__ = ["SCENARIOS", "Choice", "Range", "Scenario", "ScenarioResult", "get", "parse_value", "run", "scenario",
           "validate_settings"]

#: Longest a scenario may be asked to collect, in seconds.
MAX_DURATION = 120.0

Body = Callable[[Lab, dict[str, Any]], tuple[dict[str, Any], list[str]]]


class Choice:
    """A text setting limited to a few values; the first one is the default.

    ``@scenario("monitor-freeze", ..., reader=Choice("unread", "none", "rcvhwm0"))``
    """

    def __init__(self, *values: str):
        if not values or not all(isinstance(v, str) for v in values):
            raise ValueError(f"Choice needs one or more text values; got {values!r}")
        self.values: tuple[str, ...] = values

    @property
    def default(self) -> str:
        return self.values[0]

    def __repr__(self) -> str:
        return f"Choice{self.values!r}"


class Range:
    """A numeric setting with inclusive bounds: ``messages=Range(20000, 1, 200_000)``.

    Keeps every loop a scenario runs bounded even when a user overrides it.
    """

    def __init__(self, default: int | float, minimum: int | float, maximum: int | float):
        if not minimum <= default <= maximum:
            raise ValueError(f"default {default!r} is outside {minimum!r}..{maximum!r}")
        self.default, self.minimum, self.maximum = default, minimum, maximum

    def __repr__(self) -> str:
        return f"Range({self.default!r}, {self.minimum!r}, {self.maximum!r})"


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

    def filter(self, socket: str | None = None, event: str | Iterable[str] | None = None, *,
               since: float | None = None) -> list[Event]:
        """This result's events for one socket, one event name or several, from ``since`` (s) on:
        the same criteria as :meth:`zlab.EventLog.filter`."""
        names = {event} if isinstance(event, str) else (set(event) if event is not None else None)
        if names:
            check_event_names(names)
        return [ev for ev in self.events if (socket is None or ev.socket == socket)
                and (names is None or ev.event in names) and (since is None or ev.t >= since)]


@dataclass(frozen=True)
class Scenario:
    """A named experiment: its one-line description, its default settings and its body."""

    name: str
    description: str
    defaults: Mapping[str, Any]
    body: Body
    #: Settings limited to a few text values (see :class:`Choice`): key -> allowed values.
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Numeric settings with bounds (see :class:`Range`): key -> (minimum, maximum).
    ranges: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    def setting_unit(self, key: str) -> str:
        """The unit or kind of a setting, for help texts: ``ms``, ``s``, ``count``, ``true/false``..."""
        default = self.defaults[key]
        if key in self.choices:
            return "|".join(self.choices[key])
        if key in OPTIONS:
            return OPTIONS[key].unit
        if key == "duration" or key.endswith("_s"):
            return "s"
        if key.endswith("_ms"):
            return "ms"
        if isinstance(default, bool):
            return "true/false"
        if isinstance(default, int):
            return "count"
        if isinstance(default, float):
            return "number"
        if isinstance(default, bytes):
            return "bytes"
        return "text"

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
        plain = {k: (v.default if isinstance(v, (Choice, Range)) else v) for k, v in defaults.items()}
        choices = {k: v.values for k, v in defaults.items() if isinstance(v, Choice)}
        ranges = {k: (v.minimum, v.maximum) for k, v in defaults.items() if isinstance(v, Range)}
        SCENARIOS[name] = Scenario(name, description, plain, body, choices, ranges)
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
        if key in sc.choices:
            if value not in sc.choices[key]:
                raise ValueError(f"{key} must be one of {', '.join(sc.choices[key])}; got {value!r}")
            settings[key] = value
            continue
        checked = _check_setting(key, value, sc.defaults[key])
        if key in sc.ranges:
            low, high = sc.ranges[key]
            if not low <= checked <= high:
                raise ValueError(f"{key} must be in {low}..{high}; got {checked!r}")
        settings[key] = checked
    return settings


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(sc: Scenario, key: str, text: str) -> Any:
    """Turn the text of a ``--set key=value`` into the setting's type, then validate it.

    The type comes from the setting's default: whole numbers for socket options
    and counts (``heartbeat_ivl=100``), numbers of seconds for ``duration`` and
    ``*_s``, ``true``/``false`` for flags, bytes for bytes settings
    (``subscribe=topic``), text otherwise. Raises ``ValueError`` naming the key,
    what it expects and what arrived.
    """
    if key not in sc.defaults:
        allowed = ", ".join(sorted(sc.defaults)) or "none"
        raise ValueError(f"scenario {sc.name!r} has no setting {key!r}; its settings: {allowed}")
    default = sc.defaults[key]
    text = text.strip()
    value: Any
    if key in sc.choices or isinstance(default, str):
        value = text
    elif isinstance(default, bool):
        if text.lower() in _TRUE:
            value = True
        elif text.lower() in _FALSE:
            value = False
        else:
            raise ValueError(f"{key} must be true or false; got {text!r}")
    elif isinstance(default, bytes):
        value = text.encode()
    elif key in OPTIONS or isinstance(default, int):
        try:
            value = int(text, 10)
        except ValueError:
            unit = f" ({OPTIONS[key].allowed()})" if key in OPTIONS else ""
            raise ValueError(f"{key} must be a whole number{unit}; got {text!r}") from None
    elif isinstance(default, float):
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{key} must be a number ({sc.setting_unit(key)}); got {text!r}") from None
    else:
        value = text
    return validate_settings(sc, {key: value})[key]


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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ValueError(f"{key} must be a number >= 0; got {value!r}")
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ValueError(f"{key} must be text; got {value!r}")
    if isinstance(default, bytes):
        if isinstance(value, str):
            return value.encode()
        if not isinstance(value, (bytes, bytearray)):
            raise ValueError(f"{key} takes bytes or text; got {value!r}")
        return bytes(value)
    return value
