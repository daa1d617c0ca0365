r"""Solvers of ``linrank compare``: one function per solver, same start, same bookkeeping.

Every solver gets a :class:`~linrank.experiments.compare_problems.ProblemInstance`, a depth, a
start (u, s, vt) and a :class:`Budget`, and returns a :class:`RunResult`: status, iterations,
wall and CPU time, cost and gradient evaluations and Hessian-vector products (counted by
wrapping the problem's callables), final cost and distance to the optimum, and the history
(time, iteration, cost, distance, evaluations) at every iterate.

Time is solver time: the clock is paused while the bookkeeping (cost and distance at recorded
iterates, when the solver did not evaluate them itself) runs. A run stops when its relative gap
:math:`(f - f^*)/(f(W_0) - f^*)` reaches ``Budget.target_gap`` (status "reached"), when the
budget of time or iterations is spent ("budget"), when the solver stops by itself ("stopped",
with pymanopt's reason), or on an error ("failed", with the exception), divergence
("diverged") or a problem the solver cannot handle ("not applicable"). A KeyboardInterrupt is
never turned into a result.

Solvers (:data:`SOLVERS`):

* ``sd``, ``cg``, ``tr``: pymanopt's SteepestDescent, ConjugateGradient, TrustRegions on
  :class:`linrank.DeepLinearFixedRank` of the run's depth, with the exact Riemannian gradient
  :math:`\mathcal{A}_W(P_T\nabla f)` (eq. (31)) and Hessian; TrustRegions with the polar
  retraction and ``Delta_bar = 4`` (BENCHMARKS.md, Hessian section 4).
* ``pymanopt-sd``, ``pymanopt-cg``, ``pymanopt-tr``: the same optimizers on pymanopt's own
  ``FixedRankEmbedded`` (depth 1 geometry), the cost given as pymanopt expects it: a function of
  (u, s, vt) with its factor gradients. pymanopt has no Hessian there, so TrustRegions fails.
* ``flow``: the Riemannian gradient flow (31), :func:`linrank.manifold_flow` (RK45, rtol 1e-6)
  in chunks of doubling length until the gap is reached; least squares only.
* ``layer-gd``: gradient descent on the layers :math:`W_1, \dots, W_N` (the paper's explicit
  Euler method) from balanced factors with hidden widths k, with the largest fixed step that a
  short search finds stable; depth >= 2 (depth 1 has no hidden layer and no rank constraint).
* ``direct``: the closed-form answer of the problem (eigh or Eckart-Young), when it has one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import pymanopt
from pymanopt.manifolds import FixedRankEmbedded

from ..flows import manifold_flow
from ..manifold import DeepLinearFixedRank, TangentVector
from ..network import LinearData
from .compare_problems import ProblemInstance

__all__ = ["Budget", "RunResult", "SOLVERS", "DEPTH_FREE", "run_solver"]

Point = tuple[np.ndarray, np.ndarray, np.ndarray]


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


class _Stop(Exception):
    """Raised inside a solver's callbacks to end the run (target reached or budget spent)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Recorder:
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
        """Append an iterate (clock paused); raise _Stop when the target or the budget is hit."""
        t, cpu = self.elapsed(), self.cpu()
        p0, c0 = time.perf_counter(), time.process_time()
        f = self.inst.cost(A, Bt) if cost is None else cost
        dist = self.inst.distance(A, Bt)
        self.rows.append((t, iteration, f, dist, self.n_cost + self.n_grad, cpu))
        self.paused += time.perf_counter() - p0
        self.paused_cpu += time.process_time() - c0
        if check:
            if not np.isfinite(f):
                raise _Stop("failed", "non-finite cost (NaN or inf) at an iterate")
            if self.gap_reached(f):
                raise _Stop("reached", f"relative gap <= {self.budget.target_gap:g}")
            self.check_time()
            if iteration >= self.budget.max_iterations:
                raise _Stop("budget", f"{self.budget.max_iterations} iterations")
        return f

    def check_time(self) -> None:
        """Raise _Stop("budget") once the run's CPU time exceeds the budget."""
        if self.cpu() > self.budget.max_time:
            raise _Stop("budget", f"CPU-time budget of {self.budget.max_time:g} s spent")

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


