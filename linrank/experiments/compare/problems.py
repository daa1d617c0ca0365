r"""Problems of ``linrank compare``: a registry of rank-k problems with their known optima.

A problem is built by name and size into a :class:`ProblemInstance`, which exposes its cost on
a factored matrix :math:`W = A B^T`-style pair ``(A, Bt)`` (A m x r, Bt r x n; a point
(u, s, vt) is ``(u * s, vt)``), the Euclidean gradient and Hessian-vector product as scipy
LinearOperators (so nothing m x n is formed: the large sizes have m = n = 2000), the data of
the flows (least-squares problems only) and the optimum when it is known in closed form.

Registered here (all least squares :math:`L^1(W) = \tfrac12\|Y - WX\|_F^2`, eq. (2), on rank
<= k; optimum :func:`linrank.rank_constrained_minimizer`, Eckart-Young after whitening):

* ``autoencoder``: the paper's Section 7 data (:func:`linrank.gaussian_data`, X d x 3d with
  i.i.d. N(0, 1/d) entries), Y = X. Its spectrum has no gap at k: slow for first-order methods.
* ``spiked``: an autoencoder whose data carry k planted directions of variance 25 on top of the
  same noise (whose covariance has eigenvalues up to ~7.5): a clear gap
  :math:`\lambda_k / \lambda_{k+1} \approx 4`.
* ``regression``: Y = T X + 0.1 noise with T of singular values 10^(1 ... -1) (geometric), X as
  in the paper: Y != X, and an optimum whose singular values spread over two decades (this is
  where the depth metric's weights :math:`s^{2(N-1)/N}` differ most between directions).

Factorization problems (no data for the flows; optimum planted, f* = 0), built on
:func:`linrank.matrix_completion_problem` and :func:`linrank.matrix_sensing_problem`:

* ``completion``: a rank-k matrix with singular values spread over a decade (10 : 1) observed on
  a uniformly random set of entries (about 4x its degrees of freedom, at most 5% at d = 2000).
* ``sensing``: the same kind of matrix measured by a random operator with about 3x its degrees of
  freedom in measurements: dense Gaussian for the quick and small sizes, sparse (20 random
  +-1 entries per measurement, scaled to be isotropic) at d = 2000, where a dense operator would
  have 10^11 entries.

Other problems plug in with :func:`register_problem` (a builder ``(size, seed) ->
ProblemInstance``); one without a closed-form optimum sets ``f_star=None`` and the comparison
then measures gaps to the best cost found by any solver (the report says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ...data import LinearData, gaussian_data, rank_constrained_minimizer

__all__ = [
    "SIZES",
    "ProblemInstance",
    "register_problem",
    "problem_names",
    "build_problem",
    "least_squares_instance",
]

#: (d, k) of each size: m = n = d, rank k. "quick" is the size of ``linrank compare --quick``.
SIZES: dict[str, tuple[int, int]] = {"quick": (20, 3), "small": (40, 4), "large": (2000, 5)}

Factored = tuple[np.ndarray, np.ndarray]


@dataclass
class ProblemInstance:
    """One problem at one size, ready for every solver.

    Attributes
    ----------
    name, size : registry name and size label.
    m, n, k : W is m x n of rank k.
    description : one line for the report.
    cost : (A, Bt) -> f(A @ Bt).
    gradient : (A, Bt) -> LinearOperator of the Euclidean gradient at W = A @ Bt.
    hessian : (A, Bt, ZA, ZBt) -> LinearOperator of the Euclidean Hessian at W applied to the
        direction Z = ZA @ ZBt, or None (then second-order solvers fail, and say so).
    data : the least-squares data of the flows (:class:`linrank.LinearData`), or None (then the
        flows and layer-wise gradient descent are "not applicable").
    optimum : the global minimizer as a point (u, s, vt), or None.
    f_star : the minimum, or None (gaps are then taken to the best cost any solver found).
    optimum_source : where f* comes from ("closed form", "planted", ...).
    make_problem : optional manifold -> pymanopt.Problem with the exact Riemannian gradient and
        Hessian (then the pymanopt solvers on DeepLinearFixedRank use it instead of the
        LinearOperators).
    direct : () -> ((u, s, vt), method) the direct answer (closed form), or None.
    scale : the size of the singular values of the random starts (s_1 of the optimum when known).
    setup_time : seconds spent building the instance (data, covariances, optimum).
    """

    name: str
    size: str
    m: int
    n: int
    k: int
    description: str
    cost: Callable[[np.ndarray, np.ndarray], float]
    gradient: Callable[[np.ndarray, np.ndarray], LinearOperator]
    hessian: Callable[..., LinearOperator] | None = None
    data: LinearData | None = None
    optimum: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    f_star: float | None = None
    direct: Callable[[], tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str]] | None = None
    scale: float = 1.0
    setup_time: float = 0.0
    optimum_source: str = "closed form"
    make_problem: Callable | None = None
    extra: dict = field(default_factory=dict)

    def start(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The random start of ``seed``: Haar u, v and s = scale * linspace(1, 0.5, k)."""
        rng = np.random.default_rng([seed, 7919])
        u = _haar(rng, self.m, self.k)
        v = _haar(rng, self.n, self.k)
        s = self.scale * np.linspace(1.0, 0.5, self.k)
        return u, s, v.T.copy()

    def distance(self, A: np.ndarray, Bt: np.ndarray) -> float:
        """||A Bt - W*||_F from the factors (O((m + n) r^2)); NaN without a known optimum."""
        if self.optimum is None:
            return float("nan")
        u, s, vt = self.optimum
        return factored_distance(A, Bt, u * s, vt)


