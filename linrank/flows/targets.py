"""Targets of the flows: a matrix or a point whose Frobenius distance to W(t) is recorded."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..manifold import DeepLinearFixedRank, FixedRankPoint

__all__ = ["distance_to_target", "lowrank_norm", "parse_target"]


def lowrank_norm(L: np.ndarray, R: np.ndarray) -> float:
    """||L R^T||_F via thin QR of both factors (absolute error ~ eps ||L|| ||R||, no squaring)."""
    _, Rl = np.linalg.qr(L, mode="reduced")
    _, Rr = np.linalg.qr(R, mode="reduced")
    return float(np.linalg.norm(Rl @ Rr.T))


def distance_to_target(p: FixedRankPoint, target: Any) -> float:
    """||u diag(s) vt - target||_F for a dense target or a point (from factors for a point)."""
    if isinstance(target, FixedRankPoint):
        L = np.hstack((p.u * p.s, -(target.u * target.s)))
        R = np.hstack((p.vt.T, target.vt.T))
        return lowrank_norm(L, R)
    return float(np.linalg.norm(DeepLinearFixedRank.to_dense(p) - target))


def parse_target(target: object, d_y: int, d_x: int, as_point: bool) -> Any:
    """None, a checked (d_y, d_x) float matrix, or a point (a FixedRankPoint if ``as_point``,
    else its dense matrix)."""
    if target is None:
        return None
    if isinstance(target, (tuple, list)) and len(target) == 3 and np.ndim(target[1]) == 1:
        k = np.shape(target[1])[0]
        p = DeepLinearFixedRank(d_y, d_x, k).check_point(target)
        return FixedRankPoint(*(np.asarray(x, dtype=float) for x in p)) if as_point else \
            DeepLinearFixedRank.to_dense(p)
    T = np.asarray(target, dtype=float)
    if T.shape != (d_y, d_x):
        raise ValueError(f"target must be a (d_y, d_x) = {(d_y, d_x)} matrix, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError("target must be finite")
    return T
