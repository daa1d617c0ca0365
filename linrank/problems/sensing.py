r"""Matrix sensing on :class:`~linrank.DeepLinearFixedRank`:
:math:`f(W) = \tfrac{c}{2}\|\mathcal{A}(W) - y\|^2` for a linear measurement operator
:math:`\mathcal{A}: \mathbb{R}^{m\times n} \to \mathbb{R}^p`, c = 1 (``reduction="sum"``) or
1/p (``"mean"``). Re-exported by :mod:`linrank.problems`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from ..manifold import DeepLinearFixedRank
from .base import (
    FactorizationProblem,
    check_manifold,
    check_reduction,
    half_sum_of_squares,
    tangent,
)

__all__ = ["MatrixSensingProblem", "matrix_sensing_problem"]


def _real_output(name: str, out: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A callback's output as a finite real float array of ``shape``, else an error naming it."""
    try:
        arr = np.asarray(out)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must return an array of real numbers ({exc})") from None
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} returned complex numbers (dtype {arr.dtype}): the measurement "
                        "operator must be real (complex values are refused, not cut to their "
                        "real part)")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must return real numbers, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must return shape {shape}, got {arr.shape}")
    arr = arr.astype(float, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} returned NaN or inf")
    return arr


class MatrixSensingProblem(FactorizationProblem):
    r"""The loss :math:`\tfrac12\|\mathcal{A}(W) - y\|^2`; see :func:`matrix_sensing_problem`."""

    #: Relative tolerance of the adjoint test of a (forward, adjoint) pair at construction.
    adjoint_rtol: float = 1e-8

    def __init__(self, manifold, A, y, preconditioner=None, reduction="sum"):
        man = check_manifold(manifold)
        m, n = man.m, man.n
        y = np.asarray(y)
        if np.iscomplexobj(y):
            raise TypeError("y must be real, got complex numbers")
        if y.dtype.kind not in "fiub":
            raise TypeError(f"y must be an array of real numbers, got dtype {y.dtype}")
        if y.ndim != 1:
            raise ValueError(f"y must be a 1-d array of p measurements, got shape {y.shape}")
        y = y.astype(float)
        if not np.all(np.isfinite(y)):
            raise ValueError("y must be finite")
        p = y.size
        self.reduction = reduction
        self.weight = check_reduction(reduction, p)
        self.y = y
        self._shape = (m, n)
        self._gram = None
        if isinstance(A, (tuple, list)) and len(A) == 2 and all(callable(f) for f in A):
            self._forward_fn, self._adjoint_fn = A
            self.matrix = None
            self._check_adjoint(m, n, p)
        elif isinstance(A, LinearOperator):
            if np.dtype(A.dtype).kind == "c":
                raise TypeError(f"the LinearOperator A must be real, got dtype {A.dtype}")
            if A.shape != (p, m * n):
                raise ValueError(f"the LinearOperator must have shape (p, m n) = ({p}, {m * n}), "
                                 f"got {A.shape}")
            self.matrix = None
            self._forward_fn = lambda W: A.matvec(W.ravel())
            self._adjoint_fn = lambda r: np.asarray(A.rmatvec(r)).reshape(m, n)
            self._check_adjoint(m, n, p)
        elif isinstance(A, np.ndarray) or sp.issparse(A):
            if np.iscomplexobj(A):
                raise TypeError("A must be real, got complex numbers")
            if A.dtype.kind not in "fiub":
                raise TypeError(f"A must hold real numbers, got dtype {A.dtype}")
            if A.ndim != 2 or A.shape != (p, m * n):
                raise ValueError(
                    f"A must be a p x (m n) = {p} x {m * n} matrix acting on the row-major "
                    f"vectorization W.ravel() (vec(W)[i n + j] = W[i, j]), got shape {A.shape}"
                )
            Af = A.astype(float) if sp.issparse(A) else np.asarray(A, dtype=float)
            data = Af.data if sp.issparse(Af) else Af
            if not np.all(np.isfinite(data)):
                raise ValueError("A must be finite")
            self.matrix = sp.csr_matrix(Af) if sp.issparse(Af) else Af
            if not sp.issparse(Af) and p > m * n:
                # more measurements than unknowns: the gradient from the Gram matrix (m n)^2 < p m n
                self._gram = (Af.T @ Af, Af.T @ y)
        else:
            raise TypeError(
                "A must be a p x (m n) array or sparse matrix, a scipy LinearOperator of shape "
                f"(p, m n), or a pair (forward, adjoint) of callables; got {type(A).__name__}"
            )
        super().__init__(man, preconditioner)

    @property
    def n_measurements(self) -> int:
        """p, the number of measurements."""
        return int(self.y.size)

    def _check_adjoint(self, m, n, p):
        """Shapes of forward/adjoint and <A W, z> = <W, A* z> at a random pair (seeded)."""
        rng = np.random.default_rng(20190101)
        W = rng.standard_normal((m, n))
        z = rng.standard_normal(p)
        AW = self.forward(W)
        Az = self.adjoint(z)
        lhs, rhs = float(AW @ z), float(np.sum(W * Az))
        scale = np.linalg.norm(AW) * np.linalg.norm(z) + np.linalg.norm(W) * np.linalg.norm(Az)
        if abs(lhs - rhs) > self.adjoint_rtol * max(scale, 1e-300):
            raise ValueError(
                f"adjoint is not the adjoint of forward: <A(W), z> = {lhs:.6e} but "
                f"<W, A*(z)> = {rhs:.6e} at a random W, z"
            )

    def forward(self, W: np.ndarray) -> np.ndarray:
        """The measurements A(W) of a dense m x n matrix, shape (p,)."""
        if self.matrix is not None:
            return np.asarray(self.matrix @ np.ascontiguousarray(W).ravel())
        return _real_output("the forward map A(W)", self._forward_fn(W), self.y.shape)

    def adjoint(self, r: np.ndarray) -> np.ndarray:
        """The adjoint A*(r) of p measurements as a dense m x n matrix."""
        m, n = self._shape
        if self.matrix is not None:
            return np.asarray(self.matrix.T @ r).reshape(m, n)
        return _real_output("the adjoint A*(r)", self._adjoint_fn(r), (m, n))

    def _residual(self, p):
        return self._dense_residual(DeepLinearFixedRank.to_dense(p))

    def _dense_residual(self, W):
        r = self.forward(W) - self.y
        if not np.all(np.isfinite(r)):
            raise ValueError("A(W) - y is not finite")
        return W, r

    def fingerprint_arrays(self) -> list[np.ndarray]:
        """y, the reduction's weight and, for a matrix A, A (for callables: their values at a
        fixed random W)."""
        if self.matrix is None:
            W = np.random.default_rng(20190102).standard_normal(self._shape)
            return [self.y, self.forward(W), np.array([self.weight])]
        A = self.matrix
        if sp.issparse(A):
            return [self.y, A.data, A.indices.astype(float), A.indptr.astype(float),
                    np.array([self.weight])]
        return [self.y, A, np.array([self.weight])]

    def _loss(self, res):
        return half_sum_of_squares(res[1], self.weight, "the residual A(W) - y")

    def _gradient(self, res):
        W, r = res
        if self._gram is not None:
            Q, b = self._gram
            G = (Q @ W.ravel() - b).reshape(W.shape)
        else:
            G = self.adjoint(r)
        return G if self.weight == 1.0 else self.weight * G

    def _hessian(self, p, xi):
        Z = self.manifold.tangent_to_dense(p, tangent(self.manifold, xi))
        if self._gram is not None:
            H = (self._gram[0] @ Z.ravel()).reshape(Z.shape)
        else:
            H = self.adjoint(self.forward(Z))
        return H if self.weight == 1.0 else self.weight * H


