r"""The Riemannian gradient flow of any pymanopt Problem on DeepLinearFixedRank:
:func:`riemannian_flow`, the engines of :func:`~linrank.flows.manifold_flow` with the problem's
loss (through :class:`linrank.flows.problem_data.ProblemData`) in place of the data of :math:`L^1`."""

from __future__ import annotations

from typing import Any

import pymanopt

from ..problems.base import FactorizationProblem
from .chain import ChainSystem, chain_is_cheaper
from .integrator import integrate
from .manifold_base import parse_start
from .options import check_option_names, check_t_end, parse_options
from .problem_data import ProblemData
from .result import FlowResult
from .riemannian import check_collapse_tol, choose_engine
from .targets import parse_target

__all__ = ["riemannian_flow"]


def riemannian_flow(
    problem: pymanopt.Problem, x0: object, t_end: float, *, collapse_tol: float | None = None,
    target: object = None, engine: str = "auto", **options: Any,
) -> FlowResult:
    r"""The Riemannian gradient flow :math:`\dot x = -\operatorname{grad} f(x)` of any pymanopt
    Problem on :class:`~linrank.DeepLinearFixedRank`.

    With the manifold's depth N and rank k this is :math:`\dot W = -\mathcal{A}_W(P_T\nabla f(W))`
    on :math:`\mathcal{M}_k` (eq. (31) with the loss f in place of :math:`L^1`): by the chain-rule
    argument of Corollary 8, the end-to-end matrix of the layer-wise gradient flow of
    :math:`f(W_N\cdots W_1)` from balanced factors (:func:`~linrank.flows.factor_flow` with the
    problem). Same integrators, engines, options, result, checkpoints, interrupts, progress bar
    and collapse handling as :func:`~linrank.flows.manifold_flow` (package docstring); the cost
    per right-hand side is one evaluation of the problem's gradient products plus
    O((m + n) k^2 + k^3), independent of N.

    Parameters
    ----------
    problem : a :class:`pymanopt.Problem` on a DeepLinearFixedRank (m x n, rank k, depth N):
        :func:`linrank.matrix_completion_problem`, :func:`linrank.matrix_sensing_problem`,
        :func:`linrank.least_squares_problem`, :func:`linrank.ambient_problem`,
        :func:`linrank.autograd_problem`, or any problem whose Riemannian gradient the manifold
        computes (pymanopt's autodiff costs of (u, s, vt) included: then
        :math:`P_T\nabla f = \mathcal{A}_W^{-1}\operatorname{grad} f` is recovered from it).
    x0 : the start, a point (u, s, vt) of rank k or a dense m x n array of numerical rank k.
    t_end : final time >= 0.
    collapse_tol, target, **options : as in :func:`~linrank.flows.manifold_flow`.
    engine : as in :func:`~linrank.flows.manifold_flow`, plus "chain": a balanced chain of N
        factors of width k (:mod:`linrank.flows.chain`), the same flow by Corollary 8, without a
        k x k SVD per evaluation but with a cost growing with N; for completion and sensing
        problems only. "auto" (default) takes it with RK45 where it is expected to be cheaper
        (:func:`linrank.flows.chain.chain_is_cheaper`: small N against k; N <= 9 at
        m = n = k = 30, N <= 6 at 120 x 120, k = 10), else the factored engine (N >= 2) or the
        projected one (N = 1). The engines agree to within the integration tolerance.

    Returns
    -------
    FlowResult with ``point``, ``W``, ``singular_values``; ``loss`` is f.

    Accuracy: as manifold_flow, RK45 keeps each step's local error below
    ``atol sqrt(m n) + rtol ||W||_F`` in Frobenius norm. For the least-squares loss the general
    route costs more per right-hand side than manifold_flow's data products (BENCHMARKS.md,
    "Riemannian flow of any loss", section 3), so manifold_flow stays the fast path there.

    Raises
    ------
    TypeError, ValueError
        Not a problem on a DeepLinearFixedRank; x0 of the wrong shape, rank or not finite; bad
        options; a misspelt keyword (TypeError naming the nearest valid one). A loss that is not
        finite at x0, or a callback that raises there, raises; later, a non-finite loss or
        gradient or an exception of the problem's callbacks ends the run with status "failed"
        (the trajectory so far kept, the exception in ``error``).
    """
    data = ProblemData(problem)
    man = data.manifold
    N, k = man.depth, man.k
    t_end = check_t_end(t_end)
    opts = parse_options(t_end, **check_option_names("riemannian_flow", options,
                                                     ("collapse_tol", "target", "engine")))
    engine_cls = _problem_engine(engine, data, N, opts.method)
    ct = check_collapse_tol(collapse_tol)
    p = parse_start(x0, data.d_y, data.d_x, N, None)
    if p.s.size != k:
        raise ValueError(f"x0 has rank {p.s.size}, the problem's manifold has rank k = {k}: start "
                         "on M_k (truncate a dense start yourself if that is what you want)")
    data.start = p
    tgt = parse_target(target, data.d_y, data.d_x, as_point=True)
    system = engine_cls(data, N, k, tgt, ct, p.s.copy())
    if isinstance(system, ChainSystem):
        system.balance_tol = float(opts.rtol)
    return integrate(system, system.initial_state(p), t_end, opts)


def _problem_engine(engine: object, data: ProblemData, depth: int, method: str) -> type:
    """The engine of riemannian_flow: choose_engine's, plus "chain" (explicit request, or
    "auto" with RK45 on a FactorizationProblem where :func:`chain_is_cheaper`)."""
    if engine == "chain":
        if depth < 2:
            raise ValueError("engine='chain' needs depth N >= 2 (a chain of N factors)")
        if not isinstance(data.problem, FactorizationProblem):
            raise ValueError("engine='chain' needs a matrix_completion_problem or "
                             "matrix_sensing_problem (products with the full gradient at any "
                             f"factors), got {type(data.problem).__name__}")
        return ChainSystem
    cls = choose_engine(engine, depth)
    man = data.manifold
    if (engine == "auto" and method == "RK45" and isinstance(data.problem, FactorizationProblem)
            and chain_is_cheaper(man.m, man.n, man.k, depth)):
        return ChainSystem
    return cls
