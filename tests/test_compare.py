"""linrank compare: optimum, gap and history bookkeeping on problems with known answers, failing
solvers shown as failed, resumable output, bad input."""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np
import pytest

from linrank import compare, rank_constrained_minimizer
from linrank.cli import main
from linrank.experiments.compare.app import OutputDirError
from linrank.experiments.compare.problems import build_problem, register_problem
from linrank.experiments.compare.record import Budget
from linrank.experiments.compare.solvers import run_solver

BUDGET = Budget(max_time=5.0, max_iterations=3000, target_gap=1e-8)


@pytest.fixture(scope="module")
def ae():
    return build_problem("autoencoder", "quick")


@pytest.fixture(scope="module")
def reg():
    return build_problem("regression", "quick")


def _dense_data(inst):
    """C = XX^T, B = YX^T, ||Y||^2 recovered from the instance's dense cost and gradient."""
    n, m = inst.n, inst.m
    zero = (np.zeros((m, 1)), np.zeros((1, n)))
    B = -inst.gradient(*zero).matmat(np.eye(n))  # G(0) = -B
    C = inst.gradient(np.eye(m), np.eye(n)).matmat(np.eye(n)) + B  # G(I) = C - B
    yy = 2.0 * inst.cost(*zero)
    return C, B, yy


def test_optimum_is_pca_and_eckart_young(ae, reg):
    # autoencoder: f* = 1/2 sum of the eigenvalues of XX^T beyond k (Proposition 29)
    C, B, yy = _dense_data(ae)
    lam = np.linalg.eigvalsh(C)[::-1]
    assert ae.f_star == pytest.approx(0.5 * lam[ae.k:].sum(), rel=1e-12)
    u, s, vt = ae.optimum
    np.testing.assert_allclose(s, 1.0, atol=1e-12)  # the projector U_k U_k^T
    assert ae.cost(u * s, vt) == pytest.approx(ae.f_star, rel=1e-12)
    # regression: the dense minimizer of rank_constrained_minimizer, and a zero gradient there
    C, B, yy = _dense_data(reg)
    u, s, vt = reg.optimum
    W = (u * s) @ vt
    L = np.linalg.cholesky(C)
    T = np.linalg.solve(L, B.T).T
    sv = np.linalg.svd(T, compute_uv=False)
    assert reg.f_star == pytest.approx(0.5 * (yy - np.sum(sv[: reg.k] ** 2)), rel=1e-10)
    G = W @ C - B
    assert np.linalg.norm(u.T @ G) + np.linalg.norm(G @ vt.T) < 1e-9 * np.linalg.norm(B)


def test_cost_gradient_hessian_against_dense(reg):
    C, B, yy = _dense_data(reg)
    rng = np.random.default_rng(0)
    A, Bt = rng.standard_normal((reg.m, 3)), rng.standard_normal((3, reg.n))
    W = A @ Bt
    f_dense = 0.5 * yy - np.sum(B * W) + 0.5 * np.sum((W @ C) * W)
    assert reg.cost(A, Bt) == pytest.approx(f_dense, rel=1e-12)
    V = rng.standard_normal((reg.n, 2))
    np.testing.assert_allclose(reg.gradient(A, Bt).matmat(V), (W @ C - B) @ V, rtol=1e-11)
    ZA, ZBt = rng.standard_normal((reg.m, 2)), rng.standard_normal((2, reg.n))
    U = rng.standard_normal((reg.m, 2))
    np.testing.assert_allclose(reg.hessian(A, Bt, ZA, ZBt).rmatmat(U), (ZA @ ZBt @ C).T @ U,
                               rtol=1e-11)
    # distance from factors against the dense norm
    u, s, vt = reg.optimum
    assert reg.distance(A, Bt) == pytest.approx(np.linalg.norm(W - (u * s) @ vt), rel=1e-10)


@pytest.mark.parametrize("solver,depth", [("tr", 3), ("cg", 2), ("layer-gd", 2), ("flow", 2),
                                          ("pymanopt-cg", 1), ("direct", 0)])
