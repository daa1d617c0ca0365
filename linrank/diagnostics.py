r"""Checks of Riemannian gradients and Hessians, and Hessian spectra, for pymanopt problems.

pymanopt 2.2.1's ``pymanopt.tools.diagnostics.check_gradient`` / ``check_hessian`` raise on
numpy >= 2.4 and need matplotlib; these replacements return their data (plotting is optional).

Slope tests
-----------
Along the retraction curve :math:`c(t) = R_x(t d)` (here the truncated SVD of W + t d, also for a
manifold built with ``retraction="polar"``: :func:`check_hessian` always uses the projection),

.. math::

    f(c(t)) = f(x) + t\, g(\operatorname{grad} f, d)
        + \tfrac{t^2}{2}\big[g(\operatorname{Hess} f[d], d) + g(\operatorname{grad} f, \nabla_{\dot c}\dot c(0))\big]
        + O(t^3).

* Gradient test: :math:`E_1(t) = |f(c(t)) - f(x) - t\,g(\operatorname{grad} f, d)| = O(t^2)` for any
  retraction: valid everywhere.
* Hessian test: :math:`E_2(t) = |\ldots - \tfrac{t^2}{2} g(\operatorname{Hess} f[d], d)| = O(t^3)` needs
  :math:`\nabla_{\dot c}\dot c(0) = 0` (a second-order retraction) or :math:`\operatorname{grad} f = 0`.
  The SVD truncation is second order for the embedded metric only (depth 1: :math:`c''(0)` is
  Frobenius-normal). For depth >= 2 it is first order, so the plain test is valid only at critical
  points; elsewhere :func:`check_hessian` adds the acceleration
  :math:`\nabla_{\dot c}\dot c(0) = P_T c''(0) + \Gamma(d, d) = \Gamma(d, d)`
  (:func:`linrank.connection.christoffel`) to the model (``correction="auto"``). Note this
  corrected test checks the Hessian and :math:`\Gamma` together: any torsion-free connection passes
  it, so it cannot by itself tell the Levi-Civita connection from another one (the chart tests in
  tests/test_connection.py do).

The error at t is the larger of the errors along d and along -d: the next two Taylor terms then
add in absolute value (:math:`|c_p| t^p + |c_{p+1}| t^{p+1}`) and cannot cancel at some t.
The slope is fitted by least squares in log-log coordinates on the first run (smallest steps, the
asymptotic regime) of 7 consecutive step sizes (about one decade) where the error is above the
rounding floor :math:`100\,\epsilon\,\max(1, |f(x)|)` and below 1% of the size of the model's
terms. The test passes if the slope is at least the expected value (2 or 3) minus 0.1 (a faster
decay only means the next Taylor coefficient is small; a wrong derivative gives a slope one
lower), or if the error is at the rounding floor throughout (the model is exact).

Spectra
-------
:func:`hessian_spectrum` writes the Hessian in a g-orthonormal basis of :math:`T_W\mathcal{M}_k`,
:math:`\xi(y) = (U_\perp Y_U P^{1/2},\ w^{1/2}\circ Y_M,\ V_\perp Y_V P^{1/2})`, with :math:`U_\perp`,
:math:`V_\perp` applied implicitly by Householder reflectors (O(m k^2) per product, never an m x m
matrix). The matrix :math:`K = A^{-1/2}\operatorname{Hess}A^{1/2}` is Euclidean-symmetric because
the Hessian is g-self-adjoint, has exactly dim = (m + n - k) k eigenvalues (no spurious zeros) and
these are the eigenvalues of Hess f. Small dimensions: all of them from dim Hessian-vector
products and ``numpy.linalg.eigvalsh`` of the symmetrized matrix (accuracy: that of the products,
~1e-14 relative to the largest). Large ones: the extreme ones by Lanczos
(``scipy.sparse.linalg.eigsh``, Hessian-vector products only, relative tolerance ``tol``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla
from scipy.sparse.linalg import LinearOperator, eigsh

from .connection import christoffel
from .fixedrank import TangentVector, all_finite, check_point_factors, real_array
from .manifold import DeepLinearFixedRank

__all__ = [
    "SlopeTest",
    "GradientCheck",
    "HessianCheck",
    "HessianSpectrum",
    "check_gradient",
    "check_hessian",
    "hessian_spectrum",
]

_EPS = np.finfo(float).eps


@dataclass
class SlopeTest:
    """A slope test: errors E(t) on a log grid, the fitted slope and the verdict."""

    t: np.ndarray
    errors: np.ndarray
    expected: float
    slope: float
    window: np.ndarray  # boolean mask of the points used for the fit
    passed: bool
    exact: bool  # the error stayed at the rounding floor (model exact to rounding)

    def __str__(self) -> str:
        if self.exact:
            return "model exact to rounding (error at the floor for every t)"
        verdict = "passed" if self.passed else "FAILED"
        return f"slope {self.slope:.3f} (expected {self.expected:g}): {verdict}"

    def plot(self, ax=None):
        """Plot E(t) on log-log axes with a reference line of the expected slope."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        ax.loglog(self.t, np.maximum(self.errors, 1e-300), ".-", label="error")
        if np.any(self.window):
            t0 = self.t[self.window][0]
            e0 = self.errors[self.window][0]
            ax.loglog(
                self.t, e0 * (self.t / t0) ** self.expected, "--", label=f"slope {self.expected}"
            )
        ax.set_xlabel("t")
        ax.set_ylabel("model error")
        ax.legend()
        return ax


