"""Bookkeeping of ``linrank compare`` runs: the budget, the result of a run, and the recorder
that counts evaluations, keeps a pausable clock and the history of iterates, and ends a run
(:class:`StopRun`) at the target gap or when the budget is spent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import numpy as np

from .problems import ProblemInstance

__all__ = ["Budget", "RunResult", "HISTORY_KEYS", "Recorder", "StopRun", "finish_stop"]


@dataclass(frozen=True)
class Budget:
    """Limits of one run.

    target_gap : stop when (f - f*)/(f(W0) - f*) <= target_gap (f* known or given).
    max_time : seconds of CPU time of the process per run (BLAS threads included; CPU time,
        unlike wall time, does not grow when other jobs load a shared machine).
    max_iterations : iterations (pymanopt), accepted steps (flow) or steps (layer-gd) per run.
    min_gradient_norm : pymanopt's own stopping threshold (absolute).
    search_iterations : iterations per trial step of layer-gd's step search.
    """

    target_gap: float = 1e-8
    max_time: float = 10.0
    max_iterations: int = 5000
    min_gradient_norm: float = 1e-13
    search_iterations: int = 40

    def __post_init__(self):
        for name in ("target_gap", "max_time"):
            val = getattr(self, name)
            if not (isinstance(val, (int, float)) and np.isfinite(val) and val > 0):
                raise ValueError(f"Budget.{name} must be a positive number, got {val!r}")
        for name in ("max_iterations", "search_iterations"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"Budget.{name} must be a positive integer, got {val!r}")


HISTORY_KEYS = ("time", "iteration", "cost", "distance", "evaluations", "cpu_time")


@dataclass
class RunResult:
    """Outcome of one solver run (see the module docstring for the statuses)."""

    status: str
    reason: str = ""
    iterations: int = 0
    wall_time: float = 0.0
    cpu_time: float = 0.0
    cost_evals: int = 0
    grad_evals: int = 0
    hvp: int = 0
    final_cost: float = float("nan")
    distance: float = float("nan")
    history: dict = field(default_factory=lambda: {k: np.zeros(0) for k in HISTORY_KEYS})
    info: dict = field(default_factory=dict)

    def scalars(self) -> dict:
        """Every field but the history (for the CSV)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("history", "info")}


class StopRun(Exception):
    """Raised inside a solver's callbacks to end the run (target reached or budget spent)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Recorder:
    """Counters, a pausable clock and the history of one run."""

    def __init__(self, inst: ProblemInstance, f_ref: float | None, f0: float, budget: Budget):
        self.inst = inst
        self.f_ref = f_ref
        self.f0 = f0
        self.budget = budget
        self.n_cost = self.n_grad = self.n_hvp = 0
        self.rows: list[tuple] = []
        self.paused = 0.0
        self.paused_cpu = 0.0
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        self.last_cost: tuple | None = None  # (u, s) identities and value of the last cost call

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0 - self.paused

    def cpu(self) -> float:
        return time.process_time() - self.c0 - self.paused_cpu

    def gap_reached(self, f: float) -> bool:
        if self.f_ref is None or not np.isfinite(f):
            return False
        denom = max(self.f0 - self.f_ref, 1e-300)
        return (f - self.f_ref) / denom <= self.budget.target_gap

    def record(self, A: np.ndarray, Bt: np.ndarray, cost: float | None, iteration: int,
               check: bool = True) -> float:
        """Append an iterate (clock paused); raise StopRun when the target or the budget is hit."""
        t, cpu = self.elapsed(), self.cpu()
        p0, c0 = time.perf_counter(), time.process_time()
        f = self.inst.cost(A, Bt) if cost is None else cost
        dist = self.inst.distance(A, Bt)
        self.rows.append((t, iteration, f, dist, self.n_cost + self.n_grad, cpu))
        self.paused += time.perf_counter() - p0
        self.paused_cpu += time.process_time() - c0
        if check:
            if not np.isfinite(f):
                raise StopRun("failed", "non-finite cost (NaN or inf) at an iterate")
            if self.gap_reached(f):
                raise StopRun("reached", f"relative gap <= {self.budget.target_gap:g}")
            self.check_time()
            if iteration >= self.budget.max_iterations:
                raise StopRun("budget", f"{self.budget.max_iterations} iterations")
        return f

    def check_time(self) -> None:
        """Raise StopRun("budget") once the run's CPU time exceeds the budget."""
        if self.cpu() > self.budget.max_time:
            raise StopRun("budget", f"CPU-time budget of {self.budget.max_time:g} s spent")

    def history(self) -> dict:
        arr = np.array(self.rows, dtype=float).reshape(-1, len(HISTORY_KEYS))
        return {k: arr[:, i].copy() for i, k in enumerate(HISTORY_KEYS)}

    def result(self, status: str, reason: str, A, Bt, iterations: int, **info) -> RunResult:
        f = self.inst.cost(A, Bt) if A is not None else float("nan")
        return RunResult(
            status=status, reason=reason, iterations=int(iterations), wall_time=self.elapsed(),
            cpu_time=self.cpu(), cost_evals=self.n_cost, grad_evals=self.n_grad, hvp=self.n_hvp,
            final_cost=float(f),
            distance=self.inst.distance(A, Bt) if A is not None else float("nan"),
            history=self.history(), info=info)


def finish_stop(rec: Recorder, stop: StopRun) -> RunResult:
    """Result of a run ended by StopRun: its last recorded iterate is the final point."""
    t, it, f, dist = rec.rows[-1][:4]
    return RunResult(status=stop.status, reason=stop.reason, iterations=int(it), wall_time=t,
                     cpu_time=rec.cpu(), cost_evals=rec.n_cost, grad_evals=rec.n_grad,
                     hvp=rec.n_hvp, final_cost=float(f), distance=float(dist),
                     history=rec.history())
