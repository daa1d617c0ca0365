r"""The rank-adaptive Riemannian flow: the small-initialization limit at the cost of rank k.

:func:`adaptive_rank_flow` integrates the Riemannian gradient flow
:math:`\dot W = -\mathcal{A}_W(P_T\nabla f(W))` (eq. (31) with a loss f of the product) on
:math:`\mathcal{M}_1, \mathcal{M}_2, \dots` in turn. It starts on :math:`\mathcal{M}_1` at
:math:`W(0) = \alpha\, a_1 b_1^T`, the top singular pair of :math:`-\nabla f(0)` at scale
:math:`\alpha`; when the flow on :math:`\mathcal{M}_k` stalls at a critical point of f on
:math:`\mathcal{M}_k` (the stall rule below) it adds the top singular pair of the normal part
:math:`-P_N\nabla f(W)` at scale :math:`\alpha` and continues on :math:`\mathcal{M}_{k+1}`. This
is the greedy rank-incremental path that the full-width layer-wise flow follows from small
balanced starts as :math:`\alpha \to 0` (docs/theory.rst, "Rank-adaptive flows": what it
approximates and when it does not).

Stall rule. With :math:`G = \nabla f(W)`, :math:`W = u\,\mathrm{diag}(s)\,v^T` on
:math:`\mathcal{M}_k`, tangent part :math:`P_T G = uu^TG + Gvv^T - uu^TGvv^T` and normal part
:math:`P_N G = (I - uu^T) G (I - vv^T)`, the flow has stalled when

.. math:: \|P_T G\|_F \le \tau\, \|P_N G\|_2 ,

``stall_tol`` :math:`= \tau` (default 1e-3): the force along :math:`\mathcal{M}_k` is a fraction
:math:`\tau` of the force that would grow a new direction. The rule is scale free (both sides
are Frobenius gradients of f) and independent of the depth. It is tested at accepted steps
only, cheaply: the Riemannian gradient norm :math:`\|\operatorname{grad} f\|_g` that the step
computes anyway bounds :math:`\|P_T G\|_F \ge \|\operatorname{grad} f\|_g /
(N s_1^{2(N-1)/N})^{1/2}` (the largest weight of :math:`\mathcal{A}_W`), so the exact test (one
Euclidean gradient and a top singular pair of :math:`P_N G`, by a dense SVD for small m n and by
ARPACK on the operator otherwise) is run only when that bound does not exclude a stall against
the last computed :math:`\|P_N G\|_2` (with a margin 2), and every 16th accepted step. A
direction is added only if :math:`\|P_N G\|_2 > \sqrt{\epsilon}\,\|\nabla f(0)\|_2` (no
direction driven by rounding: at a critical point of f on all matrices the flow goes on on
:math:`\mathcal{M}_k`).
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pymanopt
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, svds

from ..fixedrank import is_factor_gradient
from ..manifold import DeepLinearFixedRank, FixedRankPoint
from ..metric import check_depth
from .integrator import integrate
from .manifold_base import parse_start
from .options import check_t_end, parse_options, positive_number
from .problem_data import ProblemData
from .result import FlowResult
from .riemannian import check_collapse_tol, choose_engine
from .targets import parse_target

__all__ = ["adaptive_rank_flow", "normal_top_pairs"]

_DENSE_LIMIT = 250_000  # m n up to which the normal part's SVD is dense (LAPACK), else ARPACK
_FULL_CHECK_EVERY = 16  # accepted steps between exact stall tests that no bound has asked for
_TIE = 1e-3  # relative gap of the normal part's top singular values called a tie (a warning)
_RANK_STALL = "rank stall"  # a piece's internal status: add a direction (never returned)


# ---------------------------------------------------------------------- the normal part
def _products(G: Any, m: int, n: int) -> tuple[Callable, Callable]:
    """(X -> G X, Y -> G^T Y) for an ambient gradient G in any accepted form."""
    if is_factor_gradient(G):
        raise TypeError(
            "adaptive_rank_flow needs the Euclidean gradient of f at W (its normal part decides "
            "the next direction); the problem gives only pymanopt's factor gradients "
            "(du, ds, dvt): build it with ambient_problem, autograd_problem, "
            "least_squares_problem, matrix_completion_problem or matrix_sensing_problem")
    if isinstance(G, tuple | list) and len(G) == 3:
        U, S, V = (np.asarray(x, dtype=float) for x in G)
        return (lambda X: U @ (S @ (V.T @ X))), (lambda Y: V @ (S.T @ (U.T @ Y)))
    if isinstance(G, LinearOperator):
        if G.shape != (m, n):
            raise ValueError(f"the Euclidean gradient must have shape {(m, n)}, got {G.shape}")
        return G.matmat, G.rmatmat
    if not sp.issparse(G):
        G = np.asarray(G, dtype=float)
        if G.shape != (m, n):
            raise ValueError(f"the Euclidean gradient must have shape {(m, n)}, got {G.shape}")
    if G.shape != (m, n):
        raise ValueError(f"the Euclidean gradient must have shape {(m, n)}, got {G.shape}")
    Gt = G.T.tocsr() if sp.issparse(G) else G.T
    return (lambda X: np.asarray(G @ X)), (lambda Y: np.asarray(Gt @ Y))


def normal_top_pairs(G: Any, point: Any, m: int, n: int, count: int = 1, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The top ``count`` singular triplets (a, sigma, b) of the normal part
    :math:`P_N G = (I - uu^T)\,G\,(I - vv^T)` of an ambient m x n matrix G at the point
    (u, s, vt) (u may have 0 columns: then of G itself).

    G is dense, sparse, a LinearOperator or a factored (U, S, V). For m n <= 250,000 by a dense
    SVD (LAPACK; singular values to ~eps ||G||), otherwise by ARPACK (``scipy.sparse.linalg.svds``
    on the operator, products with G only: O(products + (m + n) k) per iteration; converged to
    ~1e-10 relative, start vector from ``seed``). Returns a (m x c), sigma (c,) descending,
    b (n x c), c = min(count, min(m, n) - k) columns, a and b orthogonal to u and v.
    """
    u = np.asarray(point[0], dtype=float)
    v = np.asarray(point[2], dtype=float).T
    k = u.shape[1]
    room = min(m, n) - k
    count = min(count, room)
    if count < 1:
        return np.zeros((m, 0)), np.zeros(0), np.zeros((n, 0))
    mul, rmul = _products(G, m, n)

    def pn(X: np.ndarray) -> np.ndarray:
        Y = mul(X - v @ (v.T @ X))
        return Y - u @ (u.T @ Y)

    def pnt(Y: np.ndarray) -> np.ndarray:
        X = rmul(Y - u @ (u.T @ Y))
        return X - v @ (v.T @ X)

    if m * n <= _DENSE_LIMIT or count >= min(m, n):
        P = pn(np.eye(n))
        a, sig, bt = np.linalg.svd(P, full_matrices=False)
        a, sig, b = a[:, :count], sig[:count], bt[:count].T
    else:
        op = LinearOperator((m, n), matvec=lambda x: pn(x.reshape(n, 1)).ravel(),
                            rmatvec=lambda y: pnt(y.reshape(m, 1)).ravel(),
                            matmat=pn, rmatmat=pnt, dtype=float)
        v0 = np.random.default_rng(seed).standard_normal(min(m, n))
        a, sig, bt = svds(op, k=count, tol=1e-10, v0=v0)
        order = np.argsort(sig)[::-1]
        a, sig, b = a[:, order], sig[order], bt[order].T
    # exact orthogonality to u and v (rounding of the projections), unit length
    a = a - u @ (u.T @ a)
    b = b - v @ (v.T @ b)
    a /= np.maximum(np.linalg.norm(a, axis=0), np.finfo(float).tiny)
    b /= np.maximum(np.linalg.norm(b, axis=0), np.finfo(float).tiny)
    return a, np.asarray(sig, dtype=float), b


