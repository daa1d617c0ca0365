r"""The operator :math:`\mathcal{A}_W` of Definition 4 and its weights, in SVD coordinates.

For a point :math:`W = u\,\mathrm{diag}(s)\,v^T` of rank :math:`k` and depth :math:`N \ge 1`,

.. math::

    \mathcal{A}_W(Z) = \sum_{j=1}^N (WW^T)^{\frac{N-j}{N}}\, Z\, (W^TW)^{\frac{j-1}{N}}
    \qquad \text{(Definition 4, eq. (29) of Bah, Rauhut, Terstiege, Westdickenberg 2019)}

acts on a tangent vector :math:`\xi = u M v^T + U_p v^T + u V_p^T` blockwise:

* core block: :math:`M_{ik} \mapsto w_{ik} M_{ik}` with
  :math:`w_{ik} = \sum_{j=1}^N s_i^{2(N-j)/N} s_k^{2(j-1)/N}
  = \frac{s_i^2 - s_k^2}{s_i^{2/N} - s_k^{2/N}}`;
* side blocks: :math:`U_p \mapsto U_p\,\mathrm{diag}(p)`, :math:`V_p \mapsto V_p\,\mathrm{diag}(p)` with
  :math:`p_k = s_k^{2(N-1)/N}`;
* the normal space :math:`U_\perp (\cdot) V_\perp^T` is mapped to 0 when :math:`N \ge 2`.

Accuracy
--------
The weights are evaluated (:func:`core_weights_from_log`) as

.. math::

    w_{ik} = e^{(N-1) x_h}\;\frac{\mathrm{expm1}(-N\delta)}{\mathrm{expm1}(-\delta)},
    \qquad x = \tfrac{2}{N}\log s,\quad x_h = \max(x_i, x_k),\quad \delta = |x_i - x_k|,

which costs O(1) in the depth, never forms :math:`s^2` (no overflow below the largest float of the
result itself) and has no cancellation: the relative error is a few units of roundoff times
:math:`\max(1, |\log s|)`, measured <= 1.1e-14 against 60-digit mpmath sums for singular values in
[1e-8, 1e8], ratios :math:`s_i/s_k - 1` down to 1e-15 and depths 1 to 10^6 (tests/test_metric.py
asserts 1e-12).

What this layer offers the ones above
-------------------------------------
The weights (:func:`core_weights`, :func:`side_weights`, :func:`metric_weights`, a small cache
:class:`WeightCache`), :func:`apply_A` and :func:`apply_A_inverse` on tangent vectors
(:class:`linrank.fixedrank.TangentVector`), the inner product :func:`inner_product` and the dense
reference :func:`dense_A`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fixedrank import TangentVector

__all__ = [
    "check_depth",
    "core_weights",
    "core_weights_from_log",
    "side_weights",
    "metric_weights",
    "WeightCache",
    "apply_A",
    "apply_A_inverse",
    "inner_product",
    "dense_A",
]

# Below this value of delta the ratio (1 - e^-delta) / (1 - e^{-delta/N}) equals N to rounding
# (its first-order term is N * delta * (N - 1) / (2N) relative, < 1e-300).
_DELTA_TINY = 1e-290


def check_depth(depth: object) -> int:
    """Validate a depth N (a positive integer, Python or numpy) and return it as ``int``.

    Raises
    ------
    TypeError
        If ``depth`` is not an integer (bool and float are rejected, even 2.0).
    ValueError
        If ``depth < 1``.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise TypeError(
            f"depth must be a positive integer (number of layers N >= 1), got {depth!r}"
        )
    if depth < 1:
        raise ValueError(f"depth must be a positive integer (number of layers N >= 1), got {depth}")
    return int(depth)


def _check_s(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"singular values must be a 1-d array, got shape {s.shape}")
    if not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise ValueError("singular values must be finite and positive (a point of M_k has rank k)")
    return s


