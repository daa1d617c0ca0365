r"""Counterexample families, the hypothesis predicates, and the certificates that decide a run.

Notation as in :mod:`linrank.experiments.shared.starts`: autoencoder Y = X, :math:`XX^T = \sum_i
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
    "eigen_J",
    "certify_run",
    "CRIT_RTOL",
    "DECAY_FACTOR",
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


#: the certificate's loss tolerance: |L(W(T)) - L(W_J)| <= CRIT_RTOL (L(W_J) - L*)
CRIT_RTOL = 1e-3
#: the gradient must fall at least by this factor over the last half of the run, g(T) <= f g(T/2)
DECAY_FACTOR = 0.9
#: the gradient and |L - L(W_J)| are tested at this many + 1 equally spaced times of [T/2, T]
DECAY_SAMPLES = 8
#: relative slack of the monotonicity tests (integrator noise of the recorded series)
MONO_SLACK = 1e-3


class CriticalCertificate(NamedTuple):
    """Where a run that did not converge is heading at its end (:func:`critical_certificate`)."""

    certified: bool  # every test below passed
    J: tuple[int, ...]  # 0-based indices of W_J (read off the state by the caller)
    loss_J: float  # closed-form L(W_J) (Proposition 29)
    rel_loss_diff: float  # |L(T) - L(W_J)| / (L(W_J) - L*)
    grad_ratio: float  # g(T) / g(T/2) (measured decay over the last half)
    grad_monotone: bool  # g non-increasing at the sampled times of [T/2, T]
    gap_monotone: bool  # |L - L(W_J)| non-increasing at the sampled times of [T/2, T]
    decay_exponent: float  # least-squares p in g ~ t^-p over [T/2, T] (nan if not fitted)
    reason: str  # "" when certified, else the first test that failed


def critical_certificate(t: Sequence[float], loss: Sequence[float], grad: Sequence[float],
                         J: Sequence[int] | None, loss_J: float, loss_star: float,
                         optimal: Sequence[int], rtol: float = CRIT_RTOL) -> CriticalCertificate:
    r"""Certify that a run is approaching the critical point W_J (not the minimizer) at its end.

    From the recorded series of one run (times ``t`` from 0 to T, its loss and gradient norm)
    and the critical point W_J the caller read off the final state, with its closed-form value
    :math:`L(W_J) = \tfrac12(\|Y\|_F^2 - \sum_{j\in J}\sigma_j^2)` (Proposition 29; Y = X:
    :math:`\tfrac12(\operatorname{tr}XX^T - \sum_J\lambda_j)`). Certified when all hold:

    1. J is known and is not the minimizer's index set ``optimal``, and L(W_J) > L*;
    2. :math:`|L(T) - L(W_J)| \le` ``rtol`` :math:`(L(W_J) - L^*)` (stated tolerance, relative
       to the height of W_J above the minimum);
    3. decay measured, not just final values: at the :data:`DECAY_SAMPLES` + 1 equally spaced
       times of [T/2, T] (values interpolated between recorded times) the gradient norm and
       :math:`|L - L(W_J)|` are non-increasing (up to :data:`MONO_SLACK` relative), and
       :math:`g(T) \le` :data:`DECAY_FACTOR` :math:`g(T/2)`.

    A run leaving a saddle (gradient growing, or the loss passing below L(W_J)) fails 3. The
    certificate says where the run is at T, not where it ends: a run that sits near a saddle for
    a long time and then escapes is certified at a T before its escape; only an argument that
    holds for all t (the invariant-set certificate, :func:`certify_run`) proves the limit.
    """
    t = np.asarray(t, dtype=float)
    loss = np.asarray(loss, dtype=float)
    grad = np.asarray(grad, dtype=float)
    nan = float("nan")
    J = None if J is None else tuple(int(j) for j in J)

    def out(ok: bool, rel: float, ratio: float, gm: bool, lm: bool, p: float,
            why: str) -> CriticalCertificate:
        return CriticalCertificate(ok, J if J is not None else (), float(loss_J), float(rel),
                                   float(ratio), bool(gm), bool(lm), float(p), why)

    if t.ndim != 1 or t.size < 2 or loss.shape != t.shape or grad.shape != t.shape:
        raise ValueError("t, loss and grad must be 1-d series of one length >= 2")
    if J is None:
        return out(False, nan, nan, False, False, nan, "no critical point W_J near the state")
    if J == tuple(optimal):
        return out(False, nan, nan, False, False, nan, "the state is near the minimizer")
    height = float(loss_J) - float(loss_star)
    if not height > 0:
        return out(False, nan, nan, False, False, nan, "L(W_J) is not above the minimum")
    rel = abs(float(loss[-1]) - float(loss_J)) / height
    T = float(t[-1])
    s = np.linspace(0.5 * T, T, DECAY_SAMPLES + 1)
    order = np.argsort(t, kind="stable")
    gs = np.interp(s, t[order], grad[order])
    ls = np.abs(np.interp(s, t[order], loss[order]) - float(loss_J))
    gm = bool(np.all(gs[1:] <= gs[:-1] * (1 + MONO_SLACK)))
    lm = bool(np.all(ls[1:] <= ls[:-1] * (1 + MONO_SLACK) + 1e-15 * abs(float(loss_J))))
    ratio = float(gs[-1] / gs[0]) if gs[0] > 0 else nan
    p = nan
    if s[0] > 0 and np.all(gs > 0):
        p = -float(np.polyfit(np.log(s), np.log(gs), 1)[0])
    why = ""
    if not rel <= rtol:
        why = f"loss {rel:.2g} (L(W_J) - L*) from L(W_J), above {rtol:g}"
    elif not gm:
        why = "gradient norm not decreasing over [T/2, T]"
    elif not lm:
        why = "|L - L(W_J)| not decreasing over [T/2, T]"
    elif not ratio <= DECAY_FACTOR:
        why = f"gradient fell only by {ratio:.3g} over [T/2, T] (needs <= {DECAY_FACTOR:g})"
    return out(not why, rel, ratio, gm, lm, p, why)


def eigen_J(W: object, U_all: object, lam: Sequence[float], rank: int
            ) -> tuple[tuple[int, ...] | None, float, float]:
    r"""(J, L(W_J), L*) for the autoencoder: J = {j : u_j^T W u_j > 1/2} read off the state
    (W_J = sum_J u_ju_j^T has u_j^T W_J u_j = 1 on J, 0 off it), None if |J| > rank;
    :math:`L(W_J) = \tfrac12(\sum_i\lambda_i - \sum_J\lambda_j)` (Proposition 29)."""
    U_all = np.asarray(U_all, dtype=float)
    lam = np.asarray(lam, dtype=float)
    c = np.einsum("ij,ij->j", U_all, np.asarray(W, dtype=float) @ U_all)
    J = tuple(int(j) for j in np.flatnonzero(c > 0.5))
    total = float(np.sum(lam))
    star = 0.5 * (total - float(np.sum(np.sort(lam)[::-1][:rank])))
    if len(J) > rank:
        return None, float("nan"), star
    return J, 0.5 * (total - float(np.sum(lam[list(J)]))), star


def certify_run(trajectory: Sequence[Sequence[np.ndarray]], U_all: np.ndarray, rank: int,
                lam: Sequence[float], t: Sequence[float], loss: Sequence[float],
                grad: Sequence[float], errors: Sequence[float], on_invariant_set: bool,
                rtol: float = CRIT_RTOL) -> dict:
    """Certificates of one autoencoder run from its recorded factors and series.

    ``U_all``: every eigenvector of XX^T (d x d, eigenvalues ``lam`` descending); ``t``,
    ``loss``, ``grad``: the loss and layer-gradient norm at the recorded times of the whole run.

    ``extra``: the :func:`critical_certificate` (J read off the final state by :func:`eigen_J`),
    det(U_r^T W U_r) at the start and the end, whether its sign was kept at every recorded time,
    the largest :func:`invariant_defect`, the smallest ||W - U_rU_r^T||_F, and
    ``invariant_certificate``: the start is on the invariant set with det < 0
    (``on_invariant_set``), and along the run the defect stays <= 1e-8, the sign is kept and
    ||W - U_rU_r^T||_F >= 1 - 1e-6 (docs/theory.rst: then no t reaches U_rU_r^T). ``more``: the
    det series.
    """
    from ...network import product

    U_all = np.asarray(U_all, dtype=float)
    U = U_all[:, :rank]
    Ws = [product(fs) for fs in trajectory]
    J, LJ, Ls = eigen_J(Ws[-1], U_all, lam, rank)
    crit = critical_certificate(t, loss, grad, J, LJ, Ls, tuple(range(rank)), rtol=rtol)
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
