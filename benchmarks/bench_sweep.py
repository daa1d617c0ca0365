"""Benchmark of `linrank sweep` (issue 14): throughput, scheduler overhead, cost split.

Usage: .venv/bin/python benchmarks/bench_sweep.py [--runs R] [--skip-dask]

Grid: d = 20, r = 3, N = 3, autoencoder, balanced starts inside (47) (manifold flow) and Gaussian
starts (layer-wise flow), R/2 seeds each, tol 1e-4, rtol 1e-6, atol 1e-10.

1. Runs per second: the whole sweep (R runs, CSV streaming included) on 2 local processes
   (joblib/loky) and on a dask.distributed LocalCluster with 2 worker processes of 1 thread
   (cluster start-up excluded, reported separately).
2. Scheduler overhead per task: the same Parallel call on R no-op tasks, loky and Dask.
3. Cost split of one run (from the rows): flow (integration) vs bookkeeping (data, landscape,
   start, saddle identification) vs I/O (one CSV row appended, flushed and fsync'ed).
Prints a Markdown report with the machine's load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time

import numpy as np

try:
    from linrank.experiments.sweep.app import FILE_COLUMNS, read_rows, sweep
except ModuleNotFoundError:  # before the experiments became packages (to time both layouts)
    from linrank.experiments.sweep import FILE_COLUMNS, read_rows, sweep  # type: ignore

GRID = """
[sweep]
seeds = {seeds}
tol = 1e-4
rtol = 1e-6
atol = 1e-10
[[grid]]
start = ["balanced_inside", "gaussian"]
d = 20
rank = 3
depth = 3
"""


def _noop(i: int) -> int:
    return i


def task_overhead(n: int, client=None) -> float:
    from joblib import Parallel, delayed, parallel_config

    backend = "dask" if client is not None else "loky"
    with parallel_config(backend=backend):
        jobs = -1 if client is not None else 2
        Parallel(n_jobs=jobs)(delayed(_noop)(i) for i in range(4))  # warm the workers
        t = time.perf_counter()
        list(Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)(
            delayed(_noop)(i) for i in range(n)))
        return (time.perf_counter() - t) / n


def io_per_row(rows: list[dict], path: str) -> float:
    t = time.perf_counter()
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FILE_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)
            fh.flush()
            os.fsync(fh.fileno())
    return (time.perf_counter() - t) / len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--skip-dask", action="store_true")
    a = ap.parse_args()
    grid = GRID.format(seeds=max(1, a.runs // 2))
    print(f"# bench_sweep: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start\n")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = sweep(grid, os.path.join(tmp, "local"), n_jobs=2, progress=False)
        t_local = time.perf_counter() - t
        rows = read_rows(os.path.join(tmp, "local"))
        n = len(rows)
        wall = np.array([float(r["wall_s"]) for r in rows])
        cpu = np.array([float(r["cpu_s"]) for r in rows])
        flow = np.array([float(r["flow_s"]) for r in rows])
        book = np.array([float(r["book_s"]) for r in rows])
        io = io_per_row(rows, os.path.join(tmp, "io.csv"))
        print(f"## 1. Throughput ({n} runs, d = 20, r = 3, N = 3; {dict(res.counts)})\n")
        print("| executor | wall (s) | runs/s | overhead per run (2 x wall - sum of run times) / n |")
        print("| --- | --- | --- | --- |")
        print(f"| joblib loky, 2 processes | {t_local:.2f} | {n / t_local:.2f} | "
              f"{(2 * t_local - wall.sum()) / n * 1e3:.1f} ms |")
        o_loky = task_overhead(200)
        o_dask = None
        if not a.skip_dask:
            from distributed import Client, LocalCluster

            t = time.perf_counter()
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cl, Client(cl) as client:
                t_up = time.perf_counter() - t
                t = time.perf_counter()
                sweep(grid, os.path.join(tmp, "dask"), scheduler=client, progress=False)
                t_dask = time.perf_counter() - t
                rows_d = read_rows(os.path.join(tmp, "dask"))
                wall_d = np.array([float(r["wall_s"]) for r in rows_d])
                same = all(
                    {k: v for k, v in x.items() if not k.endswith("_s")}
                    == {k: v for k, v in y.items() if not k.endswith("_s")}
                    for x, y in zip(rows, rows_d))
                o_dask = task_overhead(200, client)
            print(f"| dask LocalCluster, 2 workers x 1 thread | {t_dask:.2f} | "
                  f"{n / t_dask:.2f} | {(2 * t_dask - wall_d.sum()) / n * 1e3:.1f} ms |")
            print(f"\nCluster start-up (not in the wall times): {t_up:.1f} s. Rows identical to "
                  f"the local sweep (non-timing columns): {same}.")
        print("\n## 2. Scheduler overhead per task (200 no-op tasks, streamed unordered)\n")
        print(f"loky: {o_loky * 1e3:.2f} ms/task" + (
            f"; dask: {o_dask * 1e3:.2f} ms/task" if o_dask is not None else ""))
        print("\n## 3. Cost of one run (local sweep rows)\n")
        print("| part | mean per run | share |")
        print("| --- | --- | --- |")
        tot = flow.mean() + book.mean() + io
        print(f"| flow (integration) | {flow.mean() * 1e3:.1f} ms | {flow.mean() / tot:.1%} |")
        print(f"| bookkeeping (data, landscape, start, saddles) | {book.mean() * 1e3:.1f} ms | "
              f"{book.mean() / tot:.1%} |")
        print(f"| I/O (append, flush, fsync one row) | {io * 1e3:.2f} ms | {io / tot:.1%} |")
        print(f"\nCPU time per run {cpu.mean() * 1e3:.0f} ms against wall {wall.mean() * 1e3:.0f}"
              f" ms (wall > CPU: the runs waited for a core). Load average at the end "
              f"{os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
