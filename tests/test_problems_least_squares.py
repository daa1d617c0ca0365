"""least_squares_problem (linrank.problems.least_squares): the paper's L^1(W) = 1/2 ||Y - WX||_F^2
against the dense numpy loss, autograd on the dense W and finite differences; rectangular W with
Y != X; bad input named."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest

from linrank import (
    DeepLinearFixedRank,
    autograd_problem,
    check_gradient,
    check_hessian,
    least_squares_problem,
)


def _rel(a, b):
    """max-abs difference of two tangent vectors relative to the size of b."""
    scale = max(np.max(np.abs(np.concatenate([np.ravel(t) for t in b]))), 1e-300)
    return max(np.max(np.abs(p - q)) for p, q in zip(a, b)) / scale


@pytest.mark.parametrize("d_y,d_x,k,depth,autoencoder", [
    (6, 6, 2, 3, True), (7, 4, 3, 2, False), (3, 8, 3, 1, False), (5, 5, 5, 4, False)
])
def test_loss_gradient_hessian_against_references(d_y, d_x, k, depth, autoencoder):
    rng = np.random.default_rng(d_y * 10 + d_x)
    X = rng.standard_normal((d_x, 11))
    Y = None if autoencoder else rng.standard_normal((d_y, 11))
    Yd = X if Y is None else Y
    man = DeepLinearFixedRank(d_y, d_x, k, depth)
    P = least_squares_problem(man, X, Y)
    ref = autograd_problem(man, lambda W: 0.5 * anp.sum((Yd - W @ X) ** 2))
    np.random.seed(depth)
    x = man.random_point()
    xi = man.random_tangent_vector(x)
    W = man.to_dense(x)
    # L^1 and its derivatives are polynomials of entries O(1): rounding of a few products
    assert P.cost(x) == pytest.approx(0.5 * np.sum((Yd - W @ X) ** 2), rel=1e-12)
    assert _rel(P.riemannian_gradient(x), ref.riemannian_gradient(x)) < 1e-11
    assert _rel(P.riemannian_hessian(x, xi), ref.riemannian_hessian(x, xi)) < 1e-10
    assert check_gradient(P, x).passed
    assert check_hessian(P, x).passed
    # the data define the loss: the flows' checkpoint fingerprints cover X and Y
    data = P.fingerprint_arrays()
    assert len(data) == 2 and np.array_equal(data[0], X) and np.array_equal(data[1], Yd)


def test_bad_input_is_named():
    man = DeepLinearFixedRank(4, 3, 2, 2)
    X = np.ones((3, 5))
    with pytest.raises(TypeError, match="manifold must be a linrank.DeepLinearFixedRank"):
        least_squares_problem("manifold", X)
    with pytest.raises(ValueError, match="equal sample counts"):
        least_squares_problem(man, X, np.ones((4, 6)))
    with pytest.raises(ValueError, match="4 x 3, data give 3 x 3"):
        least_squares_problem(man, X)  # the autoencoder needs a square W
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="X"):
        least_squares_problem(man, bad, np.ones((4, 5)))
