r"""Starting factors for the experiments of Section 7, and the hypothesis (47) of Conjecture 32.

Notation: data X (d x m) of the autoencoder Y = X, :math:`XX^T = \sum_i \lambda_i u_i u_i^T` with
:math:`\lambda_1 \ge \dots \ge \lambda_d`, :math:`U_r = (u_1, \dots, u_r)`. A start is a list of
factors ``[W_1, ..., W_N]``, W_1 of shape d_1 x d, W_j of shape d_j x d_{j-1}, W_N of shape
d x d_{N-1}; ``hidden_widths = (d_1, ..., d_{N-1})``, each at least the rank r (default: all
equal to r, as in the paper). The end-to-end matrix is :math:`W(0) = W_N \cdots W_1`.

Condition (47) (Conjecture 32): :math:`u_i^T W(0) u_i > 0` for i = 1..r, together with
:math:`\operatorname{rank} W(0) U_r = r`. It is *not* balancedness; a start can be balanced and
violate it (:func:`condition_47` checks it).

Starts
------
* :func:`paper_start` -- Section 7 exactly. N = 2: :math:`W_1(0) = V_r^T` (orthonormal rows, V
  Haar d x d), :math:`W_2(0) = \tilde V V_r` (:math:`\tilde V` Haar d x d): every singular value
  is 1. N > 2: a full d x d matrix G with i.i.d. N(0, 1/d) entries, its SVD truncated to rank r,
  :math:`W_j(0) = V_j \Sigma_r^{1/N} V_{j-1}^T` with Haar V_1..V_{N-1} (d_j x r orthonormal
  columns), V_0, V_N the singular vectors of G. Balanced.
* :func:`inside_47_start` / :func:`outside_47_start` -- the paper's start conditioned on (47)
  holding / failing. Exact conditional distributions: if R_S = I - 2 sum_{i in S} u_i u_i^T,
  then W(0) -> W(0) R_S flips the sign of u_i^T W(0) u_i for i in S and leaves the others
  unchanged, and the paper's start has the same distribution as its image (G R_S is again
  Gaussian; for N = 2, R_S V_r is again Haar). Every sign pattern has probability 2^-r, and a
  drawn start is mapped to the wanted pattern by one such reflection on the input side
  (W_1 -> W_1 R_S, which keeps the start balanced).
* :func:`near_boundary_start` -- :math:`W(0) = (U_r(\varepsilon I + K) + \nu U_\perp C) U_r^T`
  with K skew-symmetric: :math:`u_i^T W(0) u_i = \varepsilon` exactly for every i <= r, so (47)
  holds with the margin :math:`\varepsilon`, and :math:`W(0) U_r = U_r(\varepsilon I + K) +
  \nu U_\perp C` has rank r (the eigenvalues of :math:`\varepsilon I + K` are
  :math:`\varepsilon + i\kappa`). Balanced factors of it.
* :func:`special_start` -- :math:`W(0) = -U_r U_r^T`, balanced, any depth (Remark 33 for N = 2:
  :math:`W_1 = U_r^T`, :math:`W_2 = -U_r`). Violates (47) maximally (u_i^T W u_i = -1).
* :func:`gaussian_start` -- every factor with i.i.d. N(0, 1/d) entries (Figure 3 for N = 2): not
  balanced, imbalance of order 1.
* :func:`perturbed_start` -- a given start plus a perturbation of relative size ``scale`` in each
  factor: imbalance of order ``scale`` (:func:`linrank.network.imbalance` measures it).

All generators take a ``numpy.random.Generator`` and are deterministic functions of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ...network import balanced_factors, product

__all__ = [
    "Condition47",
    "condition_47",
    "top_eigenbasis",
    "paper_start",
    "inside_47_start",
    "outside_47_start",
    "near_boundary_start",
    "special_start",
    "gaussian_start",
    "perturbed_start",
]


class Condition47(NamedTuple):
    """The outcome of :func:`condition_47` (unpacks as ``holds, min_u_W0_u, rank_ok``)."""

    holds: bool
    min_u_W0_u: float
    rank_ok: bool


# ---------------------------------------------------------------------- bookkeeping
def _matrix(name: str, A: object) -> np.ndarray:
    if isinstance(A, np.ndarray) and np.iscomplexobj(A):
        raise TypeError(f"{name} must be real, got a complex array")
    try:
        arr = np.asarray(A, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real 2-d array, got {type(A).__name__}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _check_rank(rank: object, d: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= d:
        raise ValueError(f"rank must be an integer with 1 <= rank <= d = {d}, got {rank!r}")
    return int(rank)


def top_eigenbasis(X: object, r: int) -> tuple[np.ndarray, np.ndarray]:
    r"""``(U_r, lam)``: the top-r eigenvectors of :math:`XX^T` (d x r) and all eigenvalues, descending.

    From the SVD of X (not eigh of XX^T, which squares the condition number): accurate to
    ~eps ||X||^2 / gap in the subspace.
    """
    Xa = _matrix("X", X)
    r = _check_rank(r, Xa.shape[0])
    U, s, _ = np.linalg.svd(Xa, full_matrices=True)
    lam = np.zeros(Xa.shape[0])
    lam[: s.size] = s * s
    return U[:, :r].copy(), lam


def _basis(X_or_U_r: object, r: int, basis: bool | None) -> np.ndarray:
    A = _matrix("X_or_U_r", X_or_U_r)
    r = _check_rank(r, A.shape[0])
    if basis is None:
        basis = A.shape[1] == r and np.allclose(A.T @ A, np.eye(r), atol=1e-10, rtol=0)
    if basis:
        if A.shape[1] != r:
            raise ValueError(f"U_r must have r = {r} columns, got shape {A.shape}")
        if not np.allclose(A.T @ A, np.eye(r), atol=1e-8, rtol=0):
            raise ValueError("U_r must have orthonormal columns (U_r^T U_r = I)")
        return A
    return top_eigenbasis(A, r)[0]


def condition_47(W0: object, X_or_U_r: object, r: int, *, basis: bool | None = None) -> Condition47:
    r"""Whether W(0) satisfies the hypothesis (47) of Conjecture 32.

    (47): :math:`u_i^T W(0) u_i > 0` for i = 1..r, and :math:`\operatorname{rank}(W(0) U_r) = r`.

    Parameters
    ----------
    W0 : the d x d end-to-end matrix W(0), or the list of factors [W_1, ..., W_N] (their product
        is taken).
    X_or_U_r : the data X (d x m), whose :math:`XX^T` gives :math:`U_r`, or :math:`U_r` itself
        (d x r with orthonormal columns). A d x r array with orthonormal columns is taken as
        U_r; ``basis=True`` / ``False`` decides explicitly.
    r : the rank r of Conjecture 32.

    Returns
    -------
    Condition47
        ``(holds, min_u_W0_u, rank_ok)``: ``min_u_W0_u`` = :math:`\min_{i \le r} u_i^T W(0) u_i`
        (absolute error ~ eps ||W0||: a value within that of 0 is not meaningful);
        ``rank_ok``: the smallest singular value of :math:`W(0)U_r` is above
        :math:`\max(d, r)\,\varepsilon\,\|W(0)\|_2` (numerical rank r); ``holds`` =
        ``min_u_W0_u > 0 and rank_ok``.
    """
    if isinstance(W0, (list, tuple)):
        W0 = product([_matrix(f"W0[{j}]", W) for j, W in enumerate(W0)])
    W = _matrix("W0", W0)
    U = _basis(X_or_U_r, r, basis)
    d = U.shape[0]
    if W.shape != (d, d):
        raise ValueError(f"W0 must be {d} x {d} (the data dimension), got shape {W.shape}")
    diag = np.einsum("ij,ij->j", U, W @ U)
    m = float(np.min(diag))
    s = np.linalg.svd(W @ U, compute_uv=False)
    s_top = float(np.linalg.norm(W, 2))
    rank_ok = bool(s_top > 0 and s[-1] > max(d, r) * np.finfo(float).eps * s_top)
    return Condition47(bool(m > 0 and rank_ok), m, rank_ok)


# ---------------------------------------------------------------------- helpers
def _haar(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    """A Haar-distributed d x k matrix with orthonormal columns (QR with sign fix)."""
    Q, R = np.linalg.qr(rng.standard_normal((d, k)))
    return Q * np.sign(np.where(np.diag(R) == 0, 1.0, np.diag(R)))


def _widths(hidden_widths: Sequence[int] | None, rank: int, depth: int) -> list[int]:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 2:
        raise ValueError(f"depth must be an integer >= 2, got {depth!r}")
    if hidden_widths is None:
        return [rank] * (depth - 1)
    hw = list(hidden_widths)
    if len(hw) != depth - 1:
        raise ValueError(f"hidden_widths needs depth - 1 = {depth - 1} entries, got {hw}")
    for w in hw:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < rank:
            raise ValueError(f"hidden widths must be integers >= rank = {rank}, got {hw}")
    return [int(w) for w in hw]


def _check_d(d: object) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    return int(d)


def _embed(rng: np.random.Generator, width: int, rank: int) -> np.ndarray:
    """width x rank orthonormal columns: the identity when width == rank (the paper's case)."""
    return np.eye(rank) if width == rank else _haar(rng, width, rank)


# ---------------------------------------------------------------------- balanced starts
def paper_start(d: int, rank: int, depth: int, rng: np.random.Generator,
                hidden_widths: Sequence[int] | None = None) -> list[np.ndarray]:
    r"""The balanced start of Section 7 of the paper.

    N = 2: :math:`W_1(0) = Q V_r^T`, :math:`W_2(0) = \tilde V V_r Q^T` with V, :math:`\tilde V`
    Haar d x d and Q = I (hidden width r, the paper's case) or Haar d_1 x r; all r singular values
    of W(0) are 1. N > 2: G d x d with i.i.d. N(0, 1/d) entries, :math:`G = V_N \Sigma V_0^T`,
    :math:`W_j(0) = V_j \Sigma_r^{1/N} V_{j-1}^T` (top r singular values; V_1..V_{N-1} Haar
    d_j x r), by :func:`linrank.network.balanced_factors`. Balanced to rounding
    (:math:`W_{j+1}^TW_{j+1} - W_jW_j^T \sim \varepsilon`).
    """
    d = _check_d(d)
    rank = _check_rank(rank, d)
    hw = _widths(hidden_widths, rank, depth)
    if depth == 2:
        Vr = _haar(rng, d, d)[:, :rank]
        Vt = _haar(rng, d, d)
        Q = _embed(rng, hw[0], rank)
        return [Q @ Vr.T, (Vt @ Vr) @ Q.T]
    G = rng.standard_normal((d, d)) / np.sqrt(d)
    return balanced_factors(G, [d, *hw, d], seed=rng, rank=rank)


def _flip_to(factors: list[np.ndarray], U: np.ndarray, negative: np.ndarray) -> list[np.ndarray]:
    """Reflect the input side so that u_i^T W u_i < 0 exactly for the indices in ``negative``."""
    W = product(factors)
    diag = np.einsum("ij,ij->j", U, W @ U)
    flip = (diag > 0) == negative  # wrong sign now
    if not np.any(flip):
        return factors
    Uf = U[:, flip]
    W1 = factors[0] - 2.0 * (factors[0] @ Uf) @ Uf.T  # W_1 (I - 2 U_S U_S^T)
    return [W1, *factors[1:]]


def _pattern_start(X_or_U_r: object, rank: int, depth: int, rng: np.random.Generator,
                   hidden_widths: Sequence[int] | None, negative: np.ndarray,
                   basis: bool | None, max_tries: int = 100) -> list[np.ndarray]:
    U = _basis(X_or_U_r, rank, basis)
    d = U.shape[0]
    for _ in range(max_tries):
        fs = _flip_to(paper_start(d, rank, depth, rng, hidden_widths), U, negative)
        c = condition_47(product(fs), U, rank, basis=True)
        diag = np.einsum("ij,ij->j", U, product(fs) @ U)
        if c.rank_ok and np.all((diag < 0) == negative) and np.all(diag != 0):
            return fs
    raise RuntimeError(f"no start with the wanted sign pattern in {max_tries} draws")  # p ~ 0


def inside_47_start(X_or_U_r: object, rank: int, depth: int, rng: np.random.Generator,
                    hidden_widths: Sequence[int] | None = None, *,
                    basis: bool | None = None) -> list[np.ndarray]:
    r"""The paper's start (:func:`paper_start`) conditioned on (47): balanced, (47) holds.

    Drawn exactly from the conditional distribution: a paper start is reflected on the input
    side, :math:`W_1 \to W_1 (I - 2\sum_{i \in S} u_i u_i^T)` with S the indices where
    :math:`u_i^T W(0) u_i < 0` (see the module docstring). ``X_or_U_r`` as in
    :func:`condition_47`.
    """
    return _pattern_start(X_or_U_r, rank, depth, rng, hidden_widths,
                          np.zeros(rank, dtype=bool), basis)


def outside_47_start(X_or_U_r: object, rank: int, depth: int, rng: np.random.Generator,
                     hidden_widths: Sequence[int] | None = None, *,
                     negative: Sequence[int] | None = None,
                     basis: bool | None = None) -> list[np.ndarray]:
    r"""The paper's start conditioned on (47) failing: balanced, some :math:`u_i^T W(0) u_i < 0`.

    ``negative``: the indices i (0-based, i < r) with :math:`u_i^T W(0) u_i < 0`; default: a sign
    pattern drawn uniformly among the :math:`2^r - 1` that violate (47), which makes the start
    exactly the paper's start conditioned on (47) failing.
    """
    U = _basis(X_or_U_r, rank, basis)
    if negative is None:
        code = int(rng.integers(1, 2**rank)) if rank < 63 else None
        if code is None:
            neg = rng.random(rank) < 0.5
            neg[int(rng.integers(rank))] = True
        else:
            neg = np.array([(code >> i) & 1 for i in range(rank)], dtype=bool)
    else:
        idx = [int(i) for i in negative]
        if not idx or any(i < 0 or i >= rank for i in idx):
            raise ValueError(f"negative must be a non-empty list of indices in [0, {rank}), got "
                             f"{list(negative)}")
        neg = np.zeros(rank, dtype=bool)
        neg[idx] = True
    return _pattern_start(U, rank, depth, rng, hidden_widths, neg, True)


def near_boundary_start(X_or_U_r: object, rank: int, depth: int, rng: np.random.Generator,
                        eps: float = 1e-3, normal: float = 0.0,
                        hidden_widths: Sequence[int] | None = None, *,
                        basis: bool | None = None) -> list[np.ndarray]:
    r"""Balanced factors of :math:`W(0) = (U_r(\varepsilon I + K) + \nu U_\perp C)U_r^T`.

    K is skew-symmetric r x r, :math:`K = (A - A^T)/\sqrt 2` with A having i.i.d. N(0, 1/r)
    entries (singular values of order 1); C has i.i.d. N(0, 1/d) entries, :math:`\nu` =
    ``normal``. Then :math:`u_i^T W(0) u_i = \varepsilon` for every i <= r (to ~eps ||W||) and
    :math:`W(0)U_r` has rank r: (47) holds with margin :math:`\varepsilon` > 0, and the start
    tends to the boundary point :math:`U_r K U_r^T` as :math:`\varepsilon \to 0`. For odd r, K
    is singular and W(0) has a singular value of order :math:`\varepsilon` (when
    :math:`\nu = 0`). Factors by :func:`linrank.network.balanced_factors` (Haar hidden frames).
    """
    U = _basis(X_or_U_r, rank, basis)
    d = U.shape[0]
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be finite and > 0, got {eps!r}")
    if not (np.isfinite(normal) and normal >= 0):
        raise ValueError(f"normal must be finite and >= 0, got {normal!r}")
    hw = _widths(hidden_widths, rank, depth)
    A = rng.standard_normal((rank, rank)) / np.sqrt(rank)
    K = (A - A.T) / np.sqrt(2.0)
    left = U @ (eps * np.eye(rank) + K)
    if normal > 0 and rank < d:
        P = U @ U.T
        C = rng.standard_normal((d, rank)) / np.sqrt(d)
        left = left + normal * (C - P @ C)
    return balanced_factors(left @ U.T, [d, *hw, d], seed=rng, rank=rank)


def special_start(X_or_U_r: object, rank: int, depth: int,
                  rng: np.random.Generator | None = None,
                  hidden_widths: Sequence[int] | None = None, *,
                  basis: bool | None = None) -> list[np.ndarray]:
    r"""Balanced factors of :math:`W(0) = -U_rU_r^T` (Remark 33 for N = 2), any depth N >= 2.

    :math:`W_1 = Q_1 U_r^T`, :math:`W_j = Q_j Q_{j-1}^T` (1 < j < N), :math:`W_N = -U_r
    Q_{N-1}^T`, with :math:`Q_j` = I for hidden width r (so the start is exact: N = 2 gives the
    paper's :math:`W_1 = U_r^T`, :math:`W_2 = -U_r`) and Haar d_j x r otherwise (needs ``rng``).
    Every :math:`W_{j+1}^TW_{j+1} - W_jW_j^T = Q_jQ_j^T - Q_jQ_j^T = 0` (to the rounding of
    :math:`U_r^TU_r = I`).
    """
    U = _basis(X_or_U_r, rank, basis)
    hw = _widths(hidden_widths, rank, depth)
    if any(w > rank for w in hw) and rng is None:
        raise ValueError("hidden widths above the rank need rng for the hidden frames")
    Q = [np.eye(rank) if w == rank else _haar(rng, w, rank) for w in hw]  # Q_1..Q_{N-1}
    return [Q[0] @ U.T, *(Q[j] @ Q[j - 1].T for j in range(1, depth - 1)), -U @ Q[-1].T]


# ---------------------------------------------------------------------- non-balanced starts
def gaussian_start(d: int, rank: int, depth: int, rng: np.random.Generator,
                   hidden_widths: Sequence[int] | None = None) -> list[np.ndarray]:
    """Every factor with i.i.d. N(0, 1/d) entries (Figure 3 of the paper for N = 2).

    Not balanced: :math:`\\|W_{j+1}^TW_{j+1} - W_jW_j^T\\|_F` is of order 1 (about
    ``sqrt(2 r (d + r)) / d`` for hidden widths r).
    """
    d = _check_d(d)
    rank = _check_rank(rank, d)
    dims = [d, *_widths(hidden_widths, rank, depth), d]
    return [rng.standard_normal((dims[j + 1], dims[j])) / np.sqrt(d) for j in range(depth)]


def perturbed_start(factors: Sequence[np.ndarray], scale: float,
                    rng: np.random.Generator) -> list[np.ndarray]:
    r"""Each factor plus a Gaussian matrix of Frobenius norm ``scale * ||W_j||_F``.

    The imbalance :math:`\max_j\|W_{j+1}^TW_{j+1} - W_jW_j^T\|_F` of a balanced input becomes of
    order ``2 * scale * max_j ||W_j||_F^2 / sqrt(width)`` (measure it with
    :func:`linrank.network.imbalance`); ``scale = 0`` returns copies.
    """
    if not (np.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be finite and >= 0, got {scale!r}")
    out = []
    for j, W in enumerate(factors):
        Wj = _matrix(f"factors[{j}]", W)
        E = rng.standard_normal(Wj.shape)
        out.append(Wj + scale * np.linalg.norm(Wj) * E / np.linalg.norm(E))
    return out