def test_solvers_reach_the_optimum_with_consistent_history(ae, solver, depth):
    res = run_solver(solver, ae, depth, seed=0, budget=BUDGET)
    assert res.status == "reached", res.reason
    f0 = res.info["f0"]
    rel = (res.final_cost - ae.f_star) / (f0 - ae.f_star)
    assert -1e-12 <= rel <= BUDGET.target_gap
    u, s, vt = ae.optimum
    assert res.distance < 1e-2 * np.linalg.norm(s)
    h = res.history
    assert h["cost"][-1] == pytest.approx(res.final_cost, rel=1e-12)
    # two distance formulas (flow: its own), each ~eps ||W||^2 / distance accurate
    assert h["distance"][-1] == pytest.approx(res.distance, rel=1e-6, abs=1e-12)
    assert np.all(np.diff(h["time"]) >= 0) and np.all(np.diff(h["iteration"]) > 0)
    assert np.all(np.diff(h["evaluations"]) >= 0)
    assert res.iterations == h["iteration"][-1]
    if solver != "direct":
        assert h["cost"][0] == pytest.approx(f0, rel=1e-12)
        assert res.grad_evals >= len(h["time"]) - 1 and res.cost_evals >= 1
    if solver == "tr":
        assert res.hvp > 0
    else:
        assert res.hvp == 0


def test_layer_gd_step_matches_dense_gradient(reg):
    # one step of layer-wise gradient descent, eq. (5), against dense products of the layers
    N = 3
    res = run_solver("layer-gd", reg, N, seed=1,
                     budget=Budget(max_iterations=1, max_time=5.0, search_iterations=5))
    h = res.info["step"]
    C, B, yy = _dense_data(reg)
    u, s, vt = reg.start(1)
    r = s ** (1 / N)
    Ws = [r[:, None] * vt, np.diag(r), u * r]
    W = Ws[2] @ Ws[1] @ Ws[0]
    G = W @ C - B
    grads = [(Ws[2] @ Ws[1]).T @ G, Ws[2].T @ G @ Ws[0].T, G @ (Ws[1] @ Ws[0]).T]
    W1 = [Wj - h * g for Wj, g in zip(Ws, grads)]
    Wn = W1[2] @ W1[1] @ W1[0]
    f1 = 0.5 * yy - np.sum(B * Wn) + 0.5 * np.sum((Wn @ C) * Wn)
    assert res.history["cost"][1] == pytest.approx(f1, rel=1e-10)


def test_failures_are_rows_not_crashes(ae):
    tr = run_solver("pymanopt-tr", ae, 1, seed=0, budget=BUDGET)
    assert tr.status == "failed" and "NotImplementedError" in tr.reason
    assert run_solver("layer-gd", ae, 1, 0, BUDGET).status == "not applicable"
    nan = dataclasses.replace(ae, cost=lambda A, Bt: float("nan"))
    res = run_solver("cg", nan, 2, seed=0, budget=BUDGET)
    assert res.status == "failed" and "non-finite" in res.reason


def _register_once(name, builder):
    try:
        register_problem(name, builder, "test problem")
    except ValueError:
        pass


