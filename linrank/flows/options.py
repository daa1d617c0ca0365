"""The integrator options shared by every flow, parsed and checked once (:func:`parse_options`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .tableaux import ADAPTIVE, METHODS

__all__ = ["FlowOptions", "check_t_end", "parse_options", "positive_number"]


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
                  progress: bool = False) -> FlowOptions:
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
    return FlowOptions(method, rtol, atol, step, first_step,
                       np.inf if max_step is None else max_step, max_steps, t_eval,
                       bool(trajectory), gtol, checkpoint, checkpoint_every, checkpoint_steps,
                       bool(resume), bool(progress))
