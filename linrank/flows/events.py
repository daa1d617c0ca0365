r"""Events, recorders and the located stop rules of the flows (used by the integrator).

* **User callbacks** (``record`` callables, ``events``, a problem's cost and gradient): any
  exception they raise ends the run with status "failed", the trajectory so far and a message
  naming the callback (:class:`CallbackError`, the exception kept as its ``__cause__`` and in
  ``FlowResult.error``).
* **Events** in the manner of scipy's ``solve_ivp``: a callable ``g(t, W)`` (W the state in the
  form of ``FlowResult.trajectory`` items: the factor list for ``factor_flow``, the point
  (u, s, vt) for the manifold flows) with optional attributes ``terminal`` (True, or a count of
  occurrences after which the run ends) and ``direction`` (> 0: only rising zeros, < 0: only
  falling ones, 0: both). A zero is an accepted step [t_n, t_n+1] with g(t_n) < 0 <= g(t_n+1)
  (rising) or g(t_n) > 0 >= g(t_n+1) (falling); it is located by Brent's method on the step's
  continuous extension (:func:`linrank.flows.tableaux.dense_weights`: Dormand-Prince's order-4
  interpolant for RK45, the order-3 one of RK4, and for the Rosenbrock (ROS34PW2) and Chebyshev
  (RKC) steps of ``method="Rosenbrock"``/``"auto"`` the cubic Hermite interpolant of the step's
  end points and slopes, :func:`linrank.flows.chebyshev.set_hermite`, local error O(h^4)), so
  its time is as accurate as the interpolant (the local error of the step), plus 1e-13 of the
  step in the root finder. Euler is gradient
  descent: its events are the iterates, not points between them (no interpolation).
* ``ftol``: the event "loss = ftol" (falling, terminal), located the same way on the loss of the
  interpolated state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import brentq

__all__ = ["CallbackError", "call_user", "crossed", "event_name", "locate", "real_value"]

#: tolerance of the root finder, as a fraction of the step
THETA_TOL = 1e-13


class CallbackError(Exception):
    """A user callback raised, or returned a value that cannot be used; the run ends "failed"."""


def call_user(what: str, fn: Callable, *args: Any) -> Any:
    """``fn(*args)``; an Exception from it becomes a :class:`CallbackError` naming ``what``
    (KeyboardInterrupt passes through)."""
    try:
        return fn(*args)
    except CallbackError:
        raise
    except Exception as exc:
        raise CallbackError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def real_value(what: str, value: Any, scalar: bool) -> Any:
    """A callback's value as a float (``scalar``) or a float array; CallbackError naming ``what``
    for complex, non-numeric, non-finite (scalar) or non-scalar (when a scalar is expected)."""
    try:
        arr = np.asarray(value)
        if np.iscomplexobj(arr):
            raise TypeError("a complex value")
        arr = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise CallbackError(f"{what} returned {value!r}: expected a real number"
                            + ("" if scalar else " or array") + f" ({exc})") from exc
    if scalar:
        if arr.ndim != 0:
            raise CallbackError(f"{what} returned an array of shape {arr.shape}: expected a real "
                                "number")
        val = float(arr)
        if not np.isfinite(val):
            raise CallbackError(f"{what} returned {val}: expected a finite number")
        return val
    return float(arr) if arr.ndim == 0 else arr


def event_name(ev: Callable, i: int) -> str:
    """``events[i]`` with the callable's name, for messages."""
    name = getattr(ev, "__name__", None)
    return f"events[{i}]" + (f" ({name})" if name and name != "<lambda>" else "")


def crossed(g_old: float, g_new: float, direction: float) -> bool:
    """Whether g has a zero of the wanted direction in (t_old, t_new]."""
    up = g_old < 0.0 <= g_new
    down = g_old > 0.0 >= g_new
    return (up and direction >= 0) or (down and direction <= 0)


def locate(fn: Callable[[float], float], g0: float, g1: float) -> float:
    """The fraction theta in (0, 1] of the step where ``fn`` (g on the interpolant, with
    fn(0) = g0, fn(1) = g1 of opposite signs or g1 = 0) vanishes, by Brent's method."""
    if g1 == 0.0:
        return 1.0

    def f(theta: float) -> float:
        if theta <= 0.0:
            return g0
        if theta >= 1.0:
            return g1
        return fn(theta)

    theta = float(brentq(f, 0.0, 1.0, xtol=THETA_TOL, rtol=4 * np.finfo(float).eps))
    return min(max(theta, np.finfo(float).tiny), 1.0)


