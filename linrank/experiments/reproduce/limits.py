r"""Closed forms and fits used by the reproduction: limits, exact solutions, rates, escape times.

* :func:`figure3_limit` -- the limit of :math:`\|W_2 - W_1^T\|_F` for a non-balanced N = 2 run,
  in closed form from the conserved :math:`D = W_2^TW_2 - W_1W_1^T` (derivation below).
* :func:`special_norm_exact` -- :math:`\|W(t)\|_F` of the special start on its invariant set.
* :func:`escape_time`, :func:`decay_rate`, :func:`escape_rate_fit` -- what is measured on a
  recorded curve.

The Figure 3 limit
------------------
Let N = 2 with hidden width r, :math:`W_1` (r x d), :math:`W_2` (d x r), and suppose the flow
converges to the autoencoder's minimizer, :math:`W_2W_1 \to P = U_rU_r^T`. At any limit point
:math:`BA = P` with :math:`A = W_1`, :math:`B = W_2` of rank r. The row space of BA is that of A
(B is injective), so :math:`A = MU_r^T` with M invertible (r x r); then :math:`BMU_r^T =
U_rU_r^T` gives :math:`B = U_rM^{-1}`. The conserved quantity (Lemma 2(3)) becomes

.. math:: D = B^TB - AA^T = M^{-T}M^{-1} - MM^T = S^{-1} - S,\qquad S = MM^T \succ 0 .

S is a function of D: on each eigenvector of D (eigenvalue :math:`\delta`), :math:`s^{-1} - s =
\delta` has the single positive root :math:`s = (\sqrt{\delta^2 + 4} - \delta)/2`, with
:math:`s + s^{-1} = \sqrt{\delta^2 + 4}`. Hence, whatever the orthogonal part of M,

.. math::

    \|W_2 - W_1^T\|_F^2 = \|M^{-1} - M^T\|_F^2 = \operatorname{tr} S^{-1} - 2r + \operatorname{tr} S
    = \sum_{i=1}^r \Big(\sqrt{\delta_i^2 + 4} - 2\Big)
    = \sum_{i=1}^r \frac{\delta_i^2}{\sqrt{\delta_i^2 + 4} + 2},

:math:`\delta_i` the eigenvalues of D. It is 0 exactly when D = 0 (balanced), and about
:math:`\|D\|_F/2` for small D. Also :math:`W_2 \to W_1^+` (the pseudo-inverse of
:math:`MU_r^T` is :math:`U_rM^{-1}`). The last form has no cancellation: relative error a few
ulps given D's eigenvalues. Euler (gradient descent) does not conserve D; its plateau is this
formula at Euler's final D, not at D(0).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "figure3_limit",
    "special_norm_exact",
    "escape_time",
    "decay_rate",
    "escape_rate_fit",
]


def figure3_limit(D: object) -> float:
    r"""The limit of :math:`\|W_2(t) - W_1(t)^T\|_F` when :math:`W_2W_1 \to U_rU_r^T` (N = 2).

    .. math:: \Big(\sum_i \delta_i^2 / (\sqrt{\delta_i^2 + 4} + 2)\Big)^{1/2},

    :math:`\delta_i` the eigenvalues of the conserved r x r matrix
    :math:`D = W_2^TW_2 - W_1W_1^T` (hidden width r; derivation in the module docstring).

    Parameters
    ----------
    D : symmetric (r, r) array (its symmetric part is used).
    """
    A = np.asarray(D, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"D must be a square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("D contains NaN or inf")
    delta = np.linalg.eigvalsh(0.5 * (A + A.T))
    return float(np.sqrt(np.sum(delta * delta / (np.sqrt(delta * delta + 4.0) + 2.0))))


def special_norm_exact(t: np.ndarray, lam_top: np.ndarray) -> np.ndarray:
    r""":math:`\|W(t)\|_F` on the invariant set of the N = 2 special start (exact solution).

    On :math:`W_1 = \mathrm{diag}(a)U_r^T`, :math:`W_2 = -U_r\mathrm{diag}(a)`, :math:`b_j = a_j^2`
    solves :math:`\dot b_j = -2\lambda_j b_j(1 + b_j)`, so :math:`b_j(t) = e^{-2\lambda_j t}/(2 -
    e^{-2\lambda_j t})` and :math:`\|W\|_F = (\sum_j b_j^2)^{1/2}`; relative error a few ulps (no
    overflow for large t).
    """
    e = np.exp(-2.0 * np.outer(np.asarray(lam_top, dtype=float), np.asarray(t, dtype=float)))
    b = e / (2.0 - e)
    return np.sqrt(np.sum(b * b, axis=0))


def escape_time(t: np.ndarray, norm: np.ndarray) -> float | None:
    """First recorded time after the minimum of ||W(t)|| with ||W(t)|| >= ||W(0)|| / 2, or None."""
    i_min = int(np.argmin(norm))
    after = np.nonzero(norm[i_min:] >= 0.5 * norm[0])[0]
    if after.size == 0 or i_min == 0:
        return None
    return float(t[i_min + after[0]])


def decay_rate(t: np.ndarray, err: np.ndarray, upper: float = 1e-4,
               floor: float = 1e-8) -> float | None:
    """The exponential rate of err(t) near its limit, by least squares on log err.

    Fitted on the last contiguous stretch of records with
    ``max(floor, 3 min(err)) <= err <= upper`` (at least 5 points; None otherwise): late enough
    that faster modes have died out, above the integrator's noise floor. This is the rate of the
    flow near its limit, to be compared with the smallest Hessian eigenvalue there.
    """
    t = np.asarray(t, dtype=float)
    err = np.asarray(err, dtype=float)
    lower = max(floor, 3.0 * float(np.min(err)))
    ok = (err <= upper) & (err >= lower) & (t > 0)
    idx = np.nonzero(ok)[0]
    if idx.size < 5:
        return None
    breaks = np.nonzero(np.diff(idx) > 1)[0]
    if breaks.size:
        idx = idx[breaks[-1] + 1:]
    if idx.size < 5:
        return None
    slope = np.polyfit(t[idx], np.log(err[idx]), 1)[0]
    return float(-slope)


def escape_rate_fit(points: Iterable[tuple[float, float | None, float]]) -> dict | None:
    r"""Fit :math:`t_{esc}(\delta) = a + \ln(1/\delta)/\rho` over perturbed special starts.

    ``points``: (delta, escape time or None, lambda_1) per perturbed run. Near W = 0 the mode
    :math:`W_1 + W_2^T` grows at rate :math:`\lambda_1` (the factor mode; :math:`\|W\|` is
    quadratic in it and grows at :math:`2\lambda_1`) while the start's part decays, so the escape
    time grows by :math:`\ln 10/\lambda_1` per decade of :math:`\delta`: the fitted :math:`\rho`
    is the factor-mode rate, to be compared with :math:`\lambda_1`. None with fewer than two
    escaped runs.
    """
    pts = [p for p in points if p[1] is not None and p[0] > 0]
    if len(pts) < 2:
        return None
    x = np.log(1.0 / np.array([p[0] for p in pts]))
    y = np.array([p[1] for p in pts], dtype=float)
    b, a = np.polyfit(x, y, 1)
    return {"deltas": [p[0] for p in pts], "escape_times": y.tolist(), "intercept": float(a),
            "slope": float(b), "rate": float(1.0 / b), "lambda_1": float(pts[0][2]),
            "max_residual": float(np.max(np.abs(a + b * x - y)))}
