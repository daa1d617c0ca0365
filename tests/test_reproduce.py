"""`linrank reproduce`: summary schema, the claims on a --quick run, real PNGs, determinism."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from linrank.cli import main  # noqa: E402
from linrank.experiments.paper import (  # noqa: E402
    RunSpec,
    Settings,
    balanced_start,
    decay_rate,
    escape_time,
    paper_data,
    run_spec,
    special_norm_exact,
    special_start,
)
from linrank.experiments.report import SUMMARY_KEYS  # noqa: E402
from linrank.network import conserved_quantities, imbalance, product  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    code = main(["reproduce", "--out", str(out), "--quick", "--seed", "3", "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    details = json.loads((out / "details.json").read_text())
    return out, code, summary, details


def test_exit_code_and_files(quick_run):
    out, code, _, _ = quick_run
    assert code == 0
    for name in ("fig1.png", "fig2.png", "fig3.png", "fig4.png", "summary.json", "details.json",
                 "report.md"):
        assert (out / name).stat().st_size > 0, name


def test_summary_schema(quick_run):
    _, _, summary, _ = quick_run
    assert set(summary) == {"runs"}
    runs = summary["runs"]
    assert {r["figure"] for r in runs} == {1, 2, 3, 4}
    for r in runs:
        assert tuple(r) == SUMMARY_KEYS
        assert r["init"] in ("balanced", "nonbalanced", "special")
        assert r["seed"] == 3
        for key in ("final_error", "final_loss_gap", "initial_norm", "min_norm",
                    "imbalance_drift"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), key
        assert (r["w2_minus_w1t"] is None) == (r["depth"] != 2)
        assert (r["escape_time"] is None) == (r["init"] != "special")
        assert r["min_norm"] <= r["initial_norm"]
    assert {r["init"] for r in runs if r["figure"] == 3} == {"nonbalanced"}
    assert {r["init"] for r in runs if r["figure"] == 4} == {"special"}
    assert {r["depth"] for r in runs if r["figure"] == 1} == {2, 3, 4}


def test_claims_on_quick_run(quick_run):
    out, _, summary, details = quick_run
    runs = summary["runs"]
    for r in runs:
        # every run converges to U_r U_r^T (balanced: Theorem 31 / Conjecture 32)
        assert r["final_error"] < 1e-6, r
        assert abs(r["final_loss_gap"]) < 1e-10
        assert r["imbalance_drift"] < 1e-9
    for r in runs:
        if r["init"] == "balanced" and r["depth"] == 2:
            assert r["w2_minus_w1t"] < 1e-6
        if r["init"] == "nonbalanced":  # Figure 3's W_2 -> W_1^T fails: bounded away from 0
            assert r["w2_minus_w1t"] > 1e-2
        if r["init"] == "special":  # the dip, then the escape
            assert r["min_norm"] < 1e-6 * r["initial_norm"]
            assert 0 < r["escape_time"] < 20
    extras = {e["label"]: e for e in details["run_extras"]}
    for e in extras.values():
        if "nonbalanced" in e["label"]:  # what holds instead: W_2 -> W_1^+
            assert e["w2_minus_pinv_w1"] < 1e-6
            assert 0 < e["w2_w1t_lower_bound"]
        if "special" in e["label"]:  # the flow follows the exact invariant-set solution first
            assert e["exact_deviation"] < 1e-6
    fit = details["escape_fit"]
    assert abs(fit["rate"] / fit["lambda_1"] - 1) < 0.1
    status = {v["claim"].split(":")[0]: v["status"] for v in details["verdicts"]}
    assert status["Figure 3"] == "refuted"
    assert all(s in ("confirmed", "refuted") for s in status.values())
    assert len(details["saddles"]) == 3
    text = (out / "report.md").read_text()
    for section in ("## Verdicts", "## Set-up", "## Strict saddles", "## All runs",
                    "![Figure 1](fig1.png)", "![Figure 4](fig4.png)", "Euler"):
        assert section in text


def test_pngs_are_real_images(quick_run):
    out = quick_run[0]
    for i in range(1, 5):
        img = mpimg.imread(out / f"fig{i}.png")
        assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 600
        rgb = img[..., :3]
        assert rgb.std() > 0.02  # not a blank canvas
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50


def test_deterministic_and_cached(quick_run):
    """The same seed gives the same numbers (a fresh run of one spec, and the cache)."""
    out, _, summary, _ = quick_run
    settings = Settings.quick_settings()
    spec = RunSpec(4, 2, 8, 2, "special")
    a = run_spec(spec, settings, 3).summary()
    b = next(r for r in summary["runs"] if r["figure"] == 4)
    assert a == b
    code = main(["reproduce", "--out", str(out), "--quick", "--seed", "3", "--quiet"])
    assert code == 0
    assert json.loads((out / "summary.json").read_text()) == summary


def test_balanced_start_satisfies_47():
    rng = np.random.default_rng(0)
    for N in (2, 3, 4):
        fs = balanced_start(12, 3, N, rng)
        assert [W.shape for W in fs] == [(3, 12)] + [(3, 3)] * (N - 2) + [(12, 3)]
        assert imbalance(fs) < 1e-13
        assert np.linalg.matrix_rank(product(fs)) == 3


def test_special_start_and_exact_solution():
    X = paper_data(6, 0)
    W1, W2 = special_start(X, 2)
    assert np.allclose(W2, -W1.T)
    assert np.linalg.norm(conserved_quantities([W1, W2])[0]) < 1e-14
    lam = np.linalg.eigvalsh(X @ X.T)[::-1][:2]
    t = np.array([0.0, 0.5, 100.0])
    # b_j(0) = 1, and b_j' = -2 lambda_j b_j (1 + b_j) checked by a central difference
    assert special_norm_exact(t, lam)[0] == pytest.approx(np.sqrt(2))
    h, t0 = 1e-5, 0.3
    b = lambda s: np.exp(-2 * lam * s) / (2 - np.exp(-2 * lam * s))  # noqa: E731
    deriv = (b(t0 + h) - b(t0 - h)) / (2 * h)
    assert np.allclose(deriv, -2 * lam * b(t0) * (1 + b(t0)), rtol=1e-8)
    assert np.all(np.isfinite(special_norm_exact(t, lam)))  # underflow to 0, no nan
    with pytest.raises(ValueError):
        special_start(X, 2, delta=1e-3)  # needs rng


def test_decay_rate_and_escape_time():
    t = np.linspace(0, 100, 1001)
    err = 2.0 * np.exp(-0.3 * t) + 1e-12
    assert decay_rate(t, err) == pytest.approx(0.3, rel=1e-4)
    assert decay_rate(t[:3], err[:3]) is None
    # dip to ~1e-15 at t ~ 34.5, back above 1/2 at t = log(0.5e30) ~ 68.4
    norm = np.minimum(np.exp(-t) + 1e-30 * np.exp(t), 1.0)
    assert escape_time(t, norm) == pytest.approx(np.log(0.5e30), abs=0.1)
    assert escape_time(t, np.exp(-t)) is None


def test_bad_input():
    with pytest.raises(ValueError):
        RunSpec(5, 2, 10, 2, "balanced")
    with pytest.raises(ValueError):
        RunSpec(3, 3, 10, 2, "nonbalanced")
    with pytest.raises(ValueError):
        RunSpec(1, 2, 10, 11, "balanced")
    with pytest.raises(ValueError):
        RunSpec(1, 2, 10, 2, "balanced", delta=1e-3)
    with pytest.raises(SystemExit):
        main(["reproduce", "--seed", "-1"])