class EventMonitor:
    """The events of a run: their last values, the located zeros and the states there.

    ``item`` turns a state into the form the callables receive (a trajectory item);
    ``to_array`` into the stored form. ``t_events[i]`` and ``states[i]`` list event i's zeros.
    """

    def __init__(self, events: tuple, item: Callable[[Any], Any],
                 to_array: Callable[[Any], np.ndarray]):
        self.events = events
        self.item = item
        self.to_array = to_array
        self.names = [event_name(ev, i) for i, ev in enumerate(events)]
        self.directions = [float(getattr(ev, "direction", 0)) for ev in events]
        self.terminal = []
        for ev in events:
            term = getattr(ev, "terminal", False)
            self.terminal.append(int(term) if not isinstance(term, (bool, np.bool_))
                                 else (1 if term else 0))
        self.g: list[float] = []
        self.t_events: list[list[float]] = [[] for _ in events]
        self.states: list[list[np.ndarray]] = [[] for _ in events]

    def values(self, t: float, y: Any) -> list[float]:
        """g_i(t, W) for every event (CallbackError naming the event on failure)."""
        if not self.events:
            return []
        W = self.item(y)
        return [real_value(self.names[i], call_user(self.names[i], ev, t, W), scalar=True)
                for i, ev in enumerate(self.events)]

    def value(self, i: int, t: float, y: Any) -> float:
        return real_value(self.names[i], call_user(self.names[i], self.events[i], t,
                                                   self.item(y)), scalar=True)

    def crossings(self, g_new: list[float]) -> list[int]:
        """The events with a zero of their direction between the stored values and ``g_new``."""
        return [i for i, (a, b) in enumerate(zip(self.g, g_new))
                if crossed(a, b, self.directions[i])]

    def add(self, i: int, t: float, y: Any) -> bool:
        """Store a zero of event i at (t, y); True if the event is terminal and this occurrence
        is the one that ends the run."""
        self.t_events[i].append(float(t))
        self.states[i].append(np.array(self.to_array(y), dtype=float))
        return self.terminal[i] > 0 and len(self.t_events[i]) >= self.terminal[i]


def located_stop(run: Any, t: float, ev_old: Any, t_new: float, y_new: Any, ev_new: Any):
    """Events and ftol in the accepted step (t, t_new] of the integrator ``run``: stores the
    zeros of non-terminal events and returns (theta, status, message) of the first terminal one
    (or ftol), or None. Zeros after a terminal one did not happen and are not stored."""
    o, mon = run.o, run.events
    h = t_new - t
    hits = []  # (theta, kind, index)
    if o.ftol is not None and ev_new.loss <= o.ftol < ev_old.loss:
        theta = run.locate_zero(lambda y, th: run.loss_at(y) - o.ftol,
                                ev_old.loss - o.ftol, ev_new.loss - o.ftol)
        hits.append((theta, "ftol", -1))
    g_new = mon.values(t_new, y_new) if mon.events else []
    for i in mon.crossings(g_new):
        theta = run.locate_zero(lambda y, th, i=i: mon.value(i, t + th * h, y), mon.g[i],
                                g_new[i])
        hits.append((theta, "event", i))
    mon.g = g_new
    for theta, kind, i in sorted(hits, key=lambda x: (x[0], x[2])):
        t_star = t_new if theta == 1.0 else t + theta * h
        if kind == "ftol":
            how = ("the gradient-descent iterate" if o.method == "Euler"
                   else "located on the step's continuous extension")
            return theta, "converged", f"loss <= ftol = {o.ftol:.6g} at t = {t_star:.10g} ({how})"
        y_star = y_new if theta == 1.0 else run.dense_state(theta)
        if mon.add(i, t_star, y_star):
            return theta, "event", f"terminal event {mon.names[i]} at t = {t_star:.10g}"
    return None


def stalled(window: Any, width: float, rdtol: float, t: float, loss: float):
    """The rdtol rule at the accepted point (t, loss): ``window`` (a deque of (t, loss) of the
    accepted points) keeps the latest point at least ``width`` before t; the run stalls when the
    loss fell by at most rdtol |L(t')| since that point t'. Returns (status, message, None)."""
    window.append((t, loss))
    while len(window) >= 2 and window[1][0] <= t - width:
        window.popleft()
    t0, l0 = window[0]
    if t0 > t - width or not l0 - loss <= rdtol * abs(l0):
        return None
    rel = (l0 - loss) / abs(l0) if l0 else 0.0
    return ("stalled", f"the loss decreased by {l0 - loss:.3e} (relative {rel:.3e} <= rdtol = "
            f"{rdtol:g}) from t = {t0:.6g} to t = {t:.6g} (rdwindow = {width:g})", None)