def _tangent_norm(G: Any, point: FixedRankPoint, m: int, n: int) -> float:
    r""":math:`\|P_T G\|_F` from the products G v and G^T u (blocks M, U_p, V_p)."""
    mul, rmul = _products(G, m, n)
    u, v = point.u, point.vt.T
    Gv, Gtu = mul(v), rmul(u)
    M = u.T @ Gv
    Up = Gv - u @ M
    Vp = Gtu - v @ M.T
    return float(np.sqrt(np.vdot(M, M) + np.vdot(Up, Up) + np.vdot(Vp, Vp)))


# ---------------------------------------------------------------------- the stall hook
class _StallHook:
    """Mixed into an engine of :func:`riemannian_flow` (factored or projected): its
    :meth:`check_stop` adds the stall rule (module docstring) to the engine's own collapse
    test."""

    def setup(self, problem: Any, tau: float | None, floor: float) -> None:
        self.problem = problem
        self.tau = tau
        self.floor = floor
        self.sigma_ref: float | None = None
        self.calls = 0
        self.exact_checks = 0
        self.gradient_evals = 0
        self.stall: dict | None = None
        self._last: tuple[Any, Any] = (None, None)

    def rhs(self, y: Any) -> Any:
        ev = super().rhs(y)
        self._last = (y, ev)
        return ev

    def check_stop(self, y: Any, t: float) -> tuple[str, str, dict] | None:
        stop = super().check_stop(y, t)
        if stop is not None:
            return stop
        last_y, ev = self._last
        ev = ev if last_y is y else None
        if self.tau is None:
            return None
        self.calls += 1
        if ev is not None and self.sigma_ref is not None and self.calls % _FULL_CHECK_EVERY:
            s_max = float(np.max(self.singular_values(y)))
            lam_max = self.depth * s_max ** (2.0 * (self.depth - 1) / self.depth)
            if ev.gnorm / np.sqrt(lam_max) > 2.0 * self.tau * self.sigma_ref:
                return None  # ||P_T G|| >= this bound: no stall unless ||P_N G|| doubled
        p = self.point(y)
        G = self.problem.euclidean_gradient(p)
        self.gradient_evals += 1
        self.exact_checks += 1
        tn = _tangent_norm(G, p, self.m, self.n)
        a, sig, b = normal_top_pairs(G, p, self.m, self.n, count=2)
        self.sigma_ref = float(sig[0]) if sig.size else 0.0
        if not sig.size or not sig[0] > self.floor or not tn <= self.tau * sig[0]:
            return None
        # the top pair of -P_N G is (-a, sigma, b)
        self.stall = {"t": t, "tangent_norm": tn, "sigma": sig.copy(), "a": -a[:, 0],
                      "b": b[:, 0].copy(), "point": p}
        msg = (f"stalled on M_{self.k} at t = {t:.6g}: ||P_T grad f||_F = {tn:.3e} <= stall_tol "
               f"* ||P_N grad f||_2 = {self.tau:g} * {sig[0]:.3e}")
        return _RANK_STALL, msg, None


