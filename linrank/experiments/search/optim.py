r"""The optimizers of ``linrank search``: one restart, from its own random start.

Both maximize the objective of :mod:`linrank.experiments.search.objective` over the start's
parameters x in :math:`\mathbb R^{2dr + 2}` (P, Q and, for r < d, the exponents a, b of the weight
off :math:`\operatorname{span}U_r`), within ``cfg.evals`` flow evaluations, and return every
distinct candidate they evaluated, in order.

* ``"cma"`` (default) -- CMA-ES (Hansen's ``cma`` package, :class:`cma.CMAEvolutionStrategy`,
  default population :math:`4 + \lfloor 3\ln n\rfloor`) on the *fitness*

  .. math:: \phi = \log_{10}(t_c/T)\ \text{(converged at } t_c \le T),\qquad
            \phi = \log_{10}\max(\delta_T/\text{tol}, 1)\ \text{(not converged)},

  with :math:`\delta_T = \|W(T) - W^*\|_F/\|W^*\|_F`: continuous where a run stops converging by
  the horizon (there :math:`\delta_T = \text{tol}`), and graded on both sides, where the objective
  ``t_c/T`` or ``1 + \delta_T`` is nearly flat in :math:`\delta_T` (a start outside the
  hypothesis gets :math:`-10 + \text{objective} < -10`). The mean starts at the restart's random
  start with, for r < d, the off-span exponent a = :data:`AWAY` (weight :math:`10^{-3}` off span
  U_r: seeded away from the random starts, whose weight lies mostly off it); step size 1 in P, Q
  and 3 in a, b (a factor 1000 in the weight). Its normal draws come from the restart's own
  generator (option ``randn``), so a restart gives the same candidates in any process; it writes
  no files.
* ``"nelder-mead"`` -- scipy's Nelder-Mead (adaptive) on the objective itself, for r < d first a
  scan of the common exponent a over -9, -6, -3, 3, 6, 9 and a 2-d Nelder-Mead in (a, b) from the
  best (at most a quarter of the evaluations), then every parameter.

What each finds, measured, is in docs/search.rst.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["OPTIMIZERS", "AWAY", "fitness", "run_optimizer"]

#: the optimizers of a restart
OPTIMIZERS = ("cma", "nelder-mead")
#: CMA-ES's initial off-span exponent a (r < d): weight 10^AWAY off span U_r
AWAY = -3.0


def fitness(row: dict, horizon: float, tol: float) -> float:
    """CMA-ES's fitness of a row (module docstring); larger is slower."""
    if row["status"] == "outside":
        return -10.0 + float(row["objective"])
    if row["status"] == "converged":
        return math.log10(max(float(row["t_converge"]), 1e-300) / horizon)
    return math.log10(max(float(row["final_distance"]) / tol, 1.0))


def run_optimizer(prob: object, x0: np.ndarray, rng: np.random.Generator
                  ) -> list[dict]:
    """The rows of the distinct candidates one restart of ``prob.cfg.optimizer`` evaluates."""
    cfg = prob.cfg
    found: list[dict] = []
    cache: dict[bytes, dict] = {}

    def row_of(x: np.ndarray) -> dict:
        k = np.asarray(x, dtype=float).tobytes()
        if k not in cache:
            if len(found) >= cfg.evals:
                raise _BudgetSpent
            cache[k] = prob.evaluate(x)
            found.append(cache[k])
        return cache[k]

    try:
        if cfg.optimizer == "cma":
            _cma(prob, x0, rng, row_of)
        else:
            _nelder_mead(prob, x0, row_of, found)
    except _BudgetSpent:
        pass
    return found


class _BudgetSpent(Exception):
    """Raised by a restart's evaluation past ``cfg.evals`` distinct candidates."""


def _cma(prob, x0: np.ndarray, rng: np.random.Generator, row_of: Callable) -> None:
    import cma

    cfg = prob.cfg
    n, m = x0.size, 2 * cfg.d * cfg.rank
    x0 = x0.copy()
    stds = np.ones(n)
    if n > m:
        x0[m:] = [AWAY, 0.0]
        stds[m:] = 3.0
    es = cma.CMAEvolutionStrategy(x0, 1.0, {
        "randn": lambda *shape: rng.standard_normal(shape), "seed": math.nan,
        "CMA_stds": stds, "verbose": -9, "verb_log": 0, "verb_disp": 0,
        "tolfun": 0.0, "tolx": 1e-12, "tolfunhist": 0.0})
    evals = 0
    while evals < cfg.evals and not es.stop():
        X = es.ask()
        if evals + len(X) > cfg.evals:  # a last, partial generation: evaluated, not told
            for x in X[: cfg.evals - evals]:
                row_of(x)
            break
        es.tell(X, [-fitness(row_of(x), cfg.horizon, cfg.tol) for x in X])
        evals += len(X)


def _nelder_mead(prob, x0: np.ndarray, row_of: Callable, found: list) -> None:
    from scipy.optimize import minimize

    cfg = prob.cfg

    def f(x: np.ndarray) -> float:
        return -float(row_of(x)["objective"])

    n, m = x0.size, 2 * cfg.d * cfg.rank
    opts = dict(adaptive=True, xatol=1e-8, fatol=1e-10)
    if n > m:  # first the two weights off span U_r alone (a 2-d search)
        def g(ab: np.ndarray) -> float:
            return f(np.concatenate([x0[:m], ab]))

        # a coarse scan of the common weight in both directions, then Nelder-Mead
        scan = [x0[m:]] + [np.array([a, 0.0]) for a in (-9.0, -6.0, -3.0, 3.0, 6.0, 9.0)]
        ab0 = min(scan, key=g)
        res = minimize(g, ab0, method="Nelder-Mead",
                       options=dict(opts, maxfev=cfg.evals // 4,
                                    initial_simplex=np.vstack([ab0, ab0 + np.eye(2)])))
        x0 = np.concatenate([x0[:m], res.x])
    left = cfg.evals - len(found)
    if left > 0:
        minimize(f, x0, method="Nelder-Mead",
                 options=dict(opts, maxfev=left, initial_simplex=np.vstack([x0, x0 + np.eye(n)])))