@dataclass
class GradientCheck:
    """Result of :func:`check_gradient`."""

    slope_test: SlopeTest
    tangency: float  # relative size of the components of grad f off the tangent space
    passed: bool

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return f"gradient check {verdict}: {self.slope_test}; tangency {self.tangency:.1e}"


@dataclass
class HessianCheck:
    """Result of :func:`check_hessian`."""

    slope_test: SlopeTest
    correction: str  # "none" (plain test) or "christoffel" (acceleration term added)
    symmetry: float  # |g(H a, b) - g(a, H b)| / (|H a| |b| + |a| |H b|)
    linearity: (
        float  # |H(alpha a + beta b) - alpha H a - beta H b| / (|alpha| |H a| + |beta| |H b|)
    )
    tangency: float
    passed: bool
    tolerances: dict = field(default_factory=dict)

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"Hessian check {verdict}: {self.slope_test} (correction: {self.correction}); "
            f"symmetry {self.symmetry:.1e}, linearity {self.linearity:.1e}, "
            f"tangency {self.tangency:.1e}"
        )


@dataclass
class HessianSpectrum:
    """Result of :func:`hessian_spectrum`: eigenvalues in ascending order."""

    eigenvalues: np.ndarray
    method: str  # "dense" or "lanczos"
    dim: int
    n_products: int
    asymmetry: float  # ||K - K^T|| / ||K|| of the dense matrix (nan for Lanczos)
    #: eigenvalues of the diagonally scaled matrix :math:`DKD`, :math:`D = \mathrm{diag}(|K_{ii}|^{-1/2})` (dense only):
    #: the same inertia as K (Sylvester's law), but no eigenvalue group dominates the scale
    scaled_eigenvalues: np.ndarray | None = None

    def morse_index(self, rtol: float = 1e-8) -> int:
        r"""The number of negative eigenvalues of the Hessian (needs the full spectrum).

        Counted on the eigenvalues of :math:`DKD`, :math:`D = \mathrm{diag}(|K_{ii}|^{-1/2})`
        (:attr:`scaled_eigenvalues`), which has the same inertia as K: an eigenvalue counts if it
        is below ``-rtol`` times the largest one in absolute value. Without the scaling, a group of
        eigenvalues of size N lambda (the core block at depth N) would set the threshold and hide
        negative eigenvalues of size lambda once N >= 1/rtol (e.g. depth 1e9).
        """
        if self.method != "dense":
            raise ValueError("the Morse index needs the full spectrum (method 'dense')")
        ev = self.eigenvalues if self.scaled_eigenvalues is None else self.scaled_eigenvalues
        scale = np.max(np.abs(ev), initial=0.0)
        return int(np.sum(ev < -rtol * scale))


def _slope_test(t, errors, scale, f0, expected, length: int = 7) -> SlopeTest:
    floor = 1e2 * _EPS * max(1.0, abs(f0))
    band = (errors > floor) & (errors < 1e-2 * scale)
    exact = bool(np.all(errors <= floor))
    lt = np.log10(t)
    le = np.log10(np.maximum(errors, 1e-300))
    window = np.zeros(len(t), dtype=bool)
    slope = np.nan
    in_band = False
    # the first run (smallest steps: the asymptotic regime) of `length` points inside the band;
    # if there is none (the error is never small against the model: a wrong derivative), the
    # first run above the rounding floor, for the report only
    for mask, flag in ((band, True), (errors > floor, False)):
        for i in range(len(t) - length + 1):
            if np.all(mask[i : i + length]):
                slope = float(np.polyfit(lt[i : i + length], le[i : i + length], 1)[0])
                window[i : i + length] = True
                in_band = flag
                break
        if np.any(window):
            break
    # a faster decay than t^expected is consistent with a correct model (a small next term)
    passed = exact or (in_band and slope >= expected - 0.1)
    return SlopeTest(t, errors, float(expected), float(slope), window, bool(passed), exact)


