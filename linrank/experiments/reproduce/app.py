"""One call for the whole reproduction: runs over seeds, figures, summary.json, details.json,
report.md, all written atomically into an output directory owned and locked by linrank."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..shared.outputs import CACHE, OutputDir, OutputError
from .driver import run_tasks
from .paper import RunRecord, Settings
from .plan import default_specs, eta_specs, perturbation_specs
from .verdicts import Verdict, verdicts

__all__ = ["ReproductionResult", "reproduce", "OUTPUT_FILES", "MAX_SEEDS"]

OUTPUT_FILES = ["fig1.png", "fig2.png", "fig3.png", "fig4.png", "fig5.png", "fig6.png",
                "summary.json", "details.json", "report.md"]


@dataclass
class ReproductionResult:
    """What :func:`reproduce` wrote and found."""

    out_dir: str
    records: list[RunRecord]
    perturbed: list[RunRecord]
    summary: dict
    verdicts: list[Verdict]
    per_seed: dict[int, list[Verdict]]
    figures: list[str]
    elapsed: float
    cpu: float

    @property
    def ok(self) -> bool:
        """True when no verdict is "not confirmed" (a refuted paper claim is an expected one)."""
        return all(v.status != "not confirmed" for v in self.verdicts)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


#: the most seeds one reproduction takes (each seed is about 70 runs)
MAX_SEEDS = 1000


def _seeds(seeds: Sequence[int]) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__"):
        raise TypeError(f"seeds must be a sequence of non-negative integers, got {seeds!r}")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"at most {MAX_SEEDS} seeds, got {len(seeds):,}")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"seeds must be non-negative integers, got {s!r}")
        if s not in out:
            out.append(s)
    if not out:
        raise ValueError("at least one seed is needed")
    return out


def _refuse_quick_over_full(out: OutputDir) -> None:
    """A --quick run never replaces a full reproduction (its summary.json says quick: false)."""
    import json

    path = os.path.join(out.path, "summary.json")
    try:
        with open(path) as fh:
            full = json.load(fh).get("quick") is False
    except (OSError, ValueError, AttributeError):
        return
    if full:
        raise OutputError(f"{out.shown} holds a full reproduction; --quick would replace it: "
                          "choose another --out (the default for --quick is results-quick) or "
                          "pass --overwrite")


def reproduce(out_dir: str, seeds: Sequence[int] = (0, 1, 2, 3, 4), quick: bool = False,
              progress: bool = True, use_cache: bool = True, jobs: int = 2,
              overwrite: bool = False,
              notice: Callable[[str], None] | None = None) -> ReproductionResult:
    """Redo Section 7 into ``out_dir``: fig1.png..fig6.png, summary.json, details.json, report.md.

    Parameters
    ----------
    out_dir : output directory (created; its parent must exist). It is locked while this runs,
        and a file in it is replaced only if linrank wrote it (``overwrite=True`` overrides);
        a ``quick`` run refuses a directory holding a full reproduction (unless ``overwrite``).
        Finished runs are kept in ``out_dir/.runs`` and reused by a later call with the same
        seed and settings (an interrupted reproduction resumes; a damaged cache file is
        reported by name through ``notice`` and recomputed); ``use_cache=False`` recomputes.
    seeds : seeds of the data and the starts; every verdict is drawn over all of them and, in
        the report, for each alone. Figures show the first seed.
    quick : the smaller :meth:`Settings.quick_settings` (the tests use it).
    jobs : worker processes (1: in this process).
    progress : a tqdm bar over the tasks (on stderr).

    Ctrl-C stops at once (KeyboardInterrupt propagates); finished runs stay cached, nothing
    else is written.
    """
    from tqdm.auto import tqdm

    from .figures import all_figures
    from .report import details_text, report_text, summary_dict, summary_text

    seeds = _seeds(seeds)
    wall0, cpu0 = time.perf_counter(), _cpu()
    settings = Settings.quick_settings() if quick else Settings()
    note = notice or (lambda msg: print(f"linrank reproduce: {msg}", file=sys.stderr))
    with OutputDir(out_dir, overwrite=overwrite) as out:
        out.check_all(OUTPUT_FILES)
        if quick and not overwrite:
            _refuse_quick_over_full(out)
        cache = os.path.join(out.path, CACHE) if use_cache else None
        specs = default_specs(settings)
        pspecs = perturbation_specs(settings)
        tasks = [("run", s, seed) for seed in seeds for s in specs]
        tasks += [("run", s, seeds[0]) for s in eta_specs(settings)]  # the eta-scan: one seed
        tasks += [("run", s, seed) for seed in seeds for s in pspecs]
        tasks += [(kind, None, seed) for seed in seeds for kind in ("manifold", "saddles")]
        with tqdm(total=len(tasks), desc="reproduce", unit="task", disable=not progress) as bar:
            def step(label: str) -> None:
                bar.set_postfix_str(label[:60])
                bar.update(1)
            counts: dict = {}
            results = run_tasks(tasks, settings, cache, jobs, step, note, counts)
        n_main = len(specs) * len(seeds) + len(eta_specs(settings))
        n_pert = len(pspecs) * len(seeds)
        records = results[:n_main]
        perturbed = results[n_main:n_main + n_pert]
        side = results[n_main + n_pert:]
        details = {"manifold": side[0::2], "saddles": side[1::2]}
        vs = verdicts(records, perturbed, details)
        per_seed = {s: verdicts([r for r in records if r.seed == s],
                                [r for r in perturbed if r.seed == s],
                                {"manifold": [m for m in details["manifold"] if m["seed"] == s],
                                 "saddles": [t for t in details["saddles"] if t[0]["seed"] == s]})
                    for s in seeds}
        first = [r for r in records if r.seed == seeds[0]]
        figures = all_figures(first, out, [r for r in perturbed if r.seed == seeds[0]])
        summary = summary_dict(records, vs, seeds, quick)
        timing = {"wall_seconds": time.perf_counter() - wall0, "cpu_seconds": _cpu() - cpu0,
                  "jobs": jobs, "tasks_from_cache": counts["cached"],
                  "tasks_computed": counts["computed"]}
        out.write_text("summary.json", summary_text(summary))
        out.write_text("details.json", details_text(details, vs, settings, seeds, records,
                                                    perturbed, timing))
        out.write_text("report.md", report_text(records, perturbed, details, vs, per_seed,
                                                settings, seeds, figures, timing))
    return ReproductionResult(out.path, records, perturbed, summary, vs, per_seed, figures,
                              time.perf_counter() - wall0, _cpu() - cpu0)
