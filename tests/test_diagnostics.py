"""linrank.diagnostics: slope tests that can fail, symmetry/linearity/tangency, Hessian spectra."""

import numpy as np
import pytest

from linrank import DeepLinearFixedRank, least_squares_problem
from linrank.connection import derivative_of_B
from linrank.critical import AutoencoderProblem
from linrank.diagnostics import check_gradient, check_hessian, hessian_spectrum
from linrank.manifold import FixedRankPoint

_rs = np.random.RandomState(3)
d, ns, k = 8, 20, 3
X = _rs.standard_normal((d, ns))
Y = _rs.standard_normal((d, ns))
C = X @ X.T


def _regression(depth):
    man = DeepLinearFixedRank(d, d, k, depth)
    return man, least_squares_problem(man, X, Y)


class _Wrapped:
    """A problem whose Riemannian gradient or Hessian is replaced (to see the checks fail)."""

    def __init__(self, base, gradient=None, hessian=None):
        self.manifold = base.manifold
        self.cost = base.cost
        self.riemannian_gradient = gradient or base.riemannian_gradient
        self.riemannian_hessian = hessian or base.riemannian_hessian


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_gradient_check_passes_and_catches_the_frobenius_gradient(depth):
    man, pr = _regression(depth)
    np.random.seed(depth)
    for _ in range(3):
        res = check_gradient(pr, man.random_point())
        assert res.passed, res.slope_test.slope
        assert abs(res.slope_test.slope - 2) <= 0.2
        assert res.tangency <= 1e-12
    if depth >= 2:
        # P_T G is the gradient of the embedded metric, not of g: the slope drops to 1
        wrong = _Wrapped(pr, gradient=lambda x: man.projection(x, (man.to_dense(x) @ X - Y) @ X.T))
        res = check_gradient(wrong, man.random_point())
        assert not res.passed
        assert res.slope_test.slope < 1.5


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_hessian_check_passes_off_critical_points_with_the_acceleration_term(depth):
    man, pr = _regression(depth)
    np.random.seed(10 + depth)
    for _ in range(3):
        res = check_hessian(pr, man.random_point())
        assert res.passed, (res.slope_test.slope, res.symmetry, res.linearity, res.tangency)
        assert res.correction == ("none" if depth == 1 else "christoffel")
        assert res.symmetry <= 1e-12 and res.linearity <= 1e-12 and res.tangency <= 1e-12


@pytest.mark.parametrize("depth", [2, 3])
def test_plain_second_order_test_is_invalid_off_critical_points_for_depth_2(depth):
    """The SVD retraction is only first order for g (depth >= 2): the plain test must fail."""
    man, pr = _regression(depth)
    np.random.seed(depth)
    res = check_hessian(pr, man.random_point(), correction="none")
    assert not res.passed


@pytest.mark.parametrize("depth", [2, 4])
def test_plain_test_is_valid_at_a_critical_point(depth):
    man = DeepLinearFixedRank(d, d, k, depth)
    ae = AutoencoderProblem(man, X)
    lam, U = np.linalg.eigh(C)
    uJ = U[:, [-1, -2, -4]]  # a saddle
    pt = FixedRankPoint(uJ, np.ones(k), uJ.T.copy())
    res = check_hessian(ae, pt, correction="none")
    assert res.passed, res.slope_test.slope


@pytest.mark.parametrize("depth", [2, 3])
def test_hessian_check_catches_a_missing_connection_term(depth):
    man, pr = _regression(depth)
    good = pr.riemannian_hessian

    def wrong(x, xi):  # drop -1/2 P_T[(D_grad B)(B^+ xi)]
        grad = pr.riemannian_gradient(x)
        a = man.apply_A_inverse(x, xi)
        return good(x, xi) + 0.5 * derivative_of_B(man, x, grad, a)

    np.random.seed(1)
    res = check_hessian(_Wrapped(pr, hessian=wrong), man.random_point())
    assert not res.passed
    assert res.slope_test.slope < 2.5
    # (that term is g-self-adjoint on its own, so the symmetry check cannot see it)


