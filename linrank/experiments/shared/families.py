r"""Counterexample families, the hypothesis predicates, and the certificates that decide a run.

Notation as in :mod:`linrank.experiments.starts`: autoencoder Y = X, :math:`XX^T = \sum_i
\lambda_i u_i u_i^T`, :math:`U_r = (u_1, \dots, u_r)`, :math:`P = U_rU_r^T`, and the compressed
matrix :math:`C(W) = U_r^TWU_r` (r x r).

Invariant set (docs/theory.rst, "Invariant sets and the sign of the determinant"): if
:math:`W(0) = U_rMU_r^T`, the flow (31) (and the balanced layer flow (5)) keeps
:math:`W(t) = U_rM(t)U_r^T` and the rank r for every finite t, so :math:`\operatorname{sign}
\det C(W(t)) = \operatorname{sign}\det M` for all t. When :math:`\det M < 0`,
:math:`\|W(t) - U_rU_r^T\|_F \ge 1` for all t (the distance from I_r to the singular r x r
matrices is 1): no convergence to the minimizer.

Starts (balanced factors, :func:`linrank.network.balanced_factors`):

* :func:`family_a_start` -- :math:`W(0) = U_rMU_r^T` with :math:`M = \operatorname{blockdiag}(
  [[a, b], [b, a]], I_{r-2})`, 0 < a < b: diag M > 0, so (47) holds (rank W(0)U_r = r), and
  :math:`\det M = a^2 - b^2 < 0`. A counterexample to Conjecture 32 (r < d) and to Theorem 31 at
  r = d.
* :func:`family_b_start` -- family A plus :math:`\eta\, U_\perp G` (unit Frobenius norm) in
  :math:`W(0)U_r`: off the invariant set by eta; converges after a time ~ eta^-p.
* :func:`negdet_start` -- :math:`W(0) = U_r\operatorname{diag}(1, \dots, 1, -1)U_r^T` (r = d:
  the flow goes to :math:`\operatorname{diag}(1, \dots, 1, 0)`).
* :func:`block_start` -- ``pairs`` family-A 2 x 2 blocks on the diagonal (then I): each block's
  determinant keeps its sign, the total determinant is :math:`(a^2 - b^2)^{pairs}`. Two pairs
  (r >= 4) satisfy (47) and det C(W(0)) > 0 and still cannot converge.

Predicates (``W0`` the start's product, ``U`` = U_r): :func:`conjecture32` (condition (47)),
:func:`theorem31` (rank W0 = r), :func:`amended_det` ((47) and det C(W0) > 0) and
:func:`amended` (the symmetric part of C(W0) positive definite: :math:`x^TW(0)x > 0` for every
nonzero x in span U_r, which implies (47) and det C(W0) > 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ...network import balanced_factors
from .starts import condition_47

__all__ = [
    "family_a_matrix",
    "family_a_start",
    "family_b_start",
    "negdet_start",
    "block_start",
    "amended_matrix",
    "amended_start",
    "compressed_det",
    "invariant_defect",
    "conjecture32",
    "theorem31",
    "amended_det",
    "amended",
    "CriticalCertificate",
    "critical_certificate",
    "certify_run",
    "predicted_eta_exponent",
    "fit_eta_exponent",
]


def _basis(U: object, rank: int) -> np.ndarray:
    U = np.asarray(U, dtype=float)
    if U.ndim != 2 or U.shape[1] < rank or rank < 1:
        raise ValueError(f"U must be d x (>= rank) with orthonormal columns, got shape "
                         f"{U.shape} for rank {rank!r}")
    U = U[:, :rank]
    if not np.allclose(U.T @ U, np.eye(rank), atol=1e-10):
        raise ValueError("U must have orthonormal columns (eigenvectors of XX^T)")
    return U


def _dims(d: int, rank: int, depth: int, hidden: Sequence[int] | None) -> list[int]:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    hw = [rank] * (depth - 1) if hidden is None else [int(w) for w in hidden]
    if len(hw) != depth - 1 or min(hw, default=rank) < rank:
        raise ValueError(f"hidden_widths must be depth - 1 widths >= rank, got {hidden!r}")
    return [d, *hw, d]


def family_a_matrix(rank: int, a: float = 0.3, b: float = 1.0) -> np.ndarray:
    """M = blockdiag([[a, b], [b, a]], I_(r-2)): diag M > 0 and det M = a^2 - b^2 < 0."""
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 2:
        raise ValueError(f"rank must be an integer >= 2 (det < 0 with diag > 0 needs r >= 2), "
                         f"got {rank!r}")
    if not (np.isfinite(a) and np.isfinite(b) and 0 < a < b):
        raise ValueError(f"need 0 < a < b (diag M > 0, det M < 0), got a = {a!r}, b = {b!r}")
    M = np.eye(rank)
    M[:2, :2] = [[a, b], [b, a]]
    return M


def _factors(W0: np.ndarray, rank: int, depth: int, rng: np.random.Generator,
             hidden: Sequence[int] | None) -> list[np.ndarray]:
    return balanced_factors(W0, _dims(W0.shape[0], rank, depth, hidden), seed=rng, rank=rank)


def family_a_start(U: object, rank: int, depth: int, rng: np.random.Generator,
                   hidden_widths: Sequence[int] | None = None, *, a: float = 0.3,
                   b: float = 1.0) -> list[np.ndarray]:
    r"""Balanced factors of :math:`W(0) = U_r M U_r^T`, M = :func:`family_a_matrix` (r >= 2)."""
    U = _basis(U, rank)
    return _factors(U @ family_a_matrix(rank, a, b) @ U.T, rank, depth, rng, hidden_widths)


def family_b_start(U: object, rank: int, depth: int, rng: np.random.Generator, eta: float,
                   hidden_widths: Sequence[int] | None = None, *, a: float = 0.3,
                   b: float = 1.0) -> list[np.ndarray]:
    r"""Balanced factors of :math:`W(0) = (U_rM + \eta E)U_r^T`, :math:`E = (I - P)G/\|(I - P)G\|_F`.

    G is d x r Gaussian (from ``rng``), so E is orthogonal to span U_r and of unit Frobenius
    norm: the start is at distance eta from the invariant set {U_r M U_r^T} and still satisfies
    (47) (u_i^T W(0) u_i = M_ii). Needs r < d.
    """
    U = _basis(U, rank)
    d = U.shape[0]
    if rank >= d:
        raise ValueError(f"family B needs rank < d (a direction off span U_r), got r = d = {d}")
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta must be finite and > 0, got {eta!r}")
    G = rng.standard_normal((d, rank))
    E = G - U @ (U.T @ G)
    left = U @ family_a_matrix(rank, a, b) + eta * E / np.linalg.norm(E)
    return _factors(left @ U.T, rank, depth, rng, hidden_widths)


def negdet_start(U: object, rank: int, depth: int, rng: np.random.Generator,
                 hidden_widths: Sequence[int] | None = None) -> list[np.ndarray]:
    r"""Balanced factors of :math:`W(0) = U_r\operatorname{diag}(1, \dots, 1, -1)U_r^T`."""
    U = _basis(U, rank)
    D = np.ones(rank)
    D[-1] = -1.0
    return _factors((U * D) @ U.T, rank, depth, rng, hidden_widths)


def block_start(U: object, rank: int, depth: int, rng: np.random.Generator, pairs: int = 2,
                hidden_widths: Sequence[int] | None = None, *, a: float = 0.3,
                b: float = 1.0) -> list[np.ndarray]:
    r"""Balanced factors of :math:`U_r\operatorname{blockdiag}(B, \dots, B, I)U_r^T`, ``pairs`` blocks
    :math:`B = [[a, b], [b, a]]` (2 pairs <= r/2): (47) holds and det = (a^2 - b^2)^pairs."""
    U = _basis(U, rank)
    if isinstance(pairs, bool) or not isinstance(pairs, int) or not 1 <= pairs <= rank // 2:
        raise ValueError(f"pairs must be an integer in 1..rank // 2, got {pairs!r}")
    M = np.eye(rank)
    B = family_a_matrix(2, a, b)
    for p in range(pairs):
        M[2 * p:2 * p + 2, 2 * p:2 * p + 2] = B
    return _factors(U @ M @ U.T, rank, depth, rng, hidden_widths)


def amended_matrix(rank: int, rng: np.random.Generator, skew: float = 1.0) -> np.ndarray:
    r"""A random r x r matrix with positive definite symmetric part: :math:`S + \kappa K`,
    :math:`S = Q\operatorname{diag}(e^{g})Q^T` (Q Haar, g standard normal), K skew with entries
    N(0, 1/r) (``skew`` = kappa)."""
    Q, _ = np.linalg.qr(rng.standard_normal((rank, rank)))
    A = rng.standard_normal((rank, rank))
    return (Q * np.exp(rng.standard_normal(rank))) @ Q.T + skew * (A - A.T) / np.sqrt(2 * rank)


def amended_start(U: object, rank: int, depth: int, rng: np.random.Generator,
                  hidden_widths: Sequence[int] | None = None, normal: float = 1.0,
                  skew: float = 1.0) -> list[np.ndarray]:
    r"""Balanced factors of :math:`W(0) = (U_rC + \nu(I - P)G/\sqrt d)U_r^T`, C =
    :func:`amended_matrix` (G d x r Gaussian, :math:`\nu` = ``normal``): inside :func:`amended`."""
    U = _basis(U, rank)
    d = U.shape[0]
    left = U @ amended_matrix(rank, rng, skew)
    if normal > 0 and rank < d:
        G = rng.standard_normal((d, rank))
        left = left + normal * (G - U @ (U.T @ G)) / np.sqrt(d)
    return _factors(left @ U.T, rank, depth, rng, hidden_widths)


# ---------------------------------------------------------------------- certificates
def compressed_det(W: object, U: object, rank: int) -> float:
    """det(U_r^T W U_r): its sign is conserved on the invariant set {U_r M U_r^T}."""
    U = _basis(U, rank)
    return float(np.linalg.det(U.T @ np.asarray(W, dtype=float) @ U))


def invariant_defect(W: object, U: object, rank: int) -> float:
    """||W - PWP||_F / ||W||_F with P = U_rU_r^T: 0 exactly on the invariant set."""
    U = _basis(U, rank)
    W = np.asarray(W, dtype=float)
    PWP = U @ (U.T @ W @ U) @ U.T
    return float(np.linalg.norm(W - PWP) / max(np.linalg.norm(W), 1e-300))


def conjecture32(W0: object, U: object, rank: int) -> bool:
    """Conjecture 32's hypothesis on a balanced start: condition (47)."""
    return bool(condition_47(np.asarray(W0, dtype=float), _basis(U, rank), rank,
                             basis=True).holds)