def _tangent_factors(point: Point, xi) -> tuple[np.ndarray, np.ndarray]:
    """Z = u M vt + Up vt + u Vp^T as ZA @ ZBt with ZA = [u M + Up, u], ZBt = [vt; Vp^T]."""
    u, _, vt = point
    Up, M, Vp = xi
    return np.hstack((u @ M + Up, u)), np.vstack((vt, Vp.T))


# ---------------------------------------------------------------------- pymanopt
_OPTIMIZERS = {
    "sd": pymanopt.optimizers.SteepestDescent,
    "cg": pymanopt.optimizers.ConjugateGradient,
    "tr": pymanopt.optimizers.TrustRegions,
}


def _pymanopt_run(inst: ProblemInstance, depth: int | None, start: Point, budget: Budget,
                  rec: _Recorder, kind: str) -> RunResult:
    """pymanopt's optimizer ``kind`` on DeepLinearFixedRank(depth) or, depth None, on
    FixedRankEmbedded with the cost as a function of the factors (u, s, vt)."""
    m, n, k = inst.m, inst.n, inst.k
    if depth is None:
        manifold = FixedRankEmbedded(m, n, k)
    else:
        manifold = DeepLinearFixedRank(m, n, k, depth,
                                       retraction="polar" if kind == "tr" else "projection")

    if depth is None:
        problem = _peer_problem(inst, manifold, rec)
    else:
        problem = deep_problem(inst, manifold, rec)
    opt = _OPTIMIZERS[kind](
        max_iterations=budget.max_iterations, max_time=1e9,  # the recorder keeps the budget
        min_gradient_norm=budget.min_gradient_norm, min_step_size=0.0 if kind == "tr" else 1e-15,
        max_cost_evaluations=10**9, verbosity=0)
    x0 = start
    if depth is not None:
        x0 = manifold.check_point(start)
    kwargs = {"Delta_bar": 4.0 * max(inst.scale, 1e-300)} if kind == "tr" else {}
    try:
        res = opt.run(problem, initial_point=x0, **kwargs)
    except _Stop as stop:
        return _finish_stop(rec, stop)
    u, s, vt = res.point
    f = inst.cost(u * s, vt)
    rec.rows.append((rec.elapsed(), res.iterations, f, inst.distance(u * s, vt),
                     rec.n_cost + rec.n_grad, rec.cpu()))
    status = "failed" if not np.isfinite(f) else "stopped"
    reason = res.stopping_criterion.split(" after")[0].replace("Terminated - ", "")
    if not np.isfinite(f):
        reason = "non-finite cost (NaN or inf) at the final point"
    elif rec.gap_reached(f):
        status = "reached"
    elif "max time" in reason or "max iter" in reason:
        status = "budget"
    return rec.result(status, reason, u * s, vt, res.iterations)


def _cached_cost(rec: _Recorder, u, s, vt) -> float | None:
    """The value of the last cost call if it was at this very point (same arrays), else None."""
    last = rec.last_cost
    if last is not None and last[0] is u and last[1] is s and last[2] is vt:
        return last[3]
    return None


def _peer_problem(inst: ProblemInstance, manifold: FixedRankEmbedded,
                  rec: _Recorder) -> pymanopt.Problem:
    """The problem as a pymanopt user writes it for FixedRankEmbedded: a cost of (u, s, vt)
    and its factor gradients (G v s, diag(u^T G v), s u^T G); no Hessian."""

    @pymanopt.function.numpy(manifold)
    def cost(u, s, vt):
        if rec.rows:
            rec.check_time()  # also between gradients (rejected trust-region steps)
        rec.n_cost += 1
        val = inst.cost(u * s, vt)
        rec.last_cost = (u, s, vt, val)
        return val

    @pymanopt.function.numpy(manifold)
    def euclidean_gradient(u, s, vt):
        rec.n_grad += 1
        G = inst.gradient(u * s, vt)
        Gv = G.matmat(vt.T)
        Gtu = G.rmatmat(u)
        out = (Gv * s, np.sum(u * Gv, axis=0), s[:, None] * Gtu.T)
        rec.record(u * s, vt, _cached_cost(rec, u, s, vt), rec.n_grad - 1)
        return out

    return pymanopt.Problem(manifold, cost, euclidean_gradient=euclidean_gradient)


