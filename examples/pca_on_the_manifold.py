"""PCA as Riemannian optimization on M_k under the deep-linear metric, for depths 1 to 4.

The autoencoder loss L1(W) = 1/2 ||X - W X||_F^2 restricted to rank-k matrices has the PCA
projection U_k U_k^T as its global minimizer (Eckart-Young). This script minimizes it with
pymanopt's ConjugateGradient on DeepLinearFixedRank(d, d, k, depth), through both problem
builders of linrank, and prints the distance to U_k U_k^T and the iterations used.

Run:  .venv/bin/python examples/pca_on_the_manifold.py [--quick]

The run takes a few seconds, so ``--quick`` (which every example takes; the wheel check runs
each example with it) runs it unchanged.
"""

import argparse

import autograd.numpy as anp
import numpy as np
import pymanopt

from linrank import DeepLinearFixedRank, ambient_problem, autograd_problem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the same run (it takes seconds)")
    ap.parse_args()
    rng = np.random.default_rng(0)
    d, m, k = 20, 60, 3
    X = rng.standard_normal((d, m)) / np.sqrt(d)  # the paper's Section 7 data
    lam, U = np.linalg.eigh(X @ X.T)
    Uk = U[:, ::-1][:, :k]

    def cost(W):
        return 0.5 * np.sum((X - W @ X) ** 2)

    def gradient(W):  # (W X - X) X^T
        return (W @ X - X) @ X.T

    print(f"{'depth':>5} {'builder':>9} {'iterations':>10} {'||W - U_k U_k^T||':>18}")
    for depth in (1, 2, 3, 4):
        manifold = DeepLinearFixedRank(d, d, k, depth)
        problems = {
            "ambient": ambient_problem(manifold, cost, gradient),
            "autograd": autograd_problem(manifold, lambda W: 0.5 * anp.sum((X - W @ X) ** 2)),
        }
        for name, problem in problems.items():
            np.random.seed(depth)
            result = pymanopt.optimizers.ConjugateGradient(
                verbosity=0, min_gradient_norm=1e-10, max_iterations=5000
            ).run(problem)
            err = np.linalg.norm(manifold.to_dense(result.point) - Uk @ Uk.T)
            print(f"{depth:>5} {name:>9} {result.iterations:>10} {err:>18.2e}")


if __name__ == "__main__":
    main()
