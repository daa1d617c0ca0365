"""`linrank reproduce`: summary schema, the claims and their run lists on a --quick run, real PNGs,
determinism, (47) bookkeeping, the cache, Ctrl-C and damaged cache files."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from linrank.cli import main  # noqa: E402
from linrank.experiments.reproduce import driver, paper, paper_flow  # noqa: E402
from linrank.experiments.reproduce.limits import decay_rate, escape_time, special_norm_exact  # noqa: E402
from linrank.experiments.reproduce.paper import (  # noqa: E402
    RunSpec,
    Settings,
    make_start,
    paper_data,
    run_spec,
)
from linrank.experiments.reproduce.plan import default_specs, eta_specs  # noqa: E402
from linrank.experiments.reproduce.report import SUMMARY_KEYS  # noqa: E402
from linrank.experiments.shared.starts import condition_47  # noqa: E402
from linrank.network import imbalance, product  # noqa: E402

SEED = 3


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    code = main(["reproduce", "--out", str(out), "--quick", "--seeds", str(SEED), "--quiet",
                 "--jobs", "1"])
    summary = json.loads((out / "summary.json").read_text())
    details = json.loads((out / "details.json").read_text())
    return out, code, summary, details


def test_exit_code_and_files(quick_run):
    out, code, _, _ = quick_run
    assert code == 0
    for name in ("fig1.png", "fig2.png", "fig3.png", "fig4.png", "fig5.png", "fig6.png",
                 "summary.json",
                 "details.json", "report.md", ".linrank-manifest.json"):
        assert (out / name).stat().st_size > 0, name


def test_summary_schema(quick_run):
    _, _, summary, _ = quick_run
    assert set(summary) == {"runs", "verdicts", "seeds", "quick"}
    assert summary["seeds"] == [SEED] and summary["quick"] is True
    runs = summary["runs"]
    assert {r["figure"] for r in runs} == {1, 2, 3, 4, 5}
    ids = [r["id"] for r in runs]
    assert len(set(ids)) == len(ids)
    for r in runs:
        assert tuple(r) == SUMMARY_KEYS
        assert r["seed"] == SEED
        assert r["status"] in ("completed", "critical", "unfinished", "failed")
        assert isinstance(r["condition_47"], bool)
        assert isinstance(r["min_u_W0_u"], float)
        assert len(r["hidden_widths"]) == r["depth"] - 1
        assert min(r["hidden_widths"]) >= r["rank"]
        for key in ("final_error", "final_loss_gap", "initial_norm", "min_norm",
                    "imbalance_drift"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), key
        assert (r["w2_minus_w1t"] is None) == (r["depth"] != 2)
        assert (r["escape_time"] is None) == (r["init"] != "special" or r["depth"] >= 3)
    # every verdict lists the runs it rests on, and they exist
    known = set(ids) | {f"seed={SEED} " + RunSpec(4, 2, 8, 2, "special", delta=x).label
                        for x in Settings.quick_settings().deltas}
    for v in summary["verdicts"]:
        assert set(v["runs"]) <= known, v["claim"]
        assert v["n_completed"] + v["n_unfinished"] <= v["n_runs"]
        assert v["seeds"] in ([SEED], [])


def test_47_bookkeeping_matches_the_starts(quick_run):
    """condition_47 / min_u_W0_u in summary.json are those of the start, recomputed here."""
    _, _, summary, _ = quick_run
    settings = Settings.quick_settings()
    seen = set()
    for r in summary["runs"]:
        if r["method"] != "RK45" or r["init"] in seen:
            continue
        seen.add(r["init"])
        spec = next(s for s in default_specs(settings) + eta_specs(settings)
                    if f"seed={SEED} {s.label}" == r["id"])
        X = paper_data(spec.d, SEED)
        holds, m, _ = condition_47(product(make_start(spec, X, SEED)), X, spec.rank)
        assert holds == r["condition_47"] and m == pytest.approx(r["min_u_W0_u"], abs=1e-12)
        if spec.init in ("inside47", "boundary", "familyA", "familyB"):
            assert holds
        if spec.init in ("outside47", "special", "negdet"):
            assert not holds
    assert {"inside47", "outside47", "boundary", "balanced", "special"} <= seen
    conj = next(v for v in summary["verdicts"] if v["claim"].startswith("Conjecture 32"))
    by_id = {r["id"]: r for r in summary["runs"]}
    assert conj["runs"] and all(by_id[i]["condition_47"] and by_id[i]["depth"] >= 3
                                for i in conj["runs"])
    assert any("inside47" in i for i in conj["runs"]) and any("boundary" in i
                                                               for i in conj["runs"])
    th = next(v for v in summary["verdicts"] if v["claim"].startswith("Theorem 31"))
    assert not any("special" in i or "nonbalanced" in i for i in th["runs"])


def test_claims_on_quick_run(quick_run):
    out, _, summary, details = quick_run
    runs = summary["runs"]
    for r in runs:
        if r["init"] == "special" and r["depth"] >= 3:  # stays near the saddle W = 0
            assert r["final_error"] > 1 and r["escape_time"] is None
            continue
        if r["init"] == "balanced" and r["depth"] == 2 and max(r["hidden_widths"]) > r["rank"]:
            continue  # leaves M_r in floating point (reported, not a claim)
        if r["init"] in ("familyA", "negdet"):  # the certified counterexamples
            assert r["status"] == "critical" and r["invariant_certificate"], r
            assert r["final_error"] >= 1 - 1e-6 and r["det_C0"] < 0
            continue
        assert r["status"] == "completed", r["id"]
        assert r["final_error"] < 1e-6, r
        assert abs(r["final_loss_gap"]) < 1e-10
        if r["method"] == "RK45":
            assert r["imbalance_drift"] < 1e-9
    extras = {e["id"]: e for e in details["run_extras"]}
    for r in runs:
        e = extras[r["id"]]
        if r["init"] == "nonbalanced" and r["depth"] == 2:
            assert e["w2_minus_pinv_w1"] < 1e-6
            if r["method"] == "RK45":  # the plateau is the closed form at D(0)
                assert r["w2_minus_w1t"] == pytest.approx(e["w2_w1t_limit"], rel=1e-6)
            else:  # Euler: the closed form at its own final D, not at D(0)
                assert r["w2_minus_w1t"] == pytest.approx(e["w2_w1t_limit_final_D"], rel=1e-6)
                assert abs(r["w2_minus_w1t"] / e["w2_w1t_limit"] - 1) > 1e-4
        if r["init"] == "special" and r["depth"] == 2 and r["figure"] == 4:
            assert r["min_norm"] < 1e-6 * r["initial_norm"]
            assert 0 < r["escape_time"] < 40
            assert e["exact_deviation"] < 1e-6
    status = {v["claim"].split(":")[0]: v["status"] for v in details["verdicts"]}
    assert status["Figure 3"] == "refuted"
    assert status["Theorem 31"] == "confirmed"
    assert status["Conjecture 32"] == status["Theorem 31 at r = d"] == "refuted"
    assert status["Family B (eta off the invariant set)"] == "measured"
    assert all(s in ("confirmed", "refuted", "measured") for s in status.values()), status
    text = (out / "report.md").read_text()
    for section in ("## Verdicts", "## Set-up", "## Strict saddles", "## All runs",
                    "![Figure 1](fig1.png)", "![Figure 5](fig5.png)", "Euler", "--quick",
                    "seed 3 |", "sqrt(delta_i^2 + 4)", "V~ V_r", "![Figure 6](fig6.png)",
                    "Certified counterexamples", "| N | eta | T | fitted p"):
        assert section in text, section


def test_pngs_are_real_images(quick_run):
    out = quick_run[0]
    for i in range(1, 7):
        img = mpimg.imread(out / f"fig{i}.png")
        assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 600
        rgb = img[..., :3]
        assert rgb.std() > 0.02  # not a blank canvas
        assert len(np.unique(rgb[::3, ::3].reshape(-1, 3), axis=0)) > 50


def test_deterministic_and_cached(quick_run):
    """The same seed gives the same numbers (a fresh run of one spec, and the cache)."""
    out, _, summary, _ = quick_run
    settings = Settings.quick_settings()
    spec = RunSpec(4, 2, 8, 2, "special")
    a = run_spec(spec, settings, SEED).summary()
    b = next(r for r in summary["runs"] if r["id"] == f"seed={SEED} {spec.label}")
    assert a == b
    code = main(["reproduce", "--out", str(out), "--quick", "--seeds", str(SEED), "--quiet",
                 "--jobs", "1"])
    assert code == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["runs"] == summary["runs"] and again["verdicts"] == summary["verdicts"]


# ------------------------------------------------------------------ cache, Ctrl-C, processes
def _small_tasks():
    return [("run", RunSpec(1, N, 6, 2, "balanced"), 0) for N in (2, 3, 4)]


def test_interrupted_run_is_never_cached(tmp_path, monkeypatch):
    """A flow cut off by Ctrl-C raises out of run_spec; only the runs finished before are cached,
    and a rerun computes exactly the missing ones."""
    settings = Settings.quick_settings()
    real = paper_flow.factor_flow
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        res = real(*args, **kwargs)
        if calls["n"] == 2:  # the second run's first chunk is cut off
            res.status, res.message = "interrupted", "interrupted (KeyboardInterrupt) at t = 1"
        return res

    monkeypatch.setattr(paper_flow, "factor_flow", flaky)
    tasks = _small_tasks()
    with pytest.raises(KeyboardInterrupt):
        driver.run_tasks(tasks, settings, str(tmp_path), jobs=1)
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].endswith(".cache")
    monkeypatch.setattr(paper_flow, "factor_flow", real)
    computed = []
    orig = driver._compute
    monkeypatch.setattr(driver, "_compute", lambda t, s: computed.append(t) or orig(t, s))
    recs = driver.run_tasks(tasks, settings, str(tmp_path), jobs=1)
    assert len(computed) == 2 and all(r.status == "completed" for r in recs)
    assert len(list(tmp_path.iterdir())) == 3


def test_reproduce_ctrl_c_exit_130_writes_nothing(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "_compute", interrupted)
    out = tmp_path / "res"
    assert main(["reproduce", "--out", str(out), "--quick", "--quiet", "--jobs", "1"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (out / "summary.json").exists() and not (out / "report.md").exists()


def test_damaged_cache_file_is_named_and_recomputed(tmp_path):
    settings = Settings.quick_settings()
    tasks = _small_tasks()[:1]
    first = driver.run_tasks(tasks, settings, str(tmp_path), jobs=1)[0]
    (path,) = list(tmp_path.iterdir())
    path.write_bytes(b"PK\x03\x04 not a zip file")
    notes = []
    again = driver.run_tasks(tasks, settings, str(tmp_path), jobs=1, notice=notes.append)[0]
    assert len(notes) == 1 and path.name in notes[0] and "recomputing" in notes[0]
    assert again.summary() == first.summary()
    assert driver._load(str(path), tasks[0], settings).summary() == first.summary()


def test_foreign_stale_cut_and_edited_cache_files_are_recomputed(tmp_path, monkeypatch):
    """Before: a run file copied over another run's name was loaded and reported as that run;
    a cut-off file gave a traceback. Now each is named and recomputed."""
    import linrank

    settings = Settings.quick_settings()
    tasks = _small_tasks()[:2] + [("manifold", None, 0), ("manifold", None, 1)]
    first = driver.run_tasks(tasks, settings, str(tmp_path), jobs=1)
    paths = [driver._path(str(tmp_path), t, settings) for t in tasks]
    (tmp_path / paths[0]).write_bytes(open(paths[1], "rb").read())  # N = 3's run as N = 2's
    (tmp_path / paths[2]).write_bytes(open(paths[3], "rb").read())  # seed 1's study as seed 0's
    notes = []
    again = driver.run_tasks(tasks, settings, str(tmp_path), jobs=1, notice=notes.append)
    assert len(notes) == 2 and all("is foreign: it belongs to another run" in n for n in notes)
    assert again[0].summary() == first[0].summary() and again[2] == first[2]
    raw = open(paths[1], "rb").read()
    open(paths[1], "wb").write(raw[: len(raw) - 100])  # cut off
    side = open(paths[3], "rb").read()
    assert b'"seed": 1' in side
    open(paths[3], "wb").write(side.replace(b'"seed": 1', b'"seed": 7'))  # edited by hand
    notes.clear()
    again = driver.run_tasks(tasks, settings, str(tmp_path), jobs=1, notice=notes.append)
    assert sorted(n.split(" is ")[1].split(":")[0] for n in notes) == ["changed", "cut off"], \
        notes
    assert again[1].summary() == first[1].summary() and again[3] == first[3]
    monkeypatch.setattr(linrank, "__version__", linrank.__version__ + ".post1")
    notes.clear()
    driver.run_tasks(tasks[:1], settings, str(tmp_path), jobs=1, notice=notes.append)
    assert len(notes) == 1 and "is stale: written by another version" in notes[0]


def test_worker_processes_give_the_same_results(tmp_path):
    settings = Settings.quick_settings()
    tasks = _small_tasks()[:2]
    one = driver.run_tasks(tasks, settings, None, jobs=1)
    two = driver.run_tasks(tasks, settings, None, jobs=2)
    assert [r.summary() for r in one] == [r.summary() for r in two]


# ------------------------------------------------------------------ helpers of paper.py
def test_paper_starts_in_runs():
    X = paper_data(12, 0)
    for N in (2, 3, 4):
        fs = make_start(RunSpec(1, N, 12, 3, "balanced"), X, 0)
        assert [W.shape for W in fs] == [(3, 12)] + [(3, 3)] * (N - 2) + [(12, 3)]
        assert imbalance(fs) < 1e-13
        assert np.linalg.matrix_rank(product(fs)) == 3
    W1, W2 = make_start(RunSpec(1, 2, 12, 3, "balanced"), X, 0)
    assert np.allclose(W1 @ W1.T, np.eye(3), atol=1e-14)  # the paper's W_1(0) = V_r^T
    assert np.allclose(W2.T @ W2, np.eye(3), atol=1e-14)  # W_2(0) = V~ V_r


def test_special_norm_exact():
    X = paper_data(6, 0)
    lam = np.linalg.eigvalsh(X @ X.T)[::-1][:2]
    t = np.array([0.0, 0.5, 100.0])
    assert special_norm_exact(t, lam)[0] == pytest.approx(np.sqrt(2))
    h, t0 = 1e-5, 0.3
    b = lambda s: np.exp(-2 * lam * s) / (2 - np.exp(-2 * lam * s))  # noqa: E731
    deriv = (b(t0 + h) - b(t0 - h)) / (2 * h)
    assert np.allclose(deriv, -2 * lam * b(t0) * (1 + b(t0)), rtol=1e-8)
    assert np.all(np.isfinite(special_norm_exact(t, lam)))


def test_decay_rate_and_escape_time():
    t = np.linspace(0, 100, 1001)
    err = 2.0 * np.exp(-0.3 * t) + 1e-12
    assert decay_rate(t, err) == pytest.approx(0.3, rel=1e-4)
    assert decay_rate(t[:3], err[:3]) is None
    norm = np.minimum(np.exp(-t) + 1e-30 * np.exp(t), 1.0)
    assert escape_time(t, norm) == pytest.approx(np.log(0.5e30), abs=0.1)
    assert escape_time(t, np.exp(-t)) is None


def test_bad_input():
    with pytest.raises(ValueError):
        RunSpec(6, 2, 10, 2, "balanced")
    with pytest.raises(ValueError):
        RunSpec(1, 2, 10, 11, "balanced")
    with pytest.raises(ValueError):
        RunSpec(1, 2, 10, 2, "balanced", delta=1e-3)
    with pytest.raises(ValueError):
        RunSpec(5, 3, 10, 2, "boundary")  # needs eps
    with pytest.raises(ValueError):
        RunSpec(5, 3, 10, 2, "balanced", hidden=(1, 2))
    with pytest.raises(ValueError):
        RunSpec(3, 2, 10, 2, "nonbalanced", method="Euler")  # needs a step fraction
    with pytest.raises(SystemExit):
        main(["reproduce", "--seed", "-1"])
    with pytest.raises(SystemExit):
        main(["reproduce", "--seeds", "4-1"])


def test_an_unfinished_run_is_extended_from_its_state_until_it_converges():
    """A budget too short leaves the run unfinished; doubling the horizon from its final factors
    converges it, to the closed-form minimizer U_rU_r^T, along the same path."""
    from linrank.data import LinearData
    from linrank.experiments.shared.starts import top_eigenbasis

    spec = RunSpec(5, 3, 6, 2, "balanced")
    X = paper.paper_data(6, 0)
    U, _ = top_eigenbasis(X, 2)
    P = U @ U.T
    fs = paper.make_start(spec, X, 0)
    opts = dict(target=P, trajectory=True, gtol=1e-9, rtol=1e-10, atol=1e-13)
    data = LinearData.from_samples(X)

    def grid(T):
        return np.linspace(0.0, T, 11)

    short = paper_flow.integrate_chunks(data, fs, 5.0, opts, 100.0, grid, None, 1e-9)
    assert short["status"] == "completed" and short["extensions"] == 0  # budget: unfinished
    assert short["result"].distance[-1] > 1e-3
    ext = paper_flow.integrate_chunks(data, fs, 5.0, opts, 100.0, grid, None, 1e-9, 5.0 * 2**9)
    assert ext["status"] == "converged" and ext["extensions"] >= 1
    assert ext["t_budget"] == 5.0 * 2 ** ext["extensions"] and ext["t"][-1] <= ext["t_budget"]
    assert np.linalg.norm(ext["result"].W - P) <= 1e-7
    # the extended run is the short run continued: the same path on [0, 5]
    head = ext["t"] <= 5.0
    assert np.allclose(ext["t"][head], short["t"])
    assert np.allclose(ext["loss"][head], short["loss"], rtol=1e-12, atol=0)