def test_compare_writes_rows_report_and_resumes(tmp_path, ae):
    out = str(tmp_path / "cmp")
    kw = dict(solvers=["cg", "pymanopt-tr", "layer-gd", "direct"], depths=[1, 2], seeds=[0, 1],
              budget=BUDGET, out_dir=out, progress=False)
    res = compare("autoencoder:quick", **kw)
    # cg at N = 1, 2; pymanopt-tr once; layer-gd at N = 1, 2; direct once; 2 seeds each
    assert len(res.rows) == 12
    with open(os.path.join(out, "results.csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    by = {(r["solver"], r["depth"], r["seed"]): r for r in rows}
    assert by[("pymanopt-tr", "1", "0")]["status"] == "failed"
    assert "NotImplementedError" in by[("pymanopt-tr", "1", "0")]["reason"]
    assert by[("layer-gd", "1", "1")]["status"] == "not applicable"
    r = by[("cg", "2", "0")]
    assert r["optimum"] == "closed form"
    assert float(r["f_ref"]) == pytest.approx(ae.f_star, rel=1e-12)
    gap = (float(r["final_cost"]) - ae.f_star) / (float(r["initial_cost"]) - ae.f_star)
    assert float(r["rel_gap"]) == pytest.approx(gap, rel=1e-4, abs=1e-15)
    assert float(r["time_to_target"]) <= float(r["wall_time"])
    report = open(os.path.join(out, "report.md")).read()
    assert "| pymanopt-tr | 1 | 2 | 2 failed" in report
    assert "## What the depth metric does" in report
    assert os.path.exists(os.path.join(out, "fig-autoencoder-quick.png"))
    with open(os.path.join(out, "history.csv")) as fh:
        hist = list(csv.DictReader(fh))
    cg_hist = [h for h in hist if (h["solver"], h["depth"], h["seed"]) == ("cg", "2", "0")]
    assert int(cg_hist[-1]["iteration"]) == int(r["iterations"])
    assert not os.path.exists(os.path.join(out, ".lock"))
    again = compare("autoencoder:quick", **kw)
    assert all(run.cached for run in again.runs)
    np.testing.assert_array_equal([x["final_cost"] for x in again.rows],
                                  [x["final_cost"] for x in res.rows])


def test_interrupted_run_is_not_stored(tmp_path, ae):
    calls = {"n": 0}

    def builder(size, seed):
        inst = build_problem("autoencoder", "quick")

        def gradient(A, Bt):
            calls["n"] += 1
            if calls["n"] == 30:
                raise KeyboardInterrupt
            return inst.gradient(A, Bt)

        return dataclasses.replace(inst, name="test-interrupt", gradient=gradient)

    _register_once("test-interrupt", builder)
    out = str(tmp_path / "cmp")
    kw = dict(solvers=["direct", "cg"], depths=[2], seeds=[0], budget=BUDGET, out_dir=out,
              progress=False)
    with pytest.raises(KeyboardInterrupt):
        compare("test-interrupt:quick", **kw)
    stored = os.listdir(os.path.join(out, ".runs"))
    assert len(stored) == 1 and "direct" in stored[0]  # the cut-off cg run is not there
    assert not os.path.exists(os.path.join(out, ".lock"))
    assert not os.path.exists(os.path.join(out, "results.csv"))
    res = compare("test-interrupt:quick", **kw)  # resumes: direct from the cache, cg anew
    assert [run.cached for run in res.runs] == [True, False]
    assert res.rows[1]["status"] == "reached"


def test_best_found_reference_without_closed_form(tmp_path):
    def builder(size, seed):
        inst = build_problem("spiked", "quick")
        return dataclasses.replace(inst, name="test-nostar", f_star=None, optimum=None,
                                   direct=None)

    _register_once("test-nostar", builder)
    res = compare("test-nostar:quick", solvers=["tr", "cg"], depths=[1], seeds=[0],
                  budget=BUDGET, out_dir=None, progress=False)
    refs = {r["optimum"] for r in res.rows}
    assert refs == {"best found by any solver"}
    best = min(float(np.min(run.result.history["cost"])) for run in res.runs)
    assert res.rows[0]["f_ref"] == best
    assert min(r["gap"] for r in res.rows) == pytest.approx(0.0, abs=1e-10)
    # tr converges quadratically: its end is the reference to rounding
    true = build_problem("spiked", "quick").f_star
    assert best == pytest.approx(true, rel=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(problem_spec="nope"), "choices: autoencoder, spiked, regression"),
    (dict(problem_spec="autoencoder:huge"), "choices: quick, small, large"),
    (dict(solvers=["sd", "newton"]), "choices: sd, cg, tr"),
    (dict(depths=[2, 0]), "positive integers"),
    (dict(depths=[1.5]), "positive integers"),
    (dict(seeds=[-1]), "non-negative"),
])
def test_bad_input(kwargs, match):
    args = dict(problem_spec="autoencoder:quick", out_dir=None, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        compare(**args)


def test_cli_bad_input_one_line_exit_2(tmp_path, capsys):
    assert main(["compare", "--out", str(tmp_path / "a"), "--solvers", "sd,foo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "choices: sd, cg, tr" in err
    assert main(["compare", "--out", str(tmp_path / "a"), "--depths", "1,-2"]) == 2
    assert "positive integers" in capsys.readouterr().err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["compare", "--out", str(foreign), "--quick", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "did not write (notes.txt)" in err
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(foreign)) == ["notes.txt"]


def test_locked_output_dir_refused(tmp_path):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / ".linrank-compare").write_text("")
    (out / ".lock").write_text(str(os.getppid()))  # a live process that is not this one
    with pytest.raises(OutputDirError, match="in use by another linrank compare"):
        compare("autoencoder:quick", solvers=["direct"], depths=[1], seeds=[0],
                out_dir=str(out), progress=False)
    (out / ".lock").write_text("999999999")  # stale lock: taken over
    res = compare("autoencoder:quick", solvers=["direct"], depths=[1], seeds=[0],
                  out_dir=str(out), progress=False)
    assert res.rows[0]["status"] == "reached"


def test_rank_constrained_reference_is_the_library_one(ae):
    X_free = build_problem("autoencoder", "quick")
    W, loss = rank_constrained_minimizer(
        np.random.default_rng([0, 1]).standard_normal((20, 60)) / np.sqrt(20), None, 3)
    assert X_free.f_star == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize("name", ["completion", "sensing"])
def test_factorization_problems_plug_in(name):
    inst = build_problem(name, "quick")
    u, s, vt = inst.optimum
    assert inst.f_star == 0.0 and inst.optimum_source == "planted"
    assert inst.cost(u * s, vt) <= 1e-20 * np.sum(s**2)
    # the gradient against central differences of the cost along a rank-k move of W = A Bt
    rng = np.random.default_rng(3)
    A, Bt = rng.standard_normal((inst.m, inst.k)), rng.standard_normal((inst.k, inst.n))
    dA = rng.standard_normal(A.shape)
    G = inst.gradient(A, Bt).matmat(np.eye(inst.n))
    h = 1e-6
    num = (inst.cost(A + h * dA, Bt) - inst.cost(A - h * dA, Bt)) / (2 * h)
    assert num == pytest.approx(np.sum(G * (dA @ Bt)), rel=1e-6)
    res = run_solver("tr", inst, 2, seed=0, budget=dataclasses.replace(BUDGET, max_time=1.0))
    assert res.hvp > 0 and res.final_cost < 1e-3 * res.info["f0"]
    if name == "sensing":  # 3x oversampled Gaussian sensing: the planted matrix is found
        assert res.status == "reached"


# ---------------------------------------------------------------------- cache that cannot lie
def _cache_files(out):
    runs = os.path.join(out, ".runs")
    return {f.split("-N")[0].split("-")[-1] + "-" + f.split("-s")[-1][:1]: os.path.join(runs, f)
            for f in sorted(os.listdir(runs))}


def test_cache_rejects_foreign_cut_changed_and_stale_files(tmp_path, capsys, monkeypatch):
    """A run file copied over another's, cut off (BadZipFile before), edited or of another
    version is named on stderr and recomputed; the reported numbers are this run's."""
    out = str(tmp_path / "cmp")
    kw = dict(solvers=["direct", "cg"], depths=[2], seeds=[0, 1], budget=BUDGET, out_dir=out,
              progress=False)
    first = compare("autoencoder:quick", **kw)
    truth = [(r["solver"], r["seed"], r["final_cost"], r["iterations"]) for r in first.rows]
    files = _cache_files(out)
    assert set(files) == {"direct-0", "direct-1", "cg-0", "cg-1"}
    capsys.readouterr()
    # foreign: seed 1's cg file copied over seed 0's; cut off: half a file; changed: one byte
    with open(files["cg-1"], "rb") as fh:
        other = fh.read()
    with open(files["cg-0"], "wb") as fh:
        fh.write(other)
    with open(files["direct-1"], "r+b") as fh:
        fh.truncate(os.path.getsize(files["direct-1"]) // 2)
    data = bytearray(open(files["direct-0"], "rb").read())
    data[-40] ^= 0x01
    open(files["direct-0"], "wb").write(bytes(data))
    again = compare("autoencoder:quick", **kw)
    err = capsys.readouterr().err
    assert "is foreign: it belongs to another run: seed=1 (expected 0)" in err
    assert "is cut off" in err and "is changed" in err
    assert [r.cached for r in again.runs] == [False, False, False, True]
    assert [(r["solver"], r["seed"], r["final_cost"], r["iterations"])
            for r in again.rows] == truth
    # stale: written by another version of the numbers
    capsys.readouterr()
    import linrank

    monkeypatch.setattr(linrank, "__version__", linrank.__version__ + ".post1")
    third = compare("autoencoder:quick", **kw)
    assert not any(r.cached for r in third.runs)
    assert capsys.readouterr().err.count("is stale: written by another version") == 4


def test_cache_stale_when_problem_data_change(tmp_path, capsys):
    """A cached run of a problem whose data changed (same name and size) is not reused."""
    state = {"scale": 1.0}

    def builder(size, seed):
        inst = build_problem("autoencoder", "quick")
        s = state["scale"]
        cost = inst.cost
        return dataclasses.replace(inst, name="test-datachange",
                                   cost=lambda A, Bt: s * cost(A, Bt))

    _register_once("test-datachange", builder)
    out = str(tmp_path / "cmp")
    kw = dict(solvers=["direct"], depths=[1], seeds=[0], budget=BUDGET, out_dir=out,
              progress=False)
    compare("test-datachange:quick", **kw)
    assert compare("test-datachange:quick", **kw).runs[0].cached
    capsys.readouterr()
    state["scale"] = 2.0
    res = compare("test-datachange:quick", **kw)
    assert not res.runs[0].cached
    assert "belongs to another run: data=" in capsys.readouterr().err
