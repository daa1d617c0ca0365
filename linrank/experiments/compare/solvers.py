r"""Solvers of ``linrank compare``: one function per solver, same start, same bookkeeping.

Every solver gets a :class:`~linrank.experiments.compare.problems.ProblemInstance`, a depth, a
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

import numpy as np
import pymanopt
from pymanopt.manifolds import FixedRankEmbedded

from ...data import LinearData
from ...flows import manifold_flow
from ...manifold import DeepLinearFixedRank, TangentVector
from .problems import ProblemInstance
from .record import Budget, Recorder, RunResult, StopRun, finish_stop

__all__ = ["Budget", "RunResult", "SOLVERS", "DEPTH_FREE", "run_solver", "deep_problem"]

Point = tuple[np.ndarray, np.ndarray, np.ndarray]



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
                  rec: Recorder, kind: str) -> RunResult:
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
    except StopRun as stop:
        return finish_stop(rec, stop)
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


def _cached_cost(rec: Recorder, u, s, vt) -> float | None:
    """The value of the last cost call if it was at this very point (same arrays), else None."""
    last = rec.last_cost
    if last is not None and last[0] is u and last[1] is s and last[2] is vt:
        return last[3]
    return None


def _peer_problem(inst: ProblemInstance, manifold: FixedRankEmbedded,
                  rec: Recorder) -> pymanopt.Problem:
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
                 rec: Recorder | None = None) -> pymanopt.Problem:
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



# ---------------------------------------------------------------------- flow
class _Probe:
    """Timestamps and losses of every right-hand-side evaluation of a flow; ends the flow (as a
    KeyboardInterrupt that the flow turns into a partial result) when the time budget is spent.
    """

    def __init__(self, rec: Recorder):
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
              rec: Recorder) -> RunResult:
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
                   rec: Recorder | None, blowup: float) -> tuple[list[np.ndarray], str, float]:
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
                raise StopRun("reached", f"relative gap <= {rec.budget.target_gap:g}")
            rec.check_time()
            if it >= rec.budget.max_iterations:
                raise StopRun("budget", f"{rec.budget.max_iterations} iterations")
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
                  rec: Recorder) -> RunResult:
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
        except StopRun as stop:
            res = finish_stop(rec, stop)
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
        fresh = Recorder(inst, rec.f_ref, rec.f0, budget)
        rec.__dict__.update(fresh.__dict__)
    A = Ws[-1]
    for W in Ws[-2:0:-1]:
        A = A @ W
    status = "diverged" if verdict == "diverged" else "budget"
    reason = f"cost {f:.3g} with step {h:.3g}" if status == "diverged" else "iterations"
    return rec.result(status, reason, A, Ws[0], len(rec.rows) - 1, step=h, **search)


# ---------------------------------------------------------------------- direct
def _direct_run(inst: ProblemInstance, depth: int | None, start: Point, budget: Budget,
                rec: Recorder) -> RunResult:
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
    rec = Recorder(inst, inst.f_star if f_ref is None else f_ref, f0, budget)
    try:
        res = SOLVERS[name][0](inst, depth, start, budget, rec)
    except StopRun as stop:
        res = finish_stop(rec, stop) if rec.rows else RunResult(stop.status, stop.reason)
    except Exception as exc:  # noqa: BLE001 - a failing solver is a result, not a crash
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        res = RunResult("failed", f"{type(exc).__name__}: {msg}"[:300], wall_time=rec.elapsed(),
                        cpu_time=rec.cpu(), cost_evals=rec.n_cost, grad_evals=rec.n_grad,
                        hvp=rec.n_hvp, history=rec.history())
    res.info.setdefault("f0", f0)
    return res
