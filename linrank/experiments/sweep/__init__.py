"""Thousands of flow runs over a grid, locally or on a Dask cluster (``linrank sweep``).

* :mod:`~linrank.experiments.sweep.grid` -- the grid file (:func:`load_grid`) and its runs;
* :mod:`~linrank.experiments.sweep.run` -- one run (data, start, flow) and its CSV row;
* :mod:`~linrank.experiments.sweep.report` -- report.md, cells.csv and figures
  (:func:`write_report`);
* :func:`sweep`, :func:`rerun` (:mod:`~linrank.experiments.sweep.app`) -- run a grid into a
  directory, resumably; recompute one row.
"""

from __future__ import annotations

from .app import (
    FILE_COLUMNS,
    OUT_FILES,
    RerunResult,
    SweepError,
    SweepResult,
    read_rows,
    rerun,
    row_check,
    sweep,
)
from .grid import Grid, GridError, load_grid
from .report import write_report

__all__ = ["SweepError", "SweepResult", "RerunResult", "sweep", "rerun", "read_rows", "OUT_FILES",
           "FILE_COLUMNS", "row_check", "Grid", "GridError", "load_grid", "write_report"]