def side_weights(s: np.ndarray, depth: int) -> np.ndarray:
    r"""Weights :math:`p_k = s_k^{2(N-1)/N}` of :math:`\mathcal{A}_W` on the blocks U_p, V_p.

    Parameters
    ----------
    s : (k,) array of positive singular values of W.
    depth : the depth N >= 1.

    Returns
    -------
    (k,) array; all ones for N = 1. Computed as :math:`\exp(\frac{N-1}{N}\,2\log s_k)`, relative
    error a few ulps times :math:`\max(1, |\log s_k|)`.
    """
    depth = check_depth(depth)
    s = _check_s(s)
    if depth == 1:
        return np.ones_like(s)
    return np.exp((1.0 - 1.0 / depth) * 2.0 * np.log(s))


def core_weights(s: np.ndarray, depth: int) -> np.ndarray:
    r"""Weights :math:`w_{ik}` of :math:`\mathcal{A}_W` on the core block M (Definition 4).

    .. math::

        w_{ik} = \sum_{j=1}^N s_i^{2(N-j)/N} s_k^{2(j-1)/N}
               = \frac{s_i^2 - s_k^2}{s_i^{2/N} - s_k^{2/N}},\qquad w_{ii} = N s_i^{2(N-1)/N}.

    Evaluated in the cancellation-free, depth-independent form given in the module docstring;
    exact (to a few ulps) at equal and nearly equal singular values.

    Parameters
    ----------
    s : (k,) array of positive singular values.
    depth : the depth N >= 1.

    Returns
    -------
    (k, k) symmetric array with positive entries; all ones for N = 1.
    """
    depth = check_depth(depth)
    s = _check_s(s)
    if depth == 1:
        return np.ones((s.size, s.size))
    with np.errstate(invalid="ignore"):
        return core_weights_from_log(np.log(s), depth)


def core_weights_from_log(log_s: np.ndarray, depth: int) -> np.ndarray:
    r"""The core weights from :math:`\log s`, without input checks (the flows' hot path).

    .. math::

        w_{ik} = e^{(N-1) x_h}\,\frac{1 - e^{-N\delta}}{1 - e^{-\delta}},\qquad
        x = \tfrac{2}{N}\log s,\quad x_h = \max(x_i, x_k),\quad \delta = |x_i - x_k|,

    and :math:`w_{ii} = N s_i^{2(N-1)/N}`. The logarithm of the ratio has a derivative bounded by
    2 in :math:`N\delta`, so the absolute error of the difference of logarithms (a few ulps of
    :math:`|\log s|`) gives a relative error of the same size, whatever N; equal values are exact.
    ``log_s`` must be finite and ``depth`` a positive int (not checked). Emits an "invalid" floating
    point warning on the diagonal (0/0, replaced) unless called under ``np.errstate``.
    """
    x = (2.0 / depth) * np.asarray(log_s, dtype=float)
    delta = np.abs(np.subtract.outer(x, x))
    ratio = np.expm1(-depth * delta) / np.expm1(-delta)  # 0/0 where delta = 0: replaced
    ratio[delta < _DELTA_TINY] = float(depth)
    return np.exp((depth - 1.0) * np.maximum.outer(x, x)) * ratio


