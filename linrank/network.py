r"""Deep linear networks: factor chains, balanced factors, conserved quantities.

Notation (Bah, Rauhut, Terstiege, Westdickenberg 2019, Section 2): factors :math:`W_j` of shape
(d_j, d_{j-1}) with d_0 = d_x and d_N = d_y, product :math:`W = W_N \cdots W_1` (d_y x d_x).

API summary
-----------
* :func:`balanced_factors` (W0, dims, seed=None) -- balanced factors with product W0 (Section 7).
* :func:`product` (factors) -- :math:`W_N \cdots W_1`.
* :func:`conserved_quantities` (factors) -- :math:`W_{j+1}^T W_{j+1} - W_j W_j^T`, j = 1..N-1
  (constant along the flow (5), Lemma 2(3)); :func:`imbalance` (factors) -- their largest norm.
* :func:`check_factors` -- validation of a factor chain.

The data (LinearData, as_data, gaussian_data, top_projector, rank_constrained_minimizer) are in
:mod:`linrank.data`; importing them from here still works but is deprecated.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from . import data as _data_module
from .data import finite_real_matrix

__all__ = [
    "balanced_factors",
    "product",
    "conserved_quantities",
    "imbalance",
    "check_factors",
]

#: Names that moved to :mod:`linrank.data` (issue 10); ``linrank.network.<name>`` warns.
_MOVED_TO_DATA = (
    "LinearData",
    "as_data",
    "gaussian_data",
    "top_projector",
    "rank_constrained_minimizer",
)


def __getattr__(name: str):
    if name in _MOVED_TO_DATA:
        warnings.warn(
            f"linrank.network.{name} is deprecated: import it from linrank.data (or linrank)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_data_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------- factors
def check_factors(
    factors: object, d_x: int | None = None, d_y: int | None = None
) -> list[np.ndarray]:
    """Validate a factor chain W_1..W_N (W_j of shape (d_j, d_{j-1})) and return float copies.

    Raises TypeError if ``factors`` is not a sequence of 2-d arrays, ValueError if it is empty,
    an entry is not finite, consecutive shapes do not chain (W_{j+1}.shape[1] != W_j.shape[0]),
    or the end widths differ from d_x (columns of W_1) and d_y (rows of W_N) when given.
    """
    if (
        isinstance(factors, np.ndarray)
        or not isinstance(factors, Sequence)
        or isinstance(factors, (str, bytes))
    ):
        raise TypeError(
            "factors must be a sequence (list or tuple) of 2-d arrays W_1, ..., W_N, got "
            f"{type(factors).__name__}"
        )
    if len(factors) == 0:
        raise ValueError("factors must contain at least one matrix")
    out = [finite_real_matrix(f"factor W_{j + 1}", W).copy() for j, W in enumerate(factors)]
    for j in range(1, len(out)):
        if out[j].shape[1] != out[j - 1].shape[0]:
            raise ValueError(
                f"factors do not chain: W_{j + 1} has shape {out[j].shape} but W_{j} has "
                f"{out[j - 1].shape[0]} rows (W_{j + 1} must have {out[j - 1].shape[0]} columns)"
            )
    if d_x is not None and out[0].shape[1] != d_x:
        raise ValueError(f"W_1 must have d_x = {d_x} columns (rows of X), got shape {out[0].shape}")
    if d_y is not None and out[-1].shape[0] != d_y:
        raise ValueError(f"W_N must have d_y = {d_y} rows (rows of Y), got shape {out[-1].shape}")
    return out


def product(factors: Sequence[np.ndarray]) -> np.ndarray:
    r"""The end-to-end matrix :math:`W = W_N \cdots W_1` (d_y x d_x)."""
    fs = [np.asarray(W, dtype=float) for W in factors]
    if not fs:
        raise ValueError("factors must contain at least one matrix")
    W = fs[0]
    for Wj in fs[1:]:
        W = Wj @ W
    return W


def conserved_quantities(factors: Sequence[np.ndarray]) -> list[np.ndarray]:
    r""":math:`D_j = W_{j+1}^T W_{j+1} - W_j W_j^T`, j = 1..N-1 (Lemma 2(3): constant under (5)).

    Balanced factors (Definition 1) have all D_j = 0. Each D_j is d_j x d_j.
    """
    fs = [np.asarray(W, dtype=float) for W in factors]
    return [fs[j + 1].T @ fs[j + 1] - fs[j] @ fs[j].T for j in range(len(fs) - 1)]


def imbalance(factors: Sequence[np.ndarray]) -> float:
    """max_j ||W_{j+1}^T W_{j+1} - W_j W_j^T||_F (0 for balanced factors; 0 for N = 1)."""
    qs = conserved_quantities(factors)
    return max((float(np.linalg.norm(D)) for D in qs), default=0.0)


def _random_orthonormal(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    """A Haar-distributed d x k matrix with orthonormal columns (QR with sign fix)."""
    if k == 0:
        return np.zeros((d, 0))
    Q, R = np.linalg.qr(rng.standard_normal((d, k)))
    return Q * np.sign(np.where(np.diag(R) == 0, 1.0, np.diag(R)))


def balanced_factors(
    W0: object,
    dims: Sequence[int],
    seed: int | np.random.Generator | None = None,
    *,
    rank: int | None = None,
) -> list[np.ndarray]:
    r"""Balanced factors :math:`W_1, \dots, W_N` with :math:`W_N \cdots W_1 = W_0` (Section 7).

    With the thin SVD :math:`W_0 = V_N \Sigma V_0^T` truncated to its rank k,

    .. math::

        W_j = V_j\, \Sigma^{1/N}\, V_{j-1}^T,\qquad j = 1, \dots, N,

    where :math:`V_1, \dots, V_{N-1}` are random d_j x k matrices with orthonormal columns (Haar,
    from ``seed``). Then :math:`W_{j+1}^T W_{j+1} = V_j \Sigma^{2/N} V_j^T = W_j W_j^T`
    (Definition 1; Arora et al. 2018, Sec. 3.3), to rounding: the conserved quantities are
    ~eps ||W0||^{2/N} and the product equals W0 to ~eps ||W0|| (times N).

    Parameters
    ----------
    W0 : (d_y, d_x) array.
    dims : (d_x, d_1, ..., d_{N-1}, d_y), N >= 1.
    seed : seed or numpy Generator for the orthogonal freedom (None: fresh entropy).
    rank : the rank k to keep (default: the numerical rank of W0, singular values above
        max(d_x, d_y) * eps * s_1). Singular values beyond ``rank`` are dropped.

    Raises
    ------
    TypeError, ValueError
        W0 not a finite 2-d array; dims not integers >= 1 or not matching W0's shape; a hidden
        width d_j below the rank.
    """
    W0 = finite_real_matrix("W0", W0)
    if isinstance(dims, (str, bytes)) or not isinstance(dims, (Sequence, np.ndarray)):
        raise TypeError(f"dims must be a sequence of integers (d_x, d_1, ..., d_y), got {dims!r}")
    dims_l = list(dims)
    for d in dims_l:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"dims must contain integers, got {d!r} in {dims_l}")
        if d < 1:
            raise ValueError(f"dims must be positive, got {dims_l}")
    if len(dims_l) < 2:
        raise ValueError(f"dims must have at least 2 entries (d_x, ..., d_y), got {dims_l}")
    d_y, d_x = W0.shape
    if dims_l[0] != d_x or dims_l[-1] != d_y:
        raise ValueError(
            f"dims must start with d_x = {d_x} and end with d_y = {d_y} (W0 has shape {W0.shape}), "
            f"got {dims_l}"
        )
    N = len(dims_l) - 1
    U, S, Vt = np.linalg.svd(W0, full_matrices=False)
    if rank is None:
        tol = max(W0.shape) * np.finfo(float).eps * (S[0] if S.size else 0.0)
        k = int(np.sum(S > tol))
    else:
        if (
            isinstance(rank, bool)
            or not isinstance(rank, (int, np.integer))
            or not (0 <= rank <= min(W0.shape))
        ):
            raise ValueError(f"rank must be an integer in [0, {min(W0.shape)}], got {rank!r}")
        k = int(rank)
    for j, d in enumerate(dims_l[1:-1], start=1):
        if d < k:
            raise ValueError(
                f"hidden width d_{j} = {d} is below rank(W0) = {k}: no factorization through it"
            )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    root = S[:k] ** (1.0 / N)
    V = [Vt[:k].T] + [_random_orthonormal(rng, d, k) for d in dims_l[1:-1]] + [U[:, :k]]
    return [(V[j + 1] * root) @ V[j].T for j in range(N)]


