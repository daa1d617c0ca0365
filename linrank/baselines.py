r"""Baselines for matrix completion: the minimum nuclear norm completion.

:func:`nuclear_norm_completion` solves

.. math::

    \min_X \|X\|_* \quad\text{subject to}\quad X_{ij} = A_{ij},\ (i, j) \in \Omega,

the convex relaxation of rank minimization (Candès and Recht 2009) that deep matrix
factorization is compared with (Arora, Cohen, Hu and Luo 2019). It is modelled with cvxpy and
solved by SCS by default: an optional dependency, ``pip install 'linrank[baselines]'``.

Optimality is checkable from the result: X is optimal if and only if it is feasible and some Y
supported on :math:`\Omega` is a subgradient of the nuclear norm at X, i.e.
:math:`\|Y\|_2 \le 1` and :math:`\langle Y, X\rangle = \|X\|_*` (the subdifferential of the
nuclear norm is :math:`\{Y: \|Y\|_2 \le 1,\ \langle Y, X\rangle = \|X\|_*\}`). Indeed for every
feasible X', :math:`\|X'\|_* \ge \langle Y, X'\rangle = \langle Y, X\rangle = \|X\|_*` (Y
vanishes off :math:`\Omega`, where X' and X agree). The solver's dual variable of the equality
constraints gives Y (its negative, in cvxpy's sign convention); the result reports both
conditions' residuals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["NuclearNormCompletion", "nuclear_norm_completion"]

#: Largest m n accepted by default: the semidefinite program has (m + n)^2 / 2 variables.
MAX_NUCLEAR_ENTRIES = 250_000


@dataclass
class NuclearNormCompletion:
    """The result of :func:`nuclear_norm_completion`.

    Attributes
    ----------
    X : the m x n solution.
    certificate : the m x n dual certificate Y (zero off the observed set): a subgradient of
        the nuclear norm at X to the solver's accuracy.
    nuclear_norm : :math:`\\|X\\|_*`.
    status : the solver's status ("optimal", "optimal_inaccurate", ...).
    feasibility : :math:`\\max_{\\Omega} |X_{ij} - A_{ij}| / \\max(1, \\max |A|)`.
    certificate_norm : :math:`\\|Y\\|_2` (<= 1 at an optimum).
    gap : :math:`(\\|X\\|_* - \\langle Y, X\\rangle) / \\max(1, \\|X\\|_*)` (0 at an optimum).
    solver_stats : the solver's name, iterations and time as reported by cvxpy.
    """

    X: np.ndarray
    certificate: np.ndarray
    nuclear_norm: float
    status: str
    feasibility: float
    certificate_norm: float
    gap: float
    solver_stats: dict = field(default_factory=dict)


def _import_cvxpy() -> Any:
    try:
        import cvxpy
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "nuclear_norm_completion needs cvxpy (with SCS): pip install 'linrank[baselines]'"
        ) from exc
    return cvxpy


def nuclear_norm_completion(
    shape: tuple[int, int],
    rows: Any,
    cols: Any,
    values: Any,
    *,
    solver: str = "SCS",
    eps: float = 1e-8,
    max_iters: int = 200_000,
    max_entries: int = MAX_NUCLEAR_ENTRIES,
    verbose: bool = False,
) -> NuclearNormCompletion:
    r"""The minimum nuclear norm completion :math:`\arg\min \{\|X\|_*: X_{ij} = A_{ij}, (i,j)\in\Omega\}`.

    Parameters
    ----------
    shape : (m, n).
    rows, cols, values : the observed entries :math:`A_{ij}` (as in
        :func:`linrank.matrix_completion_problem`: integer indices in range, finite real values,
        each entry at most once).
    solver : a cvxpy solver name; "SCS" (default, installed by the ``baselines`` extra) or any
        other installed conic solver that handles semidefinite cones (e.g. "CLARABEL").
    eps : the solver's absolute and relative tolerance (SCS: ``eps_abs = eps_rel = eps``; other
        solvers: their defaults).
    max_iters : SCS's iteration limit.
    max_entries : refuse m n above this before building the problem (default 250,000: the
        semidefinite program has ~(m + n)^2 / 2 variables; SCS needs O((m + n)^2) memory and
        O((m + n)^3) work per iteration).
    verbose : the solver's output.

    Returns
    -------
    NuclearNormCompletion with the solution, the dual certificate and the residuals of the
    optimality conditions (module docstring). With SCS at eps = 1e-8 on 80 x 80 problems these
    are ~1e-8 relative; the solution is accurate to about the same relative size times the
    problem's conditioning (the certificate's margin below 1 off the solution's row and column
    spaces).

    Raises
    ------
    ImportError : cvxpy is not installed (``pip install 'linrank[baselines]'``).
    TypeError, ValueError : bad shape, indices or values; m n above ``max_entries``; a solver
        that fails or ends without a solution ("infeasible", "unbounded" cannot occur for this
        problem, so they mean a numerical failure).
    """
    from .problems.completion import observed_entries  # the checks of matrix completion

    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                   for d in shape)):
        raise ValueError(f"shape must be (m, n) with positive integers, got {shape!r}")
    m, n = int(shape[0]), int(shape[1])
    if m * n > max_entries:
        raise ValueError(f"m n = {m * n} is above max_entries = {max_entries}: the semidefinite "
                         f"program would have ~{(m + n) ** 2 // 2} variables (raise max_entries "
                         "to try anyway)")
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and 0 < eps < 1):
        raise ValueError(f"eps must be a number in (0, 1), got {eps!r}")
    r, c, a = observed_entries(m, n, rows, cols, values)
    cp = _import_cvxpy()
    X = cp.Variable((m, n))
    if r.size:
        constraints = [X[r, c] == a]
    else:
        constraints = []
    problem = cp.Problem(cp.Minimize(cp.normNuc(X)), constraints)
    kwargs: dict[str, Any] = {"solver": solver, "verbose": bool(verbose)}
    if solver.upper() == "SCS":
        kwargs.update(eps_abs=eps, eps_rel=eps, max_iters=int(max_iters))
    try:
        problem.solve(**kwargs)
    except cp.error.SolverError as exc:
        raise ValueError(f"the solver {solver} failed: {exc}") from exc
    if X.value is None or problem.status not in ("optimal", "optimal_inaccurate"):
        raise ValueError(f"the solver {solver} ended with status {problem.status!r} and no "
                         "solution")
    Xv = np.array(X.value, dtype=float)
    Y = np.zeros((m, n))
    if r.size:
        Y[r, c] = -np.asarray(constraints[0].dual_value, dtype=float)
    svals = np.linalg.svd(Xv, compute_uv=False)
    nuc = float(np.sum(svals))
    feas = float(np.max(np.abs(Xv[r, c] - a), initial=0.0)) / max(
        1.0, float(np.max(np.abs(a), initial=0.0)))
    ynorm = float(np.linalg.norm(Y, 2)) if Y.size else 0.0
    gap = (nuc - float(np.sum(Y * Xv))) / max(1.0, nuc)
    stats = problem.solver_stats
    info = {"solver": getattr(stats, "solver_name", solver),
            "iterations": getattr(stats, "num_iters", None),
            "solve_time": getattr(stats, "solve_time", None)}
    return NuclearNormCompletion(Xv, Y, nuc, str(problem.status), feas, ynorm, gap, info)
