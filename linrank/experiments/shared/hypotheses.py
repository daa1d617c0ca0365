r"""Hypotheses on the start W(0) of the autoencoder flow, as named predicates.

Notation as in :mod:`linrank.experiments.shared.starts`: :math:`XX^T = \sum_i \lambda_i u_i u_i^T`,
:math:`U_r = (u_1, \dots, u_r)`. Every hypothesis is about a *balanced* start (the flow of the
product is then the manifold flow (31), Corollary 8); the predicates below see the end-to-end
matrix W(0) only, so balancedness is the caller's part (:func:`linrank.experiments.search`
always builds balanced factors).

* ``theorem31`` -- Theorem 31: any balanced start with :math:`W(0) \in \mathcal M_r`
  (rank exactly r).
* ``conjecture32`` -- Conjecture 32: condition (47), :math:`u_i^T W(0) u_i > 0` for i <= r and
  :math:`\operatorname{rank} W(0)U_r = r` (:func:`linrank.experiments.shared.starts.condition_47`).
* ``amended_det`` -- (47) together with :math:`\det(U_r^T W(0) U_r) > 0`. The sign of that
  determinant is conserved on the invariant set :math:`\{U_r M U_r^T\}` (docs/theory.rst), which
  refutes Conjecture 32 as stated; it is not enough for r >= 4 (two family-A blocks on the
  diagonal keep each block's negative determinant while the whole has det > 0).
* ``amended`` -- the amended conjecture's hypothesis: W(0) in M_r and the symmetric part of
  :math:`C = U_r^T W(0) U_r` positive definite (:math:`x^T W(0) x > 0` for every nonzero x in
  span U_r; implies (47) and det C > 0), the same predicate as
  :func:`linrank.experiments.shared.families.amended`. Its definition is in :func:`amended` alone, so
  that it can be changed in one place.

Each predicate returns a :class:`HypothesisCheck` whose ``margin`` is positive inside and <= 0
outside, scale-free (quantities divided by powers of :math:`\|W(0)\|_2`), so that a search can use
it as a penalty. Accuracy: the margins carry an absolute error of a few
:math:`d\,\varepsilon`; a margin within that of 0 does not decide (the rank tests use the
tolerance :math:`\max(d, r)\,\varepsilon` of :func:`~linrank.experiments.shared.starts.condition_47`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .starts import condition_47

__all__ = ["HypothesisCheck", "HYPOTHESES", "subspace_det", "rank_margin", "theorem31",
           "conjecture32", "amended", "amended_det", "check_hypothesis"]


class HypothesisCheck(NamedTuple):
    """The outcome of a hypothesis predicate."""

    holds: bool
    margin: float  # > 0 inside, <= 0 outside (scale-free)
    condition_47: bool
    margin_47: float  # min_i u_i^T W(0) u_i (absolute, as in condition_47)
    det_r: float  # det(U_r^T W(0) U_r)


def _parts(W0: object, U_r: object) -> tuple[np.ndarray, np.ndarray, float]:
    W = np.asarray(W0, dtype=float)
    U = np.asarray(U_r, dtype=float)
    if W.ndim != 2 or W.shape[0] != W.shape[1] or U.ndim != 2 or U.shape[0] != W.shape[0]:
        raise ValueError(f"W0 must be d x d and U_r d x r, got shapes {W.shape} and {U.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(U))):
        raise ValueError("W0 and U_r must be finite")
    norm = float(np.linalg.norm(W, 2))
    if norm == 0:
        raise ValueError("W0 is zero: no hypothesis holds for rank 0")
    return W, U, norm


def subspace_det(W0: object, U_r: object) -> float:
    r""":math:`\det(U_r^T W(0) U_r)`: the determinant of the top-r block in the eigenbasis."""
    W, U, _ = _parts(W0, U_r)
    return float(np.linalg.det(U.T @ W @ U))


def rank_margin(W0: object, r: int) -> float:
    r"""Scale-free distance of W(0) from rank != r: :math:`s_r/s_1` if the numerical rank is r,
    else :math:`-s_{r+1}/s_1` (rank above r) or :math:`s_r/s_1 - \text{tol}` (rank below r),
    with tol :math:`= d\,\varepsilon` as in :func:`linrank.network.balanced_factors`."""
    W = np.asarray(W0, dtype=float)
    s = np.linalg.svd(W, compute_uv=False)
    tol = max(W.shape) * np.finfo(float).eps
    if not s[0] > 0:
        return -1.0
    rel = s / s[0]
    if rel[r - 1] <= tol:
        return float(rel[r - 1] - tol)  # rank below r
    if r < rel.size and rel[r] > tol:
        return -float(rel[r])  # rank above r
    return float(rel[r - 1])


def _check(W0: object, U_r: object, *, need_47: bool, need_det: bool,
           need_sym: bool = False) -> HypothesisCheck:
    W, U, norm = _parts(W0, U_r)
    r = U.shape[1]
    c = condition_47(W, U, r, basis=True)
    det = float(np.linalg.det(U.T @ W @ U))
    margins = [rank_margin(W, r)]
    if need_47:
        s = np.linalg.svd(W @ U, compute_uv=False)
        margins += [c.min_u_W0_u / norm, float(s[-1]) / norm if c.rank_ok else -1.0]
    if need_det:
        margins.append(det / norm**r)
    if need_sym:
        C = U.T @ W @ U
        lo = float(np.linalg.eigvalsh(0.5 * (C + C.T))[0])
        # the rounding of C: 8 r eps ||C||_2, as in linrank.experiments.shared.families.amended
        margins.append((lo - 8 * r * np.finfo(float).eps * np.linalg.norm(C, 2)) / norm)
    margin = min(margins)
    return HypothesisCheck(bool(margin > 0 and (c.holds or not need_47)), margin, c.holds,
                           c.min_u_W0_u, det)


def theorem31(W0: object, U_r: object) -> HypothesisCheck:
    r"""Theorem 31's hypothesis: :math:`W(0) \in \mathcal M_r` (balanced factors of it)."""
    return _check(W0, U_r, need_47=False, need_det=False)