def _haar(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((d, k)))
    return Q * np.sign(np.diag(R))


def factored_distance(A1: np.ndarray, B1t: np.ndarray, A2: np.ndarray, B2t: np.ndarray) -> float:
    """||A1 B1t - A2 B2t||_F from the factors: the Gram expansion, clipped at 0.

    Absolute error ~ eps (||A1 B1t||^2 + ||A2 B2t||^2) / distance, so distances below
    ~1e-7 ||W|| are at the rounding floor.
    """
    g11 = float(np.sum((A1.T @ A1) * (B1t @ B1t.T)))
    g22 = float(np.sum((A2.T @ A2) * (B2t @ B2t.T)))
    g12 = float(np.sum((A1.T @ A2) * (B1t @ B2t.T)))
    return float(np.sqrt(max(g11 + g22 - 2.0 * g12, 0.0)))


def point_from_dense_rank_k(W: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The thin SVD (u, s, vt) of a dense matrix of rank k without a full SVD.

    Q = orth(W W^T-range sketch) from k + 5 random columns, then the SVD of the small Q^T W:
    exact to rounding for a matrix of rank <= k (the sketch spans its range).
    """
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(W @ rng.standard_normal((W.shape[1], k + 5)))
    ub, s, vt = np.linalg.svd(Q.T @ W, full_matrices=False)
    return (Q @ ub[:, :k]), s[:k], vt[:k]


# ---------------------------------------------------------------------- least squares
def least_squares_instance(
    name: str, size: str, X: np.ndarray, Y: np.ndarray | None, k: int, description: str
) -> ProblemInstance:
    r""":math:`L^1(W) = \tfrac12\|Y - WX\|_F^2` on rank k, with covariances C = XX^T, B = YX^T.

    Cost :math:`\tfrac12\|Y\|^2 - \langle B, W\rangle + \tfrac12\langle WC, W\rangle` (absolute
    error ~ eps ||Y||^2), gradient G = WC - B and Hessian-vector product ZC, all applied to
    k-column blocks only. The optimum and minimum: :func:`linrank.rank_constrained_minimizer`.
    """
    t0 = time.perf_counter()
    Ys = X if Y is None else Y
    C = X @ X.T
    B = C if Y is None else Y @ X.T
    yy = float(np.sum(Ys * Ys))
    m, n = B.shape

    def cost(A: np.ndarray, Bt: np.ndarray) -> float:
        cross = float(np.sum(A * (B @ Bt.T)))
        quad = float(np.sum((A.T @ A) * (Bt @ C @ Bt.T)))
        return 0.5 * yy - cross + 0.5 * quad

    def gradient(A: np.ndarray, Bt: np.ndarray) -> LinearOperator:
        def matmat(V):
            return A @ (Bt @ (C @ V)) - B @ V

        def rmatmat(U):
            return C @ (Bt.T @ (A.T @ U)) - B.T @ U

        return LinearOperator((m, n), matvec=matmat, rmatvec=rmatmat, matmat=matmat,
                              rmatmat=rmatmat, dtype=float)

    def hessian(A: np.ndarray, Bt: np.ndarray, ZA: np.ndarray, ZBt: np.ndarray) -> LinearOperator:
        def matmat(V):
            return ZA @ (ZBt @ (C @ V))

        def rmatmat(U):
            return C @ (ZBt.T @ (ZA.T @ U))

        return LinearOperator((m, n), matvec=matmat, rmatvec=rmatmat, matmat=matmat,
                              rmatmat=rmatmat, dtype=float)

    W_star, f_star = rank_constrained_minimizer(X, Y, k)
    optimum = point_from_dense_rank_k(W_star, k)

    if Y is None:
        def direct():
            lam, U = np.linalg.eigh(C)
            Uk = U[:, ::-1][:, :k]
            return (Uk, np.ones(k), Uk.T.copy()), "eigh of X X^T (top-k eigenvectors)"
    else:
        def direct():
            W, _ = rank_constrained_minimizer(X, Y, k)
            return point_from_dense_rank_k(W, k), "Eckart-Young after whitening (Cholesky + SVD)"

    data = LinearData.from_covariances(C, None if Y is None else B, yy=yy)
    return ProblemInstance(
        name=name, size=size, m=m, n=n, k=k, description=description, cost=cost,
        gradient=gradient, hessian=hessian, data=data, optimum=optimum, f_star=float(f_star),
        direct=direct, scale=float(optimum[1][0]), setup_time=time.perf_counter() - t0,
    )


def _autoencoder(size: str, seed: int) -> ProblemInstance:
    d, k = SIZES[size]
    X = gaussian_data(d, seed=np.random.default_rng([seed, 1]))
    return least_squares_instance(
        "autoencoder", size, X, None, k,
        f"paper's Section 7 autoencoder: X {d} x {3 * d}, i.i.d. N(0, 1/{d}), Y = X, k = {k}")


def _spiked(size: str, seed: int) -> ProblemInstance:
    d, k = SIZES[size]
    rng = np.random.default_rng([seed, 2])
    n = 3 * d
    U = _haar(rng, d, k)
    X = gaussian_data(d, seed=rng) + U @ (5.0 * rng.standard_normal((k, n)) / np.sqrt(n))
    return least_squares_instance(
        "spiked", size, X, None, k,
        f"spiked autoencoder: Section 7 noise + {k} planted directions of variance 25, "
        f"X {d} x {n}, Y = X, k = {k}")


def _regression(size: str, seed: int) -> ProblemInstance:
    d, k = SIZES[size]
    rng = np.random.default_rng([seed, 3])
    n = 3 * d
    X = gaussian_data(d, seed=rng)
    T = (_haar(rng, d, d) * np.logspace(1, -1, d)) @ _haar(rng, d, d).T
    Y = T @ X + 0.1 * rng.standard_normal((d, n)) / np.sqrt(d)
    return least_squares_instance(
        "regression", size, X, Y, k,
        f"regression Y = T X + noise, T with singular values 10 ... 0.1, X {d} x {n}, k = {k}")


# ---------------------------------------------------------------------- factorization
def _planted(size: str, seed: int, salt: int):
    """(d, k, rng, (u, s, vt), degrees of freedom): a d x d rank-k matrix u diag(s) vt with Haar
    factors and s = d/sqrt(k) * 10^(0 ... -1) (entries of order one, singular values spread over
    a decade), and the generator that drew it."""
    d, k = SIZES[size]
    rng = np.random.default_rng([seed, salt])
    point = (_haar(rng, d, k), d / np.sqrt(k) * np.logspace(0, -1, k), _haar(rng, d, k).T.copy())
    return d, k, rng, point, (2 * d - k) * k


def factorization_instance(name: str, size: str, k: int, make_problem: Callable,
                           planted: tuple, description: str, t0: float) -> ProblemInstance:
    """An instance from a factory ``manifold -> FactorizationProblem`` with a planted noiseless
    minimizer (f* = 0). Cost and gradient of a factored W = A @ Bt go through the problem's
    ``loss`` and ``euclidean_gradient`` at the tuple (A, 1, Bt) (the problems evaluate
    u diag(s) vt without needing orthonormal u, vt)."""
    from scipy.sparse.linalg import aslinearoperator

    from ...manifold import DeepLinearFixedRank

    u, s, vt = planted
    m, n = u.shape[0], vt.shape[1]
    prob = make_problem(DeepLinearFixedRank(m, n, k, 1))
    ones = np.ones(k)
    egrad = prob.euclidean_gradient

    def cost(A: np.ndarray, Bt: np.ndarray) -> float:
        return float(prob.loss((A, ones, Bt)))

    def gradient(A: np.ndarray, Bt: np.ndarray) -> LinearOperator:
        return aslinearoperator(egrad((A, ones, Bt)))

    return ProblemInstance(
        name=name, size=size, m=m, n=n, k=k, description=description, cost=cost,
        gradient=gradient, hessian=None, data=None, optimum=planted, f_star=0.0, direct=None,
        scale=float(s[0]), setup_time=time.perf_counter() - t0, optimum_source="planted",
        make_problem=make_problem)


def _completion(size: str, seed: int) -> ProblemInstance:
    from ...problems import matrix_completion_problem

    t0 = time.perf_counter()
    d, k, rng, (u, s, vt), dof = _planted(size, seed, 4)
    p = min(4 * dof, d * d // 2) if d <= 200 else min(4 * dof, d * d // 20)
    idx = rng.choice(d * d, size=p, replace=False)
    rows, cols = idx // d, idx % d
    values = np.einsum("ij,ij->i", (u * s)[rows], vt.T[cols])
    return factorization_instance(
        "completion", size, k, lambda man: matrix_completion_problem(man, rows, cols, values),
        (u, s, vt), f"matrix completion: rank-{k} {d} x {d}, singular values 10:1, {p} observed "
        f"entries ({100 * p / d**2:.1f}%, {p / dof:.1f}x the degrees of freedom), f* = 0", t0)


def _sensing(size: str, seed: int) -> ProblemInstance:
    import scipy.sparse as sp

    from ...problems import matrix_sensing_problem

    t0 = time.perf_counter()
    d, k, rng, (u, s, vt), dof = _planted(size, seed, 5)
    p = 3 * dof
    mn = d * d
    if d <= 200:
        A = rng.standard_normal((p, mn)) / np.sqrt(p)
        kind = "dense Gaussian"
    else:
        q = 20
        cols = rng.integers(0, mn, size=(p, q)).ravel()
        vals = rng.choice([-1.0, 1.0], size=p * q) * np.sqrt(mn / (p * q))
        A = sp.csr_matrix((vals, cols, np.arange(0, p * q + 1, q)), shape=(p, mn))
        kind = f"sparse ({q} entries +-1 per measurement)"
    y = A @ ((u * s) @ vt).ravel()
    return factorization_instance(
        "sensing", size, k, lambda man: matrix_sensing_problem(man, A, y), (u, s, vt),
        f"matrix sensing: rank-{k} {d} x {d}, singular values 10:1, {p} {kind} measurements "
        f"(3x the degrees of freedom), f* = 0", t0)


_REGISTRY: dict[str, tuple[Callable[[str, int], ProblemInstance], str]] = {
    "autoencoder": (_autoencoder, "the paper's Section 7 autoencoder"),
    "spiked": (_spiked, "autoencoder with a clear spectral gap"),
    "regression": (_regression, "least-squares regression with Y != X"),
    "completion": (_completion, "matrix completion (planted low-rank matrix, random entries)"),
    "sensing": (_sensing, "matrix sensing (planted low-rank matrix, random measurements)"),
}


def register_problem(name: str, builder: Callable[[str, int], ProblemInstance],
                     description: str) -> None:
    """Add a problem: ``builder(size, seed)`` returns a :class:`ProblemInstance` for the size
    labels of :data:`SIZES`. Names are unique (ValueError on a second registration)."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"problem name must be a non-empty string without ':', got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"problem {name!r} is already registered")
    if not callable(builder):
        raise TypeError("builder must be callable (size, seed) -> ProblemInstance")
    _REGISTRY[name] = (builder, description)


def problem_names() -> list[str]:
    """Names of the registered problems."""
    return list(_REGISTRY)


def problem_description(name: str) -> str:
    """The registry's one-line description of ``name``."""
    return _REGISTRY[name][1]


def build_problem(name: str, size: str, seed: int = 0) -> ProblemInstance:
    """Build the registered problem ``name`` at ``size`` (data drawn from ``seed``)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown problem {name!r}; choices: {', '.join(_REGISTRY)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choices: {', '.join(SIZES)}")
    return _REGISTRY[name][0](size, seed)
