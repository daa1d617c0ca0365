r"""Stabilized explicit stepping: the second-order Runge-Kutta-Chebyshev method (RKC) with its
embedded error estimate, for the stiff stretches of ``method="auto"``
(:mod:`linrank.flows.stiff`).

Why
---
The flows are gradient flows: the Jacobian of the layer-wise flow (5) is minus the Hessian of
:math:`L^N`, symmetric, so its eigenvalues are real, and near the negative real axis for the flow
on :math:`\mathcal M_k`. Once the top singular values are learned, the learned directions relax at
a rate :math:`\rho` far above the rate at which the solution still changes, and Dormand-Prince's
step is held at :math:`h \le 3.3/\rho`. An s-stage Chebyshev method is stable on
:math:`[-\beta(s), 0]` with :math:`\beta(s) \approx 0.65 s^2`: a step of length h costs
:math:`s \approx \sqrt{1.54\, h\rho}` right-hand sides instead of :math:`6 h\rho/3.3`, and needs no
Jacobian, no linear solve and no extra memory beyond four vectors.

The method
----------
RKC of Sommeijer, Shampine and Verwer (J. Comput. Appl. Math. 88 (1998), 315-326), after van der
Houwen and Sommeijer (1980), with damping :math:`\epsilon = 2/13`. With the Chebyshev polynomials
:math:`T_j` and :math:`w_0 = 1 + \epsilon/s^2`, :math:`w_1 = T_s'(w_0)/T_s''(w_0)`,
:math:`b_j = T_j''(w_0)/T_j'(w_0)^2` (j >= 2), :math:`b_0 = b_1 = b_2`,
:math:`a_j = 1 - b_j T_j(w_0)`, the stages are

.. math::

    Y_0 = y_n,\quad Y_1 = Y_0 + \tilde\mu_1 h F_0,\quad
    Y_j = (1 - \mu_j - \nu_j) Y_0 + \mu_j Y_{j-1} + \nu_j Y_{j-2} + \tilde\mu_j h F(Y_{j-1})
          + \tilde\gamma_j h F_0,\quad y_{n+1} = Y_s,

with :math:`\tilde\mu_1 = b_1 w_1`, :math:`\mu_j = 2 w_0 b_j/b_{j-1}`,
:math:`\nu_j = -b_j/b_{j-2}`, :math:`\tilde\mu_j = 2 w_1 b_j/b_{j-1}`,
:math:`\tilde\gamma_j = -a_{j-1}\tilde\mu_j`. Its stability function is
:math:`R_s(z) = a_s + b_s T_s(w_0 + w_1 z)`, :math:`|R_s| \le 1` on :math:`[-\beta(s), 0]` with
:math:`\beta(s) = (1 + w_0)/w_1` (computed, not approximated; tests/test_chebyshev.py checks
:math:`|R_s| \le 1` there, second order, and the damping). The stages are carried as increments
:math:`D_j = Y_j - y_n` (:math:`D_j = \mu_j D_{j-1} + \nu_j D_{j-2} + \tilde\mu_j h F_{j-1} +
\tilde\gamma_j h F_0`), so any system whose steps are sums :math:`y + \sum_i c_i K_i` can use it.
Local error estimate (ibid.): :math:`\frac{1}{15}\big(12 (y_n - y_{n+1}) + 6h (F_n + F_{n+1})\big)`,
:math:`O(h^3)`; :math:`F_{n+1}` is the next step's first slope (no extra evaluation).

The number of stages is the least s with :math:`\beta(s) \ge h\rho`, :math:`\rho` an upper
estimate of the spectral radius (the stepper's power iteration times 1.2); at most ``S_MAX`` =
250, which caps the step at :math:`\beta(250)/\rho` (the stepper then weighs ROS34PW2). Not
L-stable: :math:`|R_s(z)| \le 1` on the interval, about :math:`1 - \epsilon/3` inside it, and the
interval must cover the spectrum (error control rejects the step when it does not).
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import numpy as np

__all__ = ["S_MAX", "RKCCoefficients", "rkc_coefficients", "rkc_stages", "rkc_step",
           "set_hermite"]

S_MAX = 250
_DAMP = 2.0 / 13.0


class RKCCoefficients:
    """The s-stage RKC coefficients (module docstring): arrays indexed by the stage j (entry 0
    unused), ``mu``, ``nu``, ``mut``, ``gt``, the first stage's ``mut[1]``, and ``beta``, the
    length of the real stability interval [-beta, 0]."""

    def __init__(self, s: int):
        if s < 2:
            raise ValueError(f"RKC needs s >= 2 stages, got {s}")
        self.s = s
        w0 = 1.0 + _DAMP / s ** 2
        T = np.zeros(s + 1)
        dT = np.zeros(s + 1)
        ddT = np.zeros(s + 1)
        T[0], T[1], dT[1] = 1.0, w0, 1.0
        for j in range(2, s + 1):
            T[j] = 2 * w0 * T[j - 1] - T[j - 2]
            dT[j] = 2 * T[j - 1] + 2 * w0 * dT[j - 1] - dT[j - 2]
            ddT[j] = 4 * dT[j - 1] + 2 * w0 * ddT[j - 1] - ddT[j - 2]
        w1 = dT[s] / ddT[s]
        b = np.empty(s + 1)
        b[2:] = ddT[2:] / dT[2:] ** 2
        b[0] = b[1] = b[2]
        a = 1.0 - b * T
        self.w0, self.w1, self.a, self.b, self.T = w0, w1, a, b, T
        self.mu = np.zeros(s + 1)
        self.nu = np.zeros(s + 1)
        self.mut = np.zeros(s + 1)
        self.gt = np.zeros(s + 1)
        self.mut[1] = b[1] * w1
        for j in range(2, s + 1):
            self.mu[j] = 2 * w0 * b[j] / b[j - 1]
            self.nu[j] = -b[j] / b[j - 2]
            self.mut[j] = 2 * w1 * b[j] / b[j - 1]
            self.gt[j] = -a[j - 1] * self.mut[j]
        self.beta = (1.0 + w0) / w1

    def stability(self, z: np.ndarray) -> np.ndarray:
        """R_s(z) = a_s + b_s T_s(w0 + w1 z) for real z (by the three-term recursion)."""
        x = self.w0 + self.w1 * np.asarray(z, dtype=float)
        t0, t1 = np.ones_like(x), x
        for _ in range(2, self.s + 1):
            t0, t1 = t1, 2 * x * t1 - t0
        return self.a[self.s] + self.b[self.s] * t1


@cache
def rkc_coefficients(s: int) -> RKCCoefficients:
    """The (cached) coefficients of the s-stage method."""
    return RKCCoefficients(s)


@lru_cache(maxsize=1)
def _betas() -> np.ndarray:
    return np.array([0.0, 0.0] + [rkc_coefficients(s).beta for s in range(2, S_MAX + 1)])


def rkc_stages(h_rho: float) -> int:
    """The least s >= 2 with beta(s) >= h_rho, or S_MAX + 1 when none up to S_MAX is enough."""
    if not h_rho > 0.0:
        return 2
    betas = _betas()
    s = int(np.searchsorted(betas[2:], h_rho)) + 2
    return max(s, 2)


class _Slope:
    __slots__ = ("K",)

    def __init__(self, K: np.ndarray):
        self.K = K


def rkc_step(integ: Any, system: Any, y: Any, ev0: Any, h: float, s: int, rtol: float,
             atol: float) -> tuple[Any, Any, float]:
    """One s-stage RKC attempt from y with slope ``ev0.K``: ``(y_new, ev_new, err)`` with err
    the scaled norm of the local error estimate (<= 1 accepts). The slopes are evaluated by
    ``integ._eval`` (counted there)."""
    co = rkc_coefficients(s)
    F0 = ev0.K
    D_prev2 = None  # D_{j-2}
    D_prev = (co.mut[1] * h) * F0  # D_1
    for j in range(2, s + 1):
        F = integ._eval(system.advance(y, 1.0, [1.0], [_Slope(D_prev)]), full=False).K
        D = co.mu[j] * D_prev + (co.mut[j] * h) * F + (co.gt[j] * h) * F0
        if D_prev2 is not None:
            D += co.nu[j] * D_prev2
        # j = 2: D_0 = 0, so the nu term vanishes
        D_prev2, D_prev = D_prev, D
    y_new = system.normalize(system.advance(y, 1.0, [1.0], [_Slope(D_prev)]))
    ev_new = integ._eval(y_new)
    set_hermite(integ, y, h, ev0, ev_new, D_prev)
    sc = system.error_scale(y, y_new, rtol, atol)
    err = h * system.error_norm(y, [-0.8 / h, 0.4, 0.4],
                                [_Slope(D_prev), ev0, ev_new], sc)
    return y_new, ev_new, float(err)


def set_hermite(integ: Any, y: Any, h: float, ev0: Any, ev1: Any, delta: np.ndarray) -> None:
    r"""Give the integrator ``integ`` the continuous extension of the step from y of length h:
    the cubic Hermite interpolant

    .. math::

        u(\theta) = y_n + (3\theta^2 - 2\theta^3)\,\Delta
            + h(\theta - 2\theta^2 + \theta^3) F_n + h(\theta^3 - \theta^2) F_{n+1},

    :math:`\Delta = y_{n+1} - y_n` (the step's increment before normalization), ``ev0.K`` =
    :math:`F_n`, ``ev1.K`` = :math:`F_{n+1}` (the slope at the new point, which the next step
    uses: nothing is evaluated here). It matches values and slopes at both ends, so its local
    error is :math:`O(h^4)` plus the step's own (for the order-2 RKC and order-3 ROS34PW2 steps,
    as accurate as the step); events and ``ftol`` are located on it
    (:func:`linrank.flows.tableaux.dense_weights`, kind ``"hermite"``)."""
    integ._dense = (y, h, [ev0, ev1, _Slope(delta / h)], "hermite")
