r"""The factored engine of the flow (31) for depth N >= 2: a dynamical low-rank ODE in factors.

The state is W = u S v^T with u, v orthonormal and S (k x k) invertible, stored as the flat
vector (u, S, v). Koch-Lubich equations of motion of the tangent field
:math:`F = -\mathcal{A}_W(P_T \nabla L^1(W))`:
:math:`\dot S = u^T F v`, :math:`\dot u = (I - uu^T) F v S^{-1}`,
:math:`\dot v = (I - vv^T) F^T u S^{-T}`. In the frame of the SVD of S the factor S^{-1} meets
the side weight :math:`p_i = \sigma_i^{2(N-1)/N}` and leaves :math:`\sigma_i^{(N-2)/N}`,
bounded as :math:`\sigma_i \to 0` for N >= 2 (computed as exp of a logarithm, never as a
quotient), so small and collapsing singular values are harmless; for N = 1 the quotient is a
genuine 1/sigma (stiff), hence the projected engine there (:mod:`linrank.flows.projected`).
Every accepted step re-orthonormalizes u and v by Cholesky-QR and absorbs the R factors into S
(W unchanged to rounding). The error of W is estimated from the factor errors as
:math:`(\|E_u S\|^2 + \|E_S\|^2 + \|S E_v^T\|^2)^{1/2}` (the Frobenius norm of the first-order
change of W, the three terms being orthogonal up to higher order), so rtol/atol keep their
meaning. Per evaluation: one k x k SVD (LAPACK gesdd), the data products, O((d_x + d_y) k^2)
work in ~30 numpy calls; the loss and the gradient norm are computed only at accepted points.
Cost per evaluation independent of the depth, state O((d_x + d_y) k).

Tested against the dense ODE of Definition 4 at rtol 1e-10: relative error of W <= 1e-9 at
N = 2, 3, 8 and <= 1e-8 at N = 1000 (measured 3e-11 at N = 2, where the projected engine is off
by 8e-8), and at N = 3 along a singular value decaying like t^-3 (relative 1e-6 down to 1e-6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg.lapack import dgesdd

from ..linalg import thin_product
from ..manifold import FixedRankPoint
from ..metric import core_weights_from_log
from .jacobians import difference_jvp
from .manifold_base import ManifoldFlowSystem
from .system import LazyEvaluation, StepFailure, safe_norm

__all__ = ["FactoredSystem"]


def _combine(out: np.ndarray, h: float, coeffs: Sequence[float], evals: Sequence[Any],
             tmp: np.ndarray) -> np.ndarray:
    """``out += h sum_j coeffs[j] K_j`` in place through the preallocated ``tmp`` (no stacked
    copy of the slopes, no new array per term); zero coefficients are skipped. numpy only: a
    scipy BLAS call here would alternate between numpy's and scipy's OpenBLAS thread pools."""
    for c, ev in zip(coeffs, evals):
        if c != 0.0:
            np.multiply(ev.K, h * c, out=tmp)
            out += tmp
    return out


class FactoredSystem(ManifoldFlowSystem):
    r"""Flow (31) on M_k for depth N >= 2 as a dynamical low-rank ODE in factors W = u S v^T.

    With the SVD :math:`S = a\,\mathrm{diag}(\sigma)\,b^T` and :math:`u' = ua`, :math:`v' = vb`:
    :math:`\dot S = -a\,(w \circ u'^T G v')\,b^T`,
    :math:`\dot u = -(I - u'u'^T) G v'\,\mathrm{diag}(\sigma^{(N-2)/N})\,a^T`,
    :math:`\dot v = -(I - v'v'^T) G^T u'\,\mathrm{diag}(\sigma^{(N-2)/N})\,b^T`, since
    :math:`p_i / \sigma_i = \sigma_i^{(N-2)/N}` (:func:`linrank.metric.side_weights`). For
    N >= 2 nothing is divided by a singular value: the right-hand side is bounded as
    :math:`\sigma_k \to 0`. The exact solution keeps u^T u = v^T v = I; the Runge-Kutta step
    keeps it to its local error, and :meth:`normalize` (after every step) restores it.
    """

    engine = "factored"

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.size = float(np.sqrt(self.m * self.n))
        k, depth = self.k, self.depth
        self._mk = self.m * k
        self._mkk = self._mk + k * k
        self._r_exp = (depth - 2.0) / depth
        self._q_exp = 2.0 * (depth - 1.0) / depth
        self._svd_cache: tuple[Any, Any] = (None, None)
        self._tmp = np.empty((self.m + self.n) * k + k * k)  # scratch of advance / error_norm

    # state representation
    def views(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, S, v) as views into the flat state."""
        k = self.k
        return (y[: self._mk].reshape(self.m, k), y[self._mk: self._mkk].reshape(k, k),
                y[self._mkk:].reshape(self.n, k))

    def initial_state(self, p: FixedRankPoint) -> np.ndarray:
        return np.concatenate((p.u.ravel(), np.diag(p.s).ravel(), p.vt.T.ravel()))

    def to_array(self, y: np.ndarray) -> np.ndarray:
        return y

    def from_array(self, y: np.ndarray) -> np.ndarray:
        return np.array(y, dtype=float)

    def _svd(self, y: np.ndarray):
        c = self._svd_cache
        if c[0] is y:
            return c[1]
        u, S, v = self.views(y)
        a, sig, bt = np.linalg.svd(S)
        out = (u @ a, sig, bt @ v.T)
        self._svd_cache = (y, out)
        return out

    def point(self, y: np.ndarray) -> FixedRankPoint:
        u, s, vt = self._svd(y)
        return FixedRankPoint(u.copy(), s.copy(), vt.copy())

    def singular_values(self, y: np.ndarray) -> np.ndarray:
        return self._svd(y)[1]

    # right-hand side
    def rhs(self, y: np.ndarray) -> LazyEvaluation:
        """Slope of (u, S, v) at y. All data terms carry the sign of -G (H = -G), so the slopes
        need no separate negation; the loss and gradient norm are computed on demand."""
        m, n, k = self.m, self.n, self.k
        mk, mkk = self._mk, self._mkk
        u = y[:mk].reshape(m, k)
        v = y[mkk:].reshape(n, k)
        a, sig, bt, info = dgesdd(y[mk:mkk].reshape(k, k))
        if info != 0 or not sig[-1] > 0.0 or not sig[0] < np.inf:
            raise StepFailure(f"the state lost rank k = {k} or is not finite (core singular "
                              f"values {sig}, LAPACK info {info})")
        up = u @ a
        vp = v @ bt.T
        data = self.data
        if data.form == "covariance":
            o = self.orientations
            if data.autoencoder:  # one pass over XX^T for both products (memory bound)
                CV = thin_product(data.Cxx, np.hstack((vp, up)), False, o.get("Cxx"))
                Cv, Cyx_t_u = CV[:, :k], CV[:, k:]
                Cyx_v = Cv
            else:
                Cv = thin_product(data.Cxx, vp, False, o.get("Cxx"))
                Cyx_v = thin_product(data.Cyx, vp, False, o.get("Cyx"))
                Cyx_t_u = thin_product(data.Cyx, up, True, o.get("CyxT"))
            B = vp.T @ Cv
            Hv = Cyx_v - up @ (sig[:, None] * B)  # -G v'
            Htu = Cyx_t_u - Cv * sig  # -G^T u'
            loss = None
        else:
            Gv, Gtu, loss = self.point_products(up, sig, vp.T)
            Hv, Htu, B = -Gv, -Gtu, None
        Hm = up.T @ Hv  # -M
        Hup = Hv - up @ Hm  # -U_p
        Hvp = Htu - vp @ Hm.T  # -V_p
        lg = np.log(sig)
        w = core_weights_from_log(lg, self.depth)
        rr = np.exp(self._r_exp * lg)  # p / sigma = sigma^((N-2)/N), never a division
        K = np.empty(y.shape[0])
        np.matmul(Hup * rr, a.T, out=K[:mk].reshape(m, k))
        np.matmul(a, (w * Hm) @ bt, out=K[mk:mkk].reshape(k, k))
        np.matmul(Hvp * rr, bt, out=K[mkk:].reshape(n, k))
        q_exp = self._q_exp
        yy = data.yy

        def values() -> tuple[float, float]:
            q = np.exp(q_exp * lg)
            gn2 = float(np.sum(w * Hm * Hm) + q @ (np.einsum("ij,ij->j", Hup, Hup)
                                                    + np.einsum("ij,ij->j", Hvp, Hvp)))
            if loss is None:
                # 0.5 (||Y||^2 - 2 tr(W^T YX^T) + tr(W XX^T W^T)) with u'^T YX^T v' = diag(s) B - M
                s2b = sig * sig * np.diagonal(B)
                val = 0.5 * ((0.0 if yy is None else yy) - float(np.sum(s2b))
                             - 2.0 * float(sig @ np.diagonal(Hm)))
            else:
                val = loss
            gn = safe_norm(float(np.sqrt(max(gn2, 0.0))),
                           lambda: (np.sqrt(w) * Hm, Hup * np.sqrt(q), Hvp * np.sqrt(q)))
            return val, gn

        return LazyEvaluation(K, values)

    has_jacobian = True

    def jacobian(self, y: np.ndarray):
        """z -> J z at y by a one-sided difference of :meth:`rhs`
        (:func:`linrank.flows.jacobians.difference_jvp`; relative error ~1e-8, which the
        W-method of :mod:`linrank.flows.stiff` tolerates)."""
        K0 = self.rhs(y).K

        def jvp(z: np.ndarray) -> np.ndarray:
            return difference_jvp(lambda x: self.rhs(x).K, y, K0, z)

        return jvp

    def normalize(self, y: np.ndarray) -> np.ndarray:
        """Re-orthonormalize u and v (Cholesky-QR, R factors into S): W unchanged to rounding."""
        u, S, v = self.views(y)
        try:
            Lu = np.linalg.cholesky(u.T @ u)
            Lv = np.linalg.cholesky(v.T @ v)
        except np.linalg.LinAlgError as exc:
            raise StepFailure(f"the step lost the rank of u or v: {exc}") from exc
        out = np.empty_like(y)
        k = self.k
        np.matmul(u, np.linalg.inv(Lu).T, out=out[: self._mk].reshape(self.m, k))
        np.matmul(Lu.T @ S, Lv, out=out[self._mk: self._mkk].reshape(k, k))
        np.matmul(v, np.linalg.inv(Lv).T, out=out[self._mkk:].reshape(self.n, k))
        return out

    def advance(self, y: np.ndarray, h: float, coeffs: Sequence[float],
                evals: Sequence[Any]) -> np.ndarray:
        # non-finite results are caught by the next evaluation (the SVD of the core)
        return _combine(y.copy(), h, coeffs, evals, self._tmp)

    def _w_norm(self, base: np.ndarray, E: np.ndarray) -> float:
        """||dW||_F for the factor increment E at base (u, v orthonormal there): first order,
        sqrt(||E_u S||^2 + ||E_S||^2 + ||S E_v^T||^2) (the three terms are orthogonal up to the
        components of E_u, E_v along u, v, which are of higher order)."""
        k = self.k
        S = base[self._mk: self._mkk].reshape(k, k)
        Eu = E[: self._mk].reshape(self.m, k) @ S
        Es = E[self._mk: self._mkk]
        Ev = E[self._mkk:].reshape(self.n, k) @ S.T
        return safe_norm(float(np.sqrt(np.vdot(Eu, Eu) + Es @ Es + np.vdot(Ev, Ev))),
                         lambda: (Eu, Es, Ev))

    def error_scale(self, a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> float:
        sa = a[self._mk: self._mkk]
        sb = b[self._mk: self._mkk]
        na = safe_norm(float(np.sqrt(sa @ sa)), lambda: (sa,))
        nb = safe_norm(float(np.sqrt(sb @ sb)), lambda: (sb,))
        return atol + rtol * max(na, nb) / self.size

    def error_norm(self, base: np.ndarray, coeffs: Sequence[float], evals: Sequence[Any],
                   scale: float) -> float:
        E = _combine(np.zeros_like(base), 1.0, coeffs, evals, self._tmp)
        return self._w_norm(base, E) / self.size / scale

    def state_norm(self, y: np.ndarray, scale: float) -> float:
        s = y[self._mk: self._mkk]
        return safe_norm(float(np.sqrt(s @ s)), lambda: (s,)) / self.size / scale
