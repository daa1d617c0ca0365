r"""Matrix completion and matrix sensing on :class:`~linrank.DeepLinearFixedRank`, exactly.

Deep matrix factorization trains :math:`W = W_N \cdots W_1` on a loss of the product alone; from
balanced factors the product moves by the Riemannian gradient flow of that loss for the metric of
depth N (Corollary 8's chain-rule argument does not use the form of the loss). These problems give
pymanopt (all optimizers, TrustRegions included) and :func:`linrank.riemannian_flow` the exact
cost, Euclidean gradient and Euclidean Hessian-vector product of two such losses, evaluated from
the factors ``(u, s, vt)`` of the point:

* :func:`matrix_completion_problem`: :math:`f(W) = \tfrac12 \sum_{(i,j)\in\Omega} (W_{ij} - A_{ij})^2`.
  W is evaluated on :math:`\Omega` only, as :math:`W_{ij} = \sum_l u_{il} s_l v_{jl}`; the
  gradient is the sparse matrix of residuals on :math:`\Omega`; nothing of size m x n is formed.
* :func:`matrix_sensing_problem`: :math:`f(W) = \tfrac12 \|\mathcal{A}(W) - y\|^2` for a linear
  measurement operator :math:`\mathcal{A}: \mathbb{R}^{m\times n} \to \mathbb{R}^p`.

Both return a :class:`FactorizationProblem`, a :class:`pymanopt.Problem` whose Riemannian
gradient is :math:`\mathcal{A}_W(P_T \nabla f)` (eq. (31)) and whose Riemannian Hessian is the
Levi-Civita one of :func:`linrank.connection.riemannian_hessian`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pymanopt
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from .manifold import DeepLinearFixedRank, FixedRankPoint, TangentVector

__all__ = ["FactorizationProblem", "matrix_completion_problem", "matrix_sensing_problem"]

#: Observed entries processed per block when W is evaluated on the observed set (bounds the
#: temporaries to ~2 * block * k floats, a few MB, whatever the number of observations).
_BLOCK = 1 << 16


def _check_manifold(manifold: Any) -> DeepLinearFixedRank:
    if not isinstance(manifold, DeepLinearFixedRank):
        raise TypeError(
            f"manifold must be a linrank.DeepLinearFixedRank, got {type(manifold).__name__}"
        )
    return manifold


def _tangent(manifold: DeepLinearFixedRank, xi: Any) -> TangentVector:
    if not isinstance(xi, (tuple, list)) or len(xi) != 3:
        raise TypeError(f"a tangent vector must be (Up, M, Vp), got {type(xi).__name__}")
    t = TangentVector(*(np.asarray(x, dtype=float) for x in xi))
    m, n, k = manifold.m, manifold.n, manifold.k
    if t.Up.shape != (m, k) or t.M.shape != (k, k) or t.Vp.shape != (n, k):
        raise ValueError(
            f"tangent vector (Up, M, Vp) must have shapes ({m}, {k}), ({k}, {k}), ({n}, {k}); "
            f"got {t.Up.shape}, {t.M.shape}, {t.Vp.shape}"
        )
    return t


class FactorizationProblem(pymanopt.Problem):
    """A :class:`pymanopt.Problem` on DeepLinearFixedRank for a loss evaluated from the factors.

    Subclasses implement ``_residual(point)`` (the data-dependent part computed once per point),
    ``_loss(res)``, ``_gradient(res)`` (an ambient form the manifold accepts) and
    ``_hessian(point, xi)``. The residual of the last point is cached (compared by value, so a
    point changed in place is never mistaken for the cached one): a cost and a gradient at the
    same point, as every pymanopt optimizer asks for, share one pass over the data.

    Attributes beyond pymanopt's: :meth:`loss_and_gradient`, :meth:`gradient_products` (the
    products ``(G v, G^T u, f)`` that the flows need).
    """

    def __init__(self, manifold: DeepLinearFixedRank,
                 preconditioner: Callable[[Any, Any], Any] | None = None):
        _check_manifold(manifold)
        if preconditioner is not None and not callable(preconditioner):
            raise TypeError(
                "preconditioner must be callable (point, tangent_vector) -> tangent, or None"
            )

        @pymanopt.function.numpy(manifold)
        def _cost(u, s, vt):
            return self.loss((u, s, vt))

        super().__init__(manifold, _cost, preconditioner=preconditioner)
        self._cache: tuple[tuple[np.ndarray, ...], Any] | None = None

    # ------------------------------------------------------------------ subclass hooks
    def _residual(self, point: FixedRankPoint) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _loss(self, res: Any) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _gradient(self, res: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _hessian(self, point: FixedRankPoint, xi: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ shared machinery
    def _point(self, point: Any) -> FixedRankPoint:
        """Shape and finiteness check of a point (O(k); orthonormality is the caller's)."""
        man = self.manifold
        if not isinstance(point, (tuple, list)) or len(point) != 3:
            raise TypeError(f"a point must be (u, s, vt), got {type(point).__name__}")
        u, s, vt = (np.asarray(x, dtype=float) for x in point)
        m, n, k = man.m, man.n, man.k
        if u.shape != (m, k) or s.shape != (k,) or vt.shape != (k, n):
            raise ValueError(
                f"point (u, s, vt) must have shapes ({m}, {k}), ({k},), ({k}, {n}); got "
                f"{u.shape}, {s.shape}, {vt.shape}"
            )
        if not np.all(np.isfinite(s)):
            raise ValueError(f"singular values s must be finite, got {s}")
        return FixedRankPoint(u, s, vt)

    def _res(self, point: Any) -> Any:
        p = self._point(point)
        c = self._cache
        if c is not None and all(np.array_equal(a, b) for a, b in zip(c[0], p)):
            return c[1]
        res = self._residual(p)
        self._cache = (tuple(np.array(x, copy=True) for x in p), res)
        return res

    def loss(self, point: Any) -> float:
        """The loss f(W) at the point (u, s, vt)."""
        return self._loss(self._res(point))

    def loss_and_gradient(self, point: Any) -> tuple[float, Any]:
        """(f(W), Euclidean gradient) at the point, from one evaluation of the residual."""
        res = self._res(point)
        return self._loss(res), self._gradient(res)

    def gradient_products(self, point: Any) -> tuple[np.ndarray, np.ndarray, float]:
        """(G v, G^T u, f(W)) at the point (u, s, vt), G the Euclidean gradient, v = vt^T."""
        p = self._point(point)
        loss, G = self.loss_and_gradient(p)
        Gv = np.asarray(G @ p.vt.T)
        Gtu = np.asarray(G.T @ p.u)
        return Gv, Gtu, loss

    @property
    def euclidean_gradient(self):
        def gradient(point):
            return self._gradient(self._res(point))

        return gradient

    @property
    def riemannian_gradient(self):
        manifold = self.manifold

        def gradient(point):
            return manifold.euclidean_to_riemannian_gradient(point, self._gradient(self._res(point)))

        return gradient

    @property
    def euclidean_hessian(self):
        def hessian(point, tangent_vector):
            return self._hessian(self._point(point), tangent_vector)

        return hessian

    @property
    def riemannian_hessian(self):
        manifold = self.manifold

        def hessian(point, tangent_vector):
            p = self._point(point)
            return manifold.euclidean_to_riemannian_hessian(
                p, self._gradient(self._res(p)), self._hessian(p, tangent_vector), tangent_vector
            )

        return hessian


# ---------------------------------------------------------------------- matrix completion
def _index_array(name: str, a: Any, size: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of indices, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if arr.size == 0:  # np.asarray([]) is float64: an empty list of indices is fine
            return np.zeros(0, dtype=np.int64)
        raise TypeError(
            f"{name} must hold integers, got dtype {arr.dtype} (convert whole-number floats with "
            ".astype(int) yourself: a non-integer index is a data error, not rounded here)"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        bad = int(np.flatnonzero((arr < 0) | (arr >= size))[0])
        raise ValueError(
            f"{name}[{bad}] = {int(arr[bad])} is out of range: indices must lie in [0, {size}) "
            "(negative indices do not wrap around)"
        )
    return arr.astype(np.int64, copy=False)


class MatrixCompletionProblem(FactorizationProblem):
    r"""The loss :math:`\tfrac12 \sum_{(i,j)\in\Omega} (W_{ij} - A_{ij})^2`; see
    :func:`matrix_completion_problem`."""

    def __init__(self, manifold, rows, cols, values, preconditioner=None):
        man = _check_manifold(manifold)
        m, n = man.m, man.n
        rows = _index_array("rows", rows, m)
        cols = _index_array("cols", cols, n)
        values = np.asarray(values)
        if values.ndim != 1 or not (np.issubdtype(values.dtype, np.number)
                                    or values.dtype == bool or values.size == 0):
            raise ValueError(f"values must be a 1-d array of numbers, got shape {values.shape}, "
                             f"dtype {values.dtype}")
        if np.iscomplexobj(values):
            raise TypeError("values must be real, got complex numbers")
        values = values.astype(float)
        if not (rows.size == cols.size == values.size):
            raise ValueError(
                f"rows, cols and values must have equal lengths, got {rows.size}, {cols.size}, "
                f"{values.size}"
            )
        if not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"values must be finite, values[{bad}] = {values[bad]}")
        lin = rows * n + cols  # row-major linear index: sorting it gives CSR order
        order = np.argsort(lin, kind="stable")
        lin = lin[order]
        dup = np.flatnonzero(lin[1:] == lin[:-1])
        if dup.size:
            i, j = divmod(int(lin[dup[0]]), n)
            raise ValueError(
                f"duplicated observation of entry ({i}, {j}) ({dup.size} duplicates in all): each "
                "observed entry must appear once; average repeated measurements of an entry first"
            )
        idx = np.int32 if max(m, n, lin.size) < 2**31 - 1 else np.int64
        self.rows = rows[order].astype(idx)
        self.cols = cols[order].astype(idx)
        self.values = values[order]
        self.indptr = np.zeros(m + 1, dtype=idx)
        np.cumsum(np.bincount(self.rows, minlength=m), out=self.indptr[1:])
        super().__init__(man, preconditioner)

    @property
    def n_observed(self) -> int:
        """The number of observed entries |Omega|."""
        return int(self.values.size)

    def observed(self, point: Any) -> np.ndarray:
        r"""The entries :math:`W_{ij} = \sum_l u_{il} s_l v_{jl}` of the point on :math:`\Omega`
        (in the order of :attr:`rows`, :attr:`cols`: sorted row-major).

        Blocks of 65536 entries; O(|Omega| k) flops, memory O(block k). Each entry is a k-term dot
        product: absolute error <= k eps sum_l |u_il| s_l |v_jl|.
        """
        return self._sample(*self._point(point))

    def _sample(self, u, s, vt):
        return _gather_dot(u * s, vt.T, self.rows, self.cols)

    def _residual(self, p):
        return self._sample(*p) - self.values

    def _loss(self, r):
        return 0.5 * float(r @ r)

    def _csr(self, data):
        m, n = self.manifold.m, self.manifold.n
        return sp.csr_matrix((data, self.cols, self.indptr), shape=(m, n), copy=False)

    def _gradient(self, r):
        return self._csr(r)

    def _hessian(self, p, xi):
        t = _tangent(self.manifold, xi)
        u, _, vt = p
        # xi = (u M + Up) vt + u Vp^T = [u M + Up, u] [v, Vp]^T: one gather of 2k columns
        left = np.hstack((u @ t.M + t.Up, u))
        right = np.hstack((vt.T, t.Vp))
        return self._csr(_gather_dot(left, right, self.rows, self.cols))


def _gather_dot(left: np.ndarray, right: np.ndarray, rows: np.ndarray, cols: np.ndarray
                ) -> np.ndarray:
    """The row-wise dot products left[rows] . right[cols], in blocks of ``_BLOCK`` entries.

    ``np.take`` on C-contiguous tables (3-4x faster than fancy indexing here).
    """
    left = np.ascontiguousarray(left)
    right = np.ascontiguousarray(right)
    out = np.empty(rows.size)
    for a in range(0, rows.size, _BLOCK):
        b = min(a + _BLOCK, rows.size)
        out[a:b] = np.einsum("ij,ij->i", np.take(left, rows[a:b], axis=0),
                             np.take(right, cols[a:b], axis=0))
    return out


def matrix_completion_problem(
    manifold: DeepLinearFixedRank,
    rows: Any,
    cols: Any,
    values: Any,
    preconditioner: Callable[[Any, Any], Any] | None = None,
) -> MatrixCompletionProblem:
    r"""Matrix completion on ``manifold``: :math:`f(W) = \tfrac12 \sum_{(i,j)\in\Omega} (W_{ij} - A_{ij})^2`.

    Parameters
    ----------
    manifold : the DeepLinearFixedRank (m x n, rank k, depth N) to optimize over.
    rows, cols : integer arrays of equal length p: the observed set
        :math:`\Omega = \{(rows_l, cols_l)\}`, 0 <= rows < m, 0 <= cols < n. Every entry at most
        once: a duplicated (i, j) is refused with a ValueError (repeated measurements are to be
        averaged by the caller). An empty set is allowed (f = 0).
    values : the observed values :math:`A_{ij}` (finite reals), in the order of rows, cols.
    preconditioner : optional, passed to pymanopt (TrustRegions).

    Returns
    -------
    A :class:`FactorizationProblem` (pymanopt.Problem) with

    * cost: the entries of W on :math:`\Omega` from the factors, :math:`W_{ij} = (u_i \circ s)\cdot
      v_j`, never the m x n matrix: O(p k) flops, O((m + n) k) memory beyond the data;
    * Euclidean gradient :math:`\nabla f = P_\Omega(W - A)`, a ``scipy.sparse.csr_matrix``
      (built on the stored index arrays, no copy);
      :math:`\operatorname{grad} f = \mathcal{A}_W(P_T \nabla f)` (eq. (31)) takes two sparse
      products with k columns;
    * Euclidean Hessian-vector product :math:`\nabla^2 f[\xi] = P_\Omega(\xi)`: the sparse matrix of
      the entries of :math:`\xi = u M v^T + U_p v^T + u V_p^T` on :math:`\Omega`, O(p k); the
      Riemannian Hessian is the exact Levi-Civita one.

    The last point's residual is cached (compared by value), so a cost and a gradient at one
    point cost one pass over the observations.

    Raises
    ------
    TypeError : manifold not a DeepLinearFixedRank; indices not integers; complex values.
    ValueError : lengths differ; an index out of range; a duplicated entry; a non-finite value.
    """
    return MatrixCompletionProblem(manifold, rows, cols, values, preconditioner)


# ---------------------------------------------------------------------- matrix sensing
class MatrixSensingProblem(FactorizationProblem):
    r"""The loss :math:`\tfrac12\|\mathcal{A}(W) - y\|^2`; see :func:`matrix_sensing_problem`."""

    #: Relative tolerance of the adjoint test of a (forward, adjoint) pair at construction.
    adjoint_rtol: float = 1e-8

    def __init__(self, manifold, A, y, preconditioner=None):
        man = _check_manifold(manifold)
        m, n = man.m, man.n
        y = np.asarray(y)
        if np.iscomplexobj(y):
            raise TypeError("y must be real, got complex numbers")
        if y.ndim != 1:
            raise ValueError(f"y must be a 1-d array of p measurements, got shape {y.shape}")
        y = y.astype(float)
        if not np.all(np.isfinite(y)):
            raise ValueError("y must be finite")
        p = y.size
        self.y = y
        self._shape = (m, n)
        self._gram = None
        if isinstance(A, (tuple, list)) and len(A) == 2 and all(callable(f) for f in A):
            self._forward_fn, self._adjoint_fn = A
            self.matrix = None
            self._check_adjoint(m, n, p)
        elif isinstance(A, LinearOperator):
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
        out = np.asarray(self._forward_fn(W), dtype=float)
        if out.shape != self.y.shape:
            raise ValueError(f"forward(W) must return shape ({self.y.size},), got {out.shape}")
        return out

    def adjoint(self, r: np.ndarray) -> np.ndarray:
        """The adjoint A*(r) of p measurements as a dense m x n matrix."""
        m, n = self._shape
        if self.matrix is not None:
            return np.asarray(self.matrix.T @ r).reshape(m, n)
        out = np.asarray(self._adjoint_fn(r), dtype=float)
        if out.shape != (m, n):
            raise ValueError(f"adjoint(r) must return shape ({m}, {n}), got {out.shape}")
        return out

    def _residual(self, p):
        W = DeepLinearFixedRank.to_dense(p)
        r = self.forward(W) - self.y
        if not np.all(np.isfinite(r)):
            raise ValueError("A(W) - y is not finite")
        return W, r

    def _loss(self, res):
        r = res[1]
        return 0.5 * float(r @ r)

    def _gradient(self, res):
        W, r = res
        if self._gram is not None:
            Q, b = self._gram
            return (Q @ W.ravel() - b).reshape(W.shape)
        return self.adjoint(r)

    def _hessian(self, p, xi):
        Z = self.manifold.tangent_to_dense(p, _tangent(self.manifold, xi))
        if self._gram is not None:
            return (self._gram[0] @ Z.ravel()).reshape(Z.shape)
        return self.adjoint(self.forward(Z))


def matrix_sensing_problem(
    manifold: DeepLinearFixedRank,
    A: Any,
    y: Any,
    preconditioner: Callable[[Any, Any], Any] | None = None,
) -> MatrixSensingProblem:
    r"""Matrix sensing on ``manifold``: :math:`f(W) = \tfrac12\|\mathcal{A}(W) - y\|^2`.

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
    TypeError : manifold not a DeepLinearFixedRank; A of an unsupported type; complex data.
    ValueError : shapes do not match (p, m n); non-finite A or y; an adjoint that is not one.
    """
    return MatrixSensingProblem(manifold, A, y, preconditioner)