def _setup(problem, point, direction):
    manifold = problem.manifold
    if point is None:
        point = manifold.random_point()
    elif isinstance(manifold, DeepLinearFixedRank):
        point = check_point_factors(manifold.parse_point(point))
    if direction is None:
        direction = manifold.random_tangent_vector(point)
    nrm = manifold.norm(point, direction)
    # > sqrt(tiny): DeepLinearFixedRank gives the zero vector that norm (not 0), see its
    # inner_product; a direction that short tests nothing either
    if not (np.isfinite(nrm) and nrm > np.sqrt(np.finfo(float).tiny)):
        raise ValueError(f"direction must be a nonzero finite tangent vector, its norm is {nrm}")
    d = direction / nrm
    return manifold, point, d


def _steps(t: Any, default: np.ndarray, length: int = 7) -> np.ndarray:
    """The step sizes of a slope test: finite, positive, at least ``length`` (sorted ascending)."""
    if t is None:
        return default
    t = real_array("t", t).astype(float, copy=False)
    if t.ndim != 1 or t.size < length:
        raise ValueError(
            f"t must be a 1-d array of at least {length} step sizes (the slope is fitted over "
            f"{length} consecutive ones), got shape {t.shape}"
        )
    if not (all_finite(t) and np.all(t > 0)):
        raise ValueError(f"step sizes t must be finite and positive, got min {np.min(t)!r}")
    return np.sort(t)


def _changes(problem, manifold, point, d, t, f0):
    """f(R(t d)) - f(x) and f(R(-t d)) - f(x) for every t."""
    cp = np.array([problem.cost(manifold.retraction(point, ti * d)) - f0 for ti in t])
    cm = np.array([problem.cost(manifold.retraction(point, -ti * d)) - f0 for ti in t])
    return cp, cm


def _tangency(manifold, point, v) -> float:
    """Relative size of u^T Up and vt Vp (zero for a tangent vector of the fixed-rank manifold)."""
    if not hasattr(v, "Up"):
        return 0.0
    u, _, vt = point
    scale = max(np.linalg.norm(v.Up) + np.linalg.norm(v.Vp) + np.linalg.norm(v.M), 1e-300)
    return float((np.linalg.norm(u.T @ v.Up) + np.linalg.norm(vt @ v.Vp)) / scale)


def check_gradient(
    problem: Any, point: Any = None, direction: Any = None, t: np.ndarray | None = None
) -> GradientCheck:
    """Slope test of the Riemannian gradient (expected slope 2, valid for any retraction) and
    tangency of the gradient.

    Parameters
    ----------
    problem : a pymanopt Problem (cost, riemannian_gradient, manifold).
    point, direction : where and along what to test (random if None; direction normalized in g).
    t : step sizes, at least 7, finite and positive (default ``logspace(-8, 0, 51)``).
    """
    t = _steps(t, np.logspace(-8, 0, 51))
    manifold, point, d = _setup(problem, point, direction)
    f0 = problem.cost(point)
    grad = problem.riemannian_gradient(point)
    df = manifold.inner_product(point, grad, d)
    cp, cm = _changes(problem, manifold, point, d, t, f0)
    errors = np.maximum(np.abs(cp - t * df), np.abs(cm + t * df))
    test = _slope_test(t, errors, np.abs(cp) + np.abs(t * df), f0, 2)
    tang = _tangency(manifold, point, grad)
    return GradientCheck(test, tang, bool(test.passed and tang <= 1e-10))


