"""ambient_problem / autograd_problem: pymanopt's first-order optimizers reach the PCA projection."""

import autograd.numpy as anp
import numpy as np
import pymanopt
import pytest
from scipy.sparse.linalg import LinearOperator

from linrank import DeepLinearFixedRank, ambient_problem, autograd_problem

d, m_samples, k = 8, 24, 3
_rs = np.random.RandomState(5)
X = _rs.standard_normal((d, m_samples)) / np.sqrt(d)
C = X @ X.T
lam, U = np.linalg.eigh(C)
Uk = U[:, ::-1][:, :k]
OPT = Uk @ Uk.T  # the autoencoder's global minimizer on M_k (Eckart-Young)


def cost(W):
    return 0.5 * np.sum((X - W @ X) ** 2)


def egrad_dense(W):
    return (W @ X - X) @ X.T


def egrad_operator(W):
    """The gradient (W X - X) X^T = W C - C as a LinearOperator (never formed)."""
    R = W @ X - X
    return LinearOperator(
        (d, d),
        matvec=lambda v: R @ (X.T @ v),
        rmatvec=lambda v: X @ (R.T @ v),
        matmat=lambda V: R @ (X.T @ V),
        rmatmat=lambda V: X @ (R.T @ V),
    )


def run(problem, Opt, seed):
    np.random.seed(seed)
    opt = Opt(verbosity=0, max_iterations=2000, min_gradient_norm=1e-9)
    return opt.run(problem)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize(
    "Opt", [pymanopt.optimizers.SteepestDescent, pymanopt.optimizers.ConjugateGradient]
)
@pytest.mark.parametrize("how", ["ambient", "operator", "autograd"])
def test_first_order_optimizers_reach_pca(depth, Opt, how):
    man = DeepLinearFixedRank(d, d, k, depth)
    if how == "ambient":
        problem = ambient_problem(man, cost, egrad_dense)
    elif how == "operator":
        problem = ambient_problem(man, cost, egrad_operator)
    else:
        problem = autograd_problem(man, lambda W: 0.5 * anp.sum((X - W @ X) ** 2))
    res = run(problem, Opt, seed=depth)
    W = man.to_dense(res.point)
    assert np.linalg.norm(W - OPT) < 1e-5
    assert res.cost == pytest.approx(0.5 * (np.trace(C) - lam[::-1][:k].sum()), rel=1e-9)


def test_autograd_gradient_and_hessian_vector_products():
    man = DeepLinearFixedRank(d, d, k, 2)
    problem = autograd_problem(man, lambda W: 0.5 * anp.sum((X - W @ X) ** 2))
    np.random.seed(0)
    x = man.random_point()
    W = man.to_dense(x)
    assert np.allclose(problem.euclidean_gradient(x), egrad_dense(W), rtol=1e-13, atol=1e-13)
    xi = man.random_tangent_vector(x)
    Z = man.tangent_to_dense(x, xi)
    assert np.allclose(problem.euclidean_hessian(x, xi), Z @ C, rtol=1e-12, atol=1e-13)
    assert problem.cost(x) == pytest.approx(cost(W), rel=1e-14)


def test_problem_bad_input():
    man = DeepLinearFixedRank(d, d, k, 2)
    with pytest.raises(TypeError, match="DeepLinearFixedRank"):
        ambient_problem(pymanopt.manifolds.FixedRankEmbedded(d, d, k), cost, egrad_dense)
    with pytest.raises(TypeError, match="callable"):
        ambient_problem(man, cost, "grad")
    with pytest.raises(TypeError, match="callable"):
        autograd_problem(man, 3.0)
    with pytest.raises(NotImplementedError, match="euclidean_hessian"):
        ambient_problem(man, cost, egrad_dense).euclidean_hessian  # noqa: B018


def test_preconditioner_is_passed_to_trust_regions():
    """A preconditioner given to ambient_problem reaches pymanopt: TrustRegions calls it, and the
    identity preconditioner gives the same run as none."""
    man = DeepLinearFixedRank(d, d, k, 2)
    calls = []

    def identity(point, vector):
        calls.append(1)
        return vector

    runs = []
    for pre in (None, identity):
        problem = ambient_problem(man, cost, egrad_dense, lambda W, Z: Z @ C, preconditioner=pre)
        np.random.seed(4)
        runs.append(pymanopt.optimizers.TrustRegions(verbosity=0, max_iterations=50).run(problem))
    assert calls, "the preconditioner was never called"
    assert runs[0].iterations == runs[1].iterations
    assert np.allclose(man.to_dense(runs[0].point), man.to_dense(runs[1].point), atol=1e-12)
    with pytest.raises(TypeError, match="preconditioner"):
        ambient_problem(man, cost, egrad_dense, preconditioner="none")


@pytest.mark.parametrize(
    "value, kind, what",
    [
        (1 + 2j, TypeError, "complex"),
        (np.complex128(3.0), TypeError, "complex"),
        (np.ones((d, d)), TypeError, r"array of shape \(8, 8\)"),
        (np.ones(1), TypeError, r"array of shape \(1,\)"),
        ("1.0", TypeError, "str"),
        (None, TypeError, "None"),
        (float("nan"), ValueError, "nan"),
    ],
)
def test_cost_callback_values_are_named(value, kind, what):
    """A cost callback returning a complex number, an array, a string or None is refused with a
    message naming the callback (it gave numpy's "truth value of an array is ambiguous" or
    autograd's "Grad only applies to real scalar-output functions")."""
    man = DeepLinearFixedRank(d, d, k, 2)
    np.random.seed(0)
    x = man.random_point()
    problem = ambient_problem(man, lambda W: value, egrad_dense)
    with pytest.raises(kind, match="the cost callback") as info:
        problem.cost(x)
    assert info.match(what)
    with pytest.raises(kind, match="the cost callback"):
        problem.dense_loss_and_gradient(man.to_dense(x))


@pytest.mark.parametrize(
    "f, what",
    [
        (lambda W: anp.sum(W) * (1 + 2j), "complex"),
        (lambda W: 2 * W, r"array of shape \(8, 8\)"),
        (lambda W: anp.sum(W, axis=0), r"array of shape \(8,\)"),
    ],
)
def test_autograd_cost_callback_values_are_named(f, what):
    man = DeepLinearFixedRank(d, d, k, 2)
    np.random.seed(0)
    x = man.random_point()
    problem = autograd_problem(man, f)
    for call in (problem.cost, problem.riemannian_gradient, problem.euclidean_gradient):
        with pytest.raises(TypeError, match="the cost callback must return a real number") as info:
            call(x)
        assert info.match(what)


def test_real_cost_values_of_any_kind_are_accepted():
    man = DeepLinearFixedRank(d, d, k, 2)
    np.random.seed(0)
    x = man.random_point()
    for value in (1, 2.5, np.float32(3.0), np.array(4.0), np.int64(5)):
        assert ambient_problem(man, lambda W, v=value: v, egrad_dense).cost(x) == float(value)
