"""linrank search: finds the r = d counterexample to Theorem 31, resumes, verifies its rows."""

import numpy as np
import pytest

from linrank.cli import main
from linrank.experiments.search import app as search_mod
from linrank.experiments.search.app import SearchError, search
from linrank.experiments.search.objective import SearchConfig, SearchProblem
from linrank.experiments.shared.startfile import eigenbasis, parse_matrix
from linrank.flows import factor_flow
from linrank.network import balanced_factors, product

# a quick search at d = r = 3, N = 3 (no hint of the determinant in it)
QUICK = dict(budget=None, restarts=2, evals=12, random=2, horizon=60.0, n_jobs=1)


def _text(path):
    return (path / "worst.csv").read_text()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "quick"
    res = search("theorem31", 3, 3, 3, out, **QUICK)
    return out, res


def test_finds_theorem31_counterexample_from_scratch(quick):
    out, res = quick
    found = [r for r in res.rows if r["kind"] == "search" and r["certificate"]]
    assert found, "the search found no start that cannot converge"
    r = found[0]
    assert r["status"] == "approaching" and r["inside"] == "True"
    B = parse_matrix(r["B"], (3, 3))
    assert np.linalg.det(B) < 0 and float(r["final_distance"]) > 0.5
    # independent reference: the layer-wise flow (5) from balanced factors of the same W(0),
    # at tight tolerance, never reaches U_r U_r^T = I and keeps det W(t) < 0
    prob = SearchProblem(SearchConfig(d=3, rank=3, depth=3, seed=0))
    W0 = prob.E @ B @ prob.E.T
    fs = balanced_factors(W0, [3, 3, 3, 3], seed=1)
    lay = factor_flow(prob.X, None, fs, 60.0, rtol=1e-10, atol=1e-12)
    W = product(lay.factors)
    assert np.linalg.det(W) < 0
    assert np.linalg.norm(W - np.eye(3)) / np.sqrt(3) > 0.5
    # it approaches the critical point W_J the row names (Proposition 29)
    J = [int(j) - 1 for j in r["critical_J"].strip("{}").split(",")]
    WJ = prob.E[:, J] @ prob.E[:, J].T
    assert np.linalg.norm(W - WJ) / np.sqrt(3) < 0.05
    report = (out / "report.md").read_text()
    assert "det W(0) < 0 at r = d" in report and "Counterexamples" in report


def test_rows_are_complete_and_sorted(quick):
    out, res = quick
    objs = [float(r["objective"]) for r in res.rows]
    assert objs == sorted(objs, reverse=True)
    units = {r["unit"] for r in res.rows}
    assert units == {"random-0000", "random-0001", "restart-0000", "restart-0001"}
    n_restart = sum(1 for r in res.rows if r["unit"] == "restart-0000")
    assert 1 <= n_restart <= QUICK["evals"]


def test_interrupted_search_resumes_to_the_same_file(quick, tmp_path, monkeypatch):
    out, _ = quick
    real = search_mod.run_unit

    def cut(cfg, unit):
        if unit == "restart-0000":
            raise KeyboardInterrupt
        return real(cfg, unit)

    monkeypatch.setattr(search_mod, "run_unit", cut)
    with pytest.raises(KeyboardInterrupt):
        search("theorem31", 3, 3, 3, tmp_path / "s", **QUICK)
    assert "restart-0000" not in _text(tmp_path / "s")
    monkeypatch.setattr(search_mod, "run_unit", real)
    res = search("theorem31", 3, 3, 3, tmp_path / "s", **QUICK)
    assert res.units_before == 2 and res.units_run == 2 and not res.problems
    assert _text(tmp_path / "s") == _text(out)


def test_cut_and_edited_rows_are_named_and_recomputed(quick, tmp_path):
    out, _ = quick
    good = _text(out)
    lines = good.splitlines(keepends=True)
    d = tmp_path / "s"
    d.mkdir()
    for name in ("search.json", ".linrank-manifest.json"):
        (d / name).write_text((out / name).read_text())
    # a row edited (its objective) and the last line cut in the middle
    edited = lines[1].split(",")
    edited[9] = "99.0"
    (d / "worst.csv").write_text(lines[0] + ",".join(edited) + "".join(lines[2:-1])
                                 + lines[-1][:40])
    res = search("theorem31", 3, 3, 3, d, **QUICK)
    text = " | ".join(res.problems)
    assert "checksum does not match" in text and "cut off" in text
    assert "recomputed" in text
    assert _text(d) == good
    assert "Rows recomputed on resume" in (d / "report.md").read_text()