def deep_problem(inst: ProblemInstance, manifold: DeepLinearFixedRank,
                 rec: _Recorder | None = None) -> pymanopt.Problem:
    """The pymanopt Problem of ``inst`` on ``manifold``: exact Riemannian gradient
    A_W(P_T G) and Hessian (linrank's connection) from the instance's LinearOperators; with a
    recorder, every call is counted and every gradient call records an iterate."""

    base = inst.make_problem(manifold) if inst.make_problem is not None else None

    @pymanopt.function.numpy(manifold)
    def cost(u, s, vt):
        if rec is not None and rec.rows:
            rec.check_time()  # also between gradients (rejected trust-region steps)
        val = inst.cost(u * s, vt) if base is None else float(base.cost((u, s, vt)))
        if rec is not None:
            rec.n_cost += 1
            rec.last_cost = (u, s, vt, val)
        return val

    @pymanopt.function.numpy(manifold)
    def riemannian_gradient(u, s, vt):
        if base is None:
            g = manifold.euclidean_to_riemannian_gradient((u, s, vt), inst.gradient(u * s, vt))
        else:
            g = base.riemannian_gradient((u, s, vt))
        if rec is not None:
            rec.n_grad += 1
            rec.record(u * s, vt, _cached_cost(rec, u, s, vt), rec.n_grad - 1)
        return g

    hess = None
    if base is not None:
        @pymanopt.function.numpy(manifold)
        def hess(u, s, vt, Up, M, Vp):
            if rec is not None:
                rec.n_hvp += 1
            return base.riemannian_hessian((u, s, vt), TangentVector(Up, M, Vp))
    elif inst.hessian is not None:
        @pymanopt.function.numpy(manifold)
        def hess(u, s, vt, Up, M, Vp):
            if rec is not None:
                rec.n_hvp += 1
            pt = (u, s, vt)
            ZA, ZBt = _tangent_factors(pt, (Up, M, Vp))
            return manifold.euclidean_to_riemannian_hessian(
                pt, inst.gradient(u * s, vt), inst.hessian(u * s, vt, ZA, ZBt), (Up, M, Vp))

    return pymanopt.Problem(manifold, cost, riemannian_gradient=riemannian_gradient,
                            riemannian_hessian=hess)


def _finish_stop(rec: _Recorder, stop: _Stop) -> RunResult:
    """Result of a run ended by _Stop: its last recorded iterate is the final point."""
    t, it, f, dist = rec.rows[-1][:4]
    return RunResult(status=stop.status, reason=stop.reason, iterations=int(it), wall_time=t,
                     cpu_time=rec.cpu(), cost_evals=rec.n_cost, grad_evals=rec.n_grad,
                     hvp=rec.n_hvp, final_cost=float(f), distance=float(dist),
                     history=rec.history())


# ---------------------------------------------------------------------- flow
class _Probe:
    """Timestamps and losses of every right-hand-side evaluation of a flow; ends the flow (as a
    KeyboardInterrupt that the flow turns into a partial result) when the time budget is spent.
    """

    def __init__(self, rec: _Recorder):
        self.rec = rec
        self.times: list[float] = []
        self.cpus: list[float] = []
        self.losses: list[float] = []
        self.budget_hit = False

    def seen(self, loss: float) -> None:
        self.times.append(self.rec.elapsed())
        self.cpus.append(self.rec.cpu())
        self.losses.append(float(loss))
        self.rec.n_cost += 1
        self.rec.n_grad += 1
        if self.cpus[-1] > self.rec.budget.max_time and not self.budget_hit:
            self.budget_hit = True
            raise KeyboardInterrupt


class _TimedData(LinearData):
    """A view of least-squares data whose every right-hand side goes through
    :meth:`LinearData.point_products` of the wrapped data (so that each evaluation is timed and
    its loss seen by a :class:`_Probe`); it presents itself as "samples" so that the flow's
    engines call ``point_products`` (same products as their covariance path)."""

    def point_products(self, u, s, vt):
        out = self.__dict__["_inner"].point_products(u, s, vt)
        self.__dict__["_probe"].seen(out[2])
        return out

    def fingerprint_arrays(self):
        return self.__dict__["_inner"].fingerprint_arrays()


def _timed(data: LinearData, probe: _Probe) -> _TimedData:
    td = _TimedData("samples", data.d_x, data.d_y, yy=data.yy, autoencoder=data.autoencoder)
    object.__setattr__(td, "_inner", data)
    object.__setattr__(td, "_probe", probe)
    return td


