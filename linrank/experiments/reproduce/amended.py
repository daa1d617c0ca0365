r"""Testing an amended Conjecture 32 with random and adversarial starts.

:func:`adversarial_start` builds the start kinds below (W(0) = (U_rM + \nu U_\perp G)U_r^T,
balanced factors), :func:`decide` integrates one start with :func:`linrank.flows.factor_flow`
(RK45, rtol 1e-9) in chunks until it converges (||W - U_rU_r^T||_F <= ``tol``), is certified as
approaching another critical point (:func:`~linrank.experiments.shared.families.critical_certificate`),
or its budget ends (unresolved), and :func:`study` runs a list of cases and counts the outcomes
per hypothesis.

Kinds (M is r x r):

* ``"pd"`` -- M = S + K, S = Q diag(e^g) Q^T positive definite, K skew with entries of scale
  ``skew``; the amended hypothesis holds.
* ``"pd_boundary"`` -- M = 1e-3 I + K (symmetric part 1e-3 I, K skew of order 1).
* ``"det_two_negative"`` (r = 3) -- M = Q diag(3, -1, -1) Q^T with Q's first column
  (1, 1, 1)/sqrt 3: diag M = 1/3 > 0, det M = 3 > 0, two negative eigenvalues; (47) and
  det > 0 hold, the symmetric part is not positive definite.
* ``"block"`` (r >= 4) -- two family-A blocks: (47) and det > 0 hold; cannot converge.
* ``"block_perturbed"`` -- ``"block"`` plus a Gaussian r x r matrix of norm 1e-2 (inside span
  U_r, off the block structure).
* ``"family_a"`` -- the Conjecture 32 counterexample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...flows import factor_flow
from ...network import balanced_factors, product
from ..shared.families import (
    amended,
    amended_det,
    amended_matrix,
    compressed_det,
    conjecture32,
    critical_certificate,
    eigen_J,
    family_a_matrix,
    invariant_defect,
)
from ..shared.starts import top_eigenbasis

__all__ = ["KINDS", "Case", "adversarial_start", "decide", "study"]

KINDS = ("pd", "pd_boundary", "det_two_negative", "block", "family_a", "block_perturbed")


@dataclass(frozen=True)
class Case:
    """One start: kind, d, r, depth N, seed, ``normal`` (scale nu of the part off span U_r)."""

    kind: str
    d: int
    rank: int
    depth: int
    seed: int
    normal: float = 0.0
    skew: float = 1.0


def _data(d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, d, 47]))
    return rng.standard_normal((d, 3 * d)) / np.sqrt(d)


def _core(case: Case, rng: np.random.Generator) -> np.ndarray:
    r = case.rank
    if case.kind == "pd":
        return amended_matrix(r, rng, case.skew)
    if case.kind == "pd_boundary":
        A = rng.standard_normal((r, r))
        return 1e-3 * np.eye(r) + (A - A.T) / np.sqrt(2 * r)
    if case.kind == "det_two_negative":
        if r != 3:
            raise ValueError("det_two_negative is defined for r = 3")
        G = rng.standard_normal((3, 3))
        G[:, 0] = 1.0
        Q, _ = np.linalg.qr(G)
        return (Q * np.array([3.0, -1.0, -1.0])) @ Q.T
    if case.kind in ("block", "block_perturbed"):
        if r < 4:
            raise ValueError("block needs r >= 4")
        M = np.eye(r)
        M[:2, :2] = M[2:4, 2:4] = family_a_matrix(2)
        if case.kind == "block_perturbed":  # an open neighbourhood: 1e-2 off the block structure
            G = rng.standard_normal((r, r))
            M = M + 1e-2 * G / np.linalg.norm(G)
        return M
    if case.kind == "family_a":
        return family_a_matrix(r)
    raise ValueError(f"kind must be one of {KINDS}, got {case.kind!r}")


def adversarial_start(case: Case) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """(X, balanced factors, U_r, eigenvalues of XX^T) of ``case``."""
    X = _data(case.d, case.seed)
    U, lam = top_eigenbasis(X, case.rank)
    rng = np.random.default_rng(np.random.SeedSequence([case.seed, case.d, case.rank,
                                                       case.depth, KINDS.index(case.kind)]))
    left = U @ _core(case, rng)
    if case.normal > 0 and case.rank < case.d:
        G = rng.standard_normal((case.d, case.rank))
        left = left + case.normal * (G - U @ (U.T @ G)) / np.sqrt(case.d)
    dims = [case.d] + [case.rank] * (case.depth - 1) + [case.d]
    fs = balanced_factors(left @ U.T, dims, seed=rng, rank=case.rank)
    return X, fs, U, lam


def decide(case: Case, t_max: float = 2e4, chunk: float = 500.0, tol: float = 1e-4,
           rtol: float = 1e-9) -> dict:
    """Integrate ``case`` and say what happened (one row of :func:`study`).

    outcome: ``"converged"`` (||W - U_rU_r^T||_F <= tol), ``"critical"`` (certified approaching
    W_J != U_rU_r^T at the end of a chunk by
    :func:`~linrank.experiments.shared.families.critical_certificate` over the whole run so far: J read
    off the state, loss within 1e-3 (L(W_J) - L*) of L(W_J), gradient norm and |L - L(W_J)|
    decreasing over [T/2, T]; where the run is, not a proof of its limit: ``det_end`` and
    ``defect_end`` say whether the invariant-set argument applies), or ``"unresolved"`` (budget
    t_max spent without either).
    """
    X, fs, U, lam = adversarial_start(case)
    W0 = product(fs)
    P = U @ U.T
    row = dict(asdict(case), conjecture32=conjecture32(W0, U, case.rank),
               amended_det=amended_det(W0, U, case.rank), amended=amended(W0, U, case.rank),
               det0=compressed_det(W0, U, case.rank), defect0=invariant_defect(W0, U, case.rank))
    U_all = np.linalg.svd(X, full_matrices=True)[0]
    U_all[:, :case.rank] = U
    t, outcome, cert = 0.0, "unresolved", None
    ts: list[np.ndarray] = []
    ls: list[np.ndarray] = []
    gs: list[np.ndarray] = []
    while t < t_max:
        res = factor_flow(X, None, fs, min(chunk, t_max - t), target=P, rtol=rtol, atol=1e-12)
        if res.status == "interrupted":
            raise KeyboardInterrupt(res.message)
        ts.append(res.t + t)
        ls.append(np.asarray(res.loss, dtype=float))
        gs.append(np.asarray(res.grad_norm, dtype=float))
        fs, t = res.factors, t + float(res.t[-1])
        W = product(fs)
        if float(res.distance[-1]) <= tol:
            outcome = "converged"
            break
        J, LJ, Ls = eigen_J(W, U_all, lam, case.rank)
        cert = critical_certificate(np.concatenate(ts), np.concatenate(ls), np.concatenate(gs),
                                    J, LJ, Ls, tuple(range(case.rank)))
        if cert.certified:
            outcome = "critical"
            break
    W = product(fs)
    row.update(outcome=outcome, t=t, distance=float(np.linalg.norm(W - P)),
               J=None if cert is None else list(cert.J), det_end=compressed_det(W, U, case.rank),
               defect_end=invariant_defect(W, U, case.rank))
    return row


def study(cases: list[Case], **options: float) -> dict:
    """Rows of :func:`decide` and, per hypothesis, the counts of each outcome."""
    rows = [decide(c, **options) for c in cases]
    counts = {}
    for h in ("conjecture32", "amended_det", "amended"):
        sel = [r for r in rows if r[h]]
        counts[h] = {o: sum(r["outcome"] == o for r in sel)
                     for o in ("converged", "critical", "unresolved")}
    return {"rows": rows, "counts": counts}
