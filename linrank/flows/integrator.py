r"""The Runge-Kutta driver of every flow: step loop, error control, records, stop rules,
checkpoints, interrupts and the progress bar.

:class:`Integrator` integrates any :class:`linrank.flows.system.FlowSystem` from ``y0`` over
``[0, t_end]`` with the options of :class:`linrank.flows.options.FlowOptions`; it never looks
inside a state. Methods (tableaux in :mod:`linrank.flows.tableaux`): RK45 (Dormand-Prince 5(4),
local extrapolation, first-same-as-last) with scipy's step-size controller (safety 0.9, factors
in [0.2, 10], exponent -1/5, Hairer-Norsett-Wanner starting step), classical RK4 and explicit
Euler with a fixed step. Steps are shortened to land exactly on the ``t_eval`` times.

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

Stop rules, in this order at every accepted point: ``max_steps``; divergence (the loss rises
above ``L(0) + max(|L(0)|, system.loss_scale)``; a gradient flow never increases it); the
system's :meth:`~linrank.flows.system.FlowSystem.check_stop` (collapse); ``gtol``.
KeyboardInterrupt ends the run with status "interrupted", keeping every committed step and
writing the checkpoint.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any

import numpy as np

from .checkpoint import (
    CHECKPOINT_VERSION,
    check_checkpoint_path,
    fingerprint,
    read_checkpoint,
    rows,
    write_checkpoint,
)
from .options import FlowOptions
from .result import FlowResult
from .stiff import make_stepper
from .system import Evaluation, FlowSystem, StepFailure
from .tableaux import ADAPTIVE, DOPRI5, EULER, RK4

__all__ = ["Integrator", "integrate"]

_BASE_RECORDS = ("t", "loss", "gnorm", "traj")
_STEP_BUDGET = 1e8  # projected number of remaining steps above which RK45 gives up


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
        self.collapse: dict | None = None
        self._h_mark: float | None = None  # the step size 100 steps ago (stiffness guard)
        self.rec: dict[str, list] = {k: [] for k in _BASE_RECORDS}
        # stiff stepper hook: ROS34PW2 / automatic switching (linrank.flows.stiff), else None
        self.adaptive = opts.method in ADAPTIVE
        self.stepper = make_stepper(system, opts.method, opts.rtol, opts.atol)

    # -------------------------------------------------------------- records
    def _record(self, t: float, y: Any, ev: Evaluation) -> None:
        ex = self.sys.diagnostics(y)
        r = self.rec
        r["t"].append(t)
        r["loss"].append(ev.loss)
        r["gnorm"].append(ev.gnorm)
        for key, val in ex.items():
            r.setdefault(key, []).append(val)
        if self.o.trajectory:
            r["traj"].append(self.sys.to_array(y).copy())

    def _wants_record(self, t: float) -> bool:
        te = self.o.t_eval
        if te is None:
            return True
        return self.grid_i < te.size and t == te[self.grid_i]

    def _next_stop(self) -> float:
        te = self.o.t_eval
        if te is not None:
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
        r = self.rec
        names = [key for key in r if key not in _BASE_RECORDS]
        arrays = {
            "version": np.array(CHECKPOINT_VERSION),
            "fingerprint": np.array(self.fp),
            "scalars": np.array([self.t, self.h, self.loss0], dtype=float),
            "counters": np.array([self.nfev, self.nsteps, self.nrej, self.grid_i], dtype=np.int64),
            "status": np.array(self.status),
            "message": np.array(self.message),
            "y": self.sys.to_array(self.y),
            "rec_names": np.array(json.dumps(names)),
            "collapse": np.array(json.dumps(self.collapse)),
            "pinned": np.array(json.dumps(self.sys.pinned())),
        }
        if self.stepper is not None:  # stiff stepper hook
            arrays["stepper"] = np.array(json.dumps(self.stepper.state()))
        for key in _BASE_RECORDS + tuple(names):
            arrays[f"rec_{key}"] = rows(r[key])
        write_checkpoint(self.o.checkpoint, arrays)

    def _load(self) -> bool:
        path = self.o.checkpoint
        if path is None or not self.o.resume or not os.path.exists(path):
            return False
        data = read_checkpoint(path, self.fp)
        self.t, self.h, self.loss0 = (float(x) for x in data["scalars"])
        self.nfev, self.nsteps, self.nrej, self.grid_i = (int(x) for x in data["counters"])
        self.status = str(data["status"])
        if self.status == "interrupted":
            self.status = "running"  # continue where the interrupted run stopped
        self.message = str(data["message"])
        self.sys.pin(json.loads(str(data["pinned"])) if "pinned" in data else {})
        self.y = self.sys.from_array(np.array(data["y"], dtype=float))
        names = json.loads(str(data["rec_names"]))
        self.rec = {key: [x.copy() if x.ndim else float(x) for x in data[f"rec_{key}"]]
                    for key in _BASE_RECORDS + tuple(names)}
        self.collapse = json.loads(str(data["collapse"]))
        if self.stepper is not None and "stepper" in data:  # stiff stepper hook
            self.stepper.restore(json.loads(str(data["stepper"])))
        return True

    # -------------------------------------------------------------- stepping
    def _eval(self, y: Any, full: bool = True) -> Evaluation:
        """The right-hand side at y; ``full=False`` (Runge-Kutta stages) skips the loss and the
        gradient norm when the system computes them lazily and only checks the slope."""
        self.nfev += 1
        ev = self.sys.rhs(y)
        if not full and ev.lazy:
            if not np.isfinite(ev.K).all():
                raise StepFailure("the right-hand side is not finite: the solution diverged")
            return ev
        if not (np.isfinite(ev.loss) and np.isfinite(ev.gnorm)):
            raise StepFailure("the loss or the gradient is not finite: the solution diverged"
                              + self.sys.divergence_hint(self.o.method))
        return ev

    def _fixed_step(self, y: Any, ev0: Evaluation, h: float):
        tab = EULER if self.o.method == "Euler" else RK4
        evals = [ev0]
        for row in tab.A[1:]:
            evals.append(self._eval(self.sys.advance(y, h, row, evals), full=False))
        y_new = self.sys.normalize(self.sys.advance(y, h, tab.B, evals))
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
        y_new, ev_new, h_next)."""
        o = self.o
        while True:
            h_try = min(h, stop - t)
            if t + h_try >= stop - 1e-12 * max(abs(stop), h_try):
                t_new, h_try = stop, stop - t
            else:
                t_new = t + h_try
            try:
                with _quiet():
                    if self.stepper is not None:  # stiff stepper hook
                        y_new, ev_new, err = self.stepper.step(self, y, ev, h_try)
                    elif o.method == "RK45":
                        y_new, ev_new, err = self._dp_step(y, ev, h_try)
                    else:
                        y_new, ev_new, err = self._fixed_step(y, ev, h_try)
            except StepFailure as exc:
                if not self.adaptive:
                    raise
                err, fail_msg = np.inf, str(exc)
            else:
                fail_msg = ""
            if not self.adaptive or err <= 1.0:
                break
            self.nrej += 1
            factor = 0.2 if not np.isfinite(err) else max(0.2, 0.9 * err ** -0.2)
            h = h_try * factor
            if h < 10 * np.spacing(abs(t)):  # as scipy: relative to t, also near t = 0
                raise StepFailure(f"step size underflow at t = {t:.6g}"
                                  + (f": {fail_msg}" if fail_msg else ""))
        if self.adaptive:
            factor = 10.0 if err == 0 else min(10.0, 0.9 * err ** -0.2)
            h_next = min(h_try * factor, o.max_step)
            if t_new == stop and stop != self.t_end:
                h_next = max(h_next, min(h, o.max_step))  # a grid cut is not a signal
        else:
            h_next = o.step
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
        except StepFailure as exc:
            raise ValueError(f"the flow cannot start from this point: {exc}") from exc
        if not resumed:
            self.loss0 = ev.loss
        self.loss_margin = max(abs(self.loss0), self.sys.loss_scale)
        if resumed:
            return ev
        if o.t_eval is None or o.t_eval[0] == 0.0:
            self._record(0.0, self.y, ev)
            if o.t_eval is not None:
                self.grid_i = 1
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
            return None
        return ev

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
        if stop is None:
            return False
        self.status, self.message, info = stop
        if self.status == "collapsed":
            self.collapse = info
        if not recorded:
            self._record(t_new, y_new, ev_new)
        return True

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

    def run(self) -> None:
        """Integrate until t_end or a stop rule; always writes the checkpoint at the end."""
        o = self.o
        ev = self._start()
        if ev is None:
            return
        bar = None
        if o.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.t_end, initial=self.t, unit="t", desc=f"{self.sys.name} flow",
                       bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")
        last_save = time.monotonic()
        steps_since_save = 0
        try:
            while self.t < self.t_end:
                if o.max_steps is not None and self.nsteps >= o.max_steps:
                    self.status = "failed"
                    self.message = f"max_steps = {o.max_steps} reached at t = {self.t:.6g}"
                    break
                t = self.t
                t_new, y_new, ev_new, h_next = self._attempt(t, self.y, ev, self.h,
                                                             self._next_stop())
                record = self._wants_record(t_new)
                if record:
                    self._record(t_new, y_new, ev_new)
                    if o.t_eval is not None:
                        self.grid_i += 1
                self.t, self.y, self.h, ev = t_new, y_new, h_next, ev_new
                self.nsteps += 1
                steps_since_save += 1
                if bar is not None:
                    bar.update(t_new - t)
                if self._stop_after(t_new, y_new, ev_new, record):
                    break
                if self._hopeless():
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
                self.status, self.message = "completed", f"reached t_end = {self.t_end:g}"
        except KeyboardInterrupt:
            # keep what was computed; drop (parts of) a record of a step that was not committed
            keep = int(np.searchsorted(self.rec["t"], self.t, side="right"))
            for vals in self.rec.values():
                del vals[keep:]
            self.status = "interrupted"
            self.message = f"interrupted (KeyboardInterrupt) at t = {self.t:.6g}"
            warnings.warn(f"flow {self.message}; returning the trajectory so far",
                          stacklevel=self.stacklevel)
        except StepFailure as exc:
            self.status = "failed"
            self.message = f"integration failed at t = {self.t:.6g}: {exc}"
            hint = self.sys.divergence_hint(self.o.method)
            if hint and hint not in self.message:
                self.message += hint
        finally:
            if bar is not None:
                bar.close()
        if self.status == "running":  # pragma: no cover - defensive
            self.status = "failed"
        if self.status == "collapsed":
            warnings.warn(self.message, RuntimeWarning, stacklevel=self.stacklevel)
        self._save()

    # -------------------------------------------------------------- result
    def result(self) -> FlowResult:
        """The :class:`FlowResult` of the run (records, counters, final state)."""
        r = self.rec
        sysm = self.sys
        res = FlowResult(
            t=np.array(r["t"], dtype=float),
            loss=np.array(r["loss"], dtype=float),
            grad_norm=np.array(r["gnorm"], dtype=float),
            method=self.o.method,
            status=self.status,
            message=self.message,
            t_final=self.t,
            nfev=self.nfev,
            nsteps=self.nsteps,
            nrejected=self.nrej,
            depth=sysm.depth,
            trajectory=[sysm.trajectory_item(row) for row in r["traj"]] if self.o.trajectory
            else None,
            collapse=self.collapse,
            stepper=None if self.stepper is None else self.stepper.stats(),
        )
        fields = set(FlowResult.__dataclass_fields__)
        for key, vals in r.items():
            if key in _BASE_RECORDS or not vals:
                continue
            arr = np.array(vals, dtype=float)
            if key in fields:
                setattr(res, key, arr)
            else:
                res.diagnostics[key] = arr
        for key, val in sysm.final(self.y).items():
            setattr(res, key, val)
        return res


def integrate(system: FlowSystem, y0: Any, t_end: float, opts: FlowOptions,
              stacklevel: int = 4) -> FlowResult:
    """Run :class:`Integrator` on ``system`` from ``y0`` and return its :class:`FlowResult`."""
    run = Integrator(system, y0, t_end, opts, stacklevel=stacklevel)
    run.run()
    return run.result()