def theorem31(W0: object, U: object, rank: int) -> bool:
    """Theorem 31's hypothesis on a balanced start: W0 of rank r (numerically)."""
    s = np.linalg.svd(np.asarray(W0, dtype=float), compute_uv=False)
    tol = max(np.asarray(W0).shape) * np.finfo(float).eps * s[0]
    return bool(int(np.sum(s > tol)) == rank)


def amended_det(W0: object, U: object, rank: int) -> bool:
    """(47) and det(U_r^T W0 U_r) > 0 (refuted for r >= 4 by :func:`block_start`)."""
    return conjecture32(W0, U, rank) and compressed_det(W0, U, rank) > 0


def amended(W0: object, U: object, rank: int) -> bool:
    r"""The symmetric part of :math:`C = U_r^TW_0U_r` is positive definite (:math:`x^TW_0x > 0` for
    every nonzero x in span U_r), with rank W0 = r; implies (47) and det C > 0.

    The smallest eigenvalue of (C + C^T)/2 must exceed 8 r eps ||C||_2 (rounding of C).
    """
    U = _basis(U, rank)
    C = U.T @ np.asarray(W0, dtype=float) @ U
    lo = float(np.linalg.eigvalsh(0.5 * (C + C.T))[0])
    return bool(lo > 8 * rank * np.finfo(float).eps * np.linalg.norm(C, 2)
                and theorem31(W0, U, rank))


