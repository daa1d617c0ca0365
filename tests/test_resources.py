"""Sizes refused before work; worker processes that end with their parent (also on SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from linrank.experiments.shared.resources import check_memory, physical_memory

linux = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")

SLOW_GRID = """
[sweep]
seeds = 4
tol = 1e-9
[[grid]]
start = ["gaussian", "paper"]
depth = [4, 5]
d = 30
rank = 3
"""


def test_check_memory():
    mem = physical_memory()
    assert mem is None or mem > 2**20
    check_memory(2**20, "a small thing")
    if mem is not None:
        with pytest.raises(ValueError, match=r"^a huge thing needs about .* GiB, more than half"):
            check_memory(mem, "a huge thing")


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as fh:
                out |= {int(x) for x in fh.read().split()}
    except OSError:
        pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@linux
@pytest.mark.parametrize("command", ["sweep", "reproduce"])
def test_workers_end_when_the_command_is_sigkilled(tmp_path, command):
    """Before: a SIGKILLed sweep or reproduction left its worker processes running, holding its
    output pipes."""
    grid = tmp_path / "g.toml"
    grid.write_text(SLOW_GRID)
    args = (["sweep", "--grid", str(grid)] if command == "sweep" else ["reproduce", "--quick"])
    proc = subprocess.Popen([sys.executable, "-m", "linrank.cli", *args, "--jobs", "2",
                             "--quiet", "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _children(proc.pid)
            if len(workers) >= 3:  # two workers and the resource tracker: kill at once,
                break  # perhaps while the workers still start up
            time.sleep(0.1)
        assert proc.poll() is None and len(workers) >= 2, "no workers seen"
    finally:
        proc.kill()
        proc.wait()
    end = time.monotonic() + 10.0  # a worker still importing checks at its start
    while time.monotonic() < end and any(_alive(p) for p in workers):
        time.sleep(0.1)
    alive = [p for p in workers if _alive(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, f"worker processes {alive} outlived their SIGKILLed parent by 10 s"


def test_watchdog_is_a_no_op_in_the_parent():
    from linrank.experiments.shared.resources import watch_parent

    watch_parent(None)
    watch_parent(os.getpid())  # the parent itself (jobs = 1 runs in this process)
    time.sleep(0.3)  # still alive


# ---------------------------------------------------------------------- sizes refused before work
def _one_line_exit_2(capsys, argv, match):
    from linrank.cli import main

    t0 = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage line, then the error line
        code = exc.code
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and match in err[-1], err
    assert err[-1].startswith(f"linrank {argv[0]}: error: ")
    assert elapsed < 20  # refused up front, not after the work (10^9 runs took 42 s to fail)
    return err[-1]


@pytest.mark.parametrize("grid,match", [
    ("[sweep]\nseeds = 1000000000\n[[grid]]\nd = 4\n", "1,000,000,000 runs"),
    ("[[grid]]\ndepth = [2, 3, 4, 5]\nd = [4, 5, 6, 7, 8]\nrank = [1, 2]\n"
     "tol = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10]\n"
     "[sweep]\nseeds = 100000\n", "400 cells x 100,000 seeds"),
    ('[[grid]]\nstart = [["paper"]]\n', "start must be a string or a list of strings"),
    ("[[grid]]\ndata = {a = 1}\n", "data must be a string"),
    ("[[grid]]\nd = 1000000\n", "needs about"),
    ("[[grid]]\ndepth = 1000000000\n", "depth = 1000000000, hidden = 2 needs about"),
])
def test_sweep_sizes_and_types_refused_in_one_line(tmp_path, capsys, grid, match):
    path = tmp_path / "g.toml"
    path.write_text(grid)
    _one_line_exit_2(capsys, ["sweep", "--grid", str(path), "--out", str(tmp_path / "o")], match)
    assert not (tmp_path / "o").exists()


def test_grid_limit_is_stated_and_overridable(tmp_path):
    from linrank.experiments.sweep.grid import MAX_GRID_RUNS, GridError, load_grid

    assert MAX_GRID_RUNS == 1_000_000
    text = "[sweep]\nseeds = 30\n[[grid]]\nd = 4\ndepth = [2, 3]\n"
    with pytest.raises(GridError, match="more than the limit of 50"):
        load_grid(text, max_runs=50)
    assert len(load_grid(text, max_runs=60).runs) == 60
    assert len(load_grid(text, max_runs=None).runs) == 60
    from linrank.experiments.sweep.app import sweep

    with pytest.raises(GridError, match="limit of 10"):
        sweep(text, tmp_path / "o", n_jobs=1, progress=False, grid_limit=10)


def test_reproduce_seed_range_refused_before_expanding(capsys):
    """Before: --seeds 0-100000000000000 raised MemoryError with a traceback."""
    _one_line_exit_2(capsys, ["reproduce", "--seeds", "0-100000000000000"],
                     "expected 1 to 1000 non-negative seeds")
    from linrank.experiments.reproduce.app import reproduce

    with pytest.raises(ValueError, match="at most 1000 seeds"):
        reproduce("unused", seeds=range(10**14))


@pytest.mark.parametrize("command", ["reproduce", "sweep"])
def test_jobs_beyond_the_machine_refused(capsys, command):
    from linrank.commands import max_jobs

    extra = ["--grid", "g.toml", "--out", "o"] if command == "sweep" else []
    _one_line_exit_2(capsys, [command, *extra, "--jobs", str(max_jobs() + 1)],
                     "worker processes (4 per CPU)")


def test_compare_depths_whose_layers_do_not_fit_refused(tmp_path, capsys):
    """Before: --depths 1000000000 built a 10^9-layer network for layer-gd."""
    msg = _one_line_exit_2(capsys, ["compare", "--quick", "--quiet", "--out",
                                    str(tmp_path / "c"), "--depths", "2,1000000000"],
                           "layer-gd at depth 1000000000")
    assert "leave layer-gd out" in msg and not (tmp_path / "c").exists()


def test_saddles_points_that_do_not_fit_refused(capsys):
    _one_line_exit_2(capsys, ["saddles", "--d", "60", "--k", "30", "--max-points",
                              "1000000000"], "1,000,000,000 critical points needs about")