def _engine(engine: str, depth: int) -> type:
    base = choose_engine(engine, depth)
    return type(f"Stalling{base.__name__}", (_StallHook, base), {})


# ---------------------------------------------------------------------- the driver
def _check_shape(shape: object) -> tuple[int, int]:
    if (not isinstance(shape, tuple | list) or len(shape) != 2
            or not all(isinstance(x, int | np.integer) and not isinstance(x, bool) and x >= 1
                       for x in shape)):
        raise ValueError(f"shape must be a pair (m, n) of positive integers, got {shape!r}")
    return int(shape[0]), int(shape[1])


def _problem_on(make_problem: Callable, man: DeepLinearFixedRank) -> pymanopt.Problem:
    problem = make_problem(man)
    if not isinstance(problem, pymanopt.Problem):
        raise TypeError(f"make_problem must return a pymanopt.Problem, got "
                        f"{type(problem).__name__}")
    pm = problem.manifold
    if not (isinstance(pm, DeepLinearFixedRank) and (pm.m, pm.n, pm.k, pm.depth)
            == (man.m, man.n, man.k, man.depth)):
        raise ValueError(f"make_problem(manifold) must return a problem on the manifold it was "
                         f"given ({man.m} x {man.n}, rank {man.k}, depth {man.depth}), got one "
                         f"on {getattr(pm, '__str__', lambda: pm)()}")
    return problem


def _start_direction(problem: pymanopt.Problem, m: int, n: int) -> tuple:
    """Top singular pairs of -grad f(0) (from the problem on M_1 at the point with s = 0)."""
    zero = FixedRankPoint(np.eye(m, 1), np.zeros(1), np.eye(1, n))
    G0 = problem.euclidean_gradient(zero)
    empty = FixedRankPoint(np.zeros((m, 0)), np.zeros(0), np.zeros((0, n)))
    return normal_top_pairs(G0, empty, m, n, count=2)


