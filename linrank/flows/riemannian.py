r"""The Riemannian gradient flow (31) on M_k: the public entry point :func:`manifold_flow`, which
picks one of the engines (:mod:`linrank.flows.chain`, :mod:`linrank.flows.factored`,
:mod:`linrank.flows.projected`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import LinearData, as_data
from ..metric import check_depth
from .chain import ChainSystem
from .factored import FactoredSystem
from .integrator import integrate
from .manifold_base import parse_start
from .options import check_option_names, check_t_end, parse_options, positive_number
from .projected import ProjectedSystem
from .result import FlowResult
from .targets import parse_target

__all__ = ["CHAIN_DEPTH_LIMIT", "CHAIN_MAX_DEPTH", "ENGINES", "OWN", "check_collapse_tol", "check_start_shape",
           "choose_engine", "manifold_engine", "manifold_flow"]

#: the engines of manifold_flow by name
ENGINES = {"factored": FactoredSystem, "projected": ProjectedSystem, "chain": ChainSystem}


def manifold_flow(
    X: object, Y: object, W0: object, depth: int, t_end: float, *, rank: int | None = None,
    collapse_tol: float | None = None, target: object = None, covariance: bool = False,
    yy: float | None = None, form: str = "auto", engine: str = "auto", **options: Any,
) -> FlowResult:
    r"""Integrate the Riemannian gradient flow (31) :math:`\dot W = -\mathcal{A}_W(\nabla L^1(W))`.

    On M_k with the metric of depth N (Definition 4); by Corollary 8 this is the flow of the
    product :math:`W_N \cdots W_1` under (5) from balanced factors. In SVD coordinates

    .. math::

        \dot W = -\big(u\,(w \circ M)\,v^T + U_p\,\mathrm{diag}(p)\,v^T
                      + u\,(V_p\,\mathrm{diag}(p))^T\big),

    with :math:`M = u^T G v`, :math:`U_p = (I - uu^T) G v`, :math:`V_p = (I - vv^T) G^T u`,
    G = grad L^1(W) applied only through the data products, and the weights w, p of
    :mod:`linrank.metric`.

    Parameters
    ----------
    X, Y : data (d_x x n, d_y x n; Y None for Y = X) or covariances with ``covariance=True``,
        or a LinearData as X. With ``form="auto"`` samples are turned into X X^T, Y X^T when
        d_x <= n (cheaper products).
    W0 : the start, a dense (d_y, d_x) array (k = numerical rank unless ``rank``) or a point
        (u, s, vt) with orthonormal u, vt and s > 0.
    depth : N >= 1 (N = 1: the Euclidean flow projected to M_k).
    t_end : final time >= 0.
    rank : the rank k for a dense W0 (its k-th singular value must be positive).
    collapse_tol : None (default) or a number in (0, 1): the run also stops with status
        "collapsed" when the smallest singular value falls below ``collapse_tol`` times its own
        peak so far. Without it, "collapsed" means only that the state left M_k (s_k underflowed
        to 0, or for N = 1 fell to the rounding level of s_1); a flow that approaches a critical
        point of lower rank runs to t_end and says so in ``message`` and ``rank_decay``
        (:mod:`linrank.flows.manifold_base`: the one collapse rule of every flow on M_k).
    target : a d_y x d_x matrix or a point; ||W(t) - target||_F is recorded (from factors, error
        ~eps ||W||, for a point target).
    engine : "auto" (default: "chain" for 2 <= N <= :data:`CHAIN_MAX_DEPTH` with RK45,
        "factored" for other N >= 2 and methods, "projected" for N = 1), "chain" (a balanced
        chain of N factors of width k, :mod:`linrank.flows.chain`: follows singular values far
        below eps s_1 to relative accuracy, cost per evaluation growing with N; N >= 2),
        "factored" (the dynamical low-rank ODE in factors u S v^T, Koch-Lubich; cost independent
        of N, resolves s_k / s_1 down to ~1e-12; N >= 2 only, since for N = 1 its right-hand
        side divides by the singular values) or "projected" (projected Runge-Kutta with
        truncated SVDs of low-rank sums; any N). See the package docstring.
    **options : see the package docstring.

    Returns
    -------
    FlowResult with ``point`` (final (u, s, vt)), ``W``, ``singular_values``.

    Accuracy: RK45 keeps each step's local error below ``atol sqrt(d_x d_y) + rtol ||W||_F``
    in Frobenius norm; the chain engine also keeps the relative change of every singular value
    of every factor below rtol per step, so tiny singular values (and the time of an escape from
    a critical point of lower rank) keep a relative accuracy. Memory O((d_x + d_y) k) beyond
    the data (the chain: O((d_x + d_y) k + N k^2)), cost per right-hand side O((d_x + d_y) k^2
    + products with the data), independent of the depth for the factored engine, growing like
    N for the chain.

    Raises
    ------
    TypeError, ValueError
        Non-finite data or W0, sample counts that differ, W0 of the wrong shape or rank 0,
        a negative t_end, bad options.
    """
    N = check_depth(depth)
    t_end = check_t_end(t_end)
    opts = parse_options(t_end, **check_option_names("manifold_flow", options, OWN))
    engine_cls = manifold_engine(engine, N, opts.method)
    ct = check_collapse_tol(collapse_tol)
    data = as_data(X, Y, covariance=covariance, form=form, yy=yy)
    if engine_cls is ChainSystem and type(data).point_products is not LinearData.point_products:
        # data whose products are overridden (a wrapper) are only known at orthonormal factors
        if engine == "chain":
            raise ValueError("engine='chain' needs plain LinearData (its products at factors "
                             f"that are not orthonormal); {type(data).__name__} overrides "
                             "point_products: use engine='factored'")
        engine_cls = choose_engine("auto", N)
    check_start_shape(W0, data, covariance)
    p = parse_start(W0, data.d_y, data.d_x, N, rank)
    tgt = parse_target(target, data.d_y, data.d_x, as_point=True)
    system = engine_cls(data, N, p.s.size, tgt, ct, p.s.copy())
    if isinstance(system, ChainSystem):
        system.balance_tol = float(opts.rtol)
        system.relative_control = True
    return integrate(system, system.initial_state(p), t_end, opts)


#: the largest depth at which manifold_flow's engine="auto" integrates the balanced chain
#: (cost per evaluation growing like N; BENCHMARKS.md "Tiny singular values")
CHAIN_MAX_DEPTH = 8
#: the largest depth at which engine="chain" is accepted: the chain holds N - 2 inner k x k
#: factors and its time grows faster than N (5 x 5 data, k = 2, t_end = 0.2: 0.44 s at N = 100,
#: 26 s at N = 1000); beyond it the factored engine, whose cost does not depend on N, is the way
CHAIN_DEPTH_LIMIT = 1000


def manifold_engine(engine: object, depth: int, method: str) -> type:
    """The engine class of manifold_flow: "chain" on request (N >= 2), and for "auto" with
    RK45 (whose error control then follows tiny singular values) at 2 <= N <=
    :data:`CHAIN_MAX_DEPTH`; else :func:`choose_engine` (factored for N >= 2, projected for
    N = 1)."""
    if engine == "chain":
        if depth < 2:
            raise ValueError("engine='chain' needs depth N >= 2 (a chain of N factors); use "
                             "'projected' or 'auto' for N = 1")
        if depth > CHAIN_DEPTH_LIMIT:
            raise ValueError(f"engine='chain' at depth {depth}: the chain of N factors is refused "
                             f"above N = {CHAIN_DEPTH_LIMIT} (its cost grows faster than N); use "
                             "engine='factored' or 'auto', whose cost does not depend on N")
        return ChainSystem
    cls = choose_engine(engine, depth)
    if engine == "auto" and 2 <= depth <= CHAIN_MAX_DEPTH and method == "RK45":
        return ChainSystem
    return cls


def choose_engine(engine: object, depth: int) -> type:
    """The engine class for ``engine`` ("auto", "factored", "projected") at this depth."""
    if not isinstance(engine, str) or engine not in ("auto", "factored", "projected"):
        raise ValueError(f"engine must be 'auto', 'factored', 'projected' (or, for manifold_flow "
                         f"and riemannian_flow, 'chain'), got {engine!r}")
    if engine == "auto":
        engine = "factored" if depth >= 2 else "projected"
    if engine == "factored" and depth < 2:
        raise ValueError("engine='factored' needs depth N >= 2 (for N = 1 its right-hand side "
                         "divides by the singular values); use 'projected' or 'auto'")
    return ENGINES[engine]


#: manifold_flow's own keywords (for the "did you mean" of a misspelt one)
OWN = ("rank", "collapse_tol", "target", "covariance", "yy", "form", "engine")


def check_start_shape(W0: object, data: Any, covariance: bool) -> None:
    """A dense W0 whose shape differs from the data's (d_y, d_x): ValueError naming the data (X or
    Y) that disagree with W0, since a transposed X or Y is the usual cause."""
    if isinstance(W0, (tuple, list)) and len(W0) == 3 and np.ndim(W0[1]) == 1:
        shape = (np.shape(W0[0])[0] if np.ndim(W0[0]) == 2 else None,
                 np.shape(W0[2])[1] if np.ndim(W0[2]) == 2 else None)
    elif np.ndim(W0) == 2:
        shape = np.shape(W0)
    else:
        return
    names = []
    if shape[1] is not None and shape[1] != data.d_x:
        names.append(f"X gives d_x = {data.d_x} rows")
    if shape[0] is not None and shape[0] != data.d_y:
        names.append(f"Y gives d_y = {data.d_y} rows" if not data.autoencoder else
                     f"X (Y = X) gives d_y = {data.d_y} rows")
    if names:
        form = ("covariances X := X X^T (d_x x d_x), Y := Y X^T (d_y x d_x)" if covariance
                else "X is d_x x n and Y is d_y x n, one column per sample")
        raise ValueError(
            f"the data do not fit W0 of shape {tuple(shape)} (W0 is d_y x d_x): "
            f"{' and '.join(names)} ({form}); is X or Y transposed?")


def check_collapse_tol(collapse_tol: object) -> float | None:
    """collapse_tol as None or a float in (0, 1)."""
    if collapse_tol is None:
        return None
    ct = positive_number("collapse_tol", collapse_tol, allow_none=False)
    if ct >= 1:
        raise ValueError(f"collapse_tol must be < 1, got {ct}")
    return ct
