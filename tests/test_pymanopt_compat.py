"""What pymanopt 2.2.1 checks of FixedRankEmbedded, checked on DeepLinearFixedRank.

The checks of pymanopt's tests/manifolds/test_fixed_rank.py, tests/test_problem_backend_interface.py
(the manifold in a Product with Euclidean) and examples/low_rank_matrix_approximation.py, written
anew: at depth 1 all of them (the embedded metric, where DeepLinearFixedRank is a drop-in
replacement), at depths 2 and 3 those that do not depend on the metric. The deliberate differences
are asserted as such and must be named in the user guide's depth-1 list (docs/guide/manifold.rst).
"""

import pathlib
import re

import autograd.numpy as anp
import numpy as np
import pymanopt
import pytest
from pymanopt.manifolds import Euclidean, FixedRankEmbedded, Product

from linrank import DeepLinearFixedRank
from linrank.diagnostics import check_gradient

DEPTHS = [1, 2, 3]
EPS = np.finfo(float).eps
m, n, k = 10, 5, 3


def dense(point):
    u, s, vt = point
    return (u * s) @ vt


def ambient(point, t):
    """A tangent vector (Up, M, Vp) at (u, s, vt) as the m x n matrix u M vt + Up vt + u Vp^T."""
    u, _, vt = point
    return u @ t[1] @ vt + t[0] @ vt + u @ t[2].T


@pytest.fixture(params=DEPTHS, ids=lambda N: f"N{N}")
def man(request):
    np.random.seed(request.param)
    return DeepLinearFixedRank(m, n, k, request.param)


def decisive_prefix(costs, rounding, margin=1e4):
    """How many leading iterates of a logged run were reached by line-search decisions that
    rounding cannot flip: iterate i counts while every accepted decrease costs[j-1] - costs[j],
    j <= i, exceeds margin times rounding[j-1], the rounding error of the cost values the
    backtracking test compared. Past that point another BLAS kernel may legitimately take another
    step or stop at another iteration; a test of one implementation against another compares the
    prefix and the limit, not the tail."""
    drops = -np.diff(costs)
    bad = np.flatnonzero(drops < margin * rounding[:-1])
    return int(bad[0]) + 1 if bad.size else len(costs)


# ----------------------------------------------------------------------------- test_fixed_rank.py
def test_dimension_and_layout(man):
    assert man.dim == (m + n - k) * k
    assert man.point_layout == FixedRankEmbedded(m, n, k).point_layout == 3
    z = man.zero_vector(man.random_point())
    assert [np.shape(b) for b in z] == [(m, k), (k, k), (n, k)] and not any(b.any() for b in z)


def test_same_random_draws_as_fixed_rank_embedded_at_depth_one():
    ours, theirs = DeepLinearFixedRank(m, n, k), FixedRankEmbedded(m, n, k)
    draws = []
    for man in (ours, theirs):
        np.random.seed(3)
        x = man.random_point()
        draws.append((x, man.random_tangent_vector(x)))
    (x1, t1), (x2, t2) = draws
    assert all(np.array_equal(a, b) for a, b in zip(x1, x2))
    assert all(np.allclose(a, b, rtol=1e-14, atol=1e-15) for a, b in zip(t1, t2))


def test_random_points_are_thin_svds_and_differ(man):
    x, y = man.random_point(), man.random_point()
    assert [np.shape(a) for a in x] == [(m, k), (k,), (k, n)]
    assert np.allclose(x[0].T @ x[0], np.eye(k), atol=1e-12)
    assert np.allclose(x[2] @ x[2].T, np.eye(k), atol=1e-12)
    assert np.all(x[1] > 0) and np.all(np.diff(x[1]) <= 0)
    assert all(np.linalg.norm(a - b) > 1e-6 for a, b in zip(x, y))


