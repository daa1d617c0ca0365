"""Targets of the flows: a matrix or a point whose Frobenius distance to W(t) is recorded."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..manifold import DeepLinearFixedRank, FixedRankPoint

__all__ = ["distance_to_target", "lowrank_norm", "parse_target", "real_array",
           "real_point"]


def real_array(name: str, x: object) -> np.ndarray:
    """``x`` as a float array; TypeError naming ``name`` for complex or non-numeric input (a
    complex array is never cut to its real part)."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a real array, got {type(x).__name__}")
    a = np.asarray(x)
    if np.iscomplexobj(a):
        raise TypeError(f"{name} must be real, got a complex array (dtype {a.dtype})")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        try:
            a = a.astype(float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a real array, got dtype {a.dtype}: {exc}") from exc
    return np.asarray(a, dtype=float)


def real_point(name: str, p: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three parts of a point (u, s, vt) as float arrays (:func:`real_array`)."""
    return tuple(real_array(f"{name}[{i}] ({part})", x)
                 for i, (part, x) in enumerate(zip(("u", "s", "vt"), p)))


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
        p = DeepLinearFixedRank(d_y, d_x, k).check_point(real_point("target", target))
        return FixedRankPoint(*(np.asarray(x, dtype=float) for x in p)) if as_point else \
            DeepLinearFixedRank.to_dense(p)
    T = real_array("target", target)
    if T.shape != (d_y, d_x):
        raise ValueError(f"target must be a (d_y, d_x) = {(d_y, d_x)} matrix, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError("target must be finite")
    return T