def _tie_warning(sig: np.ndarray, where: str) -> None:
    if sig.size >= 2 and sig[0] > 0 and sig[0] - sig[1] <= _TIE * sig[0]:
        warnings.warn(
            f"{where}: the top two singular values of the normal part of -grad f are nearly "
            f"equal ({sig[0]:.6g}, {sig[1]:.6g}): the full-width flow grows a combination of "
            "their directions that depends on its start, the adaptive flow takes one of them",
            RuntimeWarning, stacklevel=3)


def _shifted(record: Any, t0: float) -> Any:
    """The ``record`` callables with the piece's clock moved to the run's: fn(t0 + t, W)."""
    if not record:
        return record
    return {name: (lambda t, W, fn=fn: fn(t0 + t, W)) for name, fn in record.items()}


def _grid_for_piece(t_eval: np.ndarray | None, t0: float, t_end: float, first: bool):
    """The piece's t_eval: the user's times in (t0, t_end] (from t0 on for the first piece) on
    the piece's own clock, ending with the piece's end t_end - t0 (recorded by the integrator;
    :func:`_concatenate` keeps it only if it is a user time or where the piece stopped)."""
    if t_eval is None:
        return None
    keep = t_eval[t_eval >= t0] if first else t_eval[t_eval > t0]
    grid = keep - t0
    grid = grid[(grid >= 0) & (grid <= t_end - t0)]
    if grid.size == 0 or grid[-1] < t_end - t0:
        grid = np.append(grid, t_end - t0)  # the piece's own end (kept only if a user time)
    return grid


