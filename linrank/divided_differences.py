r"""Daleckii-Krein divided differences: the weights of :math:`\mathcal{A}_W` and its derivative.

The coefficients of the derivative :math:`D_\xi \mathcal{A}_W` along :math:`\mathcal{M}_k` are
divided differences of :math:`\varphi(t) = t^N` at the points :math:`x = s^{2/N}` and 0 (see
:mod:`linrank.connection`, which uses them, and ``docs/theory.rst``, section "Daleckii-Krein
divided differences"): :func:`divided_difference_weights` returns them all for a point,
:func:`second_divided_difference` evaluates :math:`\varphi[x_a, x_b, x_c]` scale-free.

Accuracy
--------
The divided differences are evaluated without cancellation and in O(1) in N: with
:math:`\rho = (s_{mid}/s_{hi})^{2/N}`, :math:`\rho' = (s_{lo}/s_{hi})^{2/N}` (sorted points),
:math:`\varphi[x, y, z] = x_{hi}^{N-2}\, h_{N-2}(1, \rho, \rho')` and

* if :math:`s_{hi}/s_{lo} \ge e^{1/2}`: :math:`h_{N-2}(1,\rho,\rho') =
  (h_{N-1}(1,\rho) - h_{N-1}(\rho,\rho'))/(1-\rho')`, each two-point value by expm1 as in
  :func:`linrank.metric.core_weights` (the subtraction loses at most a factor ~5);
* otherwise a Taylor series about the centroid with a fixed number (20) of terms, each a
  positive coefficient :math:`\binom{N}{m} c^{N-m}` times :math:`h_{m-2}` of the centred points
  (terms decay like :math:`(2/3)^j / j!`).

Measured relative error of the weights <= 1e-13 against 80-digit mpmath at singular values in
[1e-6, 1e6], ratios down to exactly equal, depths 1 to 10^6 (tests/test_connection.py).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np

from .metric import core_weights, side_weights

__all__ = ["DivDiffWeights", "divided_difference_weights", "second_divided_difference"]

_TAYLOR_TERMS = 20
_SPLIT = 1.0  # branch on 2 log(s_hi / s_lo) (= N * log(x_hi / x_lo) for x = s^{2/N})


def _log_ratio2(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """2 log(hi / lo) for hi >= lo >= 0 without cancellation (inf where lo == 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 2.0 * np.log1p((hi - lo) / lo)
    return np.where(lo > 0, out, np.inf)


def _R(d: np.ndarray, N: int) -> np.ndarray:
    """h_{N-1}(1, e^{-d/N}) = (1 - e^{-d}) / (1 - e^{-d/N}), exact for d in [0, inf]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.expm1(-d) / np.expm1(-d / N)
    return np.where(d < 1e-290, float(N), r)


def _h3(d1: np.ndarray, d2: np.ndarray, d12: np.ndarray, N: int) -> np.ndarray:
    r"""h_{N-2}(1, rho, rho') with rho = e^{-d1/N}, rho' = e^{-d2/N}, 0 <= d1 <= d2 <= inf.

    ``d12 = d2 - d1`` is passed separately (computed without cancellation).
    """
    d1, d2, d12 = np.broadcast_arrays(d1, d2, d12)
    out = np.empty(d1.shape)
    if N == 1:
        out[...] = 0.0
        return out
    big = d2 >= _SPLIT
    if np.any(big):
        a, b, ab = d1[big], d2[big], d12[big]
        num = _R(a, N) - np.exp(-a * (N - 1) / N) * _R(ab, N)
        out[big] = num / (-np.expm1(-b / N))
    small = ~big
    if np.any(small):
        a, b = d1[small], d2[small]
        e1 = -np.expm1(-a / N)  # 1 - rho
        e2 = -np.expm1(-b / N)  # 1 - rho'
        dc = (e1 + e2) / 3.0  # 1 - c
        c = 1.0 - dc
        deltas = (dc, dc - e1, dc - e2)  # the points minus the centroid
        coef = 0.5 * N * (N - 1) * np.exp((N - 2) * np.log1p(-dc))
        pj = np.ones_like(dc)
        qj = np.ones_like(dc)
        rj = np.ones_like(dc)
        total = coef * rj
        for m in range(2, min(N, _TAYLOR_TERMS + 2)):
            # next coefficient C(N, m+1) c^{N-m-1} and h_{m-1}(deltas)
            coef = coef * ((N - m) / ((m + 1) * c))
            pj = pj * deltas[0]
            qj = deltas[1] * qj + pj
            rj = deltas[2] * rj + qj
            total = total + coef * rj
        out[small] = total
    return out


def second_divided_difference(
    sa: Any, sb: Any, sc: Any, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    r"""The second divided difference :math:`\varphi[x_a, x_b, x_c]` of :math:`\varphi(t) = t^N` at
    :math:`x = s^{2/N}`, as ``(log_scale, value)`` with :math:`\varphi[\ldots] = e^{\text{log\_scale}}
    \cdot \text{value}`.

    Parameters
    ----------
    sa, sb, sc : broadcastable arrays of singular values, >= 0, at most one of the three zero.
    depth : N >= 1.

    Returns
    -------
    ``log_scale = 2 (N-2)/N log max(s)`` and ``value = h_{N-2}(1, rho, rho')`` (see the module
    docstring); relative error <= 1e-13, O(1) in N.
    """
    N = int(depth)
    sa, sb, sc = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (sa, sb, sc)))
    stack = np.sort(np.stack([sa, sb, sc]), axis=0)
    lo, mid, hi = stack[0], stack[1], stack[2]
    d1 = _log_ratio2(hi, mid)
    d2 = _log_ratio2(hi, lo)
    d12 = _log_ratio2(mid, lo)
    val = _h3(d1, d2, d12, N)
    with np.errstate(divide="ignore"):
        log_scale = 2.0 * (N - 2) / N * np.log(hi)
    return log_scale, val


class DivDiffWeights(NamedTuple):
    """Weights of A_W and of its derivative at a point (see the module docstring)."""

    s: np.ndarray
    w: np.ndarray  # (k, k) core weights of A_W
    p: np.ndarray  # (k,) side weights s^{2(N-1)/N}
    q: np.ndarray  # (k,) p / s^2 = s^{-2/N}
    tau: np.ndarray  # (k, k, k) tau[i, j, l] = (w_il - w_jl) / (s_i^2 - s_j^2)
    sigma: np.ndarray  # (k, k) sigma[i, l] = (w_il - p_l) / s_i^2
    pi: np.ndarray  # (k, k) pi[i, j] = (p_i - p_j) / (s_i^2 - s_j^2)


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 8


def divided_difference_weights(s: Any, depth: int) -> DivDiffWeights:
    r"""All weights of :math:`\mathcal{A}_W` and :math:`D\mathcal{A}_W` at singular values ``s``.

    ``tau[i, j, l] = phi[x_i, x_j, x_l] / phi[x_i, x_j]``, ``sigma[i, l] = phi[x_i, 0, x_l] / phi[x_i, 0]``,
    ``pi[i, j] = phi[x_i, x_j, 0] / phi[x_i, x_j]`` with :math:`\varphi(t) = t^N`, :math:`x = s^{2/N}`;
    equal to :math:`(w_{il}-w_{jl})/(s_i^2-s_j^2)`, :math:`(w_{il}-p_l)/s_i^2`,
    :math:`(p_i-p_j)/(s_i^2-s_j^2)` and their limits at equal singular values. Relative error
    <= 1e-13 (module docstring), O(k^3) and O(1) in N. The last few results are cached.
    """
    N = int(depth)
    s = np.asarray(s, dtype=float)
    key = (s.tobytes(), N)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    w = core_weights(s, N)
    p = side_weights(s, N)
    logs = np.log(s)
    q = np.exp(-2.0 / N * logs)
    si, sj, sl = s[:, None, None], s[None, :, None], s[None, None, :]
    # phi[x_i, x_j] = exp(2 (N-1)/N log max(s_i, s_j)) * R; divide in log space (no overflow)
    ls3, v3 = second_divided_difference(si, sj, sl, N)
    lw = np.log(w)
    tau = np.exp(ls3 - lw[:, :, None]) * v3
    ls2, v2 = second_divided_difference(s[:, None], 0.0, s[None, :], N)
    sigma = np.exp(ls2 - np.log(p)[:, None]) * v2
    pi = np.exp(ls2 - lw) * v2
    out = DivDiffWeights(s.copy(), w, p, q, tau, sigma, pi)
    _CACHE[key] = out
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return out
