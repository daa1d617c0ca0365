"""Hostile input at the core's public boundaries (issue 8, items 4 and 5).

Every case here failed on commit 1ff0808 (silently cut complex numbers, NaN output, LinAlgError
or numpy's own messages that do not name the argument, wrong Morse indices, NaN Hessians): each
must now give the documented answer or a TypeError/ValueError naming the input. Only top-level
names are imported, so the file also runs against the old code.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pymanopt
import pytest
from scipy.sparse.linalg import LinearOperator, aslinearoperator

import linrank
from linrank import (
    DeepLinearFixedRank,
    FactorGradient,
    TangentVector,
    ambient_problem,
    check_gradient,
    christoffel,
    critical_points,
    least_squares_problem,
    riemannian_hessian,
)

M, N, K = 7, 5, 2


def _point(rng, m=M, n=N, k=K, s=None):
    u = np.linalg.qr(rng.standard_normal((m, k)))[0]
    vt = np.linalg.qr(rng.standard_normal((n, k)))[0].T
    return (u, np.array([2.0, 0.5][:k]) if s is None else np.asarray(s, dtype=float), vt)


def _tangent(man, x, rng):
    m, n, k = man.m, man.n, man.k
    raw = TangentVector(
        rng.standard_normal((m, k)), rng.standard_normal((k, k)), rng.standard_normal((n, k))
    )
    return man.to_tangent_space(x, raw)


def _with(t, i, value):
    """A copy of the tuple t with entry [0, 0] of block i set to value (complex allowed)."""
    blocks = [np.array(b, dtype=complex if isinstance(value, complex) else float) for b in t]
    blocks[i].flat[0] = value
    return tuple(blocks)


@pytest.fixture
def setup(rng):
    man = DeepLinearFixedRank(M, N, K, depth=3)
    x = _point(rng)
    return man, x, _tangent(man, x, rng), rng.standard_normal((M, N))


def _refused(exc, match, fn, *args):
    with pytest.raises(exc, match=match) as info:
        fn(*args)
    assert not isinstance(info.value, np.linalg.LinAlgError)


# ------------------------------------------------------------------------------ complex input
COMPLEX_CASES = [
    "point u",
    "point s",
    "point vt",
    "tangent M",
    "tangent Up",
    "dense gradient",
    "factored gradient",
    "operator gradient",
    "factor gradients",
    "projection",
    "euclidean hessian",
    "point_from_matrix",
]


@pytest.mark.parametrize("case", COMPLEX_CASES)
def test_complex_input_is_refused(setup, case):
    man, x, xi, G = setup
    Gc = G + 1e-3j
    calls = {
        "point u": (man.norm, _with(x, 0, 1 + 1j), xi),
        "point s": (man.euclidean_to_riemannian_gradient, _with(x, 1, 2 + 1j), G),
        "point vt": (man.retraction, _with(x, 2, 1 + 1j), xi),
        "tangent M": (man.inner_product, x, _with(xi, 1, 1j), xi),
        "tangent Up": (man.apply_A, x, _with(xi, 0, 1j)),
        "dense gradient": (man.euclidean_to_riemannian_gradient, x, Gc),
        "factored gradient": (
            man.euclidean_to_riemannian_gradient,
            x,
            (np.eye(M, 2) * 1j, np.eye(2), np.eye(N, 2)),
        ),
        "operator gradient": (man.euclidean_to_riemannian_gradient, x, aslinearoperator(Gc)),
        "factor gradients": (
            man.euclidean_to_riemannian_gradient,
            x,
            FactorGradient(np.ones((M, K)) * 1j, np.ones(K), np.ones((K, N))),
        ),
        "projection": (man.projection, x, Gc),
        "euclidean hessian": (riemannian_hessian, man, x, G, Gc, xi),
        "point_from_matrix": (man.point_from_matrix, Gc),
    }
    fn, *args = calls[case]
    _refused(TypeError, "complex", fn, *args)


def test_complex_data_is_refused(rng):
    X = rng.standard_normal((4, 12))
    man = DeepLinearFixedRank(4, 4, 2)
    _refused(TypeError, "X must be real.*complex", least_squares_problem, man, X + 1j)
    _refused(TypeError, "Y must be real.*complex", least_squares_problem, man, X, X + 1j)
    _refused(TypeError, "X must be real.*complex", critical_points, X + 0j, 2)


# ------------------------------------------------------------------------------ NaN and inf
NONFINITE_CASES = [
    ("gradient: NaN in u", "point"),
    ("gradient: NaN in dense G", "euclidean_gradient"),
    ("gradient: inf in factored G", "euclidean_gradient"),
    ("gradient: operator returning NaN", "euclidean_gradient"),
    ("gradient: NaN factor gradients", "euclidean_gradient"),
    ("inner product: NaN tangent", "tangent_vector_a"),
    ("norm: inf tangent", "tangent_vector"),
    ("apply_A: NaN tangent", "tangent_vector"),
    ("apply_A_inverse: inf tangent", "tangent_vector"),
    ("retraction: NaN step", "tangent_vector"),
    ("retraction: inf step, polar", "tangent_vector"),
    ("retraction: NaN in u", "point"),
    ("transport: NaN tangent", "tangent_vector_a"),
    ("dist: NaN in vt", "point_b"),
    ("to_dense: NaN in u", "point"),
    ("tangent_to_dense: NaN tangent", "tangent_vector"),
    ("hessian: NaN in H", "euclidean_hessian"),
    ("hessian: NaN direction", "tangent_vector"),
    ("christoffel: inf X", "X"),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's, on the way to the ValueError
@pytest.mark.parametrize("case,name", NONFINITE_CASES, ids=[c for c, _ in NONFINITE_CASES])
def test_nan_and_inf_are_refused_naming_the_input(setup, case, name):
    man, x, xi, G = setup
    polar = DeepLinearFixedRank(M, N, K, depth=3, retraction="polar")
    Gnan = G.copy()
    Gnan[1, 2] = np.nan
    nan_op = LinearOperator(
        (M, N), matvec=lambda v: np.full(M, np.nan), rmatvec=lambda v: np.zeros(N), dtype=float
    )
    calls = {
        "gradient: NaN in u": (man.euclidean_to_riemannian_gradient, _with(x, 0, np.nan), G),
        "gradient: NaN in dense G": (man.euclidean_to_riemannian_gradient, x, Gnan),
        "gradient: inf in factored G": (
            man.euclidean_to_riemannian_gradient,
            x,
            (np.full((M, 1), np.inf), np.eye(1), np.ones((N, 1))),
        ),
        "gradient: operator returning NaN": (man.euclidean_to_riemannian_gradient, x, nan_op),
        "gradient: NaN factor gradients": (
            man.euclidean_to_riemannian_gradient,
            x,
            FactorGradient(np.full((M, K), np.nan), np.ones(K), np.ones((K, N))),
        ),
        "inner product: NaN tangent": (man.inner_product, x, _with(xi, 0, np.nan), xi),
        "norm: inf tangent": (man.norm, x, _with(xi, 2, np.inf)),
        "apply_A: NaN tangent": (man.apply_A, x, _with(xi, 1, np.nan)),
        "apply_A_inverse: inf tangent": (man.apply_A_inverse, x, _with(xi, 0, np.inf)),
        "retraction: NaN step": (man.retraction, x, _with(xi, 0, np.nan)),
        "retraction: inf step, polar": (polar.retraction, x, _with(xi, 2, np.inf)),
        "retraction: NaN in u": (man.retraction, _with(x, 0, np.nan), xi),
        "transport: NaN tangent": (man.transport, x, x, _with(xi, 1, np.nan)),
        "dist: NaN in vt": (man.dist, x, _with(x, 2, np.nan)),
        "to_dense: NaN in u": (man.to_dense, _with(x, 0, np.nan)),
        "tangent_to_dense: NaN tangent": (man.tangent_to_dense, x, _with(xi, 0, np.nan)),
        "hessian: NaN in H": (riemannian_hessian, man, x, G, Gnan, xi),
        "hessian: NaN direction": (riemannian_hessian, man, x, G, G, _with(xi, 1, np.nan)),
        "christoffel: inf X": (christoffel, man, x, _with(xi, 0, np.inf), xi),
    }
    fn, *args = calls[case]
    _refused(ValueError, name, fn, *args)


def test_nan_gradient_callback_inside_an_optimizer_is_refused(rng):
    X = rng.standard_normal((4, 12))
    man = DeepLinearFixedRank(4, 4, 2, depth=2)
    calls = [0]

    def grad(W):
        calls[0] += 1
        G = (W @ X - X) @ X.T
        return G * np.nan if calls[0] > 2 else G

    problem = ambient_problem(man, lambda W: 0.5 * np.sum((X - W @ X) ** 2), grad)
    opt = pymanopt.optimizers.SteepestDescent(verbosity=0, max_iterations=20)
    np.random.seed(0)
    with pytest.raises(ValueError, match="euclidean_gradient"):
        opt.run(problem)


# ------------------------------------------------------------------------------ non-numeric input
def test_non_numeric_input_names_the_argument(setup, rng):
    man, x, xi, G = setup
    _refused((TypeError, ValueError), "X", least_squares_problem, man, "abc")
    _refused(TypeError, "s", man.norm, (x[0], np.array(["a", "b"]), x[2]), xi)
    _refused(TypeError, "u", man.inner_product, (x[0].astype(str), x[1], x[2]), xi, xi)
    _refused(TypeError, "M", man.norm, x, (xi[0], np.array([["a", "b"], ["c", "d"]]), xi[2]))
    G_obj = G.astype(object)
    _refused(TypeError, "euclidean_gradient", man.euclidean_to_riemannian_gradient, x, G_obj)
    _refused(TypeError, "X", critical_points, "abc", 1)
    _refused(TypeError, "lam", linrank.closed_form_spectrum, ["a", "b"], [0], 1)


# ------------------------------------------------------------------------------ covariances
@pytest.mark.parametrize(
    "C", [-np.eye(3), np.array([[1.0, 2.0], [2.0, 1.0]]), np.diag([1.0, 0.0, -1e-3])]
)
def test_covariance_that_is_not_psd_is_refused(C):
    with pytest.raises(ValueError, match="positive semi-definite"):
        linrank.as_data(C, covariance=True)


def test_covariance_psd_up_to_rounding_is_accepted(rng):
    X = rng.standard_normal((6, 3))  # rank 3: X X^T is singular, eigenvalues ~ +-eps
    data = linrank.as_data(X @ X.T, covariance=True)
    assert data.Cxx.shape == (6, 6)


# ------------------------------------------------------------------------------ check_gradient
def test_check_gradient_refuses_steps_that_test_nothing(rng):
    X = rng.standard_normal((4, 12))
    man = DeepLinearFixedRank(4, 4, 2, depth=2)
    problem = least_squares_problem(man, X)
    x = man.random_point()
    for t, match in (([], "at least 7"), (-np.logspace(-6, 0, 20), "positive"),
                     (np.r_[np.logspace(-6, 0, 20), np.nan], "finite")):
        with pytest.raises(ValueError, match=match):
            check_gradient(problem, x, t=t)
        with pytest.raises(ValueError, match=match):
            linrank.check_hessian(problem, x, t=t)
    with pytest.raises(ValueError, match="direction must be a nonzero"):
        check_gradient(problem, x, man.zero_vector(x))


# ------------------------------------------------------------------------------ Morse index
@pytest.mark.parametrize("depth", [10**8, 10**9, 10**12])
def test_morse_index_at_huge_depth(depth):
    lam = np.array([9.0, 5.0, 3.0, 2.0, 1.0, 0.5])
    Q = np.linalg.qr(np.random.default_rng(2019).standard_normal((6, 6)))[0]
    X = Q * np.sqrt(lam)
    cps = critical_points(X, 2, depth, spectra="all")
    assert len(cps) == 15
    for cp in cps:
        assert cp.computed_index == cp.predicted_index, cp.J


# ------------------------------------------------------------------------------ extreme scales
@pytest.mark.parametrize("depth", [1, 2, 3, 10])
def test_hessian_and_christoffel_at_extreme_scales(rng, depth):
    r"""Homogeneity in the scale c of W (alpha = 2(N-1)/N): Hess at c s equals
    c^alpha B H + c^(alpha-1) (rest), Gamma at c s equals Gamma / c; the references are computed
    at s of order 1 (validated against chart Christoffel symbols in test_connection.py)."""
    man = DeepLinearFixedRank(M, N, K, depth)
    alpha = 2.0 * (depth - 1) / depth
    u, _, vt = _point(rng)
    s = np.array([1.0, 0.1])
    xi = TangentVector(*(b for b in _tangent(man, (u, s, vt), rng)))
    G = rng.standard_normal((M, N))
    H = rng.standard_normal((M, N))
    zero = np.zeros((M, N))
    for c in (1e150, 1e-150):
        big = (u, c * s, vt)
        ref_H = riemannian_hessian(man, (u, s, vt), zero, H, xi)
        ref_G = riemannian_hessian(man, (u, s, vt), G, zero, xi)
        got_H = riemannian_hessian(man, big, zero, H, xi)
        got_G = riemannian_hessian(man, big, G, zero, xi)
        for got, ref, power in ((got_H, ref_H, alpha), (got_G, ref_G, alpha - 1)):
            for g, r in zip(got, ref):
                assert np.all(np.isfinite(g))
                atol = 1e-11 * np.abs(r).max()
                np.testing.assert_allclose(g / c**power, r, rtol=1e-11, atol=atol)
        ref_C = christoffel(man, (u, s, vt), xi, xi)
        got_C = christoffel(man, big, xi, xi)
        for g, r in zip(got_C, ref_C):
            np.testing.assert_allclose(g * c, r, rtol=1e-11, atol=1e-11 * np.abs(r).max())


def test_hessian_out_of_range_says_so(rng):
    man = DeepLinearFixedRank(M, N, K, 10)
    x = _point(rng, s=[1e300, 1e-300])
    xi = _tangent(man, x, rng)
    G = rng.standard_normal((M, N))
    for fn, args in ((riemannian_hessian, (G, G, xi)), (christoffel, (xi, xi))):
        try:
            out = fn(man, x, *args)
        except ValueError as exc:
            assert "not representable" in str(exc)
        else:
            assert all(np.all(np.isfinite(b)) for b in out)


# ------------------------------------------------------------------------------ memory (item 5)
def test_from_samples_does_not_copy_the_data():
    rng = np.random.default_rng(0)
    d, n = 100, 40000  # X: 32 MB, X X^T: 80 kB
    X = rng.standard_normal((d, n))
    tracemalloc.start()
    try:
        linrank.LinearData.from_samples(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    cov = d * d * 8
    assert peak < cov + (4 << 20), peak  # the covariance and ~1 MiB temporaries only


def test_non_finite_point_in_problems_and_diagnostics(rng):
    X = rng.standard_normal((5, 15))
    man = DeepLinearFixedRank(5, 5, 2, 3)
    np.random.seed(0)
    x = man.random_point()
    bad = _with(x, 0, np.nan)
    ae = linrank.AutoencoderProblem(man, X)
    for fn, args in (
        (ae.cost, (bad,)),
        (ae.riemannian_hessian, (bad, man.zero_vector(x))),
        (linrank.hessian_spectrum, (man, ae, bad)),
        (linrank.check_hessian, (least_squares_problem(man, X), bad)),
        (check_gradient, (least_squares_problem(man, X), bad)),
    ):
        _refused(ValueError, "point", fn, *args)
    _refused(TypeError, "point: u", man.norm, ([[1.0, 2.0], [3.0]], x.s, x.vt), man.zero_vector(x))


def test_squared_norm_is_accurate_without_a_copy():
    from linrank.data import squared_norm

    rng = np.random.default_rng(3)
    A = rng.standard_normal((300, 700)) * np.exp(rng.uniform(-20, 20, (300, 1)))
    for B in (A, np.asfortranarray(A), A[:, ::3], A[::2, 1:]):
        exact = math.fsum((np.asarray(B, dtype=float).ravel() ** 2).tolist())
        assert squared_norm(B) == pytest.approx(exact, rel=1e-13)