def conjecture32(W0: object, U_r: object) -> HypothesisCheck:
    r"""Conjecture 32's hypothesis: :math:`W(0) \in \mathcal M_r` and condition (47)."""
    return _check(W0, U_r, need_47=True, need_det=False)


def amended_det(W0: object, U_r: object) -> HypothesisCheck:
    r"""(47) and :math:`\det(U_r^T W(0) U_r) > 0` (W(0) in M_r): the first amendment tried,
    refuted for r >= 4 (module docstring)."""
    return _check(W0, U_r, need_47=True, need_det=True)


def amended(W0: object, U_r: object) -> HypothesisCheck:
    r"""The amended hypothesis: W(0) in M_r and :math:`(C + C^T)/2` positive definite for
    :math:`C = U_r^T W(0) U_r` (which implies (47) and det C > 0); margin
    :math:`\lambda_{\min}((C + C^T)/2) / \|W(0)\|_2` less its rounding.

    The one definition of the amendment (change it here and every user follows).
    """
    return _check(W0, U_r, need_47=True, need_det=False, need_sym=True)


#: name -> (predicate, one-line description)
HYPOTHESES: dict[str, tuple[Callable[[object, object], HypothesisCheck], str]] = {
    "theorem31": (theorem31, "balanced, W(0) in M_r (Theorem 31)"),
    "conjecture32": (conjecture32, "balanced, condition (47) (Conjecture 32)"),
    "amended": (amended, "balanced, W(0) in M_r, x^T W(0) x > 0 on span U_r (amended conjecture)"),
    "amended_det": (amended_det, "balanced, (47) and det(U_r^T W(0) U_r) > 0"),
}


def check_hypothesis(name: str, W0: object, U_r: object) -> HypothesisCheck:
    """Evaluate the hypothesis ``name`` (a key of :data:`HYPOTHESES`) at W(0)."""
    if name not in HYPOTHESES:
        raise ValueError(f"hypothesis must be one of {', '.join(HYPOTHESES)}, got {name!r}")
    return HYPOTHESES[name][0](W0, U_r)
