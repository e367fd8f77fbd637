"""A study's cyclic batch sizes taken from another study's bmin/bmax (seed 002: Q5 feeds Q6).

A study with `batch_cycle_from: {study: <batch sweep>, threshold_pct: 3.5}` trains with
`batch_schedule: cyclic` over bmin, 2 bmin, ..., bmax, where bmin/bmax come from
sweepbench.rules.detect_bmin_bmax on the named study's final training accuracies (mean over
its seeds that did not diverge, per effective batch size). The workflow's train job of such a
study waits for that study's runs and `train-pack --cycle-from-plan` writes the cycle into the
run specs before training, so run.json records the cycle actually trained. With `smoke: true`
the configured `batch_cycle` is kept: tiny data have no meaningful bmin/bmax.
"""

from __future__ import annotations

import math
import os

from sweepbench import SweepbenchError
from sweepbench.record import BrokenRecord, load_planned_record
from sweepbench.rules import detect_bmin_bmax

DEFAULT_THRESHOLD_PCT = 3.5
DERIVED_KEYS = ("batch_size", "batch_cycle")  # what `apply` sets in a job's specs when it trains


def cycle(bmin: int, bmax: int) -> list[int]:
    """bmin, 2 bmin, 4 bmin, ... up to bmax (the seed's In [107] schedule)."""
    out = [int(bmin)]
    while out[-1] * 2 <= bmax:
        out.append(out[-1] * 2)
    return out


def check(name: str, study: dict, selected: list, config: dict) -> None:
    """Config errors of `batch_cycle_from`, before any job runs."""
    source = (study.get("batch_cycle_from") or {}).get("study")
    if source is None:
        return
    if source not in config["studies"] or source == name:
        raise SweepbenchError(f"config error in study {name!r}, key batch_cycle_from.study: {source!r} is not "
                              f"another study of this config; "
                              f"allowed: {', '.join(s for s in config['studies'] if s != name)}")
    if source not in selected:
        raise SweepbenchError(f"config error in study {name!r}, key batch_cycle_from.study: {source!r} is not "
                              f"selected to run; add it to `run`")
    grid_rows = [config["studies"][source].get("grid") or {}] + list(config["studies"][source].get("rows") or [])
    if not any("batch_size" in g for g in grid_rows):
        raise SweepbenchError(f"config error in study {name!r}, key batch_cycle_from.study: {source!r} has no "
                              f"batch_size axis to detect bmin/bmax from")
    if (study.get("fixed") or {}).get("batch_schedule") != "cyclic":
        raise SweepbenchError(f"config error in study {name!r}, key batch_cycle_from: "
                              f"needs fixed.batch_schedule: cyclic")


def derived_keys(the_plan: dict, cell_id: str) -> tuple[str, ...]:
    """The spec keys a cell's runs get only when they train (record.spec_mismatch skips them): the
    batch cycle of a job with batch_cycle_from, derived from another study's records."""
    job = the_plan.get("jobs", {}).get(the_plan["cells"][cell_id].get("job")) or {}  # tests' plans may have none
    return DERIVED_KEYS if job.get("batch_cycle_from") and not the_plan.get("smoke") else ()


def source_runs(the_plan: dict, job: dict) -> list[tuple[dict, tuple]]:
    """The planned runs ({id, seed, spec}) of the study a job's batch cycle comes from, each with its
    derived keys (derived_keys); empty when it has none."""
    source = (job.get("batch_cycle_from") or {}).get("study")
    if not source:
        return []
    return [(run, derived_keys(the_plan, cell)) for cell in the_plan["studies"][source]["cells"]
            for run in the_plan["cells"][cell]["runs"]]


def accuracy_by_batch(runs_dir: str, runs: list[tuple[dict, tuple]]) -> tuple[list[int], list[float]]:
    """Mean final training accuracy per effective batch size over planned runs that did not
    diverge (NaN where every seed diverged), from the runs' run.json (each of its planned spec)."""
    by_batch: dict[int, list[float]] = {}
    for run, derived in runs:
        try:
            rec = load_planned_record(os.path.join(runs_dir, run["id"]), run["spec"], derived)
        except BrokenRecord as err:
            raise SweepbenchError(f"cannot read bmin/bmax input: {err}") from None
        batch = int(rec.spec["batch_size"]) * int(rec.spec["accum_steps"])
        acc = rec.final["train_accuracy"]
        ok = rec.status != "diverged" and acc is not None and math.isfinite(acc)
        by_batch.setdefault(batch, []).append(acc if ok else math.nan)
    sizes = sorted(by_batch)
    means = []
    for b in sizes:
        finite = [a for a in by_batch[b] if math.isfinite(a)]
        means.append(sum(finite) / len(finite) if finite else math.nan)
    return sizes, means


def apply(the_plan: dict, job_id: str, runs_dir: str) -> list[dict]:
    """The job's runs, with batch_size = bmin and batch_cycle = bmin..bmax where the study asks."""
    job = the_plan["jobs"][job_id]
    spec_from = job.get("batch_cycle_from")
    if not spec_from or the_plan["smoke"]:
        return job["runs"]
    threshold = float(spec_from.get("threshold_pct", DEFAULT_THRESHOLD_PCT))
    sizes, accs = accuracy_by_batch(runs_dir, source_runs(the_plan, job))
    bmin, bmax = detect_bmin_bmax(sizes, accs, threshold)
    if bmin is None:
        raise SweepbenchError(f"study {job['study']!r}: no batch-size step of study {spec_from['study']!r} loses less "
                              f"than {threshold}% training accuracy, so there is no bmin/bmax range to cycle over; "
                              f"allowed: a larger threshold_pct, or a fixed batch_cycle")
    batches = cycle(bmin, bmax)
    return [{**r, "spec": {**r["spec"], "batch_size": batches[0], "batch_cycle": batches}} for r in job["runs"]]
