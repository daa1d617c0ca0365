"""Files of starts (linrank.experiments.shared.startfile) and the sweep's start kind "search:DIR"."""

import numpy as np
import pytest

from linrank.experiments.search.app import search
from linrank.experiments.shared.startfile import (
    StartFileError,
    eigenbasis,
    eigenbasis_start,
    format_matrix,
    parse_matrix,
    search_starts,
)
from linrank.experiments.sweep import run as sweep_run
from linrank.experiments.sweep.app import sweep
from linrank.experiments.sweep.grid import GridError, load_grid
from linrank.network import product


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    out = tmp_path_factory.mktemp("startfile") / "s"
    search("theorem31", 3, 3, 3, out, budget=None, restarts=2, evals=12, random=2,
           horizon=60.0, n_jobs=1, report=False)
    return out


def test_matrix_round_trip():
    A = np.random.default_rng(0).standard_normal((3, 4)) * 1e-200
    assert np.array_equal(parse_matrix(format_matrix(A), (3, 4)), A)
    with pytest.raises(ValueError):
        parse_matrix("1 2 nan", (3,))


def test_search_starts_worst_first(found):
    Bs = search_starts(found, 3, 3)
    assert len(Bs) >= 3 and all(B.shape == (3, 3) for B in Bs)
    assert np.linalg.det(Bs[0]) < 0  # the worst start: the r = d counterexample
    with pytest.raises(StartFileError, match="needs d = 4"):
        search_starts(found, 4, 3)
    with pytest.raises(StartFileError, match="holds no linrank search"):
        search_starts(found.parent, 3, 3)


def test_eigenbasis_start_carries_B_to_other_data(rng):
    X = rng.standard_normal((5, 15))
    lam, E = eigenbasis(X)
    B = np.zeros((5, 5))
    B[:2, :2] = [[0.3, 1.0], [1.0, 0.3]]
    fs = eigenbasis_start(X, B, 2, 3, rng)
    W0 = product(fs)
    assert np.allclose(E.T @ W0 @ E, B, atol=1e-13)
    assert np.allclose(fs[1].T @ fs[1], fs[0] @ fs[0].T, atol=1e-13)  # balanced


def test_sweep_takes_the_search_as_a_start_kind(found, tmp_path):
    grid = f"""
[sweep]
seeds = [0]
t_max = 30.0

[[grid]]
d = 3
rank = 3
depth = 3
start = "search:{found}"
"""
    g = load_grid(grid)
    spec = g.runs[0]
    assert spec.balanced
    X, _ = sweep_run.make_data(spec)
    W0 = product(sweep_run.make_start(spec, X, np.random.default_rng(0)))
    _, E = eigenbasis(X)
    assert np.allclose(E.T @ W0 @ E, search_starts(found, 3, 3)[0], atol=1e-12)
    res = sweep(g, tmp_path / "sw", n_jobs=1, progress=False)
    assert res.counts == {"budget": 1}  # det W(0) < 0 at r = d: never converges
    with pytest.raises(GridError, match="needs d = 4"):
        load_grid(grid.replace("d = 3", "d = 4"))
    with pytest.raises(GridError, match="autoencoder"):
        load_grid(grid.replace("depth = 3", 'depth = 3\ndata = "regression"'))


def test_a_changed_search_directory_is_another_grid(found, tmp_path):
    """The starts a search:DIR gives are part of the grid's identity: after the directory's
    rows change (here one row dropped by hand, with the others intact), a sweep begun on it is
    refused on resume instead of reading rows that stood for other starts."""
    import shutil

    from linrank.experiments.sweep.app import SweepError

    d = tmp_path / "s"
    shutil.copytree(found, d)
    grid = f"""
[sweep]
seeds = [0]
t_max = 5.0

[[grid]]
d = 3
rank = 3
depth = 3
start = "search:{d}"
"""
    g = load_grid(grid)
    assert g.search_digests and load_grid(grid).hash == g.hash
    sweep(g, tmp_path / "sw", n_jobs=1, progress=False)
    lines = (d / "worst.csv").read_text().splitlines(keepends=True)
    assert len(search_starts(d, 3, 3)) > 1
    (d / "worst.csv").write_text(lines[0] + lines[-1])  # one verified row left
    assert len(search_starts(d, 3, 3)) == 1
    g2 = load_grid(grid)
    assert g2.hash != g.hash
    with pytest.raises(SweepError, match="another grid"):
        sweep(g2, tmp_path / "sw", n_jobs=1, progress=False)