def test_random_tangent_vectors_are_tangent_unit_and_differ(man):
    x = man.random_point()
    a, b = man.random_tangent_vector(x), man.random_tangent_vector(x)
    assert [np.shape(t) for t in a] == [(m, k), (k, k), (n, k)]
    assert np.abs(a[0].T @ x[0]).max() < 1e-12 and np.abs(a[2].T @ x[2].T).max() < 1e-12
    assert man.norm(x, a) == pytest.approx(1.0, abs=1e-12)
    assert man.norm(x, a - b) > 1e-6


def test_norm_is_the_root_of_the_inner_product(man):
    x = man.random_point()
    a = man.random_tangent_vector(x) * 3.0
    assert man.norm(x, a) == pytest.approx(np.sqrt(man.inner_product(x, a, a)), rel=1e-14)


def test_inner_product_is_frobenius_at_depth_one():
    man = DeepLinearFixedRank(m, n, k)
    x = man.random_point()
    a, b = man.random_tangent_vector(x), man.random_tangent_vector(x)
    want = np.sum(ambient(x, a) * ambient(x, b))
    assert man.inner_product(x, a, b) == pytest.approx(want, rel=1e-12, abs=1e-14)


def test_projection_is_tangent_and_closest(man):
    x = man.random_point()
    Z = np.random.normal(size=(m, n))
    g = man.projection(x, Z)
    assert np.abs(g[0].T @ x[0]).max() < 1e-12 and np.abs(g[2].T @ x[2].T).max() < 1e-12
    # the Frobenius projection (all depths): any other tangent vector is farther from Z
    for _ in range(5):
        g_disp = g + 0.01 * man.random_tangent_vector(x)
        U, S, V = man.embedding(x, g_disp)
        assert np.linalg.norm(ambient(x, g) - Z) < np.linalg.norm(U @ S @ V.T - Z)
    # the residual is Frobenius-orthogonal to the tangent space
    xi = man.random_tangent_vector(x)
    assert abs(np.sum((Z - ambient(x, g)) * ambient(x, xi))) < 1e-12 * np.linalg.norm(Z)


def test_projection_leaves_tangent_vectors_unchanged(man):
    x = man.random_point()
    t = man.random_tangent_vector(x)
    back = man.projection(x, man.embedding(x, t))
    for a, b in zip(back, t):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_embedding_is_the_ambient_matrix(man):
    x = man.random_point()
    t = man.random_tangent_vector(x)
    U, S, V = man.embedding(x, t)
    assert np.allclose(U @ S @ V.T, ambient(x, t), rtol=1e-13, atol=1e-14)


def test_factored_ambient_vectors_project_as_their_product(man):
    """pymanopt tests its private _apply_ambient(_transpose) on (u, diag(s), v) from an SVD; the
    public operation that uses them is the projection of a factored ambient vector."""
    x = man.random_point()
    Z = np.random.normal(size=(m, n))
    uz, sz, vzt = np.linalg.svd(Z, full_matrices=False)
    r = np.random.normal(size=(m, 2))
    S2 = np.array([[1.0, 3.0], [0.0, 2.0]])  # not symmetric: the transpose needs S^T
    q = np.random.normal(size=(n, 2))
    for fac, Zd in (((uz, np.diag(sz), vzt.T), Z), ((r, S2, q), r @ S2 @ q.T)):
        for a, b in zip(man.projection(x, fac), man.projection(x, Zd)):
            assert np.allclose(a, b, rtol=1e-12, atol=1e-13)


def test_transport_is_projection_of_the_embedding(man):
    x, y = man.random_point(), man.random_point()
    t = man.random_tangent_vector(x)
    moved = man.transport(x, y, t)
    want = man.projection(y, man.embedding(x, t))
    assert man.norm(y, [a - b for a, b in zip(moved, want)]) < 1e-12


