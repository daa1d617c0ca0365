r"""Deep linear networks: factor chains, balanced factors, conserved quantities.

Notation (Bah, Rauhut, Terstiege, Westdickenberg 2019, Section 2): factors :math:`W_j` of shape
(d_j, d_{j-1}) with d_0 = d_x and d_N = d_y, product :math:`W = W_N \cdots W_1` (d_y x d_x).

API summary
-----------
* :func:`balanced_factors` (W0, dims, seed=None) -- balanced factors with product W0 (Section 7).
* :func:`gaussian_factors` (dims, scale, seed=None) -- independent Gaussian factors (not
  balanced) of a given scale: entries N(0, scale^2), or scaled so that the product's spectral
  norm is ``scale``.
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
    "gaussian_factors",
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
    dims_l = _check_dims(dims)
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




def _check_dims(dims: object) -> list[int]:
    """dims as a list of >= 2 positive ints (d_x, d_1, ..., d_y)."""
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
    return [int(d) for d in dims_l]


#: Largest total number of factor entries gaussian_factors builds (8 GiB of float64); more is
#: refused before any work (``max_entries=`` raises the limit).
MAX_FACTOR_ENTRIES = 1 << 30


def gaussian_factors(
    dims: Sequence[int],
    scale: float,
    seed: int | np.random.Generator | None = None,
    *,
    normalization: str = "entries",
    max_entries: int = MAX_FACTOR_ENTRIES,
) -> list[np.ndarray]:
    r"""Independent Gaussian factors :math:`W_1, \dots, W_N` of a given scale (not balanced).

    ``normalization="entries"`` (default): every entry of every factor is drawn independently
    from :math:`\mathcal N(0, \mathrm{scale}^2)`,

    .. math:: (W_j)_{ab} = \mathrm{scale}\cdot g^{(j)}_{ab},\qquad g^{(j)}_{ab} \sim \mathcal N(0, 1),

    the "initialization scale" of the deep matrix factorization literature (Arora, Cohen, Hu and
    Luo 2019). ``normalization="product"``: the same Gaussian factors multiplied by one common
    :math:`c > 0` chosen so that the end-to-end matrix has spectral norm ``scale``,
    :math:`\|W_N \cdots W_1\|_2 = \mathrm{scale}` (the scale of a balanced start
    ``balanced_factors(scale * Q, dims)`` from an orthogonal Q), i.e.
    :math:`c = (\mathrm{scale} / \|G_N \cdots G_1\|_2)^{1/N}`, computed from logarithms (no
    overflow of the product at any depth).

    Such factors are not balanced: :math:`W_{j+1}^T W_{j+1} - W_j W_j^T \neq 0`
    (:func:`imbalance`), so Corollary 8 does not apply and the product's flow is not the
    Riemannian flow of :math:`\mathcal{M}_k`; :func:`linrank.factor_flow` integrates them.

    Parameters
    ----------
    dims : (d_x, d_1, ..., d_{N-1}, d_y), N >= 1 (W_j has shape (d_j, d_{j-1})).
    scale : the standard deviation of the entries, or the product's spectral norm; finite,
        > 0.
    seed : seed or numpy Generator (None: fresh entropy). The draws are, in order,
        ``rng.standard_normal((d_j, d_{j-1}))`` for j = 1..N.
    normalization : "entries" or "product".
    max_entries : refuse (before drawing) more factor entries than this in all.

    Returns
    -------
    list of N float arrays, W_j of shape (d_j, d_{j-1}). "product": the spectral norm of the
    product equals ``scale`` to a relative error of about N eps (plus the SVD's eps).

    Raises
    ------
    TypeError, ValueError
        dims not a sequence of positive integers (at least 2); scale not a finite positive
        number; an unknown normalization; more than ``max_entries`` entries; "product" with a
        product that is zero to rounding.
    """
    dims_l = _check_dims(dims)
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale must be a real number, got {scale!r}")
    scale = float(scale)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be finite and > 0, got {scale}")
    if normalization not in ("entries", "product"):
        raise ValueError(f"normalization must be 'entries' or 'product', got {normalization!r}")
    total = sum(a * b for a, b in zip(dims_l[:-1], dims_l[1:]))
    if total > max_entries:
        raise ValueError(f"the factors would have {total} entries in all, above max_entries = "
                         f"{max_entries} ({8 * total / 2**30:.1f} GiB): refused before drawing")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    G = [rng.standard_normal((b, a)) for a, b in zip(dims_l[:-1], dims_l[1:])]
    if normalization == "entries":
        return [scale * g for g in G]
    # log ||G_N ... G_1||_2 with the running product renormalized after every factor
    log_norm = 0.0
    P = G[0]
    for g in [None] + G[1:]:
        if g is not None:
            P = g @ P
        top = float(np.max(np.abs(P), initial=0.0))
        if top == 0.0:
            raise ValueError("the product of the Gaussian factors is zero: it has no spectral "
                             "norm to scale")
        P = P / top
        log_norm += np.log(top)
    log_norm += np.log(np.linalg.norm(P, 2))
    c = np.exp((np.log(scale) - log_norm) / len(G))
    return [c * g for g in G]
