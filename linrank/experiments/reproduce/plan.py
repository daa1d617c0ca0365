"""What the reproduction runs: the list of runs per seed, and the side studies.

* :func:`default_specs` -- Figures 1-4 as in the paper (the paper's starts), the Euler study of
  Figure 3, and the studies beyond the paper (figure = 5): Conjecture 32 inside (47) and near its
  boundary, balanced starts outside (47), the special start for N >= 3, hidden widths above r,
  non-balanced starts for N > 2.
* :func:`perturbation_specs` -- the N = 2 special start perturbed by ``Settings.deltas``.
* :func:`manifold_comparison` (Corollary 8) and :func:`saddle_table` (Proposition 30).
"""

from __future__ import annotations

import numpy as np

from ...critical import iter_critical_points
from ...flows import factor_flow, manifold_flow
from ...network import product
from .paper import RunSpec, Settings, make_start, paper_data

__all__ = ["default_specs", "perturbation_specs", "eta_specs", "manifold_comparison",
           "saddle_table"]


def _fig1_rank(d: int) -> int:
    return max(2, d // 5)


def default_specs(settings: Settings) -> list[RunSpec]:
    """Every run of one seed (see the module docstring; sizes from ``settings``)."""
    s = settings
    r = s.small_rank
    specs = [RunSpec(1, N, d, _fig1_rank(d), "balanced") for N in s.depths for d in s.fig1_dims]
    specs += [RunSpec(2, N, d, r, "balanced") for N in s.depths for d in s.fig2_dims]
    specs += [RunSpec(3, 2, d, r, "nonbalanced") for d in s.fig3_dims]
    specs += [RunSpec(3, 2, d, r, "nonbalanced", method="Euler", step_fraction=f)
              for d in s.euler_dims for f in s.euler_fractions]
    specs += [RunSpec(4, 2, d, r, "special") for d in s.fig4_dims]
    # beyond the paper
    d0 = min(s.conj_dims)
    for N in s.conj_depths:
        specs += [RunSpec(5, N, d, _fig1_rank(d) if d > d0 else r, "inside47")
                  for d in s.conj_dims]
    for N in s.conj_depths[:2]:
        specs += [RunSpec(5, N, d0, r, "boundary", eps=e) for e in s.boundary_eps]
        specs.append(RunSpec(5, N, d0, r, "outside47"))
    specs += [RunSpec(5, N, d0, r, "special") for N in s.special_depths]
    specs += [RunSpec(5, N, d0, r, "balanced", hidden=(r + s.wide_extra,) * (N - 1))
              for N in s.depths]
    specs += [RunSpec(5, N, d0, r, "inside47", hidden=(r + s.wide_extra,) * (N - 1))
              for N in s.depths if N >= 3]
    for N in s.nonbalanced_depths:
        specs.append(RunSpec(5, N, d0, r, "nonbalanced"))
        specs += [RunSpec(5, N, d0, r, "perturbed", scale=x) for x in s.perturb_scales]
    # counterexamples (docs/theory.rst): family A inside (47) at r = 2 < d, and at r = d
    specs += [RunSpec(5, N, d0, 2, "familyA") for N in s.cex_depths]
    specs += [RunSpec(5, N, 2, 2, "negdet") for N in s.cex_depths]
    specs += [RunSpec(5, N, 3, 3, "familyA") for N in s.cex_depths[:1]]
    return specs


def eta_specs(settings: Settings) -> list[RunSpec]:
    """Family B (family A plus eta off the invariant set) for the eta-scan: d = min(conj_dims),
    r = 2, the (N, eta) pairs of ``settings.eta_scan`` (run for the first seed)."""
    d0 = min(settings.conj_dims)
    return [RunSpec(5, N, d0, 2, "familyB", scale=float(eta)) for N, eta in settings.eta_scan]


def perturbation_specs(settings: Settings) -> list[RunSpec]:
    """N = 2 special starts perturbed by ``settings.deltas`` (smallest Figure 4 dimension)."""
    d = min(settings.fig4_dims)
    return [RunSpec(4, 2, d, settings.small_rank, "special", delta=float(x))
            for x in settings.deltas]


def manifold_comparison(settings: Settings, seed: int) -> dict:
    """Corollary 8: the product of the balanced factor flow (5) equals the manifold flow (31).

    Smallest Figure 1 dimension, depth max(depths), T = 10, both RK45 with the run tolerances:
    the largest ||W_factor(t) - W_manifold(t)||_F on a grid of 0.5.
    """
    d = min(settings.fig1_dims)
    N = max(settings.depths)
    spec = RunSpec(1, N, d, _fig1_rank(d), "balanced")
    X = paper_data(d, seed)
    factors = make_start(spec, X, seed)
    T = 10.0
    grid = np.linspace(0.0, T, 21)
    tol = dict(rtol=settings.rtol, atol=settings.atol, t_eval=grid, trajectory=True)
    fa = factor_flow(X, None, factors, T, **tol)
    ma = manifold_flow(X, None, product(factors), N, T, rank=spec.rank, **tol)
    if "interrupted" in (fa.status, ma.status):
        raise KeyboardInterrupt("Corollary 8 comparison interrupted")
    from ...manifold import DeepLinearFixedRank

    diff = max(float(np.linalg.norm(product(a) - DeepLinearFixedRank.to_dense(b)))
               for a, b in zip(fa.trajectory, ma.trajectory))
    return {"d": d, "rank": spec.rank, "depth": N, "T": T, "max_difference": diff,
            "norm_W0": float(np.linalg.norm(product(factors))), "seed": seed}


def saddle_table(settings: Settings, seed: int) -> list[dict]:
    """Proposition 30 with :mod:`linrank.critical`: every critical point W_J on M_k.

    X = :func:`paper_data` (saddle_d, seed), k = saddle_k, each depth of ``settings.depths``:
    the number of critical points, global minimizers and strict saddles, whether the computed
    Morse indices equal the closed form, the largest relative spectrum error, and the smallest
    eigenvalue at the minimizer and at the mildest / worst saddle.
    """
    X = paper_data(settings.saddle_d, seed)
    rows = []
    for N in settings.depths:
        cps = list(iter_critical_points(X, settings.saddle_k, N, max_points=10**6, spectra="all"))
        minim = [c for c in cps if c.kind == "global minimizer"]
        sadd = [c for c in cps if c.kind != "global minimizer"]
        rows.append({
            "seed": seed, "depth": N, "d": settings.saddle_d, "k": settings.saddle_k,
            "points": len(cps), "minimizers": len(minim), "strict_saddles": len(sadd),
            "saddles_with_negative_eigenvalue": sum(c.computed_smallest < 0 for c in sadd),
            "index_agreement": all(c.computed_index == c.predicted_index for c in cps),
            "max_spectrum_error": max(c.spectrum_error for c in cps),
            "max_gradient_norm": max(c.gradient_norm for c in cps),
            "min_eig_minimizer": min(c.computed_smallest for c in minim),
            "mildest_saddle_eig": max(c.computed_smallest for c in sadd) if sadd else None,
            "worst_saddle_eig": min(c.computed_smallest for c in sadd) if sadd else None,
            "max_index": max(c.computed_index for c in cps),
        })
    return rows