def _match_evaluations(losses: np.ndarray, probe: _Probe, start: int) -> list[int]:
    """For each recorded loss of a flow chunk, the index of the right-hand-side evaluation that
    computed it: the first one from the previous match on with the same loss to 1e-13 relative
    (the latest evaluation if none matches)."""
    ev_l = np.asarray(probe.losses)
    out = []
    j = start
    for val in losses:
        tol = 1e-13 * max(abs(val), 1.0)
        k = j
        while k < len(ev_l) and abs(ev_l[k] - val) > tol:
            k += 1
        if k == len(ev_l):
            k = max(min(j, len(ev_l) - 1), 0)
        out.append(k)
        j = k
    return out


def _flow_run(inst: ProblemInstance, depth: int, start: Point, budget: Budget,
              rec: _Recorder) -> RunResult:
    if inst.data is None:
        return RunResult("not applicable", "the flows integrate least-squares losses only")
    import warnings

    probe = _Probe(rec)
    data = _timed(inst.data, probe)
    point = tuple(np.array(x) for x in start)
    t_sim, chunk, steps = 0.0, 1.0, 0
    status, reason = "budget", ""
    target = inst.optimum
    while True:
        first = len(probe.losses)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = manifold_flow(data, None, point, depth, chunk, target=target,
                              max_steps=max(budget.max_iterations - steps, 1),
                              rtol=1e-6, atol=1e-9)
        if r.status == "interrupted" and not probe.budget_hit:
            raise KeyboardInterrupt  # a real Ctrl-C: never stored as a finished run
        idx = _match_evaluations(r.loss, probe, first)
        dist = r.distance if r.distance is not None else np.full(len(r.t), np.nan)
        for i in range(len(r.t)):
            if i == 0 and rec.rows:
                continue  # the chunk's start is the previous chunk's end
            k = idx[i]
            rec.rows.append((probe.times[k], steps + i, float(r.loss[i]), float(dist[i]), k + 1,
                             probe.cpus[k]))
        steps += max(len(r.t) - 1, 0)
        t_sim += float(r.t[-1])
        point = r.point
        f = float(r.loss[-1])
        if r.status == "failed" and "max_steps" in r.message:
            reason = f"{budget.max_iterations} accepted steps"
            break
        if r.status in ("failed", "collapsed"):
            status, reason = "failed", f"{r.status}: {r.message}"
            break
        if rec.gap_reached(f):
            status, reason = "reached", f"relative gap <= {budget.target_gap:g}"
            break
        if probe.budget_hit or rec.cpu() > budget.max_time:
            reason = f"CPU-time budget of {budget.max_time:g} s spent"
            break
        if steps >= budget.max_iterations:
            reason = f"{budget.max_iterations} accepted steps"
            break
        chunk *= 2.0
    u, s, vt = point
    return rec.result(status, reason, u * s, vt, steps, flow_time=t_sim)


# ---------------------------------------------------------------------- layer GD
def _balanced_layers(start: Point, depth: int) -> list[np.ndarray]:
    """W_1 = S^{1/N} v^T, W_j = S^{1/N} (hidden widths k), W_N = u S^{1/N}: balanced
    (W_{j+1}^T W_{j+1} = W_j W_j^T) with product u S v^T (Section 7's start up to rotations of
    the hidden spaces, to which gradient descent is equivariant)."""
    u, s, vt = start
    r = s ** (1.0 / depth)
    return [r[:, None] * vt] + [np.diag(r) for _ in range(depth - 2)] + [u * r]


def _layer_step(inst: ProblemInstance, Ws: list[np.ndarray], h: float):
    """One gradient step on the layers; returns (new layers, A, Bt) with W = A @ Bt before it.

    grad_{W_j} = (W_N..W_{j+1})^T G (W_{j-1}..W_1)^T with G = grad L(W), eq. (5); through
    GW_1^T and G^T W_N only (two products with G), the rest k x k: cost O(mnk + N k^3)."""
    N = len(Ws)
    k = Ws[0].shape[0]
    # 0-based layers: P_{<j} = R[j] @ Ws[0], P_{>j} = Ws[-1] @ L[j] with k x k R[j], L[j]
    R = {1: np.eye(k)}
    for j in range(2, N):
        R[j] = Ws[j - 1] @ R[j - 1]
    L = {N - 2: np.eye(k)}
    for j in range(N - 3, -1, -1):
        L[j] = L[j + 1] @ Ws[j + 1]
    A = Ws[-1] @ L[0]
    Bt = Ws[0]
    G = inst.gradient(A, Bt)
    GW1t = G.matmat(Bt.T)  # m x k
    GtWN = G.rmatmat(Ws[-1])  # n x k
    K = Ws[-1].T @ GW1t
    grads = [L[0].T @ GtWN.T]
    grads += [L[j].T @ K @ R[j].T for j in range(1, N - 1)]
    grads.append(GW1t @ R[N - 1].T)
    return [W - h * g for W, g in zip(Ws, grads)], A, Bt