def matrix_sensing_problem(
    manifold: DeepLinearFixedRank,
    A: Any,
    y: Any,
    preconditioner: Callable[[Any, Any], Any] | None = None,
    *,
    reduction: str = "sum",
) -> MatrixSensingProblem:
    r"""Matrix sensing on ``manifold``: :math:`f(W) = \tfrac{c}{2}\|\mathcal{A}(W) - y\|^2`.

    c = 1 for ``reduction="sum"`` (default), c = 1/p for ``reduction="mean"`` (p measurements).

    Parameters
    ----------
    manifold : the DeepLinearFixedRank (m x n, rank k, depth N) to optimize over.
    A : the measurement operator :math:`\mathcal{A}: \mathbb{R}^{m\times n}\to\mathbb{R}^p`, as

        * a p x (m n) array or scipy sparse matrix acting on the **row-major** vectorization:
          :math:`\mathcal{A}(W) = A\,\mathrm{vec}(W)`, ``vec(W) = W.ravel()``, i.e.
          ``vec(W)[i * n + j] = W[i, j]`` (so row l of A reshaped to m x n is the l-th sensing
          matrix :math:`A_l` and :math:`\mathcal{A}(W)_l = \langle A_l, W\rangle_F`);
        * a scipy ``LinearOperator`` of shape (p, m n), same convention;
        * a pair ``(forward, adjoint)`` of callables: ``forward(W)`` for a dense m x n W returns
          the p measurements, ``adjoint(r)`` returns the m x n matrix :math:`\mathcal{A}^*(r)`.
          The pair is tested once at construction: :math:`\langle \mathcal{A}(W), z\rangle =
          \langle W, \mathcal{A}^*(z)\rangle` to 1e-8 relative at a random (seeded) W, z.
    y : the p measurements (finite reals).
    preconditioner : optional, passed to pymanopt (TrustRegions).
    reduction : "sum" or "mean": the loss, its gradient and its Hessian are multiplied by c
        (p = 0: c = 1, f = 0).

    Returns
    -------
    A :class:`FactorizationProblem` (pymanopt.Problem) with the cost from the dense W (formed from
    the factors, O(m n k)), the Euclidean gradient :math:`\mathcal{A}^*(\mathcal{A}(W) - y)` as a
    **dense m x n array** (for a general operator it has no structure to exploit: its product
    with v needs all of it) and the Hessian-vector product
    :math:`\mathcal{A}^*\mathcal{A}(\xi)` (dense). For an array A the gradient costs two
    products with A, O(p m n), or, when p > m n, one with the Gram matrix :math:`A^TA` (formed
    once, O((m n)^2) memory): O((m n)^2) per gradient. The cost is always computed from the
    residual :math:`\mathcal{A}(W) - y` (no cancellation near a minimizer).

    Raises
    ------
    TypeError : manifold not a DeepLinearFixedRank; A of an unsupported type; complex data
        (arrays, a LinearOperator of complex dtype, or callables that return complex values:
        refused, never cast); non-numeric A or y (strings, objects).
    ValueError : shapes do not match (p, m n); non-finite A or y; forward or adjoint returning
        NaN/inf or the wrong shape (named, at construction: both are evaluated once there); an
        adjoint that is not one; an unknown reduction. A loss that overflows raises ValueError.
    """
    return MatrixSensingProblem(manifold, A, y, preconditioner, reduction)
