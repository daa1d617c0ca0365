"""The integrator options shared by every flow, parsed and checked once (:func:`parse_options`)."""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .tableaux import ADAPTIVE, METHODS

__all__ = ["FlowOptions", "check_option_names", "check_t_end", "parse_options",
           "positive_number"]


def check_t_end(t_end: object) -> float:
    """``t_end`` as a float; TypeError/ValueError unless it is a finite real number >= 0."""
    if isinstance(t_end, bool) or not isinstance(t_end, (int, float, np.integer, np.floating)):
        raise TypeError(f"t_end must be a real number >= 0, got {t_end!r}")
    t_end = float(t_end)
    if not np.isfinite(t_end) or t_end < 0:
        raise ValueError(f"t_end must be finite and >= 0, got {t_end}")
    return t_end


def positive_number(name: str, val: object, allow_none: bool = True) -> float | None:
    """``val`` as a finite positive float (or None when allowed); the error names ``name``."""
    if val is None and allow_none:
        return None
    if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {val!r}")
    val = float(val)
    if not (np.isfinite(val) and val > 0):
        raise ValueError(f"{name} must be finite and positive, got {val}")
    return val


@dataclass
class FlowOptions:
    """The options of the integrator (see the package docstring for their meaning)."""

    method: str
    rtol: float
    atol: float
    step: float | None
    first_step: float | None
    max_step: float
    max_steps: int | None
    t_eval: np.ndarray | None
    trajectory: bool
    gtol: float | None
    checkpoint: str | None
    checkpoint_every: float | None
    checkpoint_steps: int | None
    resume: bool
    progress: bool
    ftol: float | None = None
    rdtol: float | None = None
    rdwindow: float = 1.0
    events: tuple = ()
    record: dict = field(default_factory=dict)


def _positive_int(name: str, val: object) -> int | None:
    if val is None:
        return None
    if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
        raise ValueError(f"{name} must be a positive integer, got {val!r}")
    return int(val)