def check_hessian(
    problem: Any,
    point: Any = None,
    direction: Any = None,
    t: np.ndarray | None = None,
    correction: str = "auto",
    rtol: float = 1e-10,
) -> HessianCheck:
    r"""Slope test of the Riemannian Hessian (expected slope 3), symmetry in g, linearity, tangency.

    Parameters
    ----------
    problem : a pymanopt Problem with riemannian_hessian.
    point, direction : where and along what to test (random if None).
    t : step sizes, at least 7, finite and positive (default ``logspace(-6, 0, 41)``).
    correction : "auto" (add :math:`g(\operatorname{grad} f, \Gamma(d, d))` for a
        DeepLinearFixedRank of depth >= 2, where the retraction is only first order; see the
        module docstring), "none" (plain test: valid at depth 1 and at critical points only) or
        "christoffel".
    rtol : tolerance of the symmetry, linearity and tangency residuals.
    """
    if correction not in ("auto", "none", "christoffel"):
        raise ValueError(f"correction must be 'auto', 'none' or 'christoffel', got {correction!r}")
    t = _steps(t, np.logspace(-6, 0, 41))
    manifold, point, d = _setup(problem, point, direction)
    is_deep = isinstance(manifold, DeepLinearFixedRank)
    if correction == "auto":
        correction = "christoffel" if is_deep and manifold.depth >= 2 else "none"
    if correction == "christoffel" and not is_deep:
        raise TypeError("correction='christoffel' needs a linrank.DeepLinearFixedRank manifold")
    f0 = problem.cost(point)
    grad = problem.riemannian_gradient(point)
    hess = problem.riemannian_hessian
    Hd = hess(point, d)
    df = manifold.inner_product(point, grad, d)
    d2f = manifold.inner_product(point, Hd, d)
    if correction == "christoffel":
        d2f += manifold.inner_product(point, grad, christoffel(manifold, point, d, d))
    curve = manifold
    if is_deep and manifold.retraction_kind != "projection":
        # the correction (and the plain test at depth 1) assume P_T c''(0) = 0: the projection
        curve = DeepLinearFixedRank(manifold.m, manifold.n, manifold.k, manifold.depth)
    cp, cm = _changes(problem, curve, point, d, t, f0)
    quad = 0.5 * t**2 * d2f
    errors = np.maximum(np.abs(cp - t * df - quad), np.abs(cm + t * df - quad))
    scale = np.abs(cp) + np.abs(t * df) + np.abs(quad)
    test = _slope_test(t, errors, scale, f0, 3)
    # symmetry, linearity, tangency
    a = manifold.random_tangent_vector(point)
    b = manifold.random_tangent_vector(point)
    Ha, Hb = hess(point, a), hess(point, b)
    nHa, nHb = manifold.norm(point, Ha), manifold.norm(point, Hb)
    denom = max(nHa + nHb, 1e-300)
    sym = abs(manifold.inner_product(point, Ha, b) - manifold.inner_product(point, a, Hb)) / denom
    alpha, beta = 0.7, -1.3
    lin_res = hess(point, alpha * a + beta * b) - (alpha * Ha + beta * Hb)
    lin = manifold.norm(point, lin_res) / max(abs(alpha) * nHa + abs(beta) * nHb, 1e-300)
    tang = max(_tangency(manifold, point, Ha), _tangency(manifold, point, Hd))
    passed = test.passed and sym <= rtol and lin <= rtol and tang <= rtol
    return HessianCheck(
        test, correction, float(sym), float(lin), float(tang), bool(passed), {"rtol": rtol}
    )


# ------------------------------------------------------------------ spectra
class _Coordinates:
    """g-orthonormal coordinates y <-> tangent vectors at a point of DeepLinearFixedRank."""

    def __init__(self, manifold, point):
        self.man = manifold
        self.pt = check_point_factors(manifold.parse_point(point))
        m, n, k = manifold.m, manifold.n, manifold.k
        self.m, self.n, self.k = m, n, k
        w, p = manifold.weights(self.pt)
        self.sw = np.sqrt(w)
        self.sp = np.sqrt(p)
        self.Yu, self.Tu = self._wy(self.pt.u)
        self.Yv, self.Tv = self._wy(self.pt.vt.T)
        self.sizes = (k * k, (m - k) * k, (n - k) * k)
        self.dim = sum(self.sizes)

    @staticmethod
    def _wy(a):
        """Compact WY form Q = I - Y T Y^T of the Householder QR of a (m x k), Q = [a-ish, perp].

        Applied with numpy products only (O(m k^2)); LAPACK's dormqr from scipy would run on a
        second OpenBLAS thread pool and contend with numpy's.
        """
        (qr, tau), _ = sla.qr(a, mode="raw")
        k = a.shape[1]
        Y = np.tril(qr, -1)
        Y[np.arange(k), np.arange(k)] = 1.0
        T = np.zeros((k, k))
        for i in range(k):
            T[i, i] = tau[i]
            if i:
                T[:i, i] = -tau[i] * (T[:i, :i] @ (Y[:, :i].T @ Y[:, i]))
        return Y, T

    @staticmethod
    def _apply(Y, T, c, trans):
        """Q c (trans "N") or Q^T c (trans "T") with Q = I - Y T Y^T."""
        TT = T if trans == "N" else T.T
        return c - Y @ (TT @ (Y.T @ c))

    def to_tangent(self, y):
        k, m, n = self.k, self.m, self.n
        a, b, _ = self.sizes
        M = y[:a].reshape(k, k) * self.sw
        cu = np.vstack((np.zeros((k, k)), y[a : a + b].reshape(m - k, k)))
        cv = np.vstack((np.zeros((k, k)), y[a + b :].reshape(n - k, k)))
        Up = self._apply(self.Yu, self.Tu, cu, "N") * self.sp
        Vp = self._apply(self.Yv, self.Tv, cv, "N") * self.sp
        return TangentVector(Up, M, Vp)

    def from_tangent(self, t):
        k = self.k
        yM = (t.M / self.sw).ravel()
        yU = self._apply(self.Yu, self.Tu, t.Up / self.sp, "T")[k:].ravel()
        yV = self._apply(self.Yv, self.Tv, t.Vp / self.sp, "T")[k:].ravel()
        return np.concatenate((yM, yU, yV))


