r"""Critical points of the autoencoder loss on :math:`\mathcal{M}_k` and their Hessian spectra.

For data X (d x samples), :math:`L^1(W) = \tfrac12\|X - WX\|_F^2` (Y = X). Let
:math:`\lambda_1 \ge \dots \ge \lambda_d` be the eigenvalues of :math:`XX^T` with orthonormal
eigenvectors :math:`u_j`. The critical points of :math:`L^1` on :math:`\mathcal{M}_k` are
(Proposition 29 of Bah, Rauhut, Terstiege, Westdickenberg 2019, for distinct eigenvalues)

.. math::

    W_J = \sum_{j\in J} u_j u_j^T,\qquad |J| = k,\qquad
    L^1(W_J) = \tfrac12\Big(\operatorname{tr} XX^T - \sum_{j\in J}\lambda_j\Big),

and every one of them except the global minimizers (J = the top k, Eckart-Young) is a strict
saddle (Proposition 30). At :math:`W_J` all singular values are 1, :math:`\mathcal{A}_W` is N on the
core block and 1 on the side blocks, and the Riemannian Hessian of the depth-N metric has the
eigenvalues (derivation: ``docs/theory.rst``, section "Critical points of the autoencoder and their
spectra")

* :math:`N\lambda_c` for every pair :math:`(i, c) \in J\times J` (k^2 values), and
* for every :math:`a \notin J`, :math:`i \in J`, the two eigenvalues of
  :math:`\begin{pmatrix}\lambda_i & -\lambda_a\\ -\lambda_a & \lambda_a\end{pmatrix}`,
  one negative iff :math:`\lambda_a > \lambda_i`.

The Morse index is :math:`\#\{(a, i): a\notin J, i\in J, \lambda_a > \lambda_i\}`. With repeated
eigenvalues the critical set is not discrete; the W_J are then representatives, and J is a global
minimizer iff :math:`\min_J \lambda \ge \max_{a\notin J} \lambda_a` (a degenerate one if equality).
Eigenvalues of X X^T that agree to 16 d eps lambda_max (the rounding of ``numpy.linalg.eigh``)
count as equal.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .connection import hessian_from_products
from .data import finite_real_matrix
from .diagnostics import hessian_spectrum
from .fixedrank import all_finite, check_point_factors, real_array
from .manifold import DeepLinearFixedRank, FixedRankPoint, TangentVector
from .metric import check_depth

__all__ = [
    "CriticalPoint",
    "AutoencoderProblem",
    "closed_form_spectrum",
    "critical_points",
    "iter_critical_points",
]


def closed_form_spectrum(lam: Any, J: Any, depth: int) -> np.ndarray:
    r"""Eigenvalues of the Riemannian Hessian of the autoencoder loss at :math:`W_J` (ascending).

    Parameters
    ----------
    lam : (d,) eigenvalues of X X^T (any order; ``J`` indexes this array).
    J : k distinct indices into ``lam``.
    depth : N >= 1.

    Returns
    -------
    numpy.ndarray
        ((2d - k) k,) array: :math:`N\lambda_c` (k times each c in J) and the pair eigenvalues
        :math:`\lambda_\pm = \tfrac{\lambda_i+\lambda_a}{2} \pm
        \sqrt{(\tfrac{\lambda_i-\lambda_a}{2})^2 + \lambda_a^2}`, with
        :math:`\lambda_- = \lambda_a(\lambda_i - \lambda_a)/\lambda_+` (no cancellation;
        relative error a few ulps). Derivation: docs/theory.rst, "Critical points of the
        autoencoder and their spectra".
    """
    N = check_depth(depth)
    lam = real_array("lam", lam).astype(float, copy=False)
    if not all_finite(lam):
        raise ValueError("lam contains NaN or inf")
    J = np.asarray(J, dtype=int)
    if lam.ndim != 1 or J.ndim != 1 or len(set(J.tolist())) != J.size or J.size > lam.size:
        raise ValueError("lam must be 1-d and J a set of distinct indices into it")
    if np.any(J < 0) or np.any(J >= lam.size):
        raise ValueError(f"indices J must lie in [0, {lam.size})")
    k = J.size
    out = [np.repeat(N * lam[J], k)]
    notJ = np.setdiff1d(np.arange(lam.size), J)
    li = lam[J][None, :]
    la = lam[notJ][:, None]
    plus = 0.5 * (li + la) + np.hypot(0.5 * (li - la), la)
    with np.errstate(invalid="ignore", divide="ignore"):
        minus = np.where(plus != 0, la * (li - la) / plus, 0.0)
    out += [plus.ravel(), minus.ravel()]
    return np.sort(np.concatenate(out))


def _operator(d, mat, rmat) -> LinearOperator:
    """A d x d LinearOperator from block products (1-d vectors are treated as one column)."""

    def vec(f):
        return lambda x: f(np.reshape(x, (d, 1))).ravel()

    return LinearOperator(
        (d, d), matvec=vec(mat), rmatvec=vec(rmat), matmat=mat, rmatmat=rmat, dtype=float
    )


class AutoencoderProblem:
    r"""The autoencoder loss :math:`\tfrac12\|X - WX\|^2` on a DeepLinearFixedRank, in factored form.

    Duck-types the parts of a pymanopt Problem that :mod:`linrank.diagnostics` uses (``manifold``,
    ``cost``, ``riemannian_gradient``, ``riemannian_hessian``) and never forms an m x n matrix:
    with :math:`C = XX^T`, the gradient :math:`WC - C` and the Hessian :math:`\xi C` are products with
    C only: a Hessian-vector product costs C times 5k vectors (two passes) plus
    O(d k^2 + k^3). For pymanopt's optimizers use :func:`linrank.ambient_problem`.
    """

    def __init__(self, manifold: DeepLinearFixedRank, X: Any):
        X = finite_real_matrix("X", X)
        if manifold.m != X.shape[0] or manifold.n != X.shape[0]:
            raise ValueError(
                f"the autoencoder needs a {X.shape[0]} x {X.shape[0]} manifold, got "
                f"{manifold.m} x {manifold.n}"
            )
        self.manifold = manifold
        self.X = X
        self.C = X @ X.T
        self.trace = float(np.trace(self.C))

    def _point(self, point: Any) -> FixedRankPoint:
        return check_point_factors(self.manifold.parse_point(point))

    def cost(self, point: Any) -> float:
        """1/2 ||X - W X||^2 = 1/2 (tr C - 2 tr(W C) + tr(W^T W C)), O(d^2 k)."""
        u, s, vt = self._point(point)
        CV = self.C @ vt.T
        tr_WC = float(np.sum((u * s) * CV))
        tr_WtWC = float(np.sum((vt.T * s**2) * CV))  # W^T W = v S^2 v^T
        return 0.5 * (self.trace - 2.0 * tr_WC + tr_WtWC)

    def euclidean_gradient(self, point: Any) -> LinearOperator:
        """(W - I) C as a LinearOperator."""
        u, s, vt = self._point(point)
        C = self.C
        d = C.shape[0]

        def mat(V):
            CV = C @ V
            return u @ (s[:, None] * (vt @ CV)) - CV

        def rmat(U):
            return C @ (vt.T @ (s[:, None] * (u.T @ U)) - U)

        return _operator(d, mat, rmat)

    def euclidean_hessian(self, point: Any, tangent_vector: Any) -> LinearOperator:
        """xi C as a LinearOperator (xi = u M vt + Up vt + u Vp^T)."""
        u, _, vt = point
        Up, M, Vp = tangent_vector
        C = self.C
        d = C.shape[0]

        def mat(V):
            CV = C @ V
            return (u @ M + Up) @ (vt @ CV) + u @ (Vp.T @ CV)

        def rmat(U):
            return C @ (vt.T @ ((u @ M + Up).T @ U) + Vp @ (u.T @ U))

        return _operator(d, mat, rmat)

    def riemannian_gradient(self, point: Any) -> TangentVector:
        return self.manifold.euclidean_to_riemannian_gradient(point, self.euclidean_gradient(point))

    def riemannian_hessian(self, point: Any, tangent_vector: Any) -> TangentVector:
        """Hess L[xi] with the products by C batched: C [v, Vp] and C [W^T u - u, W^T Up - Up,
        xi^T u] (5k columns in two passes over C), then
        :func:`linrank.connection.hessian_from_products`."""
        man = self.manifold
        pt = self._point(point)
        xi = man.parse_tangent(tangent_vector)
        u, s, vt = pt
        k = man.k
        C = self.C
        CV = C @ np.hstack((vt.T, xi.Vp))  # C [v, Vp]
        G_v_Vp = u @ (s[:, None] * (vt @ CV)) - CV  # (W - I) C [v, Vp]
        # xi C v = (u M + Up) (vt C v) + u (Vp^T C v)
        H_v = (u @ xi.M + xi.Up) @ (vt @ CV[:, :k]) + u @ (xi.Vp.T @ CV[:, :k])
        uU = np.hstack((u, xi.Up))
        WtuU = vt.T @ (s[:, None] * (u.T @ uU))  # W^T [u, Up]
        xitu = vt.T @ xi.M.T + xi.Vp  # xi^T u
        CU = C @ np.hstack((WtuU - uU, xitu))
        return hessian_from_products(man, pt, xi, G_v_Vp, CU[:, : 2 * k], H_v, CU[:, 2 * k :])


@dataclass
class CriticalPoint:
    """One critical point W_J of the autoencoder loss with its Hessian spectrum."""

    J: tuple  # indices into the eigenvalues sorted in descending order (0 = largest)
    point: FixedRankPoint
    loss: float
    gradient_norm: float  # computed ||grad L||_g at the point (should be ~0)
    predicted_spectrum: np.ndarray  # closed form, ascending
    computed_spectrum: np.ndarray | None  # all eigenvalues (dense) or the smallest (Lanczos)
    predicted_index: int
    computed_index: int | None  # None when only extreme eigenvalues were computed
    predicted_smallest: float
    computed_smallest: float | None
    kind: str  # "global minimizer" or "strict saddle"
    spectrum_error: float | None  # max |computed - predicted| / max |predicted| (dense only)


def _index_sets(d: int, k: int, max_points: int, rng) -> list[tuple]:
    total = math.comb(d, k)
    if total <= max_points:
        return list(itertools.combinations(range(d), k))
    chosen = {tuple(range(k)), tuple(range(d - k, d))}  # the minimizer and the worst saddle
    chosen.add(tuple(range(k - 1)) + (k,))  # the mildest saddle (swap lambda_k for lambda_{k+1})
    while len(chosen) < max_points:
        chosen.add(tuple(sorted(rng.choice(d, size=k, replace=False).tolist())))
    return sorted(chosen)


def critical_points(X: Any, k: int, depth: int = 1, **options: Any) -> list[CriticalPoint]:
    r"""The critical points :math:`W_J = \sum_J u_j u_j^T` of the autoencoder loss on M_k.

    A list of :func:`iter_critical_points` ``(X, k, depth, **options)``; see there for the
    options (max_points, seed, spectra, dense_max_dim, rtol) and the accuracy.
    """
    return list(iter_critical_points(X, k, depth, **options))


def iter_critical_points(
    X: Any,
    k: int,
    depth: int = 1,
    max_points: int = 64,
    seed: int | None = 0,
    spectra: str = "auto",
    dense_max_dim: int = 1500,
    rtol: float = 1e-8,
) -> Iterator[CriticalPoint]:
    r"""Yield the critical points :math:`W_J = \sum_J u_j u_j^T` of the autoencoder loss on M_k.

    One at a time (a long run loses nothing on interruption).

    Parameters
    ----------
    X : (d, samples) data.
    k : the rank, 1 <= k <= d.
    depth : N >= 1 (the metric; the critical points do not depend on it, the spectra do).
    max_points : all :math:`\binom{d}{k}` index sets if there are at most this many, otherwise a
        random sample of this size (``seed``) that always contains the global minimizer, the
        worst saddle (J = the bottom k) and the mildest one (swap of lambda_k and lambda_{k+1}).
    spectra : "all" (every eigenvalue from dense Hessian-vector products), "smallest" (the six
        smallest by Lanczos), "none", or "auto" ("all" when (2d - k) k <= dense_max_dim).
    rtol : threshold of the computed Morse index (see
        :meth:`linrank.diagnostics.HessianSpectrum.morse_index`: eigenvalues of the diagonally
        scaled Hessian below ``-rtol`` times the largest count; correct at any depth, also >= 1e8).

    Yields
    ------
    :class:`CriticalPoint`, ordered by J (lexicographically, J indexing the eigenvalues
    in descending order). The computed spectrum matches the closed form to ~1e-13 relative
    (tests/test_critical.py asks 1e-10).
    """
    X = finite_real_matrix("X", X)
    d = X.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
        raise ValueError(f"k must be an integer in [1, d] = [1, {d}], got {k!r}")
    N = check_depth(depth)
    if spectra not in ("auto", "all", "smallest", "none"):
        raise ValueError(f"spectra must be 'auto', 'all', 'smallest' or 'none', got {spectra!r}")
    if not (isinstance(max_points, (int, np.integer)) and max_points >= 3):
        raise ValueError(f"max_points must be an integer >= 3, got {max_points!r}")
    man = DeepLinearFixedRank(d, d, int(k), N)
    problem = AutoencoderProblem(man, X)
    lam, U = np.linalg.eigh(problem.C)
    lam, U = lam[::-1].copy(), U[:, ::-1].copy()
    dim = (2 * d - k) * k
    mode = spectra
    if mode == "auto":
        mode = "all" if dim <= dense_max_dim else "smallest"
    rng = np.random.default_rng(seed)
    tie = 16 * d * np.finfo(float).eps * max(abs(lam[0]), abs(lam[-1]))  # eigh's rounding
    for J in _index_sets(d, int(k), int(max_points), rng):
        J = tuple(int(j) for j in J)
        uJ = U[:, list(J)]
        point = FixedRankPoint(uJ, np.ones(k), uJ.T.copy())
        notJ = [a for a in range(d) if a not in J]
        loss = 0.5 * float(np.sum(lam[notJ]))
        pred = closed_form_spectrum(lam, list(J), N)
        pred_index = int(sum(1 for a in notJ for i in J if lam[a] > lam[i] + tie))
        minimizer = not notJ or min(lam[list(J)]) >= max(lam[notJ]) - tie
        gnorm = man.norm(point, problem.riemannian_gradient(point))
        comp = comp_index = comp_min = err = None
        if mode == "all":
            spec = hessian_spectrum(man, problem, point, which="all")
            comp = spec.eigenvalues
            comp_index = spec.morse_index(rtol)
            comp_min = float(comp[0])
            err = float(np.max(np.abs(comp - pred)) / np.max(np.abs(pred)))
        elif mode == "smallest":
            spec = hessian_spectrum(man, problem, point, which="smallest", n_eigs=min(6, dim - 2))
            comp = spec.eigenvalues
            comp_min = float(comp[0])
        yield (
            CriticalPoint(
                J=J,
                point=point,
                loss=loss,
                gradient_norm=float(gnorm),
                predicted_spectrum=pred,
                computed_spectrum=comp,
                predicted_index=pred_index,
                computed_index=comp_index,
                predicted_smallest=float(pred[0]),
                computed_smallest=comp_min,
                kind="global minimizer" if minimizer else "strict saddle",
                spectrum_error=err,
            )
        )