def _layer_gd_loop(inst: ProblemInstance, Ws: list[np.ndarray], h: float, iterations: int,
                   rec: _Recorder | None, blowup: float) -> tuple[list[np.ndarray], str, float]:
    """Run gradient descent; returns (layers, status, last cost). Without a recorder: a trial
    run of the step search ("stable" or "unstable")."""
    f_first = f_prev = None
    monotone = True
    for it in range(iterations + 1):
        new, A, Bt = _layer_step(inst, Ws, h)
        if rec is not None:
            rec.n_cost += 1
            rec.n_grad += 1
            f = rec.record(A, Bt, inst.cost(A, Bt), it, check=False)
        else:
            f = inst.cost(A, Bt)
        f_first = f if f_first is None else f_first
        if f_prev is not None and f > f_prev:
            monotone = False
        f_prev = f
        if not np.isfinite(f) or f > blowup:
            return Ws, "diverged", f
        if rec is not None:
            if rec.gap_reached(f):
                raise _Stop("reached", f"relative gap <= {rec.budget.target_gap:g}")
            rec.check_time()
            if it >= rec.budget.max_iterations:
                raise _Stop("budget", f"{rec.budget.max_iterations} iterations")
        Ws = new
    return Ws, "stable" if (monotone and f < f_first) else "unstable", f


def _step_search(inst: ProblemInstance, start: Point, depth: int, budget: Budget,
                 f0: float) -> tuple[float | None, list]:
    """The largest step h = h0 * 2^(-j/2) whose trial run (budget.search_iterations steps from
    the run's start) stays finite and ends below the start's cost; h0 from the curvature
    estimate N s_1^{2(N-1)/N} lambda, lambda = <H[Z], Z>/|Z|^2 for Z = u_1 v_1^T."""
    u, s, vt = start
    ZA, ZBt = u[:, :1], vt[:1]
    lam = 1.0
    if inst.hessian is not None:
        H = inst.hessian(u * s, vt, ZA, ZBt)
        lam = abs(float(np.sum(H.matmat(ZBt.T) * ZA))) or 1.0
    h0 = 8.0 / (depth * s[0] ** (2.0 * (depth - 1) / depth) * lam)
    tried = []
    blowup = 1e3 * max(abs(f0), 1.0)
    for j in range(40):
        h = h0 * 2.0 ** (-j / 2)
        _, verdict, _ = _layer_gd_loop(inst, _balanced_layers(start, depth), h,
                                       budget.search_iterations, None, blowup)
        tried.append((h, verdict))
        if verdict == "stable":
            return h, tried
    return None, tried


def _layer_gd_run(inst: ProblemInstance, depth: int, start: Point, budget: Budget,
                  rec: _Recorder) -> RunResult:
    if depth < 2:
        return RunResult("not applicable",
                         "depth 1 has no hidden layer: W_1 alone is not rank-constrained")
    t0, c0 = time.perf_counter(), time.process_time()
    h, tried = _step_search(inst, start, depth, budget, rec.f0)
    search = {"step_search_time": time.perf_counter() - t0,
              "step_search_cpu": time.process_time() - c0,
              "steps_tried": " ".join(f"{x:.3g}:{v}" for x, v in tried)}
    rec.t0, rec.c0 = time.perf_counter(), time.process_time()
    if h is None:
        return RunResult("failed", "no stable step found by the search", info=search)
    blowup = 1e3 * max(abs(rec.f0), 1.0)
    for _ in range(8):
        Ws = _balanced_layers(start, depth)
        try:
            Ws, verdict, f = _layer_gd_loop(inst, Ws, h, budget.max_iterations, rec, blowup)
        except _Stop as stop:
            res = _finish_stop(rec, stop)
            res.info = {"step": h, **search}
            return res
        if verdict != "diverged":
            break
        # the step was not stable over the whole run: the search goes on with a smaller one
        tried.append((h, f"diverged at iteration {len(rec.rows) - 1}"))
        search["steps_tried"] = " ".join(f"{x:.3g}:{v}" for x, v in tried)
        search["step_search_time"] += rec.elapsed()
        search["step_search_cpu"] += rec.cpu()
        h /= 2.0
        fresh = _Recorder(inst, rec.f_ref, rec.f0, budget)
        rec.__dict__.update(fresh.__dict__)
    A = Ws[-1]
    for W in Ws[-2:0:-1]:
        A = A @ W
    status = "diverged" if verdict == "diverged" else "budget"
    reason = f"cost {f:.3g} with step {h:.3g}" if status == "diverged" else "iterations"
    return rec.result(status, reason, A, Ws[0], len(rec.rows) - 1, step=h, **search)


