"""benchmarks/run_all.py: discovery, the generated table, and rewriting BENCHMARKS.md in place."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def run_all(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "run_all", os.path.join(ROOT, "benchmarks", "run_all.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", str(tmp_path / "results"))
    os.makedirs(mod.RESULTS)
    return mod


def _doc(script, figures, failed=None):
    return {"script": script, "command": f".venv/bin/python benchmarks/{script}",
            "machine": "x86_64, 2 cores", "date": "2026-01-01 00:00 UTC", "wall_time": 12.0,
            "figures": figures, **({"failed": failed} if failed else {})}


def test_discovers_every_bench_script(run_all):
    found = run_all.discover()
    assert {"bench_manifold.py", "bench_hessian.py", "bench_flows.py",
            "bench_compare.py"} <= set(found)
    assert all(f.startswith("bench_") and f.endswith(".py") for f in found)


def test_rewrite_replaces_only_the_generated_block(run_all, tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## Notes\n\nhand-written analysis\n")
    with open(os.path.join(run_all.RESULTS, "bench_a.json"), "w") as fh:
        json.dump(_doc("bench_a.py", [
            {"figure": "ratio x / y", "measured": "1.03", "target": "<= 1.5", "met": True},
            {"figure": "time", "measured": "4.4 s", "target": "<= 1 s", "met": False},
            {"figure": "info | with bar", "measured": "7", "target": "", "met": None}]), fh)
    with open(os.path.join(run_all.RESULTS, "bench_b.json"), "w") as fh:
        json.dump(_doc("bench_b.py", [], failed="exit 1: ValueError: boom"), fh)
    run_all.rewrite(str(md))
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\n" + run_all.BEGIN)
    assert "hand-written analysis" in text
    assert "| ratio x / y | <= 1.5 | 1.03 (met) |" in text
    assert "| time | <= 1 s | 4.4 s (**not met**) |" in text
    assert "info \\| with bar" in text
    assert "**failed**: exit 1: ValueError: boom" in text
    # a second rewrite with new figures replaces the block instead of adding one
    with open(os.path.join(run_all.RESULTS, "bench_a.json"), "w") as fh:
        json.dump(_doc("bench_a.py", [
            {"figure": "ratio x / y", "measured": "0.98", "target": "<= 1.5", "met": True}]), fh)
    run_all.rewrite(str(md))
    text = md.read_text()
    assert text.count(run_all.BEGIN) == 1 and "1.03" not in text and "0.98 (met)" in text
    assert text.count("hand-written analysis") == 1


def test_unknown_script_is_refused(run_all, capsys):
    with pytest.raises(SystemExit) as exc:
        run_all.main(["--only", "nonesuch", "--no-run", "--md", os.devnull])
    assert exc.value.code == 2
    assert "choices: bench_" in capsys.readouterr().err