def hessian_spectrum(
    manifold: Any,
    problem: Any,
    point: Any,
    which: str = "auto",
    n_eigs: int = 6,
    dense_max_dim: int = 1500,
    tol: float = 1e-10,
) -> HessianSpectrum:
    """Eigenvalues of the Riemannian Hessian at ``point`` (see the module docstring).

    Parameters
    ----------
    manifold : DeepLinearFixedRank.
    problem : anything with ``riemannian_hessian(point, tangent_vector)`` (a pymanopt Problem).
    point : (u, s, vt).
    which : "all" (every eigenvalue, dense), "smallest", "largest" (``n_eigs`` extreme ones by
        Lanczos) or "auto" ("all" if dim <= dense_max_dim, else "smallest").
    n_eigs : number of extreme eigenvalues for Lanczos.
    tol : relative tolerance of eigsh.

    Returns
    -------
    HessianSpectrum with ascending eigenvalues, the method, dim and the number of products.
    """
    if not isinstance(manifold, DeepLinearFixedRank):
        raise TypeError(
            f"manifold must be a linrank.DeepLinearFixedRank, got {type(manifold).__name__}"
        )
    if which not in ("auto", "all", "smallest", "largest"):
        raise ValueError(f"which must be 'auto', 'all', 'smallest' or 'largest', got {which!r}")
    hess = problem.riemannian_hessian
    coords = _Coordinates(manifold, point)
    dim = coords.dim
    pt = coords.pt
    count = [0]

    def K(y):
        count[0] += 1
        y = np.asarray(y, dtype=float).ravel()
        return coords.from_tangent(hess(pt, coords.to_tangent(y)))

    if which == "auto":
        which = "all" if dim <= dense_max_dim else "smallest"
    if which == "all":
        cols = np.empty((dim, dim))
        eye = np.eye(dim)
        for i in range(dim):
            cols[:, i] = K(eye[i])
        nrm = np.linalg.norm(cols)
        asym = float(np.linalg.norm(cols - cols.T) / nrm) if nrm > 0 else 0.0
        Ks = 0.5 * (cols + cols.T)
        ev = np.linalg.eigvalsh(Ks)
        diag = np.abs(np.diag(Ks))
        floor = np.finfo(float).eps * np.max(diag, initial=0.0)
        dscale = 1.0 / np.sqrt(np.maximum(diag, floor)) if floor > 0 else np.ones(dim)
        scaled = np.linalg.eigvalsh(Ks * dscale[:, None] * dscale[None, :])
        return HessianSpectrum(ev, "dense", dim, count[0], asym, scaled)
    if not (isinstance(n_eigs, (int, np.integer)) and 1 <= n_eigs < dim - 1):
        raise ValueError(
            f"n_eigs must be an integer in [1, dim - 2] = [1, {dim - 2}], got {n_eigs}"
        )
    op = LinearOperator((dim, dim), matvec=K, dtype=float)
    ev = eigsh(
        op,
        k=n_eigs,
        which="SA" if which == "smallest" else "LA",
        tol=tol,
        return_eigenvectors=False,
    )
    return HessianSpectrum(np.sort(ev), "lanczos", dim, count[0], float("nan"))