def test_directory_rules(quick, tmp_path):
    out, _ = quick
    with pytest.raises(ValueError, match="another configuration"):
        search("theorem31", 3, 3, 4, out, **QUICK)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and was not written by linrank"):
        search("theorem31", 3, 3, 3, foreign, **QUICK)
    with pytest.raises(ValueError, match="hypothesis must be one of"):
        search("theorem32", 3, 3, 3, tmp_path / "x", **QUICK)
    with pytest.raises(ValueError, match="rank must be <= d"):
        search("theorem31", 3, 4, 3, tmp_path / "x", **QUICK)
    with pytest.raises(ValueError, match="budget"):
        search("theorem31", 3, 3, 3, tmp_path / "x", **{**QUICK, "budget": -1.0})


def test_parametrization_folds_into_47():
    prob = SearchProblem(SearchConfig(hypothesis="conjecture32", d=6, rank=2, depth=3))
    rng = np.random.default_rng(0)
    for _ in range(20):
        B = prob.matrix(rng.standard_normal(prob.n_params))
        assert np.all(np.diag(B)[:2] >= 0) and np.linalg.matrix_rank(B) == 2
        assert np.linalg.norm(B) == pytest.approx(np.sqrt(2), rel=1e-12)
    lam, E = eigenbasis(prob.X)
    assert np.all(np.diff(lam) <= 0)
    assert np.allclose(E.T @ (prob.X @ prob.X.T) @ E, np.diag(lam), atol=1e-12 * lam[0])


def test_dask_path_gives_the_same_rows(quick, tmp_path):
    distributed = pytest.importorskip("distributed")
    out, _ = quick
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        res = search("theorem31", 3, 3, 3, tmp_path / "dask",
                     **{**QUICK, "n_jobs": 2}, scheduler=cluster.scheduler_address)
    assert res.units_run == 4
    assert _text(tmp_path / "dask") == _text(out)