def metric_weights(s: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Both weight sets at once: ``(core_weights(s, N), side_weights(s, N))``."""
    return core_weights(s, depth), side_weights(s, depth)


class WeightCache:
    """The weights ``(w, p)`` of :func:`metric_weights` for the last few singular value vectors.

    Keyed by the bytes of s (optimizers evaluate many inner products at one point); at most
    ``size`` entries, the oldest dropped first. The returned arrays are read-only.
    :meth:`reciprocals` gives ``(1 / w, 1 / p)`` from the same cache, or None when a weight lies
    outside [1e-140, 1e140] (then :func:`inner_product`'s scaled form is needed).
    """

    def __init__(self, depth: int, size: int = 8):
        self.depth = check_depth(depth)
        self.size = int(size)
        self._store: dict[bytes, tuple] = {}

    def _entry(self, s: np.ndarray) -> tuple:
        key = np.ascontiguousarray(s, dtype=float).tobytes()
        hit = self._store.get(key)
        if hit is not None:
            return hit
        w = core_weights(s, self.depth)
        p = side_weights(s, self.depth)
        w.flags.writeable = False
        p.flags.writeable = False
        lo, hi = min(w.min(), p.min()), max(w.max(), p.max())
        rec = (1.0 / w, 1.0 / p) if 1e-140 <= lo and hi <= 1e140 else None
        if len(self._store) >= self.size:
            self._store.pop(next(iter(self._store)))
        entry = (w, p, rec)
        self._store[key] = entry
        return entry

    def __call__(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(core_weights(s, N), side_weights(s, N))``, read-only, from the cache if present."""
        w, p, _ = self._entry(s)
        return w, p

    def reciprocals(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(1 / w, 1 / p)`` when every weight lies in [1e-140, 1e140], else None."""
        return self._entry(s)[2]


def apply_A(w: np.ndarray, p: np.ndarray, t: Any) -> TangentVector:
    r""":math:`\mathcal{A}_W` on a tangent vector (Up, M, Vp) with weights (w, p): (Up p, w M, Vp p).

    Exact to a few ulps in the weights; O((m + n) k).
    """
    return TangentVector(t.Up * p, w * t.M, t.Vp * p)


def apply_A_inverse(w: np.ndarray, p: np.ndarray, t: Any) -> TangentVector:
    r""":math:`\mathcal{A}_W^{-1}` on the tangent space: (Up / p, M / w, Vp / p).

    The Riesz map of g (eq. (30)): :math:`g(a, b) = \langle \mathcal{A}_W^{-1} a, b\rangle_F`.
    """
    return TangentVector(t.Up / p, t.M / w, t.Vp / p)


def _colnorm_sq(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Column-wise inner products sum_i A_ij B_ij without an m x k temporary."""
    return np.einsum("ij,ij->j", A, B)


def inner_product(w: np.ndarray, p: np.ndarray, a: Any, b: Any) -> float:
    r""":math:`g_W(a, b) = \langle \mathcal{A}_W^{-1} a, b\rangle_F` (eq. (30)) from the weights.

    .. math::

        g_W(a, b) = \sum_{ik} \frac{M^a_{ik} M^b_{ik}}{w_{ik}}
            + \sum_k \frac{\langle U_p^a e_k, U_p^b e_k\rangle
                        + \langle V_p^a e_k, V_p^b e_k\rangle}{p_k}.

    When a weight lies outside [1e-140, 1e140] (singular values beyond about 1e+-70), the blocks
    are scaled by 1/sqrt(weight) before they are multiplied, so that neither the products nor the
    weights' reciprocals underflow or overflow (a further O((m + n) k) copy). O((m + n) k).
    """
    lo, hi = min(w.min(), p.min()), max(w.max(), p.max())
    if 1e-140 <= lo and hi <= 1e140:
        side = _colnorm_sq(a.Up, b.Up) + _colnorm_sq(a.Vp, b.Vp)
        return float(np.sum(a.M * b.M / w) + side @ (1.0 / p))
    rw, rp = np.sqrt(w), np.sqrt(p)
    core = np.sum((a.M / rw) * (b.M / rw))
    side = _colnorm_sq(a.Up / rp, b.Up / rp) + _colnorm_sq(a.Vp / rp, b.Vp / rp)
    return float(core + side.sum())


def _sym_power(C: np.ndarray, power: float) -> np.ndarray:
    """C^power for symmetric PSD C by eigendecomposition, with 0^0 = I (the paper's convention)."""
    lam, Q = np.linalg.eigh(C)
    lam = np.clip(lam, 0.0, None)
    if power == 0:
        return np.eye(C.shape[0])
    tol = lam.max(initial=0.0) * C.shape[0] * np.finfo(float).eps
    lp = np.where(lam > tol, lam, 0.0) ** power
    return (Q * lp) @ Q.T


def dense_A(W: np.ndarray, Z: np.ndarray, depth: int) -> np.ndarray:
    r"""Reference :math:`\mathcal{A}_W(Z)` from the dense fractional powers of Definition 4.

    O(N (m^3 + n^3)): for tests and small checks only. :math:`(\cdot)^0 = I`.
    """
    depth = check_depth(depth)
    WWt = W @ W.T
    WtW = W.T @ W
    out = np.zeros_like(Z, dtype=float)
    for j in range(1, depth + 1):
        out += _sym_power(WWt, (depth - j) / depth) @ Z @ _sym_power(WtW, (j - 1) / depth)
    return out
