"""The CLI as one tool: the user guide lists every option of every subcommand (generated from the
parsers), one rule for --out parents, Ctrl-C tells how to resume, --quick never replaces a full
reproduction, saddles and the guide describe the same data."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from linrank.cli import build_parser, main
from linrank.devtools import cli_options

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "reproduction.rst"


def test_guide_lists_every_option_of_every_subcommand():
    """Before: README's option lists missed --seed, --quiet, --large-seeds."""
    assert cli_options.TARGET == GUIDE
    block = cli_options.generated_block(GUIDE.read_text(encoding="utf-8"))
    assert block is not None, "the guide has no generated option list"
    assert block == cli_options.options_rst(), (
        "the guide's option list differs from the parsers: run "
        "python -m linrank.devtools.cli_options --write")
    parser = build_parser()
    subs = cli_options._subparsers(parser)
    assert set(subs) >= {"check", "saddles", "reproduce", "compare", "sweep"}
    for name, sub in subs.items():
        assert f"* ``linrank {name}``" in block
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert all(f"``{opt}" in block for opt in action.option_strings[:1]), (name, action)
    for opt in ("--seed SEED", "--quiet", "--large-seeds"):
        assert opt in block


def test_cli_options_check_and_write(tmp_path):
    page = tmp_path / "page.rst"
    page.write_text(f"x\n=\n\n{cli_options.BEGIN}\nold\n{cli_options.END}\nafter\n")
    assert cli_options.main(["--check", "--target", str(page)]) == 1
    assert cli_options.main(["--write", "--target", str(page)]) == 0
    assert cli_options.main(["--check", "--target", str(page)]) == 0
    assert page.read_text().endswith(f"{cli_options.END}\nafter\n")
    assert f"{cli_options.BEGIN}\n\n* ``linrank check``" in page.read_text()
    assert cli_options.main(["--check", "--target", str(tmp_path / "page.rst")]) == 0
    (tmp_path / "none.rst").write_text("no block\n")
    assert cli_options.main(["--write", "--target", str(tmp_path / "none.rst")]) == 1
    assert (tmp_path / "none.rst").read_text() == "no block\n"


def test_generated_list_is_valid_restructuredtext():
    """The list renders as nested bullet lists, and markup characters in help texts stay text."""
    import docutils.core
    import docutils.utils

    source = f"{cli_options.BEGIN}\n\n{cli_options.options_rst()}{cli_options.END}\n\nafter\n"
    doctree = docutils.core.publish_doctree(
        source, settings_overrides={"report_level": docutils.utils.Reporter.WARNING_LEVEL,
                                    "halt_level": docutils.utils.Reporter.WARNING_LEVEL})
    text = doctree.astext()
    assert "||W(0)||_F of every start" in text  # search --scale: not a substitution, not a link
    items = doctree.findall(lambda n: n.tagname == "bullet_list")
    assert len(list(items)) == 1 + len(cli_options._subparsers(build_parser()))


@pytest.mark.parametrize("argv", [
    ["compare", "--quick", "--quiet", "--out"],
    ["sweep", "--grid", "GRID", "--out"],
    ["reproduce", "--quick", "--quiet", "--out"],
])
def test_out_parent_must_exist_for_every_command(tmp_path, capsys, argv):
    """Before: reproduce refused a missing parent, compare and sweep created it."""
    grid = tmp_path / "g.toml"
    grid.write_text("[[grid]]\nd = 4\n")
    argv = [str(grid) if a == "GRID" else a for a in argv]
    target = tmp_path / "missing" / "out"
    assert main([*argv, str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "the parent directory" in err and "does not exist" in err
    assert not (tmp_path / "missing").exists()


def test_saddles_output_parent_rule(tmp_path, capsys):
    assert main(["saddles", "--output", str(tmp_path / "missing" / "t.csv")]) == 2
    assert "parent directory" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("command", ["reproduce", "compare", "sweep"])
def test_ctrl_c_prints_the_exact_resume_command(tmp_path, capsys, monkeypatch, command):
    """Before: reproduce's Ctrl-C gave no resume hint."""
    from linrank.experiments.compare import app as cmp_mod
    from linrank.experiments.reproduce import driver
    from linrank.experiments.sweep import run as sweep_run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "_compute", interrupted)
    monkeypatch.setattr(cmp_mod, "run_solver", interrupted)
    monkeypatch.setattr(sweep_run, "run", interrupted)
    grid = tmp_path / "g.toml"
    grid.write_text("[[grid]]\nd = 4\n")
    out = str(tmp_path / "my out")
    argv = {"reproduce": ["reproduce", "--quick", "--quiet", "--jobs", "1", "--out", out],
            "compare": ["compare", "--quick", "--quiet", "--problems", "autoencoder:quick",
                        "--out", out],
            "sweep": ["sweep", "--grid", str(grid), "--jobs", "1", "--quiet", "--out", out]}
    assert main(argv[command]) == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"linrank {command}: interrupted; ")
    import shlex

    assert err.endswith("resume with: " + shlex.join(["linrank", *argv[command]]))
    assert main([*argv[command], "--no-cache"] if command != "sweep" else argv[command]) == 130
    if command != "sweep":
        assert "nothing was kept (--no-cache)" in capsys.readouterr().err


def test_quick_never_replaces_a_full_reproduction(tmp_path, capsys):
    """Before: reproduce --quick --out results silently replaced a full reproduction."""
    from linrank.experiments.shared.outputs import OutputDir

    out = tmp_path / "results"
    with OutputDir(str(out)) as od:  # what a full reproduction leaves (its summary says so)
        od.write_text("summary.json", json.dumps({"runs": [], "quick": False}))
    before = (out / "summary.json").read_text()
    assert main(["reproduce", "--quick", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a full reproduction; --quick would replace it" in err
    assert (out / "summary.json").read_text() == before
    assert sorted(os.listdir(out)) == [".linrank-lock", ".linrank-manifest.json", "summary.json"]
    from linrank.commands import reproduce as cmd

    ns = build_parser().parse_args(["reproduce", "--quick"])
    assert cmd._out(ns) == "results-quick"
    assert cmd._out(build_parser().parse_args(["reproduce"])) == "results"


def test_saddles_data_is_section_7_as_in_the_guide(capsys):
    """Before: saddles said "standard Gaussian" data, README "Section 7"."""
    import numpy as np

    assert main(["saddles", "--d", "5", "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "Section 7 data X: 5 x 15, N(0, 1/d) entries" in out
    assert "Section 7's data (X d x m with\n  i.i.d. N(0, 1/d) entries" in GUIDE.read_text()
    X = np.random.default_rng(0).standard_normal((5, 15)) / np.sqrt(5)
    lam = np.linalg.eigvalsh(X @ X.T)[::-1]
    loss = float(out.splitlines()[2].split()[2])  # J = {1, 2}: 1/2 sum of the other eigenvalues
    assert loss == pytest.approx(0.5 * lam[2:].sum(), rel=1e-5)
