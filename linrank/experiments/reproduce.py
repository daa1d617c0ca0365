"""One call for the whole reproduction: runs, figures, summary.json, details.json, report.md."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .paper import (
    RunRecord,
    Settings,
    default_specs,
    euler_comparison,
    manifold_comparison,
    perturbation_specs,
    run_all,
    saddle_table,
)

__all__ = ["ReproductionResult", "reproduce"]


@dataclass
class ReproductionResult:
    """What :func:`reproduce` wrote and found."""

    out_dir: str
    records: list[RunRecord]
    perturbed: list[RunRecord]
    summary: dict
    verdicts: list
    figures: list[str]
    elapsed: float

    @property
    def ok(self) -> bool:
        """True when no verdict is "not confirmed" (a refuted paper claim is an expected one)."""
        return all(v.status != "not confirmed" for v in self.verdicts)


def reproduce(out_dir: str, seed: int = 0, quick: bool = False, progress: bool = True,
              use_cache: bool = True) -> ReproductionResult:
    """Redo Section 7 into ``out_dir``: fig1.png..fig4.png, summary.json, details.json, report.md.

    Parameters
    ----------
    out_dir : output directory (created). Finished runs are kept in ``out_dir/.runs`` and reused
        by a later call with the same seed and settings (an interrupted reproduction resumes);
        ``use_cache=False`` recomputes everything.
    seed : integer seed of the data and the starts; the results are a deterministic function of
        it (and of the machine's floating-point arithmetic for the escape times of Figure 4).
    quick : the smaller :meth:`Settings.quick_settings` (the tests use it).
    progress : a tqdm bar over the runs (on stderr).
    """
    from tqdm.auto import tqdm

    from .figures import all_figures
    from .report import write_report, write_summary

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    t0 = time.perf_counter()
    settings = Settings.quick_settings() if quick else Settings()
    os.makedirs(out_dir, exist_ok=True)
    cache = os.path.join(out_dir, ".runs") if use_cache else None
    specs = default_specs(settings)
    pspecs = perturbation_specs(settings)
    bar = tqdm(total=len(specs) + len(pspecs) + 4, desc="reproduce", unit="task",
               disable=not progress)

    def step(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    try:
        records = run_all(specs, settings, seed, cache, step)
        perturbed = run_all(pspecs, settings, seed, cache, step)
        details = {"euler": euler_comparison(settings, seed)}
        step("Euler against RK45")
        details["manifold"] = manifold_comparison(settings, seed)
        step("factor flow against manifold flow")
        details["saddles"] = saddle_table(settings, seed)
        step("strict-saddle table")
        figures = all_figures(records, out_dir, perturbed)
        summary = write_summary(records, os.path.join(out_dir, "summary.json"))
        elapsed = time.perf_counter() - t0
        verdicts = write_report(os.path.join(out_dir, "report.md"), records, perturbed, details,
                                settings, seed, figures, elapsed)
        step("figures and report")
    finally:
        bar.close()
    return ReproductionResult(out_dir, records, perturbed, summary, verdicts, figures,
                              time.perf_counter() - t0)
