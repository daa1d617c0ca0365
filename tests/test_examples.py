"""Every example script runs and prints what its docstring promises.

Examples with a long full run honour LINRANK_EXAMPLES_QUICK=1 (a reduced run that writes no file
into the repository)."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path):
    proc = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "LINRANK_EXAMPLES_QUICK": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "an example must print its result"


def test_examples_exist():
    assert len(EXAMPLES) >= 3
