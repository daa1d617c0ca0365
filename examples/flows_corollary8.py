"""The layer-wise flow (5) and the Riemannian flow (31) on M_k give the same W(t) (Corollary 8).

Section 7's data (X: 20 x 60 with N(0, 1/20) entries, Y = X), a rank-3 start, depth 3 with
hidden widths 8 and 5. Prints, at a few times, the relative difference of the two products, the
distance to the PCA projection U_3 U_3^T, and the drift of the conserved quantities
W_{j+1}^T W_{j+1} - W_j W_j^T (Lemma 2(3)).

Run:  .venv/bin/python examples/flows_corollary8.py [--quick]

The run takes a few seconds, so ``--quick`` (which every example takes; the wheel check runs
each example with it) runs it unchanged.
"""

import argparse

import numpy as np

from linrank import balanced_factors, factor_flow, gaussian_data, manifold_flow, top_projector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the same run (it takes seconds)")
    ap.parse_args()
    X = gaussian_data(20, seed=0)
    rng = np.random.default_rng(1)
    W0 = rng.standard_normal((20, 3)) @ rng.standard_normal((3, 20)) / 20
    factors = balanced_factors(W0, (20, 8, 5, 20), seed=2)
    times = np.array([0.0, 10.0, 25.0, 50.0, 100.0])
    P = top_projector(X, 3)
    tol = {"rtol": 1e-10, "atol": 1e-12, "t_eval": times, "trajectory": True}
    r1 = factor_flow(X, None, factors, 100.0, conserved=True, **tol)
    r2 = manifold_flow(X, None, W0, 3, 100.0, **tol)
    print(f"{'t':>6} {'||W_layers - W_manifold|| / ||W||':>36} {'||W - U_3 U_3^T||':>18}")
    for t, fs, pt in zip(r1.t, r1.trajectory, r2.trajectory):
        Wf = np.linalg.multi_dot(fs[::-1]) if len(fs) > 1 else fs[0]
        Wm = (pt[0] * pt[1]) @ pt[2]
        rel = np.linalg.norm(Wf - Wm) / np.linalg.norm(Wm)
        print(f"{t:>6.1f} {rel:>36.2e} {np.linalg.norm(Wm - P):>18.3e}")
    print(f"max drift of the conserved quantities: {np.max(r1.conserved_drift):.2e}")


if __name__ == "__main__":
    main()
