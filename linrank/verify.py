"""Self-checks of the metric against independent dense references (used by ``linrank check``).

Each check draws a random point W = u diag(s) vt of M_k and random tangent/ambient vectors and
compares the O((m + n) k^2) SVD-frame operations of :class:`~linrank.DeepLinearFixedRank` with

* the dense fractional-power formula of Definition 4 (:func:`linrank.metric.dense_A`),
* for depth 2, Proposition 9: A_W^{-1}(Z) = int_0^inf exp(-t (WW^T)^{1/2}) Z exp(-t (W^TW)^{1/2}) dt,
  by adaptive quadrature (scipy.integrate.quad_vec) after the substitution t = x / (1 - x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad_vec

from .manifold import DeepLinearFixedRank, FixedRankPoint
from .metric import dense_A

__all__ = ["CheckResult", "BOUNDS", "random_instance", "check_instance"]

#: Relative error bounds of each check (the dense references themselves are accurate to ~1e-13
#: for the condition numbers drawn here; the quadrature to ~1e-12).
BOUNDS = {
    "A (dense formula)": 1e-10,
    # applying the dense O(N)-term sum to A^-1 xi amplifies rounding by ~N cond(A): 4e-11 at N = 1000
    "A^-1 (dense formula)": 1e-9,
    "metric g (dense formula)": 1e-10,
    "gradient (dense formula)": 1e-10,
    "A^-1 (Prop. 9 quadrature)": 1e-10,
}


@dataclass
class CheckResult:
    """One row of the ``linrank check`` table."""

    m: int
    n: int
    k: int
    depth: int
    check: str
    error: float

    @property
    def bound(self) -> float:
        return BOUNDS[self.check]

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.bound)


def random_instance(
    m: int, n: int, k: int, depth: int, rng: np.random.Generator, spread: float = 10.0
) -> tuple[DeepLinearFixedRank, FixedRankPoint]:
    """A manifold and a random point whose singular values span [1/spread, spread] (log-uniform),
    with the two largest equal (the common case at critical points)."""
    man = DeepLinearFixedRank(m, n, k, depth)
    u, _ = np.linalg.qr(rng.standard_normal((m, k)))
    v, _ = np.linalg.qr(rng.standard_normal((n, k)))
    s = np.sort(np.exp(rng.uniform(-np.log(spread), np.log(spread), size=k)))[::-1]
    if k >= 2:
        s[1] = s[0]
    return man, FixedRankPoint(u, s, v.T)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny))


def _prop9_inverse(W: np.ndarray, Z: np.ndarray) -> np.ndarray:
    lu, Qu = np.linalg.eigh(W @ W.T)
    lv, Qv = np.linalg.eigh(W.T @ W)
    # eigenvalues at rounding level belong to the null spaces: set them to 0 exactly (their square
    # roots, ~1e-8, would otherwise bias the integral by that much)
    tol = max(lu.max(), lv.max()) * max(W.shape) * np.finfo(float).eps
    ru = np.where(lu > tol, np.sqrt(np.abs(lu)), 0.0)
    rv = np.where(lv > tol, np.sqrt(np.abs(lv)), 0.0)
    Zt = Qu.T @ Z @ Qv
    # Z is tangent: its block on null(WW^T) x null(W^TW) is zero up to rounding, where the integral
    # would not converge; drop it exactly.
    Zt[np.ix_(ru == 0, rv == 0)] = 0.0

    def integrand(x: float) -> np.ndarray:
        if x >= 1.0:
            return np.zeros_like(Zt)
        t = x / (1.0 - x)
        return (np.exp(-t * ru)[:, None] * Zt * np.exp(-t * rv)[None, :]) / (1.0 - x) ** 2

    val, _ = quad_vec(integrand, 0.0, 1.0, epsabs=0.0, epsrel=1e-12, limit=2000)
    return Qu @ val @ Qv.T


def check_instance(
    m: int, n: int, k: int, depth: int, rng: np.random.Generator
) -> list[CheckResult]:
    """Run every check on one random instance; returns the rows with their relative errors."""
    man, x = random_instance(m, n, k, depth, rng)
    W = man.to_dense(x)
    xi = man.to_tangent_space(
        x,
        (rng.standard_normal((m, k)), rng.standard_normal((k, k)), rng.standard_normal((n, k))),
    )
    eta = man.random_tangent_vector(x)
    Xi = man.tangent_to_dense(x, xi)
    G = rng.standard_normal((m, n))
    rows = []

    def add(name: str, err: float) -> None:
        rows.append(CheckResult(m, n, k, depth, name, err))

    add(
        "A (dense formula)",
        _rel(man.tangent_to_dense(x, man.apply_A(x, xi)), dense_A(W, Xi, depth)),
    )
    Ainv = man.apply_A_inverse(x, xi)
    add("A^-1 (dense formula)", _rel(dense_A(W, man.tangent_to_dense(x, Ainv), depth), Xi))
    g_ref = float(np.sum(man.tangent_to_dense(x, Ainv) * man.tangent_to_dense(x, eta)))
    add(
        "metric g (dense formula)",
        abs(man.inner_product(x, xi, eta) - g_ref) / max(abs(g_ref), 1e-300),
    )
    u, _, vt = x
    PTG = u @ (u.T @ G) + (G @ vt.T) @ vt - u @ (u.T @ G @ vt.T) @ vt
    add(
        "gradient (dense formula)",
        _rel(
            man.tangent_to_dense(x, man.euclidean_to_riemannian_gradient(x, G)),
            dense_A(W, PTG, depth),
        ),
    )
    if depth == 2:
        add("A^-1 (Prop. 9 quadrature)", _rel(man.tangent_to_dense(x, Ainv), _prop9_inverse(W, Xi)))
    return rows
