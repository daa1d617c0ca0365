r"""The Runge-Kutta driver of every flow: step loop, error control, records, stop rules, events,
checkpoints, interrupts and the progress bar.

:class:`Integrator` integrates any :class:`linrank.flows.system.FlowSystem` from ``y0`` over
``[0, t_end]`` with the options of :class:`linrank.flows.options.FlowOptions`; it never looks
inside a state. Methods (tableaux in :mod:`linrank.flows.tableaux`): RK45 (Dormand-Prince 5(4),
local extrapolation, first-same-as-last) with scipy's step-size controller (safety 0.9, factors
in [0.2, 10], exponent -1/5, Hairer-Norsett-Wanner starting step), classical RK4 and explicit
Euler with a fixed step. RK45 shortens steps to land exactly on the ``t_eval`` times.

The fixed-step methods take exactly ``step`` every time, never a shortened step: step n ends at
t_n = n h (a product, so the times do not drift), the run takes the n = floor(t_end / h) whole
steps up to t_end (1e-9 h of slack: ``t_end = 10 h`` computed in floating point gives 10 steps),
and a ``t_eval`` time tau is recorded at the first step time t_n >= tau - 1e-9 h (the step that
tau falls in; the recorded time is t_n; several tau in one step give one record; tau beyond the
last whole step is not recorded). ``method="Euler"`` is therefore plain gradient descent
W <- W - h grad, step for step, whatever ``t_eval``, chunks or checkpoints.

Why not scipy's solvers: ``scipy.integrate.RK45`` steps states that are flat vectors by
``y + h sum_j a_j K_j``, which the manifold engines cannot use (the projected engine's stage
points are truncated SVDs, the factored engine re-orthonormalizes after every step), and it has
no fixed-step methods. For the layer-wise flow (5), a flat-vector ODE, it could serve; it is not
used there either, so that all flows share one loop with the same records, exact ``t_eval``
landing (scipy interpolates), bit-identical resume from checkpoints, interrupts and stop rules
(gtol, divergence). The price is nothing: the loop is the same algorithm (tableaux and
controller as scipy's RK45) and, measured on the problem of benchmarks/bench_flows.py section 2
(depth 8, widths 120, rtol 1e-9, ``OPENBLAS_NUM_THREADS=1``), ``factor_flow`` takes the same
number of steps as ``solve_ivp(method="RK45")`` on the same right-hand side and no more time
(see BENCHMARKS.md, "Layer-wise flow: own loop vs solve_ivp").

At every accepted step, in this order: events and ``ftol`` (:mod:`linrank.flows.events`: zeros
located on the step's continuous extension; a terminal one or ``ftol`` moves the end of the step
back to the located time and ends the run there), the records, then the stop rules:
divergence (the loss rises above ``L(0) + max(|L(0)|, system.loss_scale)``; a gradient flow
never increases it); the system's :meth:`~linrank.flows.system.FlowSystem.check_stop`
(collapse); ``gtol``; ``rdtol``; and before each step ``max_steps``.
``rdtol``: at an accepted point (t, L(t)) let (t', L(t')) be the latest accepted point with
t' <= t - rdwindow (the window must be full: never before t = rdwindow); the run ends with status
"stalled" when L(t') - L(t) <= rdtol |L(t')|.
KeyboardInterrupt ends the run with status "interrupted", keeping every committed step and
writing the checkpoint. An exception from a user callback (the problem's cost or gradient, a
record, an event) ends it with status "failed", the trajectory up to the last committed step and
the exception in ``FlowResult.error`` (and as the message's cause); at the start it is raised as
a ValueError (there is no trajectory yet).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections import deque
from typing import Any

import numpy as np

from .checkpoint import (
    check_checkpoint_path,
    fingerprint,
    read_checkpoint,
    restore_run,
    run_arrays,
    write_checkpoint,
)
from .events import (
    CallbackError,
    EventMonitor,
    call_user,
    locate,
    located_stop,
    real_value,
    stalled,
)
from .options import FlowOptions
from .result import FlowResult, build_result
from .stiff import make_stepper
from .system import Evaluation, FlowSystem, StepFailure
from .tableaux import ADAPTIVE, DOPRI5, EULER, RK4, dense_weights

__all__ = ["Integrator", "integrate"]

_BASE_RECORDS = ("t", "loss", "gnorm", "traj")
_STEP_BUDGET = 1e8  # projected number of remaining steps above which RK45 gives up
_SLACK = 1e-9  # fixed-step methods: fraction of a step by which t_end / t_eval may be missed
_USER = "record:"  # prefix of the user's records among the recorded series


def _quiet() -> np.errstate:
    """Overflow and invalid operations in a step are detected by the driver, not warned about."""
    return np.errstate(over="ignore", invalid="ignore")


class Integrator:
    """Integrates ``system`` from ``y0`` over [0, t_end]; see the module docstring.

    Call :meth:`run`, then :meth:`result`. ``stacklevel`` is the warnings stack level, counted
    from :meth:`run`, of the user's call of the public flow function (4 when that function calls
    :func:`integrate`).
    """

    def __init__(self, system: FlowSystem, y0: Any, t_end: float, opts: FlowOptions,
                 stacklevel: int = 3):
        self.sys = system
        self.t_end = t_end
        self.o = opts
        self.stacklevel = stacklevel
        self.fp = None
        if opts.checkpoint is not None:  # hashing the data costs a pass over it: only if needed
            check_checkpoint_path(opts.checkpoint, opts.resume)
            arrays, extra = system.identity()
            self.fp = fingerprint(f"{system.name}:{type(system).__name__}",
                                  list(arrays) + [system.to_array(y0)], opts,
                                  tuple(extra) + (t_end,))
        self.t = 0.0
        self.y = y0
        self.h = np.nan
        self.loss0 = np.nan
        self.nfev = 0
        self.nsteps = 0
        self.nrej = 0
        self.grid_i = 0
        self.status = "running"
        self.message = ""
        self.error: BaseException | None = None
        self.collapse: dict | None = None
        self._h_mark: float | None = None  # the step size 100 steps ago (stiffness guard)
        self.rec: dict[str, list] = {k: [] for k in _BASE_RECORDS}
        for name in opts.record:
            self.rec[_USER + name] = []
        system.run_state = {}  # small per-run numbers of the system (saved in checkpoints)
        self.events = EventMonitor(opts.events, self._item, system.to_array)
        self.window: deque = deque()  # (t, loss) of accepted points, for rdtol
        self._dense: tuple | None = None  # (y, h, evals, kind) of the last step (dense_weights)
        self.fixed = opts.method in ("Euler", "RK4")
        self.n_fixed = (int(np.floor(t_end / opts.step + _SLACK)) if self.fixed and opts.step
                        else 0)
        # stiff stepper hook: ROS34PW2 / automatic switching (linrank.flows.stiff), else None
        self.adaptive = opts.method in ADAPTIVE
        self.stepper = make_stepper(system, opts.method, opts.rtol, opts.atol)

    def _item(self, y: Any) -> Any:
        """The state as the callbacks receive it (a trajectory item: factors or a point)."""
        return self.sys.trajectory_item(np.array(self.sys.to_array(y), dtype=float))

    # -------------------------------------------------------------- records
    def _record(self, t: float, y: Any, ev: Evaluation) -> None:
        """Append the records at (t, y); the user's callables are evaluated first, so that a
        failing one leaves the records of the committed steps intact."""
        user = {}
        if self.o.record:
            W = self._item(y)
            for name, fn in self.o.record.items():
                what = f"record[{name!r}]"
                val = real_value(what, call_user(what, fn, t, W), scalar=False)
                prev = self.rec[_USER + name]
                if prev and np.shape(prev[0]) != np.shape(val):
                    raise CallbackError(f"{what} returned shape {np.shape(val)} at t = {t:.6g}, "
                                        f"{np.shape(prev[0])} before: a record keeps one shape")
                user[_USER + name] = val
        ex = self.sys.diagnostics(y)
        r = self.rec
        r["t"].append(t)
        r["loss"].append(ev.loss)
        r["gnorm"].append(ev.gnorm)
        for key, val in ex.items():
            r.setdefault(key, []).append(val)
        for key, val in user.items():
            r[key].append(val)
        if self.o.trajectory:
            r["traj"].append(self.sys.to_array(y).copy())

    def _wants_record(self, t: float) -> bool:
        te = self.o.t_eval
        if te is None:
            return True
        if self.fixed:  # the step that tau falls in (module docstring)
            return self.grid_i < te.size and te[self.grid_i] <= t + _SLACK * self.o.step
        return self.grid_i < te.size and t == te[self.grid_i]

    def _advance_grid(self, t: float) -> None:
        te = self.o.t_eval
        if te is None:
            return
        if self.fixed:
            while self.grid_i < te.size and te[self.grid_i] <= t + _SLACK * self.o.step:
                self.grid_i += 1
        else:
            self.grid_i += 1

    def _next_stop(self) -> float:
        te = self.o.t_eval
        if te is not None and not self.fixed:
            while self.grid_i < te.size and te[self.grid_i] < self.t:
                self.grid_i += 1
            if self.grid_i < te.size and te[self.grid_i] > self.t:
                return float(te[self.grid_i])
        return self.t_end

    # -------------------------------------------------------------- checkpoints
    def _save(self) -> None:
        """Write the checkpoint; a failure is warned about, never raised (the run and its
        result must not be lost to a full disk or a vanished directory)."""
        if self.o.checkpoint is None:
            return
        try:
            self._write()
        except Exception as exc:
            what = ("the run continues" if self.status == "running"
                    else f"the result ({self.status}) is returned but not saved")
            warnings.warn(f"{exc}; {what}", RuntimeWarning, stacklevel=self.stacklevel + 1)

    def _write(self) -> None:
        arrays = run_arrays(self)
        if self.stepper is not None:  # stiff stepper hook
            arrays["stepper"] = np.array(json.dumps(self.stepper.state()))
        write_checkpoint(self.o.checkpoint, arrays)

    def _load(self) -> bool:
        path = self.o.checkpoint
        if path is None or not self.o.resume or not os.path.exists(path):
            return False
        data = read_checkpoint(path, self.fp)
        restore_run(self, data)
        if self.stepper is not None and "stepper" in data:  # stiff stepper hook
            self.stepper.restore(json.loads(str(data["stepper"])))
        return True

    # -------------------------------------------------------------- stepping
    def _eval(self, y: Any, full: bool = True) -> Evaluation:
        """The right-hand side at y; ``full=False`` (Runge-Kutta stages) skips the loss and the
        gradient norm when the system computes them lazily and only checks the slope. An
        exception of the system's callbacks becomes a :class:`CallbackError` naming them."""
        self.nfev += 1
        try:
            ev = self.sys.rhs(y)
            if not full and ev.lazy:
                if not np.isfinite(ev.K).all():
                    raise StepFailure("the right-hand side is not finite: the solution diverged"
                                      + self.sys.nonfinite_hint())
                return ev
            loss, gnorm = ev.loss, ev.gnorm
        except (StepFailure, CallbackError):
            raise
        except Exception as exc:
            raise CallbackError(f"{self.sys.callback_name()} raised {type(exc).__name__}: "
                                f"{exc}") from exc
        if not (np.isfinite(loss) and np.isfinite(gnorm)):
            raise StepFailure(f"the loss ({loss}) or the gradient norm ({gnorm}) is not finite: "
                              "the solution diverged" + self.sys.nonfinite_hint()
                              + self.sys.divergence_hint(self.o.method))
        return ev

    def _fixed_step(self, y: Any, ev0: Evaluation, h: float):
        tab = EULER if self.o.method == "Euler" else RK4
        evals = [ev0]
        for row in tab.A[1:]:
            evals.append(self._eval(self.sys.advance(y, h, row, evals), full=False))
        y_new = self.sys.normalize(self.sys.advance(y, h, tab.B, evals))
        self._dense = (y, h, evals, self.o.method)
        return y_new, self._eval(y_new), 0.0

    def _dp_step(self, y: Any, ev0: Evaluation, h: float):
        """One Dormand-Prince attempt: (y_new, ev_new, error norm).

        The last stage (first-same-as-last) is evaluated at the normalized y_new; for the
        factored manifold system that differs from y_new by its orthonormality defect, of the
        order of the local error, so the error estimate changes by h times that only.
        """
        evals = [ev0]
        for row in DOPRI5.A[1:]:
            evals.append(self._eval(self.sys.advance(y, h, row, evals), full=False))
        y_new = self.sys.normalize(self.sys.advance(y, h, DOPRI5.B, evals))
        ev_new = self._eval(y_new)
        evals.append(ev_new)
        sc = self.sys.error_scale(y, y_new, self.o.rtol, self.o.atol)
        err = h * self.sys.error_norm(y, DOPRI5.E, evals, sc)
        self._dense = (y, h, evals, "RK45")
        return y_new, ev_new, err

    def _initial_step(self, y: Any, ev0: Evaluation) -> float:
        """Hairer-Norsett-Wanner's starting step (as scipy's select_initial_step), order 4."""
        if self.o.first_step is not None:
            return min(self.o.first_step, self.o.max_step)
        sysm = self.sys
        interval = self.t_end - self.t
        sc = sysm.error_scale(y, y, self.o.rtol, self.o.atol)
        d0 = sysm.state_norm(y, sc)
        d1 = sysm.error_norm(y, [1.0], [ev0], sc)
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = min(h0, interval)
        if not h0 > 0.0:  # d1 = inf: the slope's norm overflowed (kept off by safe_norm)
            raise StepFailure(f"the right-hand side is too large for any step (scaled norm {d1})")
        try:
            y1 = sysm.advance(y, h0, [1.0], [ev0])
            ev1 = self._eval(y1, full=False)
            d2 = sysm.error_norm(y, [1.0, -1.0], [ev1, ev0], sc) / h0
        except StepFailure:
            return min(h0, self.o.max_step)
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1 / 5)
            if not h1 > 0.0:  # d2 overflowed (slopes ~1e200 changing fast): keep h0
                h1 = h0
        return min(100 * h0, h1, interval, self.o.max_step)

    def _attempt(self, t: float, y: Any, ev: Evaluation, h: float, stop: float):
        """Steps from (t, y) until one is accepted (only the adaptive methods repeat): (t_new,
        y_new, ev_new, h_next). The fixed-step methods take exactly ``step`` (module docstring)."""
        o = self.o
        self._dense = None  # set by a step method that has a continuous extension
        if self.fixed:
            with _quiet():
                y_new, ev_new, _ = self._fixed_step(y, ev, o.step)
            return (self.nsteps + 1) * o.step, y_new, ev_new, o.step
        while True:
            if self.stepper is not None:  # stiff stepper hook: the Chebyshev stages' cap
                h = self.stepper.limit(h)
            h_try = min(h, stop - t)
            if t + h_try >= stop - 1e-12 * max(abs(stop), h_try):
                t_new, h_try = stop, stop - t
            else:
                t_new = t + h_try
            try:
                with _quiet():
                    if self.stepper is not None:  # stiff stepper hook
                        y_new, ev_new, err = self.stepper.step(self, y, ev, h_try)
                    else:
                        y_new, ev_new, err = self._dp_step(y, ev, h_try)
            except StepFailure as exc:
                err, fail_msg = np.inf, str(exc)
            else:
                fail_msg = ""
            if err <= 1.0:
                break
            self.nrej += 1
            factor = 0.2 if not np.isfinite(err) else max(0.2, 0.9 * err ** -0.2)
            h = h_try * factor
            if h < 10 * np.spacing(abs(t)):  # as scipy: relative to t, also near t = 0
                raise StepFailure(f"step size underflow at t = {t:.6g}"
                                  + (f": {fail_msg}" if fail_msg else ""))
        factor = 10.0 if err == 0 else min(10.0, 0.9 * err ** -0.2)
        h_next = min(h_try * factor, o.max_step)
        if t_new == stop and stop != self.t_end:
            h_next = max(h_next, min(h, o.max_step))  # a grid cut is not a signal
        return t_new, y_new, ev_new, h_next

    def _start(self) -> Evaluation | None:
        """Evaluate at the start (or the resumed point); None if the run is already over."""
        o = self.o
        resumed = self._load()
        if self.status != "running":
            return None  # a finished run, loaded from its checkpoint
        try:
            with _quiet():
                ev = self._eval(self.y)
                self.events.g = self.events.values(self.t, self.y)
                if not resumed and self._wants_record(0.0):
                    self._record(0.0, self.y, ev)
                    self._advance_grid(0.0)
        except (StepFailure, CallbackError) as exc:
            raise ValueError(f"the flow cannot start from this point: {exc}") from exc
        if not resumed:
            self.loss0 = ev.loss
            self.window.append((0.0, float(ev.loss)))
        self.loss_margin = max(abs(self.loss0), self.sys.loss_scale)
        if resumed:
            return ev
        if self.adaptive:
            try:
                with _quiet():
                    self.h = self._initial_step(self.y, ev) if self.t_end > 0 else 0.0
            except StepFailure as exc:
                raise ValueError(f"the flow cannot start from this point: {exc}") from exc
        else:
            self.h = o.step
        if o.gtol is not None and ev.gnorm <= o.gtol:
            self.status, self.message = "converged", "gradient norm <= gtol at t = 0"
        elif o.ftol is not None and ev.loss <= o.ftol:
            self.status, self.message = "converged", f"loss {ev.loss:.6g} <= ftol at t = 0"
        return ev if self.status == "running" else None

    # -------------------------------------------------------------- events and ftol
    def dense_state(self, theta: float) -> Any:
        """The state at the fraction theta of the last step (its continuous extension)."""
        y, h, evals, kind = self._dense
        w = dense_weights(kind, theta)
        with _quiet():
            return self.sys.normalize(self.sys.advance(y, h, w, evals[: len(w)]))

    def loss_at(self, y: Any) -> float:
        """The loss at the state y (one evaluation of the right-hand side)."""
        return self._eval(y).loss

    def locate_zero(self, g: Any, g0: float, g1: float) -> float:
        """theta of the zero of ``g(state)`` in the last step; Euler (gradient descent) and a
        step without a continuous extension (``self._dense`` None: a step method sets it to
        (y, h, evals, kind) for :func:`~linrank.flows.tableaux.dense_weights`) give the step's
        end."""
        if self.o.method == "Euler" or self._dense is None:
            return 1.0
        try:
            with _quiet():
                return locate(lambda th: g(self.dense_state(th), th), g0, g1)
        except StepFailure:  # an interpolated state off M_k: the step's end
            return 1.0

    def _stop_after(self, t_new: float, y_new: Any, ev_new: Evaluation, recorded: bool) -> bool:
        """Apply the stop rules at an accepted point; True ends the run."""
        if ev_new.loss > self.loss0 + self.loss_margin:
            self.status = "failed"
            self.message = (
                f"the loss grew from {self.loss0:.6g} to {ev_new.loss:.6g} at t = {t_new:.6g}"
                " (a gradient flow never increases it): the solution diverged"
                + self.sys.divergence_hint(self.o.method)
            )
            return True
        stop = self.sys.check_stop(y_new, t_new)
        if stop is None and self.o.gtol is not None and ev_new.gnorm <= self.o.gtol:
            stop = ("converged", f"gradient norm {ev_new.gnorm:.3e} <= gtol at t = {t_new:.6g}",
                    None)
        if stop is None and self.o.rdtol is not None:
            stop = self._stalled(t_new, float(ev_new.loss))
        if stop is None:
            return False
        self.status, self.message, info = stop
        if self.status == "collapsed":
            self.collapse = info
        if not recorded:
            self._record(t_new, y_new, ev_new)
        return True

    def _stalled(self, t: float, loss: float):
        """The rdtol rule (module docstring) at the accepted point (t, loss)."""
        return stalled(self.window, self.o.rdwindow, self.o.rdtol, t, loss)

    def _hopeless(self) -> bool:
        """Stiffness guard (RK45 without ``max_steps``), checked every 100 steps: if the error
        control holds the step so small that t_end is more than 1e8 steps away and the step has
        not at least doubled over the last 100 steps (a flow slowing down from a huge start grows
        its steps like t and is not stopped), end the run as "failed" with a message saying
        why, instead of running for days or for ever."""
        o = self.o
        if not self.adaptive or o.max_steps is not None or self.nsteps % 100 != 0:
            return False
        mark, self._h_mark = self._h_mark, self.h
        remaining = (self.t_end - self.t) / self.h if self.h > 0 else np.inf
        if mark is None or not remaining > _STEP_BUDGET or self.h >= 2.0 * mark:
            return False
        self.status = "failed"
        self.message = (
            f"stiff: after {self.nsteps} steps the error control holds the step near h = "
            f"{self.h:.3g} (t = {self.t:.6g}), so reaching t_end = {self.t_end:g} would take "
            f"~{remaining:.1e} more steps (the limit without max_steps is {_STEP_BUDGET:.0e}; "
            "pass max_steps to allow more, or choose a shorter t_end)"
            + self.sys.stiffness_hint()
        )
        return True

    def _more(self) -> bool:
        if self.fixed:
            return self.nsteps < self.n_fixed
        return self.t < self.t_end

    def _step(self, ev: Evaluation, bar: Any) -> tuple[Evaluation, bool]:
        """One accepted step with its events, records and stop rules; (ev_new, stop)."""
        t = self.t
        t_new, y_new, ev_new, h_next = self._attempt(t, self.y, ev, self.h, self._next_stop())
        stop = None
        if self.events.events or self.o.ftol is not None:
            stop = located_stop(self, t, ev, t_new, y_new, ev_new)
            if stop is not None and stop[0] < 1.0:
                y_new = self.dense_state(stop[0])
                t_new = t + stop[0] * (t_new - t)
                with _quiet():
                    ev_new = self._eval(y_new)
        record = stop is not None or self._wants_record(t_new)
        if record:
            self._record(t_new, y_new, ev_new)
            self._advance_grid(t_new)
        self.t, self.y, self.h = t_new, y_new, h_next
        self.nsteps += 1
        if bar is not None:
            bar.update(t_new - t)
        if stop is not None:
            self.status, self.message = stop[1], stop[2]
            return ev_new, True
        return ev_new, self._stop_after(t_new, y_new, ev_new, record) or self._hopeless()

    def run(self) -> None:
        """Integrate until t_end or a stop rule; always writes the checkpoint at the end."""
        o = self.o
        ev = self._start()
        if ev is None:
            self._save()
            return
        bar = None
        if o.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.t_end, initial=self.t, unit="t", desc=f"{self.sys.name} flow",
                       bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")
        last_save = time.monotonic()
        steps_since_save = 0
        try:
            while self._more():
                if o.max_steps is not None and self.nsteps >= o.max_steps:
                    self.status = "failed"
                    self.message = f"max_steps = {o.max_steps} reached at t = {self.t:.6g}"
                    break
                ev, stop = self._step(ev, bar)
                steps_since_save += 1
                if stop:
                    break
                if o.checkpoint is not None and (
                    (o.checkpoint_steps is not None and steps_since_save >= o.checkpoint_steps)
                    or (o.checkpoint_every is not None
                        and time.monotonic() - last_save >= o.checkpoint_every)
                ):
                    self._save()
                    last_save = time.monotonic()
                    steps_since_save = 0
            else:
                self.status, self.message = "completed", self._completed_message()
        except KeyboardInterrupt:
            self._drop_uncommitted()
            self.status = "interrupted"
            self.message = f"interrupted (KeyboardInterrupt) at t = {self.t:.6g}"
            warnings.warn(f"flow {self.message}; returning the trajectory so far",
                          stacklevel=self.stacklevel)
        except StepFailure as exc:
            self._drop_uncommitted()
            self.status = "failed"
            self.message = f"integration failed at t = {self.t:.6g}: {exc}"
            hint = self.sys.divergence_hint(self.o.method)
            if hint and hint not in self.message:
                self.message += hint
        except CallbackError as exc:
            self._drop_uncommitted()
            self.status = "failed"
            self.message = (f"{exc} (in the step from t = {self.t:.6g}); the trajectory up to "
                            "there is kept")
            self.error = exc.__cause__ if exc.__cause__ is not None else exc
        finally:
            if bar is not None:
                bar.close()
        if self.status == "running":  # pragma: no cover - defensive
            self.status = "failed"
        if self.status == "collapsed":
            warnings.warn(self.message, RuntimeWarning, stacklevel=self.stacklevel)
        self._save()

    def _completed_message(self) -> str:
        if not self.fixed or self.t == self.t_end:
            return f"reached t_end = {self.t_end:g}"
        if self.nsteps == 0:
            return (f"t_end = {self.t_end:g} < step = {self.o.step:g}: no whole step fits (a "
                    "fixed-step method never shortens a step)")
        return (f"took the {self.nsteps} whole steps of h = {self.o.step:g} up to t_end = "
                f"{self.t_end:g} (t = {self.t:.10g}; a fixed-step method never shortens a step)")

    def _drop_uncommitted(self) -> None:
        """Keep what was computed; drop (parts of) the records and event zeros of a step that
        was not committed."""
        keep = int(np.searchsorted(self.rec["t"], self.t, side="right"))
        for vals in self.rec.values():
            del vals[keep:]
        mon = self.events
        for i, ts in enumerate(mon.t_events):
            n = int(np.searchsorted(ts, self.t, side="right"))
            del ts[n:], mon.states[i][n:]

    # -------------------------------------------------------------- result
    def result(self) -> FlowResult:
        """The :class:`FlowResult` of the run (records, counters, final state)."""
        res = build_result(self, _BASE_RECORDS, _USER)
        res.stepper = None if self.stepper is None else self.stepper.stats()
        return res


def integrate(system: FlowSystem, y0: Any, t_end: float, opts: FlowOptions,
              stacklevel: int = 4) -> FlowResult:
    """Run :class:`Integrator` on ``system`` from ``y0`` and return its :class:`FlowResult`."""
    run = Integrator(system, y0, t_end, opts, stacklevel=stacklevel)
    run.run()
    return run.result()
