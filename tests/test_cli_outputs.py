"""The CLI at its file boundary: no overwriting of files linrank did not write, a locked output
directory, atomic outputs, and one-line errors with exit status 2 instead of tracebacks."""

from __future__ import annotations

import csv
import json

import pytest

from linrank.cli import main
from linrank.commands import saddles
from linrank.experiments.shared.outputs import OutputDir, OutputError, atomic_write_text


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# ------------------------------------------------------------------ reproduce --out
@pytest.mark.parametrize("case", ["file", "foreign", "missing_parent", "unwritable"])
def test_reproduce_refuses_bad_out(tmp_path, capsys, case):
    if case == "file":
        out = tmp_path / "taken.txt"
        out.write_text("mine")
    elif case == "foreign":
        out = tmp_path / "mine"
        out.mkdir()
        (out / "notes.txt").write_text("precious")
    elif case == "missing_parent":
        out = tmp_path / "no" / "such" / "dir"
    else:
        out = "/proc/linrank-results"  # no one, not even root, can create a directory there
    code = main(["reproduce", "--out", str(out), "--quick", "--quiet", "--jobs", "1"])
    line = _err_line(capsys)
    assert code == 2 and line.startswith("linrank reproduce: error:"), line
    if case == "file":
        assert (tmp_path / "taken.txt").read_text() == "mine"
    if case == "foreign":
        assert (out / "notes.txt").read_text() == "precious"
        assert sorted(p.name for p in out.iterdir()) == [".linrank-lock", "notes.txt"]


def test_output_dir_owns_its_files(tmp_path):
    d = tmp_path / "res"
    with OutputDir(str(d)) as out:
        out.write_text("report.md", "v1")
        out.write_text("report.md", "v2")  # linrank wrote it: may replace
    assert (d / "report.md").read_text() == "v2"
    (d / "report.md").write_text("edited by hand")
    with OutputDir(str(d)) as out, pytest.raises(OutputError, match="changed after"):
        out.write_text("report.md", "v3")
    (d / "summary.json").write_text("{}")  # a file linrank never wrote
    with OutputDir(str(d)) as out, pytest.raises(OutputError, match="not written by linrank"):
        out.check_all(["summary.json"])
    assert (d / "report.md").read_text() == "edited by hand"
    with OutputDir(str(d), overwrite=True) as out:
        out.write_text("report.md", "v4")
    assert (d / "report.md").read_text() == "v4"
    manifest = json.loads((d / ".linrank-manifest.json").read_text())
    assert set(manifest["files"]) == {"report.md"}


def test_output_dir_is_locked(tmp_path, capsys):
    d = tmp_path / "res"
    with OutputDir(str(d)):
        with pytest.raises(OutputError, match="in use"), OutputDir(str(d)):
            pass
        code = main(["reproduce", "--out", str(d), "--quick", "--quiet", "--jobs", "1"])
        assert code == 2 and "in use by another linrank command" in _err_line(capsys)
    with OutputDir(str(d)):  # released on exit
        pass


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    p = tmp_path / "summary.json"
    atomic_write_text(str(p), "old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    import linrank.experiments.shared.outputs as outputs

    monkeypatch.setattr(outputs.os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(str(p), "new")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["summary.json"]


# ------------------------------------------------------------------ saddles --output
def test_saddles_refuses_existing_output(tmp_path, capsys):
    f = tmp_path / "table.csv"
    f.write_text("my data")
    assert main(["saddles", "--output", str(f)]) == 2
    assert "exists" in _err_line(capsys)
    assert f.read_text() == "my data"
    assert main(["saddles", "--output", str(f), "--overwrite"]) == 0
    rows = list(csv.DictReader(f.open()))
    assert len(rows) == 15 and rows[0]["kind"] == "global minimizer"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


@pytest.mark.parametrize("argv, needle", [
    (["saddles", "--d", "1000000"], "GiB"),
    (["saddles", "--output", "/no/such/dir/t.csv"], "does not exist"),
    (["saddles", "--k", "9"], "--k must be at most"),
])
def test_saddles_one_line_errors(argv, needle, capsys):
    assert main(argv) == 2
    line = _err_line(capsys)
    assert line.startswith("linrank saddles: error:") and needle in line


def test_saddles_output_directory_is_an_error(tmp_path, capsys):
    assert main(["saddles", "--output", str(tmp_path)]) == 2
    assert "is a directory" in _err_line(capsys)


def test_saddles_interrupt_keeps_rows_elsewhere(tmp_path, monkeypatch, capsys):
    import linrank.critical as critical

    real = critical.iter_critical_points

    def two_then_stop(*args, **kwargs):
        for i, cp in enumerate(real(*args, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield cp

    monkeypatch.setattr(critical, "iter_critical_points", two_then_stop)
    f = tmp_path / "t.json"
    assert main(["saddles", "--output", str(f)]) == 130
    assert not f.exists()
    (partial,) = list(tmp_path.iterdir())
    assert len(json.loads(partial.read_text())) == 2
    assert partial.name in capsys.readouterr().err


def test_check_size_allows_normal_sizes():
    saddles.check_size(2000, 6000, 10)
    with pytest.raises(ValueError, match="GiB"):
        saddles.check_size(10**6, 3 * 10**6, 2)
