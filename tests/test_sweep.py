"""linrank sweep: grid parsing, one run's bookkeeping against closed forms, streaming, resume,
failures, lock, Dask against local processes, rerun of one row."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from linrank import critical_points, rank_constrained_minimizer
from linrank.cli import main
from linrank.experiments.shared.starts import top_eigenbasis
from linrank.experiments.sweep import run as sweep_run
from linrank.experiments.sweep.app import SweepError, read_rows, rerun, sweep
from linrank.experiments.sweep.grid import GridError, RunSpec, load_grid
from linrank.experiments.sweep.run import COLUMNS, SPEC_COLUMNS, TIMING_COLUMNS, Landscape

SMALL = """
[sweep]
seeds = 2
tol = 1e-3
rtol = 1e-6
atol = 1e-10
[[grid]]
start = ["balanced_inside", "special", "gaussian"]
depth = [2, 3]
d = 4
rank = 2
[[grid]]
data = "regression"
start = "paper"
depth = 2
d = 4
rank = 2
t_rank = 3
"""


def _table(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    # the checksum covers the timing columns too
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS + ["check"]} for r in rows]


# ---------------------------------------------------------------------- grid
def test_grid_expansion_order_and_defaults():
    g = load_grid(SMALL)
    assert len(g.runs) == 3 * 2 * 2 + 2
    assert [r.run_id for r in g.runs] == list(range(len(g.runs)))
    r0 = g.runs[0]
    assert (r0.start, r0.depth, r0.seed, r0.samples, r0.hidden) == ("balanced_inside", 2, 0, 12, 2)
    assert g.runs[1].seed == 1 and g.runs[1].cell() == r0.cell()
    assert g.runs[-1].data == "regression" and g.runs[-1].t_rank == 3
    assert len(g.cells()) == 7
    assert list(RunSpec.__dataclass_fields__) == SPEC_COLUMNS
    assert RunSpec.from_dict({k: str(v) for k, v in r0.to_dict().items()}) == r0
    assert load_grid(SMALL).hash == g.hash != load_grid(SMALL.replace("seeds = 2", "seeds = 3")).hash


@pytest.mark.parametrize("text, words", [
    ("[[grid]]\nd = 4\nrnak = 2\n", "unknown key(s) ['rnak']"),
    ("[[grid]]\nd = 'four'\n", "d must be an integer >= 1"),
    ("[[grid]]\nd = 4\nrank = 5\n", "rank = 5 exceeds d = 4"),
    ("[[grid]]\nd = 4\nrank = 3\nhidden = 2\n", "hidden = 2 is below rank = 3"),
    ("[[grid]]\ndata = 'regression'\nstart = 'special'\n", "autoencoder (Y = X) only"),
    ("[[grid]]\nstart = 'sideways'\n", "start must be one of"),
    ("[[grid]]\ndepth = 1\n", "depth must be an integer >= 2"),
    ("[[grid]]\ndepth = []\n", "depth is an empty list"),
    ("[[grid]]\ndepth = [2, 2]\n", "lists a value twice"),
    ("[[grid]]\ntol = -1.0\n", "tol must be finite and > 0"),
    ("[[grid]]\nseeds = 0\n", "seeds must be a count >= 1"),
    ("[sweep]\nseeds = 2\n", "no [[grid]] block"),
    ("[[grid]]\nd = [4\n", "not valid TOML"),
    ("[[grid]]\nd = 4\n[[grid]]\nd = 4\n", "already in an earlier block"),
    ("[[grid]]\nstart = 'gaussian'\nhidden = 3\n", "needs hidden = rank"),
    ("[other]\nx = 1\n", "unknown top-level key"),
])
def test_grid_bad_input_one_line(text, words):
    with pytest.raises(GridError) as exc:
        load_grid(text)
    msg = str(exc.value)
    assert words in msg and "\n" not in msg


def test_grid_file_errors_name_the_file(tmp_path):
    with pytest.raises(GridError, match="cannot read the grid file"):
        load_grid(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[[grid]]\nd = 4\nrank = 9\n")
    with pytest.raises(GridError, match=r"bad\.toml: \[\[grid\]\] 1: rank = 9"):
        load_grid(str(bad))
    with pytest.raises(TypeError):
        load_grid(42)


def test_cli_bad_grid_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[grid]]\ndepth = 'x'\n")
    assert main(["sweep", "--grid", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("linrank sweep: error:") and "depth" in err and "\n" not in err
    assert main(["sweep", "--grid", str(bad)]) == 2  # no --out
    assert "--out" in capsys.readouterr().err


# ---------------------------------------------------------------------- landscape (closed forms)
def test_landscape_autoencoder_matches_proposition_29():
    X = np.random.default_rng(3).standard_normal((5, 15)) / np.sqrt(5)
    land = Landscape.from_data(X, None, 2)
    U, lam = top_eigenbasis(X, 5)
    assert np.allclose(land.sigma2, lam, rtol=1e-12)
    for cp in critical_points(X, 2, depth=3, spectra="none"):
        J = cp.J
        assert land.loss_J(J) == pytest.approx(cp.loss, rel=1e-12)
        assert land.index(J) == cp.predicted_index
        WJ = U[:, list(J)] @ U[:, list(J)].T
        assert np.linalg.norm(land.W_J(J) - WJ) < 1e-12
        assert land.identify(WJ + 1e-3 * np.ones((5, 5)))[0] == J
        assert 0.5 * np.linalg.norm(X - WJ @ X) ** 2 == pytest.approx(land.loss_J(J), rel=1e-12)
    assert land.cert_gap == pytest.approx(0.5 * (lam[1] - lam[2]))


def test_landscape_regression_minimizer_and_critical_values():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, 15))
    Y = rng.standard_normal((5, 15))
    land = Landscape.from_data(X, Y, 2)
    W, loss = rank_constrained_minimizer(X, Y, 2)
    assert np.linalg.norm(land.W_star - W) < 1e-10 * np.linalg.norm(W)
    assert land.L_star == pytest.approx(loss, rel=1e-12)
    # W_J is critical: the gradient (W X - Y) X^T is orthogonal to the tangent space (here: zero
    # on the row and column spaces of W_J), and the loss is the closed form
    for J in [(0, 2), (1, 3), (4,)]:
        WJ = land.W_J(J)
        assert 0.5 * np.linalg.norm(Y - WJ @ X) ** 2 == pytest.approx(land.loss_J(J), rel=1e-10)
        G = (WJ @ X - Y) @ X.T
        u, s, vt = np.linalg.svd(WJ)
        u, vt = u[:, : len(J)], vt[: len(J)]
        assert np.linalg.norm(u.T @ G) + np.linalg.norm(G @ vt.T) < 1e-10 * np.linalg.norm(Y) ** 2
        assert land.identify(WJ)[0] == J


# ---------------------------------------------------------------------- one run
def test_run_records_saddle_of_special_start_and_47():
    g = load_grid(SMALL)
    spec = next(s for s in g.runs if s.start == "special" and s.depth == 2)
    row = sweep_run.run(spec)
    assert row["status"] == "converged" and row["reached_global"] and row["certified"]
    assert row["final_distance"] <= spec.tol
    # W(0) = -U_r U_r^T: u_i^T W u_i = -1 (outside (47)); the flow passes the critical point 0
    assert row["condition_47"] is False and row["margin_47"] == pytest.approx(-1.0)
    assert row["saddle_sets"].split(";")[0] == "{}" and row["saddle_indices"].split(";")[0] == "0"
    assert row["saddle_time_total"] > 1.0 and row["t_converge"] > row["saddle_time_total"]
    inside = sweep_run.run(next(s for s in g.runs if s.start == "balanced_inside"))
    assert inside["condition_47"] is True and inside["margin_47"] > 0
    assert inside["flow"] == "manifold" and row["flow"] == "factor"
    assert inside["imbalance0"] < 1e-12 and row["imbalance_drift"] < 1e-8


def test_run_near_a_saddle_identifies_it_with_its_index():
    """Start next to W_J, J = {1, 3} (index 1): the plateau is found with J and index 1."""
    spec = load_grid(SMALL).runs[0]
    X, _ = sweep_run.make_data(spec)
    U, lam = top_eigenbasis(X, 4)
    WJ = U[:, [0, 2]] @ U[:, [0, 2]].T
    rng = np.random.default_rng(0)
    W0 = WJ + 1e-6 * rng.standard_normal((4, 4))
    from linrank import as_data, balanced_factors

    factors = balanced_factors(W0, [4, 2, 4], seed=1, rank=2)
    land = Landscape.from_data(X, None, 2)
    out = sweep_run._integrate(spec, land, as_data(X, None, form="covariance"), factors)
    assert out["status"] == "converged"
    p = out["plateaus"][0]
    J, err = land.identify(p.W)
    assert J == (0, 2) and land.index(J) == 1 and err < 0.05
    assert abs(p.loss - land.loss_J(J)) < 1e-3 * lam[0]
    # escape at the unstable rate of the saddle: time ~ log(1/1e-6) / rate, several units
    assert p.t1 - p.t0 > 1.0


# ---------------------------------------------------------------------- sweep: stream, resume
def test_interrupted_sweep_resumes_to_the_same_file(tmp_path, monkeypatch):
    full = tmp_path / "full"
    res = sweep(SMALL, full, n_jobs=1, progress=False)
    assert res.complete and res.ran == 14 and sum(res.counts.values()) == 14
    ref = _table(full / "runs.csv")
    assert [int(r["run_id"]) for r in ref] == list(range(14))

    # 1) Ctrl-C inside the 5th run: 4 rows on disk, the cut-off run has none
    part = tmp_path / "part"
    real, calls = sweep_run.run, []

    def interrupt_fifth(spec):
        calls.append(spec.run_id)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(spec)

    monkeypatch.setattr(sweep_run, "run", interrupt_fifth)
    with pytest.raises(KeyboardInterrupt):
        sweep(SMALL, part, n_jobs=1, progress=False)
    assert len(read_rows(part)) == 4 and calls[4] not in {int(r["run_id"]) for r in
                                                            read_rows(part)}
    monkeypatch.setattr(sweep_run, "run", real)
    # 2) a process killed while writing a row: a cut last line
    with open(part / "runs.csv", "a") as fh:
        fh.write("99,0,autoencoder,4,12")
    # 3) stopped after 3 more runs (as if killed), then resumed to the end
    res = sweep(SMALL, part, n_jobs=1, progress=False, max_runs=3)
    assert not res.complete and res.ran == 3 and res.done_before == 4
    res = sweep(SMALL, part, n_jobs=2, progress=False)
    assert res.complete and res.ran == 7
    assert _table(part / "runs.csv") == ref


def test_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    real = sweep_run.make_start

    def broken(spec, X, rng):
        if spec.start == "gaussian" and spec.depth == 3:
            raise np.linalg.LinAlgError("SVD did not converge (injected)")
        return real(spec, X, rng)

    monkeypatch.setattr(sweep_run, "make_start", broken)
    res = sweep(SMALL, tmp_path / "o", n_jobs=1, progress=False)
    assert res.complete and res.counts["error"] == 2 and sum(res.counts.values()) == 14
    rows = read_rows(tmp_path / "o")
    bad = [r for r in rows if r["status"] == "error"]
    assert {r["start"] for r in bad} == {"gaussian"} and {r["seed"] for r in bad} == {"0", "1"}
    assert bad[0]["error"] == "LinAlgError: SVD did not converge (injected)"
    assert bad[0]["reached_global"] == "False"
    # a resume keeps them; retry_failed redoes them (fixed now)
    monkeypatch.setattr(sweep_run, "make_start", real)
    assert sweep(SMALL, tmp_path / "o", n_jobs=1, progress=False).ran == 0
    res = sweep(SMALL, tmp_path / "o", n_jobs=1, progress=False, retry_failed=True)
    assert res.ran == 2 and "error" not in res.counts


def test_out_directory_rules(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SweepError, match="holds no linrank sweep"):
        sweep(SMALL, foreign, n_jobs=1, progress=False)
    assert (foreign / "notes.txt").read_text() == "mine" and len(os.listdir(foreign)) == 1
    out = tmp_path / "o"
    grid = SMALL.replace("seeds = 2", "seeds = 1")
    sweep(grid, out, n_jobs=1, progress=False, max_runs=1)
    with pytest.raises(SweepError, match="another grid"):
        sweep(SMALL, out, n_jobs=1, progress=False)
    (out / "extra.csv").write_text("x")
    with pytest.raises(SweepError, match=r"did not write \(extra\.csv\)"):
        sweep(grid, out, n_jobs=1, progress=False)
    os.remove(out / "extra.csv")
    from linrank.experiments.sweep.app import _Lock

    with _Lock(str(out)):  # another sweep holds the directory
        with pytest.raises(SweepError, match="lock is held"):
            sweep(grid, out, n_jobs=1, progress=False)
    assert sweep(grid, out, n_jobs=1, progress=False).complete


def test_rerun_one_row_gives_the_same_numbers(tmp_path, capsys):
    out = tmp_path / "o"
    sweep(SMALL, out, n_jobs=1, progress=False)
    res = rerun(out, 3)
    assert res.same and res.stored["run_id"] == "3"
    assert main(["sweep", "--rerun", str(out), "3"]) == 0
    assert "same numbers" in capsys.readouterr().out
    with pytest.raises(SweepError, match="no row with run_id 99"):
        rerun(out, 99)
    # a tampered number is caught
    rows = (out / "runs.csv").read_text().splitlines()
    head = rows[0].split(",")
    i = head.index("final_distance")
    cells = rows[4].split(",")
    cells[i] = "0.5"
    rows[4] = ",".join(cells)
    (out / "runs.csv").write_text("\n".join(rows) + "\n")
    res = rerun(out, 3)
    assert res.differences == ["final_distance"] and not res.intact and not res.same


def test_dask_localcluster_gives_the_same_rows_as_local_processes(tmp_path):
    distributed = pytest.importorskip("distributed")
    grid = SMALL.replace("seeds = 2", "seeds = 1")
    sweep(grid, tmp_path / "local", n_jobs=2, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        res = sweep(grid, tmp_path / "dask", scheduler=cluster.scheduler_address,
                    progress=False)
    assert res.complete
    local, dask = _table(tmp_path / "local" / "runs.csv"), _table(tmp_path / "dask" /
                                                                  "runs.csv")
    assert len(local) == 7 and local == dask


def test_columns_of_a_row():
    row = sweep_run.run(load_grid(SMALL).runs[-1])  # regression
    assert list(row) == COLUMNS
    assert row["condition_47"] == "" and np.isnan(row["margin_47"])
    assert row["status"] == "converged" and row["final_loss_gap"] >= -1e-10


# ---------------------------------------------------------------------- report, shipped grids
def test_report_of_a_sweep(tmp_path, capsys):
    from linrank.experiments.sweep.report import claims, wilson, write_report

    out = tmp_path / "o"
    sweep(SMALL, out, n_jobs=1, progress=False, max_runs=7)
    rep = write_report(out)
    text = (out / "report.md").read_text()
    assert not rep.complete and "Incomplete sweep: 7 of the grid's 14 runs" in text
    assert main(["sweep", "--grid", "x.toml", "--out", str(out), "--quiet"]) == 2  # no such file
    sweep(SMALL, out, n_jobs=1, progress=False)
    assert main(["sweep", "--report", str(out)]) == 0
    capsys.readouterr()
    text = (out / "report.md").read_text()
    assert "All 14 runs of the grid" in text and "Incomplete" not in text
    for name in ("convergence_time_vs_gap.png", "scaled_time_by_depth.png", "saddle_indices.png"):
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_rows(out)
    # every run that did not converge is listed with its run_id and seed (special N = 3 sits at 0)
    bad = [r for r in rows if r["status"] != "converged"]
    assert bad and all(r["start"] == "special" and r["depth"] == "3" for r in bad)
    for r in bad:  # extended to 8 x t_max, then certified approaching W = 0 (J = {})
        assert r["outcome"] == "critical" and r["crit_J"] == "{}" and r["extensions"] == "3"
        assert f"| {r['run_id']} | {r['seed']} | auto d=4 r=2 N=3 special | critical |" in text
    cl = {c.name: c for c in claims(rows)}
    sp = cl["Special start"]
    assert (sp.n, sp.converged, sp.critical, sp.unresolved) == (4, 2, 2, 0)
    assert "no verdict" in sp.verdict and "held" not in sp.verdict
    assert cl["Y != X"].n == 2 and cl["Y != X"].converged == 2
    cells = list(csv.DictReader(open(out / "cells.csv")))
    assert len(cells) == 7 and sum(int(c["runs"]) for c in cells) == 14
    # Wilson interval against its closed form
    k, n, z = 7, 10, 1.959963984540054
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert np.allclose(wilson(k, n), (mid - half, mid + half), rtol=1e-10)


@pytest.mark.parametrize("name, least", [("sweep_quick.toml", 50), ("conjectures.toml", 1_300)])
def test_shipped_grids(name, least):
    from linrank.experiments.sweep.grid import START_KINDS

    g = load_grid(os.path.join(os.path.dirname(__file__), "..", "examples", name))
    assert least <= len(g.runs) <= 1.2 * least
    kinds = {r.start for r in g.runs}
    assert {k for k in kinds if not k.startswith("search:")} == set(START_KINDS)
    assert {r.data for r in g.runs} == {"autoencoder", "regression"}
    depths = {r.depth for r in g.runs}
    assert depths == ({2, 3, 4} if least == 50 else {2, 3, 4, 5, 6})
    if least == 1_300:
        assert {"search:examples/search/amended_d8_r3_N3",
                "search:examples/search/conjecture32_d8_r3_N3"} <= kinds
        assert max(r.d for r in g.runs) == 50


def test_sweep_process_killed_and_restarted(tmp_path):
    """SIGKILL the command mid-way (no clean-up at all), restart it: same file as one run."""
    import signal
    import subprocess
    import sys
    import time

    grid = tmp_path / "g.toml"
    grid.write_text(SMALL)
    cmd = [sys.executable, "-m", "linrank.cli", "sweep", "--grid", str(grid), "--jobs", "1",
           "--quiet", "--out"]
    proc = subprocess.Popen(cmd + [str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    results = tmp_path / "killed" / "runs.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 4:  # header + 3 rows
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(read_rows(tmp_path / "killed"))
    assert 3 <= n_before < 14
    done = subprocess.run(cmd + [str(tmp_path / "killed")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{14 - n_before} runs now, {n_before} before" in done.stdout
    sweep(SMALL, tmp_path / "whole", n_jobs=2, progress=False)
    assert _table(results) == _table(tmp_path / "whole" / "runs.csv")


def test_flow_interrupted_inside_leaves_no_row(tmp_path, monkeypatch):
    """The flows catch Ctrl-C and return status "interrupted": that run must not be recorded."""
    real = sweep_run.manifold_flow

    def interrupted(*args, **kw):
        res = real(*args, **kw)
        res.status, res.message = "interrupted", "interrupted (KeyboardInterrupt) at t = 1"
        return res

    monkeypatch.setattr(sweep_run, "manifold_flow", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep(SMALL, tmp_path / "o", n_jobs=1, progress=False)
    assert read_rows(tmp_path / "o") == []  # the first run is balanced: manifold flow
    assert "status" in (tmp_path / "o" / "runs.csv").read_text()  # header only


# ---------------------------------------------------------------------- rows that cannot lie
def test_cut_resaved_and_edited_rows_are_named_and_redone(tmp_path):
    """Before: a last line cut and re-saved by an editor (so it ends with a newline) was kept as
    a finished run with empty results, and the sweep said "complete"."""
    grid = SMALL.replace("seeds = 2", "seeds = 1")
    out = tmp_path / "o"
    sweep(grid, out, n_jobs=1, progress=False)
    ref = _table(out / "runs.csv")
    lines = (out / "runs.csv").read_text().splitlines()
    head = lines[0].split(",")
    i = head.index("final_distance")
    cells = lines[2].split(",")
    cells[i] = repr(float(cells[i]) / 2)  # a plausible hand edit of run 1
    lines[2] = ",".join(cells)
    lines[-1] = lines[-1][: len(lines[-1]) // 2]  # run 6 cut, then saved with a newline
    (out / "runs.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SweepError, match=r"line 3 \(run_id 1\): changed after it was written"):
        read_rows(out)  # the report refuses it
    assert len(read_rows(out, strict=False)) == 5
    notes = []
    res = sweep(grid, out, n_jobs=1, progress=False, notice=notes.append)
    assert len(notes) == 2 and "run_id 1): changed" in notes[0] and "incomplete" in notes[1]
    assert res.ran == 2 and res.done_before == 5 and res.complete
    assert _table(out / "runs.csv") == ref


def test_report_refuses_a_changed_row(tmp_path, capsys):
    grid = SMALL.replace("seeds = 2", "seeds = 1")
    out = tmp_path / "o"
    sweep(grid, out, n_jobs=1, progress=False)
    text = (out / "runs.csv").read_text()
    (out / "runs.csv").write_text(text.replace(",converged,", ",budget,", 1))
    assert main(["sweep", "--report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "changed after it was written" in err
    assert not (out / "report.md").exists()


def test_sweep_of_another_linrank_version_is_not_resumed(tmp_path, monkeypatch):
    import linrank

    grid = SMALL.replace("seeds = 2", "seeds = 1")
    sweep(grid, tmp_path / "o", n_jobs=1, progress=False, max_runs=1)
    monkeypatch.setattr(linrank, "__version__", linrank.__version__ + ".post1")
    with pytest.raises(SweepError, match=r"by linrank 0\.1\.0, this is linrank 0\.1\.0\.post1"):
        sweep(grid, tmp_path / "o", n_jobs=1, progress=False)


def test_claims_count_outcomes_and_never_hold_with_unresolved_runs():
    from linrank.experiments.sweep.report import claims

    base = {"seed": "0", "data": "autoencoder", "d": "8", "samples": "24", "t_rank": "8",
            "noise": "0.1", "flow": "factor", "depth": "3", "condition_47": "True", "rank": "2",
            "amended": "False", "in_span": "True"}
    rows = [dict(base, start="family_a", status="budget", outcome="counterexample"),
            dict(base, start="family_a", status="budget", outcome="unresolved"),
            dict(base, start="amended", status="budget", outcome="unresolved", amended="True",
                 in_span="False"),
            dict(base, start="amended", status="budget", outcome="critical", amended="True",
                 in_span="False"),
            dict(base, start="amended", status="converged", outcome="converged",
                 amended="True", in_span="False"),
            dict(base, start="near_boundary", status="converged", outcome="converged",
                 amended="True")]
    cl = {c.name: c for c in claims(rows)}
    fa, am, nb = cl["Family A"], cl["Amended hypothesis"], cl["Near-boundary starts within span U_r"]
    assert (fa.n, fa.counterexamples, fa.unresolved, fa.converged) == (2, 1, 1, 0)
    assert fa.verdict.startswith("refuted")
    assert (am.n, am.counterexamples, am.critical, am.unresolved, am.converged) == (3, 0, 1, 1, 1)
    assert "no verdict" in am.verdict and "held" not in am.verdict
    # near-boundary starts within span U_r are reported apart, in no other claim of (47)
    assert nb.n == 1 and nb.verdict.startswith("held in all 1 runs")
    assert cl["Conjecture 32"].n == 5


def test_wilson_interval_is_rounded_outward():
    from linrank.experiments.sweep.report import _pct, wilson

    for k, n in [(7, 10), (2634, 2636), (40, 200), (0, 5), (5, 5)]:
        lo, hi = wilson(k, n)
        txt = _pct(k, n)
        a, b = (float(x) for x in txt.split("[")[1].rstrip("]").split(", "))
        assert a <= 100 * lo + 1e-9 and b >= 100 * hi - 1e-9 and b - a <= 100 * (hi - lo) + 0.2


def test_failure_bound_is_rounded_outward_and_counts_data_sets():
    from linrank.experiments.sweep.report import data_set, failure_bound

    for n in (1, 7, 274, 2397, 10**6):
        exact = 1 - 0.05 ** (1 / n)
        assert exact <= failure_bound(n) <= exact * 1.1  # rounded up, to two significant digits
    assert failure_bound(274) == pytest.approx(0.011)  # the Conjecture 32 runs' data sets
    assert failure_bound(0) == 1.0
    row = {"seed": "3", "data": "autoencoder", "d": "8", "samples": "24", "t_rank": "3",
           "noise": "0.1", "start": "paper", "depth": "3"}
    assert data_set(row) == data_set({**row, "start": "special", "depth": "5"})
    assert data_set(row) != data_set({**row, "seed": "4"})


def test_a_budget_run_is_extended_until_it_converges(monkeypatch):
    """t_max too short: with the extension off the run is unresolved at its budget; doubled from
    its state (up to 8 x) it converges, at the time an unhurried run gives (to the resolution of
    the recorded times, which depend on the chunks)."""
    grid = {"sweep": {"tol": 1e-3, "rtol": 1e-8, "atol": 1e-12},
            "grid": [{"start": "paper", "depth": 3, "d": 4, "rank": 2, "t_max": t,
                      "seeds": [0]} for t in (4.0, 1000.0)]}
    short, long = load_grid(grid).runs
    ref = sweep_run.run(long)
    assert ref["outcome"] == "converged" and 4.0 < ref["t_converge"] < 32.0
    ext = sweep_run.run(short)
    assert ext["outcome"] == "converged" and ext["extensions"] >= 1
    assert ext["t_converge"] == pytest.approx(ref["t_converge"], rel=0.3)
    assert ext["final_distance"] <= 1e-3
    monkeypatch.setattr(sweep_run, "EXTEND", 1)
    cut = sweep_run.run(short)
    assert cut["status"] == "budget" and cut["outcome"] in ("unresolved", "critical")
    assert cut["extensions"] == 0 and cut["t_final"] == pytest.approx(4.0)
