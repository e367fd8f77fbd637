"""A workflow job: train a pack of runs in one process (imports and data loading paid once),
resuming where an earlier attempt stopped, and write the job's manifest when every run is done.

Each run's record is kept across attempts: a run whose folder already holds a complete record
(sweepbench.record.load_record) of the same spec, trained by the same training code
(provenance.code_version), is not trained again. So after a crash, a kill or a full disk,
re-running the job trains only the runs that are missing. The manifest (the job's declared
output in the workflow) is written atomically only after every run has a complete record, so a
job counts as done exactly when all its runs are.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass

from sweepbench import SweepbenchError, atomic
from sweepbench.plan import user_inputs
from sweepbench.plan.stacks import check_stackable
from sweepbench.provenance import code_version
from sweepbench.record import BrokenRecord, load_record
from sweepbench.spec import validate


@dataclass
class PackOptions:
    """How the scheduler runs the job (recorded in run.json `placement`) and how it trains."""

    out: str                       # the job folder; each run goes to <out>/<dir>
    threads: int = 0
    gpu_slots: int | None = None
    exclusive: bool | None = None
    quiet: bool = False
    task: object = None            # a SLURM task (sweepbench.train.distributed.Task): each run is one of its ranks


def read_runs(path: str) -> list[dict]:
    """The job's runs (the workflow's results/specs/<job>.json): [{"dir", "seed", "spec", "stack"}];
    runs with the same stack id (sweepbench.plan.stacks) train as one stacked model."""
    try:
        with open(path) as f:
            runs = json.load(f)
    except OSError as err:
        raise SweepbenchError(f"cannot read runs file {path!r}: {err.strerror}") from None
    except ValueError as err:
        raise SweepbenchError(f"runs file {path!r} is not valid JSON ({err})") from None
    if not isinstance(runs, list) or not all(isinstance(r, dict) and "spec" in r for r in runs):
        raise SweepbenchError(f"runs file {path!r}: allowed: a JSON list of {{dir, seed, spec}}")
    return runs


def run_progress(first: int, last: int, total: int) -> str:
    """A job log's progress label, "run 37/120" (or "runs 37-39/120" for runs trained together);
    `sweepbench status` shows the last one of each running job."""
    return f"run {first}/{total}" if first == last else f"runs {first}-{last}/{total}"


_OF_SPEC = object()  # outdated's default: the user inputs of the spec, read now


def outdated(rec, spec: dict, inputs=_OF_SPEC) -> str | None:
    """Why a complete record of this spec would be trained again by its job, or None: it was trained
    by other training code (provenance.code_version) or on other user inputs (sweepbench.plan.
    user_inputs: the user's workload file and local data; `inputs` = user_inputs.of(spec) when the
    caller has it). The one rule of "trained by what runs now": the job's resume (is_done) and
    `sweepbench status` (which counts such a record as outdated, not done) both ask it."""
    if rec.provenance.get("code_version") != code_version():
        return "trained by other training code (provenance.code_version)"
    if rec.provenance.get("user_inputs") != (user_inputs.of(spec) if inputs is _OF_SPEC else inputs):
        return "trained on another version of its workload file or local data (provenance.user_inputs)"
    return None


def is_done(run_dir: str, spec: dict) -> bool:
    """A complete record of exactly this spec, not outdated (trained by the current training code on
    the same user inputs)."""
    try:
        rec = load_record(run_dir)
    except BrokenRecord:
        return False
    return rec.spec == spec and outdated(rec, spec) is None


def train_pack(runs: list[dict], opts: PackOptions, manifest: str | None = None) -> dict:
    """Train the runs that are not done yet (a stack's runs at once), print a progress line per
    run, then write the manifest. Returns the manifest's content.

    As one of a job's SLURM tasks (opts.task) every task trains every data-parallel run as its rank;
    only rank 0 prints progress, writes the records and the manifest."""
    task = opts.task
    if task is not None and task.rank:
        opts.quiet = True
    for run in runs:
        validate(run["spec"])
        if opts.threads:
            run["spec"] = dict(run["spec"], threads=opts.threads)
        run["out"] = os.path.join(opts.out, run.get("dir", f"seed~{run['seed']}"))
    todo = [r for r in runs if not is_done(r["out"], r["spec"])]
    groups = stack_groups(todo)
    for group in groups:
        if len(group) > 1:
            check_stackable([r["spec"] for r in group])  # every stack before any training
    done = len(runs) - len(todo)
    say = print if task is None or task.rank == 0 else (lambda *a, **k: None)
    if done:
        say(f"{done} of {len(runs)} runs already have a complete record of the same spec and code; kept",
              flush=True)
    ready = None
    for group in groups:
        label = run_progress(done + 1, done + len(group), len(runs))
        say(f"{label} started: {', '.join(r['out'] for r in group)}", flush=True)
        done += len(group)
        for run, result in zip(group, _train_group(group, opts, ready, index=done)):
            say(f"{label} {run['out']}: {result['status']} ({result['stop_reason']})", flush=True)
        ready = time.perf_counter()
    content = {"code_version": code_version(), "runs": [{"dir": r["out"], "seed": r.get("seed")} for r in runs],
               "trained": len(todo), "kept": len(runs) - len(todo)}
    if task is not None:
        if task.rank:
            return content  # rank 0 writes the manifest
        shutil.rmtree(task.store, ignore_errors=True)  # every rank has left every run's process group
    if manifest:
        atomic.write_file(manifest, json.dumps(content, indent=1) + "\n")
    return content


def stack_groups(runs: list[dict]) -> list[list[dict]]:
    """The runs grouped by their stack id, in the order each stack first appears; a run without
    one (or the only run of its stack still to train) is a group of its own."""
    groups: dict = {}
    for i, run in enumerate(runs):
        groups.setdefault(run.get("stack") or i, []).append(run)
    return list(groups.values())


def _train_group(group: list[dict], opts: PackOptions, ready: float | None, index: int = 0) -> list[dict]:
    placement = {"scheduler": "train-pack", "exclusive": opts.exclusive, "gpu_slots": opts.gpu_slots,
                 "threads": opts.threads or None}
    if opts.task is not None:  # data-parallel runs never stack (sweepbench.plan.stacks): a group is one run
        from sweepbench.train import distributed, engine

        (run,) = group
        job = engine.Job([run["out"]], ready, placement, opts.quiet)
        result = distributed.train_task(run["spec"], job, opts.task, index)
        return [result or {"status": None, "stop_reason": None}]
    if len(group) > 1:
        from sweepbench.train import stacked

        return stacked.train_stack([r["spec"] for r in group], [r["out"] for r in group], quiet=opts.quiet,
                                   ready_since=ready, placement=placement, stack=group[0]["stack"])
    from sweepbench.train import engine

    run = group[0]
    return [engine.train(run["spec"], run["out"], quiet=opts.quiet, ready_since=ready, placement=placement)]