class CriticalCertificate(NamedTuple):
    """Where a run that did not converge is heading (:func:`critical_certificate`)."""

    certified: bool  # loss within rtol of L(W_J), gradient decaying, J not the top-r set
    J: tuple[int, ...]  # 0-based indices of the nearest critical value's W_J (by loss)
    loss_J: float  # closed-form L(W_J) = 1/2 (tr XX^T - sum_J lambda_j) (Proposition 29)
    rel_loss_diff: float  # |L(W(T)) - L(W_J)| / L(W_J)
    grad_ratio: float  # ||grad(T)|| / ||grad(T/2)|| (< 1: decaying)


def critical_certificate(loss: float, lam: Sequence[float], rank: int, grad_end: float,
                         grad_mid: float, rtol: float = 1e-3) -> CriticalCertificate:
    r"""Certify that a run approaches a critical point :math:`W_J = \sum_{j\in J}u_ju_j^T`, |J| <= r.

    Closed-form critical values (Proposition 29): :math:`L(W_J) = \tfrac12(\operatorname{tr}XX^T
    - \sum_{j\in J}\lambda_j)`. The run is certified when its final loss is within ``rtol``
    (relative) of some L(W_J) other than the minimum, and the gradient norm decays (at T below
    its value at T/2). Among the |J| <= r subsets only the sums of the eigenvalues matter; the
    nearest one is found by enumerating subsets of the r + 2 largest and the smallest ones
    (exact for d <= 12; for larger d the nearest value among those subsets).
    """
    lam = np.sort(np.asarray(lam, dtype=float))[::-1]
    d = lam.size
    total = float(np.sum(lam))
    idx = list(range(min(d, 12)))
    if d > 12:
        idx = list(range(rank + 2)) + list(range(d - (10 - rank), d))
        idx = sorted(set(i for i in idx if 0 <= i < d))
    from itertools import combinations

    best: tuple[float, tuple[int, ...], float] | None = None
    top = tuple(range(rank))
    for k in range(rank + 1):
        for J in combinations(idx, k):
            if J == top:
                continue
            LJ = 0.5 * (total - float(np.sum(lam[list(J)])))
            diff = abs(loss - LJ) / max(LJ, 1e-300)
            if best is None or diff < best[0]:
                best = (diff, J, LJ)
    assert best is not None
    ratio = grad_end / grad_mid if grad_mid > 0 else float("inf")
    return CriticalCertificate(bool(best[0] <= rtol and ratio < 1.0), best[1], best[2],
                               float(best[0]), float(ratio))