def test_bad_correction_is_rejected():
    man, pr = _regression(2)
    with pytest.raises(ValueError, match="correction"):
        check_hessian(pr, correction="yes")


# ------------------------------------------------------------------ spectra
def _gram_reference(man, problem, pt, rng):
    """Eigenvalues by a generalized eigenproblem in a random (non-orthonormal) tangent basis."""
    dim = man.dim
    basis = []
    for _ in range(dim):
        t = man.random_tangent_vector(pt)
        basis.append(t)
    Hb = [problem.riemannian_hessian(pt, b) for b in basis]
    Hm = np.array([[man.inner_product(pt, hb, bi) for hb in Hb] for bi in basis])
    Gm = np.array([[man.inner_product(pt, bj, bi) for bj in basis] for bi in basis])
    from scipy.linalg import eigh

    return eigh(0.5 * (Hm + Hm.T), Gm, eigvals_only=True)


@pytest.mark.parametrize("depth", [1, 3])
def test_dense_spectrum_matches_a_generalized_eigenproblem(depth):
    rng = np.random.default_rng(0)
    man = DeepLinearFixedRank(5, 4, 2, depth)
    Xs = rng.standard_normal((4, 9))
    Ys = rng.standard_normal((5, 9))
    pr = least_squares_problem(man, Xs, Ys)
    np.random.seed(depth)
    pt = man.random_point()
    spec = hessian_spectrum(man, pr, pt, which="all")
    assert spec.dim == man.dim == spec.eigenvalues.size
    assert spec.asymmetry <= 1e-13
    ref = _gram_reference(man, pr, pt, rng)
    scale = np.abs(ref).max()
    assert np.abs(spec.eigenvalues - ref).max() <= 1e-8 * scale


def test_lanczos_matches_the_dense_spectrum():
    dd, kk = 30, 3
    rng = np.random.default_rng(1)
    Xl = rng.standard_normal((dd, 2 * dd))
    man = DeepLinearFixedRank(dd, dd, kk, 3)
    ae = AutoencoderProblem(man, Xl)
    np.random.seed(0)
    pt = man.random_point()
    full = hessian_spectrum(man, ae, pt, which="all")
    low = hessian_spectrum(man, ae, pt, which="smallest", n_eigs=3, tol=1e-12)
    high = hessian_spectrum(man, ae, pt, which="largest", n_eigs=2, tol=1e-12)
    scale = np.abs(full.eigenvalues).max()
    assert low.method == "lanczos" and low.n_products < full.n_products
    np.testing.assert_allclose(low.eigenvalues, full.eigenvalues[:3], atol=1e-9 * scale)
    np.testing.assert_allclose(high.eigenvalues, full.eigenvalues[-2:], atol=1e-9 * scale)


def test_spectrum_input_errors():
    man, pr = _regression(2)
    pt = man.random_point()
    with pytest.raises(ValueError, match="which"):
        hessian_spectrum(man, pr, pt, which="middle")
    with pytest.raises(ValueError, match="n_eigs"):
        hessian_spectrum(man, pr, pt, which="smallest", n_eigs=0)
    with pytest.raises(TypeError):
        hessian_spectrum(object(), pr, pt)
    with pytest.raises(ValueError, match="Morse"):
        hessian_spectrum(man, pr, pt, which="smallest", n_eigs=2).morse_index()


def test_check_results_print_a_verdict():
    from linrank.diagnostics import GradientCheck, SlopeTest

    t = np.logspace(-8, 0, 5)
    ok = SlopeTest(t, t**2, 2.0, 1.999, np.ones(5, bool), True, False)
    bad = SlopeTest(t, t, 2.0, 1.0, np.ones(5, bool), False, False)
    exact = SlopeTest(t, 0 * t, 2.0, np.nan, np.zeros(5, bool), True, True)
    assert str(ok) == "slope 1.999 (expected 2): passed"
    assert "FAILED" in str(bad) and "slope 1.000" in str(bad)
    assert "exact to rounding" in str(exact)
    assert str(GradientCheck(bad, 1e-16, False)).startswith("gradient check FAILED")
