r"""What both engines of the Riemannian flow (31) share: the start and target on M_k, the
collapse rule, the note on a decaying singular value, the recorded singular values and distances.

The collapse rule, one for every flow on M_k (:func:`~linrank.flows.manifold_flow`,
:func:`~linrank.flows.riemannian_flow`, both engines): the run ends with status "collapsed" only
where the state leaves M_k,

(a) the smallest singular value s_k of an accepted state is 0 or below the smallest normal float
    (underflow: W has rank < k in floating point), or
(b) N = 1, where the singular vectors move at speed ~ ||grad|| / s_k (the flow reaches the
    boundary of M_k in finite time): s_k <= max(m, n) eps s_1, the numerical-rank tolerance by
    which a start of rank k is accepted, after s_k fell to below half its peak, or
(c) only if ``collapse_tol`` is given: s_k < collapse_tol max_{tau <= t} s_k(tau), i.e. s_k
    fell by that factor from its own peak, or
(d) the factored engine: det S of W = u S v^T changed sign between accepted steps. On M_k it
    cannot (u, v move continuously, the re-orthonormalization keeps their orientation): a step
    whose error tolerance exceeds s_k carried it across 0, through a matrix of rank < k (e.g.
    N = 2, where s_k decays exponentially to the tolerance level). The chain engine (N >= 3):
    the sign of det W_j of an inner k x k factor changed (each has singular values s^(1/N) > 0
    on M_k; computed by LU, right while s_k^(1/N) > ~k eps s_1^(1/N)). The projected engine's
    points carry no orientation: there such a crossing is stepped over.

No run whose s_k did not fall is stopped: (a) and (d) need s_k to reach 0 (or the error
tolerance), (b) and (c) compare s_k with its own past. For N >= 2 nothing is divided by s_k
(:mod:`linrank.flows.factored`), so a flow that approaches a critical point of lower rank (s_k ->
0 like a power of t for N >= 3, exponentially for N = 2) is integrated to t_end and says so:
when s_k fell by 1e3 from its peak and still falls at the end (by 2 over the last half of the fall), the message and
``FlowResult.rank_decay`` give the decay law fitted on the last half of the fall
(:func:`decay_law`). When s_k / s_1 falls below the engine's resolution (:meth:`resolution`:
:data:`RESOLUTION` = 1e-12 for the factored and projected engines, which hold s in a k x k core
with absolute rounding eps s_1; 1e-12^N for the chain engine, whose factors hold s^(1/N)), the
message also says that from there the k-th singular pair is resolved only to rounding: what
follows from it, e.g. the time of an escape from a critical point of lower rank, is not accurate
(measured in docs/theory.rst, "Tiny singular values").
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ..data import LinearData
from ..manifold import DeepLinearFixedRank, FixedRankPoint
from .system import FlowSystem, fixed_step_hint
from .targets import distance_to_target, real_array, real_point

__all__ = ["ManifoldFlowSystem", "decay_law", "parse_start"]

_TINY = float(np.finfo(float).tiny)

#: below this s_k / s_1 the k-th singular pair of a state is resolved only to rounding: the
#: message says so (the k x k core is held to an absolute eps s_1; docs/theory.rst, family B)
RESOLUTION = 1e-12


def decay_law(t: np.ndarray, s: np.ndarray) -> dict | None:
    r"""The decay law of a falling positive series s(t) (a singular value over time).

    On the last half (in time) of the fall, from the peak of s to the end (at least 4 points),
    fits :math:`\log s = a - r t` (exponential, rate r) and :math:`\log s = a - q \log t`
    (power law, exponent q; t > 0) by least squares and keeps the one with the smaller residual.
    Returns None when s did not fall by 1e3 from its peak, or by 2 over the fitted window, or
    rises over the window's last quarter; else a dict with ``law`` ("exponential" or "power"),
    ``rate`` and ``exponent`` (both fits), ``residual`` (RMS of the kept fit in log s),
    ``t_peak``, ``peak``, ``t_window`` (the fitted interval) and ``value`` (s at the end).
    """
    t = np.asarray(t, dtype=float)
    s = np.asarray(s, dtype=float)
    if t.size < 5 or not np.all(s > 0):
        return None
    p = int(np.argmax(s))
    if not s[-1] <= 1e-3 * s[p]:
        return None
    sel = np.flatnonzero((t >= 0.5 * (t[p] + t[-1])) & (t > 0))
    if sel.size < 4:
        sel = np.arange(max(p, t.size - 4), t.size)
        sel = sel[t[sel] > 0]
    if sel.size < 4:
        return None
    tt, ls = t[sel], np.log(s[sel])
    q4 = sel[-max(2, sel.size // 4):]
    if s[q4[-1]] >= s[q4[0]] or not s[sel[-1]] <= 0.5 * s[sel[0]]:
        return None
    fits = {}
    for law, x in (("exponential", tt), ("power", np.log(tt))):
        A = np.column_stack((np.ones_like(x), x))
        coef, *_ = np.linalg.lstsq(A, ls, rcond=None)
        fits[law] = (-float(coef[1]), float(np.sqrt(np.mean((A @ coef - ls) ** 2))))
    law = min(fits, key=lambda k: fits[k][1])
    return {"law": law, "rate": fits["exponential"][0], "exponent": fits["power"][0],
            "residual": fits[law][1], "t_peak": float(t[p]), "peak": float(s[p]),
            "t_window": (float(tt[0]), float(tt[-1])), "value": float(s[-1])}


def parse_start(W0: object, d_y: int, d_x: int, depth: int, rank: int | None) -> FixedRankPoint:
    """The start of manifold_flow as a point (u, s, vt) of M_k: from a point (checked) or from a
    dense W0 by its SVD (k = its numerical rank, or ``rank``)."""
    if isinstance(W0, (tuple, list)) and len(W0) == 3 and np.ndim(W0[1]) == 1:
        if rank is not None and rank != np.shape(W0[1])[0]:
            raise ValueError(f"rank = {rank} differs from the point's rank {np.shape(W0[1])[0]}")
        k = np.shape(W0[1])[0]
        if k == 0:
            raise ValueError("W0 has rank 0: the flow needs a point of M_k with k >= 1")
        man = DeepLinearFixedRank(d_y, d_x, k, depth)
        parts = real_point("W0", W0)
        try:
            p = man.check_point(parts)
        except ValueError as exc:
            raise ValueError(f"W0 is not a valid point (u, s, vt) for data {d_y} x {d_x}: {exc}") \
                from exc
        return FixedRankPoint(*(np.array(x, dtype=float) for x in p))
    if isinstance(W0, (str, bytes)) or W0 is None:
        raise TypeError(f"W0 must be a (d_y, d_x) array or a point (u, s, vt), got {W0!r}")
    Wd = real_array("W0", W0)
    if Wd.shape != (d_y, d_x):
        raise ValueError(f"W0 must have shape (d_y, d_x) = {(d_y, d_x)}, got {Wd.shape}")
    if not np.all(np.isfinite(Wd)):
        raise ValueError("W0 must be finite")
    u, s, vt = np.linalg.svd(Wd, full_matrices=False)
    tol = max(Wd.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    num_rank = int(np.sum(s > tol))
    if rank is None:
        k = num_rank
    else:
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        k = int(rank)
        if k > num_rank:
            raise ValueError(f"rank = {k} exceeds the numerical rank {num_rank} of W0")
    if k == 0:
        raise ValueError("W0 has rank 0 (it is zero): the flow needs a point of M_k, k >= 1")
    return FixedRankPoint(u[:, :k].copy(), s[:k].copy(), vt[:k].copy())


class ManifoldFlowSystem(FlowSystem):
    """Base of the engines of the flow (31): data, depth, rank, target and the collapse test.

    A subclass provides the state representation and :meth:`singular_values` / :meth:`point`
    of a state; this class turns them into the records (``singular_values``, ``distance``), the
    final ``point`` and the collapse stop (Remark 33).
    """

    name = "manifold"
    engine = "manifold"
    #: what carries the orientation of a state (collapse rule (d))
    orientation_name = "det S"

    def __init__(self, data: LinearData, depth: int, k: int, target: Any,
                 collapse_tol: float | None, s0: Any):
        self.data = data
        self.depth = depth
        self.k = k
        self.m, self.n = data.d_y, data.d_x
        self.target = target
        self.collapse_tol = collapse_tol
        #: the smallest singular value at the start (the first peak of the collapse rule)
        self.s_min0 = float(np.min(s0))
        self.loss_scale = 0.0 if data.yy is None else 0.5 * data.yy
        # the data products' orientations, fixed for the whole run (bit-identical resume)
        # (data without a choice of orientation, e.g. a problem's own products or a wrapper whose
        # point_products takes no orientations: none to pin)
        choose = getattr(data, "product_orientations", None)
        takes = "orientations" in inspect.signature(data.point_products).parameters
        self.orientations = choose(k) if choose is not None and takes else {}

    def singular_values(self, y: Any) -> np.ndarray:
        """The singular values s of the state (may be a view)."""
        raise NotImplementedError

    def point(self, y: Any) -> FixedRankPoint:
        """The state as an independent point (u, s, vt)."""
        raise NotImplementedError

    def diagnostics(self, y: Any) -> dict:
        out = {"singular_values": self.singular_values(y).copy()}
        if self.target is not None:
            out["distance"] = distance_to_target(self.point(y), self.target)
        return out

    def check_stop(self, y: Any, t: float) -> tuple[str, str, dict] | None:
        """The collapse rule (module docstring) at the accepted point y (time t)."""
        s = self.singular_values(y)
        i = int(np.argmin(s))
        sk, s1 = float(s[i]), float(np.max(s))
        st = self.run_state
        peak = max(st.get("s_peak", self.s_min0), sk)
        st["s_peak"] = peak
        if s1 > 0 and sk / s1 < st.get("ratio_min", np.inf):
            st["ratio_min"], st["t_ratio_min"] = sk / s1, float(t)
        info = {"index": i, "value": sk, "peak": peak, "t": t}
        sign = self._orientation(y)
        if sign is not None and sign != st.setdefault("orientation", sign):
            why = (f"{self.orientation_name} changed sign: the computed trajectory passed through "
                   "a matrix of rank "
                   f"< k within the last step (s_{i + 1} = {sk:.3e} was below the step's error "
                   "tolerance and the step carried it across 0), which the exact flow on M_k, "
                   "keeping the sign, never does; smaller rtol/atol follow it further")
        elif not sk >= _TINY:
            why = (f"s_{i + 1} = {sk:.3e} underflowed (below the smallest normal float): W(t) has "
                   "rank < k in floating point and leaves M_k")
        elif (self.depth == 1 and sk <= max(self.m, self.n) * np.finfo(float).eps * s1
              and sk < 0.5 * peak):
            why = (f"s_{i + 1} = {sk:.3e} fell to the rounding level of s_1 = {s1:.3e} (max(m, n)"
                   " eps s_1): for N = 1 the singular vectors move at speed ~ |grad| / s_k, the "
                   "flow leaves M_k")
        elif self.collapse_tol is not None and sk < self.collapse_tol * peak:
            why = (f"s_{i + 1} = {sk:.3e} fell below collapse_tol = {self.collapse_tol:.1e} times "
                   f"its peak {peak:.3e}")
        else:
            return None
        return "collapsed", f"{why} at t = {t:.6g} (Remark 33)", info

    def resolution(self) -> tuple[float, str]:
        """The s_k / s_1 below which the state resolves the k-th singular pair only to rounding
        (relative error of s_k above ~1e-4), and why: :data:`RESOLUTION` for states that hold
        the singular values in a k x k core (absolute rounding eps s_1)."""
        return RESOLUTION, "absolute eps s_1 in the k x k core"

    def _orientation(self, y: Any) -> float | None:
        """sign det S of a factored state u S v^T (u, v move continuously and the
        re-orthonormalization keeps their orientation, so on M_k the sign never changes), or
        None for states without a core (the projected engine's points (u, s, vt))."""
        views = getattr(self, "views", None)
        if views is None:
            return None
        return float(np.linalg.slogdet(views(y)[1])[0])

    def summary(self, result: Any) -> tuple[str, dict] | None:
        """The notes on a smallest singular value that decays and on one that fell below the
        resolution of the state (module docstring)."""
        note, info = "", {}
        S = result.singular_values
        law = None
        if S is not None and S.shape[0] >= 5 and result.status != "collapsed":
            law = decay_law(result.t, S.min(axis=1))
        k = self.k
        if law is not None:
            fit = (f"like t^-{law['exponent']:.3g}" if law["law"] == "power"
                   else f"like exp(-{law['rate']:.3g} t)")
            a, b = law["t_window"]
            note = (f"; s_{k} fell from {law['peak']:.3e} (t = {law['t_peak']:.6g}) to "
                    f"{law['value']:.3e} and decays {fit} (fitted on [{a:.6g}, {b:.6g}]): W(t) "
                    f"approaches a critical point of rank < {k}")
            info.update(law)
        ratio = self.run_state.get("ratio_min", np.inf)
        limit, how = self.resolution()
        if k > 1 and ratio < limit:
            t_r = self.run_state["t_ratio_min"]
            note += (f"; s_{k} / s_1 fell to {ratio:.1e} (t = {t_r:.6g}): below ~{limit:.0e} "
                     f"the state resolves the {k}-th singular pair only to rounding ({how}), so "
                     "what follows from it (e.g. an escape from a critical point of lower rank, "
                     "and its time) is not accurate")
            info.update({"ratio_min": ratio, "t_ratio_min": t_r})
        return (note, info) if note else None

    def callback_name(self) -> str:
        problem = getattr(self.data, "problem", None)
        if problem is None:
            return "the data products"
        return (f"the problem's cost/gradient ({type(problem).__name__}: gradient_products, or "
                "cost and riemannian_gradient)")

    def nonfinite_hint(self) -> str:
        problem = getattr(self.data, "problem", None)
        return "" if problem is None else f" (values from {self.callback_name()})"

    def final(self, y: Any) -> dict:
        return {"point": self.point(y)}

    def identity(self) -> tuple[list[np.ndarray], tuple]:
        tgt = self.target
        arrays = [] if tgt is None else (list(tgt) if isinstance(tgt, FixedRankPoint) else [tgt])
        return (self.data.fingerprint_arrays() + arrays,
                (self.data.form, self.m, self.n, self.depth, self.k, self.collapse_tol,
                 self.engine))

    def point_products(self, u: np.ndarray, s: np.ndarray, vt: np.ndarray):
        """The data's ``(G v, G^T u, loss)`` with the run's pinned orientations (if any)."""
        if self.orientations:
            return self.data.point_products(u, s, vt, self.orientations)
        return self.data.point_products(u, s, vt)

    def pinned(self) -> dict[str, str]:
        return dict(self.orientations)

    def pin(self, choices: dict[str, str]) -> None:
        self.orientations = {name: choices.get(name, "direct") for name in self.orientations}

    def trajectory_item(self, a: np.ndarray) -> FixedRankPoint:
        return self.point(self.from_array(a))

    def stiffness_hint(self) -> str:
        return (f". The flow (31) is stiff on this time scale: the core weights of A_W are "
                f"w_ii = N s_i^(2(N-1)/N) (N = {self.depth}), so the singular values relax at "
                "rates ~ N s^(2(N-1)/N) lambda(XX^T), and an explicit step cannot be longer than "
                "~3 / rate; data scaled by c speed the flow up by c^2 (the flow of c X at time t "
                "is the flow of X at time c^2 t)")

    def divergence_hint(self, method: str) -> str:
        return fixed_step_hint(method)