def adaptive_rank_flow(
    make_problem: Callable[[DeepLinearFixedRank], pymanopt.Problem], *, shape: tuple[int, int],
    depth: int, t_end: float, init_scale: float, max_rank: int | None = None,
    stall_tol: float = 1e-3, ftol: float | None = None, engine: str = "auto",
    collapse_tol: float = 1e-10, target: object = None, **options: Any,
) -> FlowResult:
    r"""The rank-adaptive Riemannian flow of f from a small start (module docstring).

    Pieces: the flow :math:`\dot W = -\mathcal{A}_W(P_T\nabla f(W))` on :math:`\mathcal{M}_k`
    (:func:`~linrank.flows.riemannian_flow`'s engines, same accuracy: RK45 keeps each step's
    local error below ``atol sqrt(m n) + rtol ||W||_F``), k = 1, 2, ..., each started where the
    previous one stalled, with the top singular pair (a, b) of :math:`-P_N\nabla f(W)` added at
    scale :math:`\alpha`: :math:`W \leftarrow W + \alpha\, a b^T` (a, b orthogonal to W's
    singular vectors, so the new point has the singular values of W and :math:`\alpha`). The
    first piece starts at :math:`W(0) = \alpha\, a_1 b_1^T`, (a_1, b_1) the top singular pair of
    :math:`-\nabla f(0)`.

    Parameters
    ----------
    make_problem : callable(manifold) -> pymanopt.Problem on that
        :class:`~linrank.DeepLinearFixedRank` (m x n, rank k, depth N), called once per rank;
        its ``euclidean_gradient(point)`` must give the Euclidean gradient of f at W (dense,
        sparse, LinearOperator or (U, S, V)): every problem of linrank does; pymanopt autodiff
        costs of (u, s, vt) do not (TypeError).
    shape : (m, n); depth : N >= 1; t_end : final time >= 0.
    init_scale : :math:`\alpha > 0`, the scale of the start and of every added direction.
    max_rank : the largest rank (default min(m, n)); on :math:`\mathcal{M}_{\max}` the flow
        runs on to t_end (or ftol, gtol).
    stall_tol
        :math:`\tau` of the stall rule :math:`\|P_T\nabla f\|_F \le \tau \|P_N\nabla f\|_2`.
    ftol : stop (status "converged") when f <= ftol (the crossing located on the step's
        continuous extension, as in :func:`~linrank.flows.riemannian_flow`).
    engine, collapse_tol, target
        As in :func:`~linrank.flows.riemannian_flow`; each piece uses
        ``min(collapse_tol, 1e-3 s_min/s_max)`` of its start so that the added direction at
        scale alpha is no collapse.
    **options
        The integrator options of :func:`~linrank.flows.riemannian_flow` (``method``, ``rtol``,
        ``atol``, ``t_eval``, ``trajectory``, ``gtol``, ``rdtol``, ``max_steps``,
        ``progress``, ...), applied to each piece (``max_steps`` and ``rdtol`` per piece: a
        plateau decreases f slowly, so ``rdtol`` can end the run there); ``record`` callables
        get the run's time; ``checkpoint`` and ``events`` are not supported (ValueError).

    Returns
    -------
    FlowResult over the whole run: ``t`` (each rank increase appears twice: the last point on
    M_k and the first on M_(k+1), which differ by alpha a b^T), ``loss``, ``grad_norm``,
    ``singular_values`` (len(t) x max rank reached, zero beyond the current rank),
    ``distance`` (with ``target``), ``trajectory``, ``point`` / ``W`` (final), ``status``,
    ``message``, counters summed over the pieces, ``records`` (concatenated; values whose
    shape changes with the rank are padded with NaN), ``ranks``: [(0, 1), (t, k), ...] the time
    of each rank increase and the new rank; ``diagnostics["rank"]``: the rank at each recorded
    time, ``diagnostics["stall_normal_sigma"]`` and ``["stall_tangent_norm"]``:
    :math:`\|P_N\nabla f\|_2` and :math:`\|P_T\nabla f\|_F` at each increase. State and
    memory O((m + n) k) beyond the problem's data.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (named); ``make_problem`` not returning a problem on the manifold it is
        given; a problem without a Euclidean gradient; :math:`\nabla f(0) = 0` (W = 0 is a
        critical point of f: no direction to start along).
    """
    m, n = _check_shape(shape)
    N = check_depth(depth)
    t_end = check_t_end(t_end)
    alpha = positive_number("init_scale", init_scale, allow_none=False)
    tau = positive_number("stall_tol", stall_tol, allow_none=False)
    ftol_v = None if ftol is None else positive_number("ftol", ftol)
    ct = check_collapse_tol(collapse_tol)
    kmax = min(m, n)
    if max_rank is not None:
        if isinstance(max_rank, bool) or not isinstance(max_rank, int | np.integer) \
                or not 1 <= max_rank <= kmax:
            raise ValueError(f"max_rank must be an integer in [1, min(m, n) = {kmax}], got "
                             f"{max_rank!r}")
        kmax = int(max_rank)
    for name in ("checkpoint", "events"):
        if options.get(name) is not None:
            raise ValueError(f"{name} is not supported by adaptive_rank_flow (its pieces are "
                             "separate runs); Ctrl-C still returns everything computed so far, "
                             "and ftol and record work across the pieces")
    record = options.pop("record", None)
    # every option checked once, before any work
    opts0 = parse_options(t_end, **options, ftol=ftol_v, record=record)
    engine_cls = _engine(engine, N)

    man = DeepLinearFixedRank(m, n, 1, N)
    problem = _problem_on(make_problem, man)
    a, sig, b = _start_direction(problem, m, n)
    if not sig.size or not sig[0] > 0:
        raise ValueError("the Euclidean gradient of f at W = 0 is zero: W = 0 is a critical "
                         "point and a flow from a small start does not leave it")
    _tie_warning(sig, "start")
    floor = np.sqrt(np.finfo(float).eps) * float(sig[0])  # no direction driven by rounding
    point = FixedRankPoint(-a[:, :1], np.array([alpha]), b[:, :1].T)  # top pair of -G(0)

    t0, k, pieces, ranks = 0.0, 1, [], [(0.0, 1)]
    while True:
        if k > 1:
            man = DeepLinearFixedRank(m, n, k, N)
            problem = _problem_on(make_problem, man)
        data = ProblemData(problem)
        p = parse_start(point, m, n, N, None)
        data.start = p
        ct_k = min(ct, 1e-3 * float(np.min(p.s) / np.max(p.s)))
        system = engine_cls(data, N, k, parse_target(target, m, n, as_point=True), ct_k,
                            float(np.max(p.s)))
        system.setup(problem, tau if k < kmax else None, floor)
        grid = _grid_for_piece(opts0.t_eval, t0, t_end, not pieces)
        opts = parse_options(t_end - t0, **{**options, "t_eval": grid, "ftol": ftol_v,
                                            "record": _shifted(record, t0)})
        res = integrate(system, system.initial_state(p), t_end - t0, opts)
        # keep the piece's record, not its system (which holds the problem and its data)
        st = system.stall
        pieces.append((t0, k, res, {"stall": st, "checks": system.exact_checks,
                                    "evals": system.gradient_evals}))
        del system, data, problem
        gc.collect()  # problems hold reference cycles (pymanopt cost closures): free the data now
        if res.status != _RANK_STALL or st is None:
            break
        _tie_warning(st["sigma"], f"rank {k} -> {k + 1} at t = {t0 + st['t']:.6g}")
        sp_ = st["point"]
        point = FixedRankPoint(np.hstack((sp_.u, st["a"][:, None])),
                               np.append(sp_.s, alpha), np.vstack((sp_.vt, st["b"][None, :])))
        t0 = float(t0 + res.t_final)
        k += 1
        ranks.append((t0, k))
    return _concatenate(pieces, ranks, opts0.t_eval)


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate along the first axis, padding trailing shapes that differ with NaN."""
    shape = tuple(max(p.shape[i] for p in parts) for i in range(1, parts[0].ndim))
    if all(p.shape[1:] == shape for p in parts):
        return np.concatenate(parts)
    out = []
    for p in parts:
        q = np.full((p.shape[0],) + shape, np.nan)
        q[(slice(None),) + tuple(slice(0, d) for d in p.shape[1:])] = p
        out.append(q)
    return np.concatenate(out)


def _concatenate(pieces: list, ranks: list, t_eval: np.ndarray | None) -> FlowResult:
    """One FlowResult from the pieces: times shifted, singular values padded with zeros."""
    kmax = max(k for _, k, _, _ in pieces)
    ts, loss, gn, svs, dist, traj, rank = [], [], [], [], [], [], []
    recs: dict[str, list] = {}
    for t0, k, r, _ in pieces:
        keep = np.ones(r.t.size, dtype=bool)
        if t_eval is not None and r.t.size:
            # records at the piece's own end that are no user time (nor a stall/stop point)
            user = np.isin(t0 + r.t, t_eval)
            keep = user.copy()
            keep[-1] = keep[-1] or r.t[-1] == r.t_final
        ts.append(t0 + r.t[keep])
        loss.append(r.loss[keep])
        gn.append(r.grad_norm[keep])
        sv = np.zeros((int(keep.sum()), kmax))
        if r.singular_values is not None:
            sv[:, :k] = r.singular_values[keep]
        svs.append(sv)
        if r.distance is not None:
            dist.append(r.distance[keep])
        if r.trajectory is not None:
            traj.extend(x for x, kp in zip(r.trajectory, keep) if kp)
        rank.append(np.full(int(keep.sum()), float(k)))
        for name, vals in getattr(r, "records", {}).items():
            recs.setdefault(name, []).append(np.asarray(vals, dtype=float)[keep])
    last = pieces[-1][2]
    t0_last = pieces[-1][0]
    checks = sum(s["checks"] for _, _, _, s in pieces)
    head = last.message
    if last.status == "completed":
        head = f"reached t_end = {t0_last + last.t_final:g}"
    elif t0_last > 0:
        head += (f" [times in this sentence are on the clock of the rank-{pieces[-1][1]} piece, "
                 f"which started at t = {t0_last:.10g}]")
    msg = (f"{head} (rank {pieces[-1][1]} reached; {len(pieces) - 1} rank increase(s); "
           f"{checks} exact stall tests)")
    res = FlowResult(
        t=np.concatenate(ts), loss=np.concatenate(loss), grad_norm=np.concatenate(gn),
        method=last.method, status=last.status, message=msg, t_final=t0_last + last.t_final,
        nfev=sum(r.nfev for _, _, r, _ in pieces), nsteps=sum(r.nsteps for _, _, r, _ in pieces),
        nrejected=sum(r.nrejected for _, _, r, _ in pieces), depth=last.depth,
        distance=np.concatenate(dist) if dist else None, singular_values=np.vstack(svs),
        trajectory=traj if last.trajectory is not None else None, point=last.point,
        collapse=last.collapse,
    )
    res.diagnostics["rank"] = np.concatenate(rank)
    res.records = {name: _stack(parts) for name, parts in recs.items()}
    for name in ("error", "rank_decay"):
        if hasattr(last, name):
            setattr(res, name, getattr(last, name))
    res.diagnostics["stall_gradient_evaluations"] = np.array(
        [s["evals"] for _, _, _, s in pieces], dtype=float)
    res.ranks = list(ranks)
    stalls = [s["stall"] for _, _, _, s in pieces if s["stall"] is not None]
    res.diagnostics["stall_normal_sigma"] = np.array([st["sigma"][0] for st in stalls])
    res.diagnostics["stall_tangent_norm"] = np.array([st["tangent_norm"] for st in stalls])
    return res
