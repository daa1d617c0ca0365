"""Check Proposition 30 numerically: every critical point of the autoencoder but the global
minimizer is a strict saddle, with the Hessian spectrum of the closed form.

Data set: d = 6, X = Q diag(sqrt(lambda)) with lambda = (9, 5, 3, 2, 1, 0.5) the eigenvalues of
X X^T and Q a random orthogonal matrix (numpy default_rng(2019)); rank k = 2, depths 1 to 4.
For each of the C(6, 2) = 15 critical points W_J = sum_J u_j u_j^T the script computes every
eigenvalue of the exact Riemannian Hessian of the deep-linear metric (dense, from Hessian-vector
products in a g-orthonormal basis) and compares it with the closed form derived in
docs/theory.rst, section "Critical points of the autoencoder and their spectra". Exit status 1 if
any check fails.

Run:  .venv/bin/python examples/hessian_eigenvalues.py [--quick]

The run takes a few seconds, so ``--quick`` (which every example takes; the wheel check runs
each example with it) runs it unchanged.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from linrank import critical_points

LAMBDA = np.array([9.0, 5.0, 3.0, 2.0, 1.0, 0.5])
K = 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the same run (it takes seconds)")
    ap.parse_args()
    rng = np.random.default_rng(2019)
    Q = np.linalg.qr(rng.standard_normal((LAMBDA.size, LAMBDA.size)))[0]
    X = Q @ np.diag(np.sqrt(LAMBDA))
    ok = True
    for depth in (1, 2, 3, 4):
        cps = critical_points(X, K, depth)
        print(f"depth N = {depth}: {len(cps)} critical points")
        print(
            f"  {'J':<6} {'loss':>6} {'index':>5} {'(comp)':>6} {'min eig':>10} {'rel.err':>8}  kind"
        )
        for cp in cps:
            J = " ".join(str(j + 1) for j in cp.J)
            print(
                f"  {J:<6} {cp.loss:6.2f} {cp.predicted_index:>5} {cp.computed_index:>6} "
                f"{cp.computed_smallest:10.5f} {cp.spectrum_error:8.1e}  {cp.kind}"
            )
            ok &= cp.spectrum_error <= 1e-10 and cp.computed_index == cp.predicted_index
            # Proposition 30: a strict saddle has a negative eigenvalue, the minimizer none
            if cp.kind == "strict saddle":
                ok &= cp.computed_smallest < 0
            else:
                ok &= cp.J == (0, 1) and cp.computed_smallest > 0
        worst = max(cp.spectrum_error for cp in cps)
        print(f"  largest relative spectrum error {worst:.1e}; minimizer J = 1 2 only")
    print("Proposition 30 confirmed" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