def test_command_line(quick, tmp_path, capsys):
    out, _ = quick
    args = ["search", "--hypothesis", "theorem31", "--d", "3", "--rank", "3", "--depth", "3",
            "--restarts", "2", "--evals", "12", "--random", "2", "--horizon", "60",
            "--jobs", "1", "--out", str(out)]
    assert main(args) == 0
    assert "0 units now, 4 before" in capsys.readouterr().out
    assert main(args[:-1] + [str(tmp_path / "missing" / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["search", "--hypothesis", "nope", "--d", "3", "--rank", "3", "--depth", "3",
              "--out", str(tmp_path)])
    with pytest.raises(SearchError, match="Dask scheduler"):
        search("theorem31", 3, 3, 3, tmp_path / "y", **QUICK, scheduler="tcp://127.0.0.1:1")


# a smaller search for the hostile-file tests (each recomputes units)
TINY = {**QUICK, "restarts": 1, "evals": 4, "random": 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "tiny"
    search("theorem31", 3, 3, 3, out, **TINY)
    return out


def _copy_search(src, dst):
    dst.mkdir()
    for name in ("search.json", ".linrank-manifest.json", "worst.csv"):
        (dst / name).write_text((src / name).read_text())
    return dst


def _rewrite(path, edit):
    """Apply ``edit`` to the first data row of a worst.csv and re-seal it (a valid checksum)."""
    import csv
    import io

    from linrank.experiments.shared.startfile import COLUMNS, row_checksum

    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    edit(rows[0])
    rows[0]["checksum"] = row_checksum(rows[0])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue())
    return rows[0]


def test_rows_carry_their_identity(quick):
    from linrank.experiments.search import config_key
    from linrank.experiments.shared.startfile import code_identity, code_key

    out, res = quick
    ident = code_identity()
    assert ident["source"] and ident["modules"] > 10 and ident["numpy"] == np.__version__
    assert {r["code"] for r in res.rows} == {code_key()}
    assert {r["config"] for r in res.rows} == {config_key(res.config)}
    import json

    man = json.loads((out / "search.json").read_text())
    assert man["code_key"] == code_key() and man["code"] == ident


def test_stale_and_foreign_rows_are_named_and_recomputed(tiny, tmp_path):
    out = tiny
    good = _text(out)
    # a row computed by other code (a valid checksum, another code key)
    d = _copy_search(out, tmp_path / "stale")
    old = _rewrite(d / "worst.csv", lambda r: r.update(code="0123456789abcdef"))
    res = search("theorem31", 3, 3, 3, d, **TINY)
    text = " | ".join(res.problems)
    assert "stale (computed by other code, 0123456789abcdef" in text
    assert f"unit {old['unit']}" in text and "recomputed" in text
    assert _text(d) == good
    # a row of another configuration, re-sealed with a matching checksum: foreign
    d = _copy_search(out, tmp_path / "foreign")
    _rewrite(d / "worst.csv", lambda r: r.update(config="fedcba9876543210", depth="4"))
    res = search("theorem31", 3, 3, 3, d, **TINY)
    assert "foreign (computed for another search, configuration fedcba9876543210" in " ".join(
        res.problems)
    assert _text(d) == good
    # a file cut in its header: no row survives; every unit is recomputed
    d = _copy_search(out, tmp_path / "cut")
    (d / "worst.csv").write_text(good[:30])
    res = search("theorem31", 3, 3, 3, d, **TINY)
    assert "cut off" in " ".join(res.problems) and res.units_run == 2
    assert _text(d) == good


def test_older_file_format_is_stale(tiny, tmp_path):
    import json

    out = tiny
    d = _copy_search(out, tmp_path / "v1")
    man = json.loads((d / "search.json").read_text())
    man["format"] = 1
    man["config"].pop("optimizer", None)
    (d / "search.json").write_text(json.dumps(man))
    # as linrank search of format 1 wrote it: its manifest knows the file
    import hashlib

    lm = json.loads((d / ".linrank-manifest.json").read_text())
    lm["files"]["search.json"] = hashlib.sha256((d / "search.json").read_bytes()).hexdigest()
    (d / ".linrank-manifest.json").write_text(json.dumps(lm))
    # format 1 had no config/code columns
    lines = [",".join(x.split(",")[:-3] + x.split(",")[-1:]) for x in _text(d).splitlines()]
    (d / "worst.csv").write_text("\n".join(lines) + "\n")
    res = search("theorem31", 3, 3, 3, d, **TINY)
    assert any("file format 1" in p and "stale, recomputed" in p for p in res.problems)
    assert res.units_before == 0 and res.units_run == 2 and _text(d) == _text(out)


def test_rows_from_a_worker_with_other_code_stop_the_search(tmp_path, monkeypatch):
    real = search_mod.run_unit

    def other(cfg, unit):
        rows = real(cfg, unit)
        return [dict(r, code="0" * 16) for r in rows]

    monkeypatch.setattr(search_mod, "run_unit", other)
    with pytest.raises(SearchError, match="worker running other code"):
        search("theorem31", 3, 3, 3, tmp_path / "w", **{**QUICK, "random": 1, "restarts": 0})
    assert "0000000000000000" not in _text(tmp_path / "w")


def test_search_starts_use_stale_rows_and_refuse_changed_ones(quick, tmp_path):
    """A start is its matrix B, whatever code measured its objective: rows of other code (with
    a valid checksum) give the same starts; rows whose checksum fails give none."""
    import csv
    import io

    from linrank.experiments.shared.startfile import (
        COLUMNS,
        StartFileError,
        row_checksum,
        search_starts,
    )

    out, _ = quick
    fresh = search_starts(out, 3, 3)
    d = _copy_search(out, tmp_path / "s")
    rows = list(csv.DictReader(io.StringIO(_text(d))))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        r = dict(r, code="0123456789abcdef")
        r["checksum"] = row_checksum(r)
        w.writerow(r)
    (d / "worst.csv").write_text(buf.getvalue())
    stale = search_starts(d, 3, 3)
    assert len(stale) == len(fresh) and all(np.array_equal(a, b) for a, b in zip(stale, fresh))
    # the same code field written without its checksum: every row is "changed"
    e = _copy_search(out, tmp_path / "e")
    text = _text(e).replace(_text(e).splitlines()[1].split(",")[-2], "0123456789abcdef")
    (e / "worst.csv").write_text(text)
    with pytest.raises(StartFileError, match="no row that verifies"):
        search_starts(e, 3, 3)


def test_report_sentences_hold_for_its_rows(quick):
    from linrank.experiments.search.report import baseline_median, worst_per_restart

    out, res = quick
    report = (out / "report.md").read_text()
    base = [r for r in res.rows if r["kind"] == "random"]
    conv = sum(r["status"] == "converged" for r in base)
    med, c, n = baseline_median(res.rows)
    assert (c, n) == (conv, len(base))
    assert f"{conv} of {len(base)} converged by T" in report
    if conv * 2 <= len(base):
        assert np.isnan(med) and "half or more did not converge" in report
    worst = worst_per_restart(res.rows)
    neg = sum(float(r["det_r"]) < 0 for r in worst)
    assert f"| det(U_r^T W(0) U_r) < 0 | {neg} | {sum(float(r['det_r']) < 0 for r in base)} |" \
        in report
    n_cert = sum(1 for r in res.rows if r["inside"] == "True" and r["certificate"])
    assert f"{n_cert} with a certificate" in report
    for r in worst:  # the certificate column agrees with the determinant at r = d
        assert (r["certificate"] == "det W(0) < 0 at r = d") == (float(r["det_r"]) < 0)
    # synthetic: exactly half converged -> no median
    rows = [dict(kind="random", inside="True", status="converged", t_converge="5.0"),
            dict(kind="random", inside="True", status="approaching", t_converge="")]
    assert np.isnan(baseline_median(rows)[0])