def parse_options(t_end: float, method: str = "RK45", rtol: float = 1e-6, atol: float = 1e-9,
                  step: float | None = None, first_step: float | None = None,
                  max_step: float | None = None, max_steps: int | None = None,
                  t_eval: object = None, trajectory: bool = False, gtol: float | None = None,
                  checkpoint: object = None, checkpoint_every: float | None = 60.0,
                  checkpoint_steps: int | None = None, resume: bool = True,
                  progress: bool = False, ftol: float | None = None,
                  rdtol: float | None = None, rdwindow: float = 1.0, events: object = None,
                  record: object = None) -> FlowOptions:
    """Check the keyword options of a flow; TypeError/ValueError naming the bad one."""
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError("method must be one of 'RK45', 'RK4', 'Euler', 'Rosenbrock', 'auto', "
                         f"got {method!r}")
    method = METHODS[method.lower()]
    rtol = positive_number("rtol", rtol, allow_none=False)
    if isinstance(atol, bool) or not isinstance(atol, (int, float, np.integer, np.floating)):
        raise TypeError(f"atol must be a number >= 0, got {atol!r}")
    atol = float(atol)
    if not (np.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be finite and >= 0, got {atol}")
    if rtol < 100 * np.finfo(float).eps:
        raise ValueError(f"rtol must be >= 100 eps ~ 2.2e-14, got {rtol}")
    step = positive_number("step", step)
    if method not in ADAPTIVE and step is None:
        raise ValueError(f"method {method!r} uses a fixed step: pass step=h > 0")
    if method in ADAPTIVE and step is not None:
        raise ValueError(f"step= is for the fixed-step methods 'RK4' and 'Euler'; {method} "
                         "adapts its step (use first_step= / max_step=)")
    first_step = positive_number("first_step", first_step)
    max_step = positive_number("max_step", max_step)
    max_steps = _positive_int("max_steps", max_steps)
    if t_eval is not None:
        te = np.asarray(t_eval, dtype=float)
        if te.ndim != 1 or te.size == 0:
            raise ValueError(f"t_eval must be a non-empty 1-d array of times, got shape {te.shape}")
        if not np.all(np.isfinite(te)) or np.any(te < 0) or np.any(te > t_end):
            raise ValueError(f"t_eval must lie in [0, t_end] = [0, {t_end}]")
        if np.any(np.diff(te) <= 0):
            raise ValueError("t_eval must be strictly increasing")
        t_eval = te
    gtol = positive_number("gtol", gtol)
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path, got {type(checkpoint).__name__}")
        checkpoint = os.fspath(checkpoint)
    checkpoint_every = positive_number("checkpoint_every", checkpoint_every)
    checkpoint_steps = _positive_int("checkpoint_steps", checkpoint_steps)
    ftol = _real_number("ftol", ftol)
    rdtol = positive_number("rdtol", rdtol)
    rdwindow = positive_number("rdwindow", rdwindow, allow_none=False)
    return FlowOptions(method, rtol, atol, step, first_step,
                       np.inf if max_step is None else max_step, max_steps, t_eval,
                       bool(trajectory), gtol, checkpoint, checkpoint_every, checkpoint_steps,
                       bool(resume), bool(progress), ftol, rdtol, rdwindow,
                       _parse_events(events), _parse_record(record))


def _real_number(name: str, val: object) -> float | None:
    """``val`` as a finite float (any sign: a loss may be negative), or None."""
    if val is None:
        return None
    if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {val!r}")
    val = float(val)
    if not np.isfinite(val):
        raise ValueError(f"{name} must be finite, got {val}")
    return val


def _parse_events(events: object) -> tuple:
    """``events`` as a tuple of callables g(t, W) with checked ``terminal`` (bool or a positive
    count) and ``direction`` (a number; its sign counts) attributes, as in scipy's solve_ivp."""
    if events is None:
        return ()
    if callable(events):
        events = (events,)
    if isinstance(events, (str, bytes)) or not isinstance(events, (list, tuple)):
        raise TypeError(f"events must be a callable g(t, W) or a list of them, got "
                        f"{type(events).__name__}")
    for i, ev in enumerate(events):
        if not callable(ev):
            raise TypeError(f"events[{i}] must be callable g(t, W), got {type(ev).__name__}")
        term = getattr(ev, "terminal", False)
        if isinstance(term, (bool, np.bool_)):
            pass
        elif isinstance(term, (int, np.integer)) and term >= 0:
            pass  # a count of occurrences (0: not terminal), as in scipy
        else:
            raise ValueError(f"events[{i}].terminal must be True, False or a count >= 0 of "
                             f"occurrences, got {term!r}")
        direction = getattr(ev, "direction", 0)
        if isinstance(direction, bool) or not isinstance(
                direction, (int, float, np.integer, np.floating)) or not np.isfinite(direction):
            raise ValueError(f"events[{i}].direction must be a finite number (its sign: > 0 "
                             f"rising, < 0 falling, 0 both), got {direction!r}")
    return tuple(events)


def _parse_record(record: object) -> dict[str, Callable]:
    """``record`` as a dict name -> callable(t, W) (names: non-empty strings)."""
    if record is None:
        return {}
    if not isinstance(record, Mapping):
        raise TypeError(f"record must be a dict {{name: callable(t, W)}}, got "
                        f"{type(record).__name__}")
    out = {}
    for name, fn in record.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"record names must be non-empty strings, got {name!r}")
        if not callable(fn):
            raise TypeError(f"record[{name!r}] must be callable (t, W) -> number or array, got "
                            f"{type(fn).__name__}")
        out[name] = fn
    return out


def check_option_names(caller: str, options: Mapping, own: tuple[str, ...] = ()) -> dict:
    """``options`` unchanged if every name is an integrator option (a parameter of
    :func:`parse_options`); else a TypeError naming the public function ``caller`` and, for each
    unknown name, the nearest valid option (difflib) among the integrator's and ``own`` (the
    function's own keywords)."""
    valid = [p for p in inspect.signature(parse_options).parameters if p != "t_end"]
    unknown = [k for k in options if k not in valid]
    if not unknown:
        return dict(options)
    names = sorted(set(valid) | set(own))
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(f"{caller}() got an unexpected keyword argument {', '.join(parts)}; valid "
                    f"options: {', '.join(names)}")
