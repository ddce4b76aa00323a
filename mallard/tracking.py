"""Params and metrics a model records while it trains.

Inside `Model.build()` call `mallard.log_param("C", 0.5)` and `mallard.log_metric("accuracy", 0.93)`.
During a build they go to the build's tracker and end up on the control plane with the build;
anywhere else (a notebook, a unit test) they go to a process-wide default tracker, so model code
runs unchanged outside a build and never fails for want of one.

The active tracker is process-wide rather than per thread or task, so a `build()` that logs from
worker threads still reports into its build.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, SupportsFloat


def param_text(value: Any) -> str:
    """How a param value is recorded: params are text, booleans are `true`/`false` as in YAML and JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Tracker:
    """Collects the params and metrics of one training run; the last value logged for a name wins."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def log_param(self, name: str, value: Any) -> None:
        """Record a param (stored as text)."""
        self.params[_name(name, "param")] = param_text(value)

    def log_metric(self, name: str, value: float | SupportsFloat) -> None:
        """Record a metric: a number, or a scalar that converts to one (numpy, a one-element tensor).

        NaN and infinity are kept here (the build log shows them) but never cross to the control
        plane, which records finite numbers only.
        """
        if isinstance(value, bool | str | bytes) or not hasattr(value, "__float__"):
            raise TypeError(f"metric {name!r} must be a number, not {type(value).__name__}")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metric {name!r} must be a single number: {exc}") from exc
        self.metrics[_name(name, "metric")] = number


def _name(name: str, kind: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a {kind} name must be a non-empty string, got {name!r}")
    return name


_lock = threading.Lock()
_default = Tracker()
_stack: list[Tracker] = []


def current_tracker() -> Tracker:
    """The tracker `log_param` / `log_metric` write to now: the active build's, or the default one."""
    with _lock:
        return _stack[-1] if _stack else _default


def default_tracker() -> Tracker:
    """The process-wide tracker used outside a build."""
    return _default


@contextmanager
def tracking(tracker: Tracker | None = None) -> Iterator[Tracker]:
    """Make `tracker` (a new one if omitted) the active tracker for the duration of the block."""
    active = tracker if tracker is not None else Tracker()
    with _lock:
        _stack.append(active)
    try:
        yield active
    finally:
        with _lock:
            _stack.remove(active)


def log_param(name: str, value: Any) -> None:
    """Record a training param (a hyper-parameter, a data-set size, ...); the value is stored as text."""
    current_tracker().log_param(name, value)


def log_metric(name: str, value: float | SupportsFloat) -> None:
    """Record a training metric such as accuracy; the value must be a number."""
    current_tracker().log_metric(name, value)