def certify_run(trajectory: Sequence[Sequence[np.ndarray]], U: np.ndarray, rank: int,
                lam: Sequence[float], result: object, errors: Sequence[float],
                on_invariant_set: bool, rtol: float = 1e-3) -> dict:
    """Certificates of one run from its recorded factors and its last flow chunk ``result``.

    ``extra``: the :func:`critical_certificate` (gradient of the last chunk at its end against
    its start), det(U_r^T W U_r) at the start and the end, whether its sign was kept at every
    recorded time, the largest :func:`invariant_defect`, the smallest ||W - U_rU_r^T||_F, and
    ``invariant_certificate``: the start is on the invariant set with det < 0
    (``on_invariant_set``), and along the run the defect stays <= 1e-8, the sign is kept and
    ||W - U_rU_r^T||_F >= 1 - 1e-6 (docs/theory.rst). ``more``: the det series.
    """
    from ...network import product

    g = np.asarray(result.grad_norm, dtype=float)
    crit = critical_certificate(float(result.loss[-1]), lam, rank, float(g[-1]), float(g[0]),
                                rtol=rtol)
    Ws = [product(fs) for fs in trajectory]
    dets = np.array([compressed_det(W, U, rank) for W in Ws])
    defect = max(invariant_defect(W, U, rank) for W in Ws)
    kept = bool(np.all(np.sign(dets) == np.sign(dets[0])))
    min_err = float(np.min(errors))
    extra = {"critical": crit._asdict(), "det_C0": float(dets[0]),
             "det_C_final": float(dets[-1]), "det_sign_kept": kept,
             "invariant_defect_max": float(defect), "min_error": min_err,
             "invariant_certificate": bool(on_invariant_set and dets[0] < 0 and kept
                                           and defect <= 1e-8 and min_err >= 1.0 - 1e-6)}
    return {"extra": extra, "more": {"det_C": dets}}


# ---------------------------------------------------------------------- eta scaling
def predicted_eta_exponent(lam: Sequence[float], rank: int, depth: int, j: int) -> float:
    r"""p in T(eta) ~ eta^-p for family B (docs/theory.rst): :math:`(N-2)\lambda_j/(\lambda_j +
    \lambda_{r+1})`, j (0-based) the eigen-direction of the negative part of M (j = 1 for family
    A's limit u_1u_1^T at r = 2). Needs N >= 3 and r < d."""
    lam = np.sort(np.asarray(lam, dtype=float))[::-1]
    if depth < 3 or rank >= lam.size:
        raise ValueError("the eta exponent is derived for depth >= 3 and rank < d")
    return float((depth - 2) * lam[j] / (lam[j] + lam[rank]))


def fit_eta_exponent(etas: Sequence[float], times: Sequence[float | None]) -> dict:
    """Least-squares slope of log T against log(1/eta) over the converged runs only.

    ``times[i] = None`` marks a run that did not converge within its budget: it is counted as
    unresolved and never enters the fit. Returns ``{"exponent", "n_fit", "n_unresolved"}``
    (exponent None with fewer than two converged runs).
    """
    pts = [(float(e), float(t)) for e, t in zip(etas, times) if t is not None and t > 0]
    out = {"n_fit": len(pts), "n_unresolved": sum(t is None for t in times), "exponent": None}
    if len(pts) >= 2 and len({e for e, _ in pts}) >= 2:
        x = np.log([1.0 / e for e, _ in pts])
        y = np.log([t for _, t in pts])
        out["exponent"] = float(np.polyfit(x, y, 1)[0])
    return out