# ---------------------------------------------------------------------- direct
def _direct_run(inst: ProblemInstance, depth: int | None, start: Point, budget: Budget,
                rec: _Recorder) -> RunResult:
    if inst.direct is None:
        return RunResult("not applicable", "no closed-form answer for this problem")
    rec.t0, rec.c0 = time.perf_counter(), time.process_time()
    (u, s, vt), method = inst.direct()
    rec.rows.append((rec.elapsed(), 0, inst.cost(u * s, vt), inst.distance(u * s, vt), 0,
                     rec.cpu()))
    f = rec.rows[-1][2]
    status = "reached" if rec.gap_reached(f) else "stopped"
    return rec.result(status, method, u * s, vt, 0)


# ---------------------------------------------------------------------- registry
def _pm(kind: str, own: bool) -> Callable:
    def run(inst, depth, start, budget, rec):
        return _pymanopt_run(inst, depth if own else None, start, budget, rec, kind)

    return run


#: name -> (function (inst, depth, start, budget, recorder) -> RunResult, description)
SOLVERS: dict[str, tuple[Callable, str]] = {
    "sd": (_pm("sd", True), "pymanopt SteepestDescent on DeepLinearFixedRank(depth)"),
    "cg": (_pm("cg", True), "pymanopt ConjugateGradient on DeepLinearFixedRank(depth)"),
    "tr": (_pm("tr", True), "pymanopt TrustRegions on DeepLinearFixedRank(depth), exact Hessian"),
    "pymanopt-sd": (_pm("sd", False), "pymanopt SteepestDescent on FixedRankEmbedded"),
    "pymanopt-cg": (_pm("cg", False), "pymanopt ConjugateGradient on FixedRankEmbedded"),
    "pymanopt-tr": (_pm("tr", False), "pymanopt TrustRegions on FixedRankEmbedded"),
    "flow": (_flow_run, "Riemannian gradient flow (31), manifold_flow RK45"),
    "layer-gd": (_layer_gd_run, "gradient descent on the layers W_1..W_N, fixed step"),
    "direct": (_direct_run, "closed-form answer (eigh / Eckart-Young)"),
}

#: solvers whose runs do not depend on the depth (run once, reported with depth 1 for pymanopt's
#: FixedRankEmbedded, whose geometry is the depth-1 one, and depth 0 for the direct answer).
DEPTH_FREE = {"pymanopt-sd": 1, "pymanopt-cg": 1, "pymanopt-tr": 1, "direct": 0}


def run_solver(name: str, inst: ProblemInstance, depth: int, seed: int, budget: Budget,
               f_ref: float | None = None) -> RunResult:
    """Run solver ``name`` on ``inst`` at ``depth`` from the start of ``seed``.

    ``f_ref`` is the reference minimum for the stopping gap (default: ``inst.f_star``; None
    means no gap test). Exceptions of the solver become a "failed" result with the exception's
    type and first line; KeyboardInterrupt propagates.
    """
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choices: {', '.join(SOLVERS)}")
    start = inst.start(seed)
    u, s, vt = start
    f0 = inst.cost(u * s, vt)
    rec = _Recorder(inst, inst.f_star if f_ref is None else f_ref, f0, budget)
    try:
        res = SOLVERS[name][0](inst, depth, start, budget, rec)
    except _Stop as stop:
        res = _finish_stop(rec, stop) if rec.rows else RunResult(stop.status, stop.reason)
    except Exception as exc:  # noqa: BLE001 - a failing solver is a result, not a crash
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        res = RunResult("failed", f"{type(exc).__name__}: {msg}"[:300], wall_time=rec.elapsed(),
                        cpu_time=rec.cpu(), cost_evals=rec.n_cost, grad_evals=rec.n_grad,
                        hvp=rec.n_hvp, history=rec.history())
    res.info.setdefault("f0", f0)
    return res
