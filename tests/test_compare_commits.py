"""benchmarks/compare_commits.py on a small git repository of its own: each side runs its own
scripts against its own package, a slowdown shows as a ratio, one-sided and failing scripts are
named, --max-ratio sets the exit status, bad revisions are one-line errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_commits.py"
#: A benchmark that burns linrank.WORK x 0.1 s of CPU time (imports the side's own linrank).
BENCH = """import time
import linrank
t0 = time.process_time()
while time.process_time() - t0 < 0.1 * linrank.WORK:
    pass
print("done")
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Commit A: WORK = 1, bench_work and bench_broken (fine); commit B: WORK = 8 (the package
    moved into a subpackage, as a restructure does), bench_broken fails, bench_new added."""
    root = tmp_path_factory.mktemp("repo")
    (root / "benchmarks").mkdir()
    (root / "linrank").mkdir()
    shutil.copy(TOOL, root / "benchmarks" / "compare_commits.py")
    (root / "linrank" / "__init__.py").write_text("WORK = 1\n")
    (root / "benchmarks" / "bench_work.py").write_text(BENCH)
    (root / "benchmarks" / "bench_broken.py").write_text("print('ok')\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "A")
    a = _git(root, "rev-parse", "--short", "HEAD")
    (root / "linrank" / "core").mkdir()
    (root / "linrank" / "core" / "__init__.py").write_text("WORK = 8\n")
    (root / "linrank" / "__init__.py").write_text("from .core import WORK\n")
    (root / "benchmarks" / "bench_broken.py").write_text("raise SystemExit('broken on B')\n")
    (root / "benchmarks" / "bench_new.py").write_text("print('new')\n")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "B")
    return root, a, _git(root, "rev-parse", "--short", "HEAD")


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "benchmarks" / "compare_commits.py"), *args],
                          cwd=root, capture_output=True, text=True, timeout=300, check=False)


def _ratio(out: str, name: str) -> float:
    row = next(ln for ln in out.splitlines() if ln.startswith(f"| {name} "))
    return float(re.split(r"\s*\|\s*", row)[4].split()[0])


def test_slowdown_is_measured_and_reported(repo):
    root, a, b = repo
    proc = _run(root, a, b, "--rounds", "2", "--max-ratio", "1.5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"BASE {a}, HEAD {b}" in out
    assert 2.0 < _ratio(out, "bench_work.py") < 10.0  # 0.8 s against 0.1 s of CPU + start-up
    assert "| bench_broken.py | failed at " + b in out and "broken on B" in out
    assert f"bench_new.py: only at {b}; left out" in out
    assert "exceeds 1.5" in out


def test_a_commit_against_itself_is_near_one(repo):
    root, a, _ = repo
    proc = _run(root, a, a, "--rounds", "2", "--only", "work", "--max-ratio", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 0.5 < _ratio(proc.stdout, "bench_work.py") < 2.0


def test_the_checkout_as_head(repo):
    """'.' is the working tree itself, uncommitted edits included."""
    root, a, _ = repo
    proc = _run(root, a, ".", "--rounds", "1", "--only", "work")
    assert proc.returncode == 0, proc.stderr
    assert "HEAD checkout (" in proc.stdout and _ratio(proc.stdout, "bench_work.py") > 2.0


@pytest.mark.parametrize("args, message", [
    (("nosuchrev", "."), "base 'nosuchrev': not a commit"),
    (("HEAD", ".", "--only", "nosuch"), "no such benchmark: bench_nosuch.py"),
    (("HEAD", ".", "--rounds", "0"), "--rounds must be at least 1"),
])
def test_bad_input_is_one_line(repo, args, message):
    proc = _run(repo[0], *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_terminated_run_leaves_nothing(repo, tmp_path):
    """SIGTERM during a benchmark ends it and removes the exported trees."""
    import os
    import signal
    import time

    root, a, b = repo
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, str(root / "benchmarks" / "compare_commits.py"), a, b,
                             "--only", "work", "--rounds", "50"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("linrank-compare-*/head/benchmarks")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "terminated" in err
    assert list(tmp_path.iterdir()) == []
