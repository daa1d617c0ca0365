"""What both engines of the Riemannian flow (31) share: the start and target on M_k, the
collapse test of Remark 33, the recorded singular values and distances."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ..data import LinearData
from ..manifold import DeepLinearFixedRank, FixedRankPoint
from .system import FlowSystem, fixed_step_hint
from .targets import distance_to_target, real_array, real_point

__all__ = ["ManifoldFlowSystem", "parse_start"]


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

    def __init__(self, data: LinearData, depth: int, k: int, target: Any, collapse_tol: float,
                 s_ref: float):
        self.data = data
        self.depth = depth
        self.k = k
        self.m, self.n = data.d_y, data.d_x
        self.target = target
        self.collapse_tol = collapse_tol
        self.s_ref = s_ref
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
        """Collapse (Remark 33): min s < collapse_tol * max(s_ref, max s)."""
        s = self.singular_values(y)
        s_ref = max(self.s_ref, float(np.max(s)))
        i = int(np.argmin(s))
        if not s[i] < self.collapse_tol * s_ref:
            return None
        info = {"index": i, "value": float(s[i]), "reference": s_ref, "t": t}
        msg = (f"singular value s_{i + 1} = {info['value']:.3e} fell below collapse_tol * s_ref"
               f" = {self.collapse_tol:.1e} * {s_ref:.3e} at t = {t:.6g}: W(t) leaves M_k "
               "(Remark 33)")
        return "collapsed", msg, info

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
