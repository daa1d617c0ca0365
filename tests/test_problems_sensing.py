"""Hostile input to matrix_sensing_problem: complex operators and outputs refused (never cast),
forward and adjoint outputs checked and named, non-numeric data named."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from linrank import DeepLinearFixedRank, matrix_sensing_problem

M, N, P = 3, 4, 5


@pytest.fixture
def setup():
    man = DeepLinearFixedRank(M, N, 2, 2)
    rng = np.random.default_rng(0)
    return man, rng.standard_normal((P, M * N)), rng.standard_normal(P)


def test_complex_operators_and_outputs_are_refused(setup):
    man, A, y = setup
    with pytest.raises(TypeError, match="complex"):
        matrix_sensing_problem(man, A + 1j, y)
    with pytest.raises(TypeError, match="complex"):
        matrix_sensing_problem(man, sp.csr_matrix(A + 1j), y)
    with pytest.raises(TypeError, match="LinearOperator A must be real"):
        matrix_sensing_problem(man, aslinearoperator(A + 1j), y)
    # a real-typed operator whose products are complex
    lo = LinearOperator((P, M * N), matvec=lambda w: (A + 1j) @ w,
                        rmatvec=lambda r: A.T @ r, dtype=float)
    with pytest.raises(TypeError, match="forward map.*complex"):
        matrix_sensing_problem(man, lo, y)
    with pytest.raises(TypeError, match="adjoint.*complex"):
        matrix_sensing_problem(man, (lambda W: A @ W.ravel(),
                                     lambda r: (A.T @ r).reshape(M, N) + 0j), y)
    with pytest.raises(TypeError, match="y must be real"):
        matrix_sensing_problem(man, A, y + 1j)


def test_callback_outputs_checked_and_named(setup):
    man, A, y = setup
    fwd = lambda W: A @ W.ravel()  # noqa: E731
    adj = lambda r: (A.T @ r).reshape(M, N)  # noqa: E731
    with pytest.raises(ValueError, match="adjoint A\\*\\(r\\) returned NaN"):
        matrix_sensing_problem(man, (fwd, lambda r: adj(r) * np.nan), y)
    with pytest.raises(ValueError, match="forward map A\\(W\\) returned NaN"):
        matrix_sensing_problem(man, (lambda W: fwd(W) * np.inf, adj), y)
    with pytest.raises(ValueError, match="adjoint A\\*\\(r\\) must return shape"):
        matrix_sensing_problem(man, (fwd, lambda r: adj(r).T), y)
    with pytest.raises(TypeError, match="forward map A\\(W\\) must return real numbers"):
        matrix_sensing_problem(man, (lambda W: np.array(["a"] * P), adj), y)
    # a forward map that turns NaN later (at a far point) is named there too
    calls = {"n": 0}

    def flaky(W):
        calls["n"] += 1
        return fwd(W) * (np.nan if calls["n"] > 1 else 1.0)

    prob = matrix_sensing_problem(man, (flaky, adj), y)
    with pytest.raises(ValueError, match="forward map"):
        prob.cost(man.random_point())


def test_non_numeric_data_named(setup):
    man, A, y = setup
    with pytest.raises(TypeError, match="A must hold real numbers"):
        matrix_sensing_problem(man, A.astype(str), y)
    with pytest.raises(TypeError, match="A must hold real numbers"):
        matrix_sensing_problem(man, A.astype(object), y)
    with pytest.raises(TypeError, match="y must be an array of real numbers"):
        matrix_sensing_problem(man, A, y.astype(str))
