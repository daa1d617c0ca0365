"""The optimizers of linrank search: CMA-ES reproducible from its seed, Nelder-Mead kept."""

import math
import os

import numpy as np
import pytest

from linrank.experiments.search import run_unit
from linrank.experiments.search.objective import SearchConfig, SearchProblem
from linrank.experiments.search.optim import AWAY, fitness

SMALL = dict(d=4, rank=2, depth=3, horizon=20.0, evals=6, random=0)


def _rows_without_identity(rows):
    return [{k: v for k, v in r.items() if k not in ("checksum",)} for r in rows]


def test_cma_restart_is_reproducible_and_seeded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = SearchConfig(hypothesis="theorem31", **SMALL)
    a = run_unit(cfg, "restart-0000")
    b = run_unit(cfg, "restart-0000")
    assert a == b and len(a) == 6
    other = run_unit(SearchConfig(hypothesis="theorem31", seed=1, **SMALL), "restart-0000")
    assert [r["params"] for r in other] != [r["params"] for r in a]
    assert run_unit(cfg, "restart-0001")[0]["params"] != a[0]["params"]
    assert os.listdir(tmp_path) == []  # cma wrote no log files
    # the mean starts with weight 10^AWAY off span U_r: the candidates lie near the span
    # (exponent a ~ N(AWAY, 3^2) for the first generation)
    prob = SearchProblem(cfg)
    m = 2 * cfg.d * cfg.rank
    ab = np.array([[float(v) for v in r["params"].split()][m:] for r in a])
    assert abs(np.mean(ab[:, 0]) - AWAY) < 3 * 3.0 / math.sqrt(len(a)) + 1e-9
    assert prob.n_params == m + 2


def test_cma_draws_do_not_depend_on_numpy_global_state(monkeypatch):
    cfg = SearchConfig(hypothesis="theorem31", **SMALL)
    np.random.seed(1)
    a = run_unit(cfg, "restart-0000")
    np.random.seed(2)
    b = run_unit(cfg, "restart-0000")
    assert a == b


def test_nelder_mead_is_kept():
    cfg = SearchConfig(hypothesis="conjecture32", optimizer="nelder-mead", **SMALL)
    rows = run_unit(cfg, "restart-0000")
    assert len(rows) == 6 and all(r["kind"] == "search" for r in rows)
    # its first candidates are the scan of the off-span exponent a over -9, -6, ... (r < d)
    m = 2 * cfg.d * cfg.rank
    a = [float(r["params"].split()[m]) for r in rows[1:6]]
    assert a == [-9.0, -6.0, -3.0, 3.0, 6.0]
    with pytest.raises(ValueError, match="optimizer must be one of"):
        SearchConfig(optimizer="bfgs")


def test_fitness_is_continuous_at_the_horizon_and_orders_rows():
    T, tol = 100.0, 1e-6
    conv = dict(status="converged", t_converge=T, objective=1.0)
    stop = dict(status="approaching", final_distance=tol, objective=1 + tol)
    assert fitness(conv, T, tol) == 0.0 == fitness(stop, T, tol)
    assert fitness(dict(conv, t_converge=10.0), T, tol) == pytest.approx(-1.0, abs=1e-15)
    assert fitness(dict(stop, final_distance=0.7), T, tol) == pytest.approx(
        math.log10(0.7e6), rel=1e-15)
    out = dict(status="outside", objective=-1.2)
    assert fitness(out, T, tol) < fitness(dict(conv, t_converge=1e-9), T, tol)