@pytest.mark.parametrize("kind", ["projection", "polar"])
def test_retraction_stays_on_the_manifold_and_is_first_order(kind):
    for N in DEPTHS:
        man = DeepLinearFixedRank(m, n, k, N, retraction=kind)
        x = man.random_point()
        t = man.random_tangent_vector(x)
        y = man.retraction(x, t)
        assert np.allclose(y[0].T @ y[0], np.eye(k), atol=1e-12)
        assert np.allclose(y[2] @ y[2].T, np.eye(k), atol=1e-12)
        y = man.retraction(x, 1e-6 * t)
        assert np.abs(dense(y) - dense(x) - 1e-6 * ambient(x, t)).max() < 1e-10


def test_factor_gradient_conversion_is_pymanopts_formula_at_distinct_singular_values():
    """pymanopt's check: arbitrary (du, ds, dvt) against its closed form, at a random point."""
    for N in DEPTHS:
        man = DeepLinearFixedRank(m, n, k, N)
        x = man.random_point()
        u, s, vt = x
        du, ds, dvt = (
            np.random.normal(size=(m, k)),
            np.random.normal(size=k),
            np.random.normal(size=(k, n)),
        )
        # the solution of the 2 x 2 systems for M_ij, M_ji (s_j^2 - s_i^2 in the denominator)
        f = 1.0 / (s[None, :] ** 2 - s[:, None] ** 2 + np.eye(k))
        a, b = u.T @ du, vt @ dvt.T
        M = f * (a - a.T) * s[None, :] + s[:, None] * f * (b - b.T) + np.diag(ds)
        Up = (du - u @ a) / s
        Vp = (dvt.T - vt.T @ b) / s
        got = man.apply_A_inverse(x, man.euclidean_to_riemannian_gradient(x, (du, ds, dvt)))
        for p, q in zip(got, (Up, M, Vp)):
            assert np.allclose(p, q, rtol=1e-10, atol=1e-12)
        if N == 1:
            theirs = FixedRankEmbedded(m, n, k).euclidean_to_riemannian_gradient(x, (du, ds, dvt))
            for p, q in zip(got, theirs):
                assert np.allclose(p, q, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------- deliberate differences
GUIDE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "guide" / "manifold.rst"


def depth_one_differences() -> str:
    """The guide's list, from its lead-in to the next line that is not part of the list item."""
    text = GUIDE.read_text()
    start = text.index("Where it deliberately differs from ``FixedRankEmbedded``:")
    end = re.search(r"\n(?! |\n)", text[start:])
    return text[start : start + end.start()] if end else text[start:]


def test_typical_dist_is_sqrt_dim_and_listed():
    man, theirs = DeepLinearFixedRank(m, n, k), FixedRankEmbedded(m, n, k)
    assert theirs.typical_dist == theirs.dim
    assert man.typical_dist == pytest.approx(np.sqrt(man.dim), rel=1e-15)
    assert "typical_dist" in depth_one_differences()


def test_dist_exists_and_is_listed():
    man, theirs = DeepLinearFixedRank(m, n, k), FixedRankEmbedded(m, n, k)
    x, y = man.random_point(), man.random_point()
    with pytest.raises(NotImplementedError):
        theirs.dist(x, y)
    assert man.dist(x, y) == pytest.approx(np.linalg.norm(dense(x) - dense(y)), rel=1e-12)
    assert "`dist`" in depth_one_differences()


@pytest.mark.parametrize(
    "name", ["_apply_ambient", "factor-gradient", "retraction", "transport", "Hessian", "V S^T U^T"]
)
def test_every_difference_is_listed(name):
    assert name in depth_one_differences()


# ---------------------------------------------------------------------- Product with Euclidean
@pytest.fixture(params=DEPTHS, ids=lambda N: f"N{N}")
def product_problem(request):
    np.random.seed(10 + request.param)
    mm, nn, rank = 20, 10, 3
    A = np.random.normal(size=(mm, nn))
    manifold = Product([DeepLinearFixedRank(mm, nn, rank, request.param), Euclidean(nn)])

    @pymanopt.function.autograd(manifold)
    def cost(u, s, vt, x):
        return anp.linalg.norm(((u * s) @ vt - A) @ x) ** 2

    return manifold, cost, pymanopt.Problem(manifold, cost), (mm, nn, rank)


def test_product_cost_and_derivative_operators(product_problem):
    manifold, cost, problem, (mm, nn, rank) = product_problem
    X = manifold.random_point()
    (u, s, vt), x = X
    assert problem.cost(X) == pytest.approx(cost(u, s, vt, x), rel=1e-15)
    grads = cost.get_gradient_operator()(u, s, vt, x)
    assert [g.shape for g in grads] == [(mm, rank), (rank,), (rank, nn), (nn,)]
    (gu, gs, gvt), gx = problem.euclidean_gradient(X)
    for a, b in zip((gu, gs, gvt, gx), grads):
        assert np.array_equal(a, b)
    # Hessian-vector products with a direction of the point layout, as pymanopt's test does
    (a, b, c), d = manifold.random_point()
    hess = cost.get_hessian_operator()(u, s, vt, x, a, b, c, d)
    assert [h.shape for h in hess] == [(mm, rank), (rank,), (rank, nn), (nn,)]
    (hu, hs, hvt), hx = problem.euclidean_hessian(X, [(a, b, c), d])
    for p, q in zip((hu, hs, hvt, hx), hess):
        assert np.array_equal(p, q)


def test_product_riemannian_gradient_passes_the_slope_test(product_problem):
    manifold, _, problem, _ = product_problem
    res = check_gradient(problem, manifold.random_point())
    assert res.passed, str(res)


def test_product_cg_runs_as_with_fixed_rank_embedded():
    """Same 40 CG iterates (the budget stops both runs) to rounding, on any BLAS kernel.

    The cost is a sum of squares computed without cancellation, so each cost value carries a
    relative rounding error of a few eps; every line-search decision is then well conditioned
    (checked: each accepted decrease exceeds that error by far) and the two runs take the same
    steps. What differs is rounding, made at the scale of the run's largest iterate and carried
    along: the tolerance is relative to that scale, not to the final x, which tends to 0 (the
    minimizer), so that a relative comparison with it measures nothing but the kernel.
    """
    mm, nn, rank = 20, 10, 3
    rs = np.random.RandomState(5)
    A = rs.normal(size=(mm, nn))
    results = []
    for fr in (FixedRankEmbedded(mm, nn, rank), DeepLinearFixedRank(mm, nn, rank)):
        manifold = Product([fr, Euclidean(nn)])

        @pymanopt.function.autograd(manifold)
        def cost(u, s, vt, x):
            return anp.linalg.norm(((u * s) @ vt - A) @ x) ** 2

        np.random.seed(6)
        opt = pymanopt.optimizers.ConjugateGradient(verbosity=0, max_iterations=40, log_verbosity=2)
        results.append(opt.run(pymanopt.Problem(manifold, cost)))
    costs = np.array(results[0].log["iterations"]["cost"])
    assert decisive_prefix(costs, 1e2 * EPS * np.abs(costs)) == len(costs)
    assert results[0].iterations == results[1].iterations == 40
    logs = [r.log["iterations"]["point"] for r in results]
    w_scale = max(np.linalg.norm(dense(p)) for p, _ in logs[0])
    x_scale = max(np.linalg.norm(x) for _, x in logs[0])
    for (p1, x1), (p2, x2) in zip(*logs):
        assert np.linalg.norm(dense(p2) - dense(p1)) <= 1e-10 * w_scale
        assert np.linalg.norm(x2 - x1) <= 1e-10 * x_scale


# ----------------------------------------------------------------------------- the example
def low_rank_cost(manifold, matrix, backend):
    if backend == "autograd":

        @pymanopt.function.autograd(manifold)
        def cost(u, s, vt):
            return anp.linalg.norm(u @ anp.diag(s) @ vt - matrix) ** 2

        return cost, None

    @pymanopt.function.numpy(manifold)
    def cost(u, s, vt):
        return np.linalg.norm(u @ np.diag(s) @ vt - matrix) ** 2

    @pymanopt.function.numpy(manifold)
    def gradient(u, s, vt):
        R = 2 * (u @ np.diag(s) @ vt - matrix)
        return R @ (np.diag(s) @ vt).T, np.diag(u.T @ R @ vt.T), (u @ np.diag(s)).T @ R

    return cost, gradient


@pytest.mark.parametrize("backend", ["autograd", "numpy"])
def test_low_rank_matrix_approximation_example(backend):
    mm, nn, rank = 5, 4, 2
    rs = np.random.RandomState(0)
    matrix = rs.normal(size=(mm, nn))
    uu, ss, vvt = np.linalg.svd(matrix)
    best = (uu[:, :rank] * ss[:rank]) @ vvt[:rank]  # Eckart-Young
    points = {}
    for N in DEPTHS:
        man = DeepLinearFixedRank(mm, nn, rank, N)
        cost, gradient = low_rank_cost(man, matrix, backend)
        problem = pymanopt.Problem(man, cost, euclidean_gradient=gradient)
        np.random.seed(1)
        opt = pymanopt.optimizers.ConjugateGradient(verbosity=0, beta_rule="PolakRibiere")
        result = opt.run(problem)
        assert np.linalg.norm(dense(result.point) - best) < 1e-5 * np.linalg.norm(best)
        points[N] = result
    theirs = FixedRankEmbedded(mm, nn, rank)
    cost, gradient = low_rank_cost(theirs, matrix, backend)
    np.random.seed(1)
    opt = pymanopt.optimizers.ConjugateGradient(verbosity=0, beta_rule="PolakRibiere")
    ref = opt.run(pymanopt.Problem(theirs, cost, euclidean_gradient=gradient))
    assert points[1].iterations == ref.iterations
    assert np.linalg.norm(dense(points[1].point) - dense(ref.point)) < 1e-10 * np.linalg.norm(best)


# --------------------------------------------------------------------- drop-in for f(u, s, vt)
def factor_costs():
    rs = np.random.RandomState(3)
    A = rs.standard_normal((10, 2)) @ rs.standard_normal((2, 8)) + 0.1 * rs.standard_normal((10, 8))
    B = rs.standard_normal((10, 3)) / 3
    return {  # none of the form F(u diag(s) vt)
        "sum(s^2) - 2<A, W> + sum(s)/2": lambda u, s, vt: (
            anp.sum(s**2) - 2 * anp.sum(A * ((u * s) @ vt)) + 0.5 * anp.sum(s)
        ),
        "||B^T u S||^2 + ||W - A||^2": lambda u, s, vt: (
            anp.sum(((B.T @ u) * s) ** 2) + anp.sum(((u * s) @ vt - A) ** 2)
        ),
        "sum(s^3)/10 + sum(s^2) - 2<A, W>": lambda u, s, vt: (
            0.1 * anp.sum(s**3) + anp.sum(s**2) - 2 * anp.sum(A * ((u * s) @ vt))
        ),
    }


def iterates(man, f, optimizer, start_scale=1.0):
    cost = pymanopt.function.autograd(man)(f)
    np.random.seed(11)
    x0 = man.random_point()
    x0 = (x0[0], x0[1] * start_scale, x0[2])
    opt = getattr(pymanopt.optimizers, optimizer)(verbosity=0, max_iterations=60, log_verbosity=2)
    result = opt.run(pymanopt.Problem(man, cost), initial_point=x0)
    return result, [dense(p) for p in result.log["iterations"]["point"]]


def smallest_hessian_eigenvalue(man, f, point):
    """The smallest eigenvalue of the Riemannian Hessian of f on FixedRankEmbedded at point (the
    symmetric part of its matrix on a basis of the tangent space), each column a central difference
    of the Riemannian gradient, moved back to the tangent space at point by projection: accurate to
    ~1e-6 relative, enough for the factor-2 bound it serves."""
    problem = pymanopt.Problem(man, pymanopt.function.autograd(man)(f))
    u, _, vt = point

    def grad_at(y):
        z = ambient(y, problem.riemannian_gradient(y))
        return u @ (u.T @ z) + (z - u @ (u.T @ z)) @ vt.T @ vt

    np.random.seed(0)
    E = np.linalg.qr(np.array([ambient(point, man.random_tangent_vector(point)).ravel()
                               for _ in range(man.dim + 8)]).T)[0][:, : man.dim]
    h = 1e-5 * np.linalg.norm(dense(point))
    cols = []
    for j in range(man.dim):
        t = man.projection(point, E[:, j].reshape(u.shape[0], vt.shape[1]))
        plus, minus = man.retraction(point, h * t), man.retraction(point, -h * t)
        cols.append(E.T @ ((grad_at(plus) - grad_at(minus)) / (2 * h)).ravel())
    K = np.array(cols).T
    return float(np.linalg.eigvalsh((K + K.T) / 2)[0])


@pytest.mark.parametrize("optimizer", ["SteepestDescent", "ConjugateGradient"])
@pytest.mark.parametrize("name", list(factor_costs()))
def test_factor_cost_runs_give_fixed_rank_embeddeds_iterates(name, optimizer):
    """Same iterates as FixedRankEmbedded's run while the runs are well conditioned, the same limit.

    Holds on any BLAS kernel and thread count, because it compares only what rounding cannot change:
    - the iterates reached by line-search decisions that rounding cannot flip (decisive_prefix: each
      accepted decrease exceeds 1e4 times the rounding error of the cost values it was decided on;
      near the end a decrease of ~1e-12 on a cost of ~200 is decided by rounding, so the two runs
      may stop one iteration apart, or take a different last step, as on the Haswell kernel), to
      within 100 times the spread that pymanopt's own run shows when its start moves by one ulp
      (steepest descent amplifies differences by ~1e9 over 15 iterations here: the run's own
      conditioning, measured on the kernel that runs the test);
    - the limit: both runs end near the same nondegenerate minimizer, so their final points differ
      by at most (|grad_ours| + |grad_theirs|) / mu to first order (gradients at the returned
      points, mu the smallest eigenvalue of the Riemannian Hessian there; factor 2 for the second
      order), and their costs by rounding.
    """
    f = factor_costs()[name]
    man = FixedRankEmbedded(10, 8, 2)
    theirs, W_theirs = iterates(man, f, optimizer)
    _, W_ulp = iterates(FixedRankEmbedded(10, 8, 2), f, optimizer, 1 + 2.0**-52)
    ours, W_ours = iterates(DeepLinearFixedRank(10, 8, 2), f, optimizer)
    costs = np.array(theirs.log["iterations"]["cost"])
    # the cost's terms are up to ~10 times the cost itself (cancellation in sum(s^2) - 2<A, W>)
    n = decisive_prefix(costs, 10 * EPS * np.max(np.abs(costs)) * np.ones_like(costs))
    assert n >= 8  # the comparison covers the bulk of each run (runs take 16 to 25 iterations)
    yardstick = 0.0
    for i in range(min(n, len(W_ours), len(W_ulp))):
        scale = np.linalg.norm(W_theirs[i])
        yardstick = max(yardstick, np.linalg.norm(W_ulp[i] - W_theirs[i]) / scale)
        assert np.linalg.norm(W_ours[i] - W_theirs[i]) / scale <= 1e2 * yardstick + 1e-13
    # gradients recomputed at the returned points (the result's gradient_norm can belong to the
    # iterate before the last step)
    problem = pymanopt.Problem(man, pymanopt.function.autograd(man)(f))
    grads = [man.norm(p, problem.riemannian_gradient(p)) for p in (ours.point, theirs.point)]
    mu = smallest_hessian_eigenvalue(man, f, theirs.point)
    assert mu > 0
    gap = np.linalg.norm(dense(ours.point) - dense(theirs.point))
    assert gap <= 2 * sum(grads) / mu + 1e-13 * np.linalg.norm(dense(theirs.point))
    assert ours.cost == pytest.approx(theirs.cost, rel=1e-9)
