"""`linrank check`: the table, the exit status, and that a wrong operator is caught."""

import numpy as np
import pytest

from linrank import cli, verify
from linrank.manifold import DeepLinearFixedRank


def test_check_passes_and_prints_table(capsys):
    assert cli.main(["check", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "Prop. 9 quadrature" in out and "gradient (dense formula)" in out
    assert out.strip().splitlines()[-1].endswith("0 failed")


def test_check_fails_on_a_wrong_metric(monkeypatch, capsys):
    """A deliberately wrong A_W (side weights off by 1%) must make the command fail."""
    orig = DeepLinearFixedRank.weights

    def wrong(self, point):
        w, p = orig(self, point)
        return w, p * 1.01

    monkeypatch.setattr(DeepLinearFixedRank, "weights", wrong)
    assert cli.main(["check", "--repeats", "1"]) == 1
    assert "NO" in capsys.readouterr().out


def test_check_bad_repeats():
    with pytest.raises(SystemExit):
        cli.main(["check", "--repeats", "0"])


def test_verify_rows_have_bounds():
    rows = verify.check_instance(5, 4, 2, 2, np.random.default_rng(0))
    assert {r.check for r in rows} == set(verify.BOUNDS)
    assert all(r.ok for r in rows)
