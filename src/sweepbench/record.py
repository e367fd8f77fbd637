"""The run record: metrics.csv, steps.csv and run.json, written atomically.

This module is the contract every reader of a run folder relies on: the tables and
benchmarks (through load_record), the report (which reads metrics.csv and steps.csv directly
for its figures) and users' scripts. The regression check reads none of these files, only the
tables' runs.csv and a baseline's seeds.csv. Column meanings are documented here and copied
into the README.

metrics.csv, one row per evaluation (step 0 = before training):
    step            optimizer updates done
    epoch           epochs done (fractional when evaluating every eval_every steps)
    samples         training samples processed (micro-batches summed)
    wall_s          training time so far in seconds (evaluation, start-up and I/O excluded)
    eval_s          evaluation time so far in seconds
    lr              learning rate of the last update (of the first update at step 0)
    batch_size      nominal effective batch size of the current epoch (micro-batch x accum_steps;
                    steps.csv has each update's actual size, e.g. the shorter last batch)
    epoch_loss      mean mini-batch training loss since the previous evaluation (empty at step 0)
    train_loss, train_accuracy, val_loss, val_accuracy, test_loss, test_accuracy
                    on the whole split (or its first eval_max_samples) in eval mode; accuracy
                    empty for regression; when the
                    workload has no validation split (val_size=0) val_* equal test_*
    grad_noise_scale  B_simple estimate (only when the run sets gns=true)

steps.csv, one row per logged update (every k-th, evenly thinned to about steps_cap rows):
    step, epoch, lr, batch_size, loss (mini-batch training loss), step_time_s,
    and for two-parameter models the parameters after the update (w, b or w1, w2).

run.json top-level keys: schema_version, status (completed | converged | target_reached |
diverged), stop_reason, spec (resolved), workload, final (the last metrics.csv row's step, epoch,
samples, epoch_loss and metrics), best, to_target, convergence,
divergence, throughput, timing, memory, speed, placement, grad_noise_scale, best_model (with
save_best=true: the step and validation value of the best evaluation and the scores of those
weights re-loaded from model.pt, which then sits beside the three files), provenance
(sweepbench.train.environment.collect; `env_lock`, sweepbench.envlock.state, is absent in records
older than it: readers use .get or `in`).

    throughput  samples_per_s (the median over the run's timed blocks, sweepbench.rules.timing_blocks),
                samples_per_s_ci_lo / _ci_hi (its 95% interval, rules.median_interval; null with
                fewer than 6 blocks), block_samples_per_s (every block's throughput, in order: the
                repeats a check can test), step_time_median_s / _p10_s / _p90_s, warmup_steps,
                timed_steps, samples_per_s_wall (all samples over train_s)
    timing      train_s (training clock), eval_s, startup_s (process start, or the previous run
                of the pack, to the first step: imports, data load, model build), data_load_s,
                compile_s (torch.compile warm-up, excluded from train_s), total_s, steps, epochs
    speed       optimizer_impl (what `auto` resolved to: fused | foreach | for-loop),
                precision, channels_last, compile, compile_s, batched_runs (runs that trained
                at once as one stacked model, sweepbench.train.stacked; 1 alone) and stack (that
                stack's id, null alone)
    placement   scheduler ("train-pack" for workflow jobs, null for a hand-run `train`),
                exclusive (true: the job held every core and GPU slot, so no other sweepbench
                job shared its device; false: others may have; null: unknown), gpu_slots, threads
    distributed world_size (0: one process without DDP; N: DistributedDataParallel over N
                processes), backend (gloo | nccl), per_worker_batch (batch_size), global_batch
                (samples per update: world_size x batch_size x accum_steps); data-parallel runs
                also threads_per_rank, rank_step_time_median_s (each rank's), all_ranks_step_time_
                p50_s / _p90_s (over every rank's timed steps), timeout_s. Their `throughput` and
                steps.csv step_time_s are each step's slowest rank, timing.train_s the slowest
                rank's clock, and metrics.csv / steps.csv losses those of the whole global batch.
                Rank 0 alone writes the record. Older records lack the section (readers: .get).
"""


from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields

import numpy as np

from sweepbench import SweepbenchError, rules
from sweepbench.atomic import WRITTEN, TempFolder, cannot_write, foreign_files, list_written, owned_in

SCHEMA_VERSION = 3  # 2: speed.stack (the stack a run trained in), final.epoch_loss; 3: samples_per_s is the
#                    median block throughput, with its interval and the blocks (sweepbench.rules.timing_blocks)
SPLITS = ("train", "val", "test")
METRICS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("loss", "accuracy"))  # the evaluated metrics
METRIC_COLUMNS = ["step", "epoch", "samples", "wall_s", "eval_s", "lr", "batch_size", "epoch_loss", *METRICS]
TIME_COLUMNS = {"wall_s", "eval_s", "step_time_s"}
STEP_COLUMNS = ["step", "epoch", "lr", "batch_size", "loss", "step_time_s"]
STATUSES = ("completed", "converged", "target_reached", "diverged")
RECORD_FILES = ("metrics.csv", "steps.csv", "run.json")
OPTIONAL_FILES = ("model.pt",)  # beside the record with save_best=true


def csv_text(columns: list[str], rows: list[dict]) -> str:
    """A CSV file's text: a cell is empty for None, else str(), which for a float is Python's
    shortest round-trip repr ("nan" and "inf" for the non-finite ones)."""
    lines = [",".join(columns)]
    lines += [",".join("" if (v := row.get(c)) is None else str(v) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ---------------------------------------------------------------- building a record


@dataclass
class RunContext:
    """What the record says about a run besides its RunState (sweepbench.train.run_state): the
    workload section, timings other than the training and evaluation clocks, memory, speed
    options, placement, provenance, and the optional sections."""

    workload: dict
    timing: dict                 # startup_s, data_load_s, compile_s, total_s
    memory: dict
    speed: dict
    placement: dict
    provenance: dict
    grad_noise_scale: float | None = None
    best_model: dict | None = None
    distributed: dict | None = None
    step_columns: list = field(default_factory=lambda: list(STEP_COLUMNS))   # + trajectory parameters
    metric_columns: list = field(default_factory=lambda: list(METRIC_COLUMNS))  # + grad_noise_scale


def _best(rows: list[dict]) -> dict:
    best = {}
    for m in METRICS:
        values = [(r.get(m), r["step"]) for r in rows if r.get(m) is not None and math.isfinite(r[m])]
        pick = max if rules.higher_is_better(m) else min
        best[m], best[f"{m}_step"] = pick(values, key=lambda v: v[0]) if values else (None, None)
    return best


def _to_target(spec: dict, rows: list[dict]) -> dict:
    """First crossing of the target (sweepbench.rules.first_crossing), never the best evaluation."""
    metric = spec["target_metric"]
    out = {"metric": metric, "target": spec["target"], "reached": False, "step": None, "epoch": None,
           "samples": None, "wall_s": None}
    if metric and spec["target"] is not None:
        i = rules.first_crossing([r.get(metric) for r in rows], spec["target"], metric)
        if i is not None:
            hit = rows[i]
            out.update(reached=True, step=hit["step"], epoch=hit["epoch"], samples=hit["samples"],
                       wall_s=hit["wall_s"])
    return out


def _throughput(state, spec: dict) -> dict:
    """Step-time statistics of the timed steps (sweepbench.rules.timed_steps), and samples_per_s:
    the median block throughput with its 95% interval (sweepbench.rules.timing_blocks)."""
    times, samples = rules.timed_steps(state.step_times, state.step_samples, spec["timing_warmup_steps"])
    rates = rules.timing_blocks(times, samples, spec["timing_block_s"])
    lo, mid, hi = rules.median_interval(rates)
    timed = np.array(times)
    finite = lambda v: float(v) if math.isfinite(v) else None
    return {
        "samples_per_s": finite(mid) if rates else None,
        "samples_per_s_ci_lo": finite(lo),
        "samples_per_s_ci_hi": finite(hi),
        "block_samples_per_s": [round(r, 6) for r in rates],
        "step_time_median_s": float(np.median(timed)) if len(timed) else None,
        "step_time_p10_s": float(np.percentile(timed, 10)) if len(timed) else None,
        "step_time_p90_s": float(np.percentile(timed, 90)) if len(timed) else None,
        "warmup_steps": len(state.step_times) - len(times),
        "timed_steps": int(len(timed)),
        "samples_per_s_wall": state.samples / state.train_s if state.train_s > 0 else None,
    }


def build_record(state, ctx: RunContext) -> dict:
    """run.json's content from a finished run's state (sweepbench.train.run_state.RunState) and context."""
    spec, rows = state.spec, state.metrics_rows
    return {
        "schema_version": SCHEMA_VERSION,
        "status": state.status,
        "stop_reason": state.stop_reason,
        "spec": spec,
        "workload": ctx.workload,
        "final": {k: rows[-1].get(k) for k in ["step", "epoch", "samples", "epoch_loss", *METRICS]},
        "best": _best(rows),
        "to_target": _to_target(spec, rows),
        "convergence": {"tol": spec["converge_tol"], "converged": state.convergence_epoch is not None,
                        "epoch": state.convergence_epoch},
        "divergence": {"diverged": state.status == "diverged", "step": state.diverged_at,
                       "reason": state.diverge_reason, "initial_loss": state.initial_loss,
                       "factor": spec["diverge_factor"]},
        "throughput": _throughput(state, spec),
        "timing": {"train_s": state.train_s, "eval_s": state.eval_s, **ctx.timing, "steps": state.step,
                   "epochs": rows[-1]["epoch"]},
        "memory": ctx.memory,
        "speed": ctx.speed,
        "placement": ctx.placement,
        "grad_noise_scale": ctx.grad_noise_scale,
        "best_model": ctx.best_model,
        "distributed": ctx.distributed,
        "provenance": ctx.provenance,
    }


# ---------------------------------------------------------------- writing a record


RECORD_KIND = "run record"  # its WRITTEN list's kind: a run replaces only a run record (atomic.owned_in)


class RecordWriter:
    """Writes one run record to `out_dir` atomically: a temporary sibling folder is reserved up
    front (so an unwritable output fails before training) and renamed into place only when the
    record is complete. A run may replace only an earlier run record (a folder holding the
    record's files, as its WRITTEN list names them, and nothing else) or an empty folder; any other
    existing path is bad input, refused before anything is touched."""

    def __init__(self, out_dir: str):
        check_replaceable(out_dir)
        self.out_dir = os.path.abspath(out_dir)
        self.folder = TempFolder(out_dir)
        self.tmp = self.folder.path

    def write(self, state, ctx: RunContext) -> dict:
        """Build a finished run's record (build_record) and write it. Returns run.json's content."""
        record = build_record(state, ctx)
        self.write_rows(state.metrics_rows, ctx.metric_columns, state.step_rows, ctx.step_columns, record)
        return record

    def write_rows(self, metrics: list[dict], metric_columns: list[str], steps: list[dict],
                   step_columns: list[str], record: dict) -> None:
        """Write the three files and move the folder into place."""
        name = "metrics.csv"
        try:
            for name, text in (("metrics.csv", lambda: csv_text(metric_columns, metrics)),
                               ("steps.csv", lambda: csv_text(step_columns, steps)),
                               ("run.json", lambda: json.dumps(_json_safe(record), indent=2) + "\n")):
                with open(os.path.join(self.tmp, name), "w") as f:
                    f.write(text())
        except OSError as err:  # a full disk, a folder that became read-only
            self.discard()
            raise cannot_write(os.path.join(self.out_dir, name), err) from None
        try:
            # with model.pt where save_best put it there
            list_written(self.tmp, sorted(os.listdir(self.tmp)), RECORD_KIND)
        except OSError as err:
            self.discard()
            raise cannot_write(os.path.join(self.out_dir, WRITTEN), err) from None
        check_replaceable(self.out_dir)  # still only an earlier record (or nothing) there?
        self.folder.commit()

    def discard(self) -> None:
        self.folder.discard()


def check_replaceable(out_dir: str) -> None:
    """Refuse an output folder that is not a new path, an empty folder or an earlier run record:
    a run never deletes a user's files, earlier runs' folders, or the folder it runs in."""
    path = os.path.abspath(out_dir)
    here = os.path.abspath(os.getcwd())
    reason = None
    if out_dir.strip() == "" or here == path or here.startswith(path.rstrip(os.sep) + os.sep):
        reason = "it is the current folder or one of its parents"
    elif os.path.lexists(path) and not os.path.isdir(path):
        reason = "it is an existing file"
    elif os.path.isdir(path):
        extra = foreign_files(path, owned_in(path, _older_record, changed_ok=True, kind=RECORD_KIND))
        if extra:
            reason = f"it holds other files ({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''})"
    if reason:
        raise SweepbenchError(f"bad --out {out_dir!r}: {reason}; allowed: a new folder, an empty folder or an "
                              f"earlier run record (a folder holding only {', '.join(RECORD_FILES)} as sweepbench "
                              f"wrote them, listed in its {WRITTEN})")


def _older_record(path: str) -> tuple[str, ...]:
    """A record folder of a sweepbench before the WRITTEN list: the three files, run.json an object
    with a schema_version (a user's lone run.json is no record). Its files' names, or none."""
    if not all(os.path.isfile(os.path.join(path, f)) for f in RECORD_FILES):
        return ()
    try:
        with open(os.path.join(path, "run.json"), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return ()
    return RECORD_FILES + OPTIONAL_FILES if isinstance(data, dict) and "schema_version" in data else ()


# ---------------------------------------------------------------- reading a record

REQUIRED = {  # run.json section -> keys every reader may rely on
    "spec": ("workload", "optimizer", "lr", "batch_size", "accum_steps", "seed", "synthetic"),
    "workload": ("name", "n_train"),
    "final": ("step", "epoch_loss", *METRICS),
    "best": METRICS,
    "to_target": ("metric", "target", "reached", "step", "epoch", "samples", "wall_s"),
    "convergence": ("epoch",),
    "divergence": ("diverged",),
    "throughput": ("samples_per_s", "samples_per_s_ci_lo", "samples_per_s_ci_hi", "block_samples_per_s",
                   "step_time_median_s", "step_time_p10_s", "step_time_p90_s"),
    "timing": ("train_s", "eval_s", "startup_s", "steps", "epochs"),
    "memory": ("peak_mb",),
    "speed": ("batched_runs", "stack"),
    "provenance": ("device_name", "torch", "git_commit", "code_version"),
}


@dataclass(frozen=True)
class RunRecord:
    """A run record as loaded and checked by `load_record`: run.json's sections, plus the folder."""

    path: str
    status: str
    stop_reason: str
    spec: dict
    workload: dict
    final: dict
    best: dict
    to_target: dict
    convergence: dict
    divergence: dict
    throughput: dict
    timing: dict
    memory: dict
    speed: dict
    placement: dict | None
    grad_noise_scale: float | None
    best_model: dict | None
    provenance: dict
    distributed: dict | None = None   # absent in records of sweepbench before data-parallel runs

    def metrics_path(self) -> str:
        return os.path.join(self.path, "metrics.csv")


class BrokenRecord(SweepbenchError):
    """A run folder that is not a complete run record of this schema."""


def load_record(run_dir: str, task: str | None = None) -> RunRecord:
    """Load and check a run record: the three files exist, run.json has this SCHEMA_VERSION, a
    known status and every REQUIRED key with a value in its range (and a classification run's
    accuracies), the CSV files start with their columns and are not cut off, and every value of
    metrics.csv's and steps.csv's columns is in its range (_csv_values_problem). `task`: the run's
    task as planned (the record's own workload.task otherwise). Raises BrokenRecord naming the
    folder and what is wrong."""
    def broken(what: str) -> BrokenRecord:
        return BrokenRecord(f"broken run record {run_dir}: {what}")

    missing = [f for f in RECORD_FILES if not os.path.isfile(os.path.join(run_dir, f))]
    if missing:
        raise broken(f"{', '.join(missing)} missing")
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise broken(f"run.json unreadable ({err})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        version = data.get("schema_version") if isinstance(data, dict) else None
        raise broken(f"run.json schema_version {version!r}, this sweepbench reads {SCHEMA_VERSION} (re-train it)")
    if data.get("status") not in STATUSES:
        raise broken(f"run.json status {data.get('status')!r}; allowed: {', '.join(STATUSES)}")
    for section, keys in REQUIRED.items():
        value = data.get(section)
        absent = [k for k in keys if not isinstance(value, dict) or k not in value]
        if absent:
            raise broken(f"run.json lacks {section}.{absent[0]}")
    problem = _run_json_problem(data, task)
    if problem:
        raise broken(problem)
    _check_csv(run_dir, "metrics.csv", METRIC_COLUMNS, broken)
    _check_csv(run_dir, "steps.csv", STEP_COLUMNS, broken)
    for name, columns in (("metrics.csv", METRIC_COLUMNS), ("steps.csv", STEP_COLUMNS)):
        problem = _csv_values_problem(os.path.join(run_dir, name), name, columns)
        if problem:
            raise broken(problem)
    names = [f.name for f in fields(RunRecord) if f.name != "path"]
    return RunRecord(path=run_dir, **{k: data.get(k) for k in names})


# Spec keys a training job sets from its allocation when it runs (train-pack --threads), not from the plan.
RUN_TIME_KEYS = ("threads",)


def spec_mismatch(recorded: dict, planned: dict, derived=()) -> str | None:
    """Whether a run record is of the planned run: None, or the first option whose value differs,
    e.g. "epochs 3 in the record, 5 planned" (a record of an older config, of another cell, a smoke
    record among real ones). Not compared: RUN_TIME_KEYS and `derived`, the keys a job derives
    when it trains (a batch cycle from another study's bmin/bmax, sweepbench.plan.batch_cycle)."""
    skip = set(RUN_TIME_KEYS) | set(derived)
    for key in sorted((set(recorded) | set(planned)) - skip):
        if key not in recorded:
            return f"{key} not in the record (made by an older sweepbench), {planned[key]!r} planned"
        if key not in planned:
            return f"{key} {recorded[key]!r} in the record is no option of this sweepbench"
        if recorded[key] != planned[key]:
            return f"{key} {recorded[key]!r} in the record, {planned[key]!r} planned"
    return None


def load_planned_record(run_dir: str, planned: dict, derived=()) -> RunRecord:
    """load_record, refusing (BrokenRecord) a complete record that is not of the planned spec
    (spec_mismatch): every reader of a plan's records goes through this, so no table, status or
    bmin/bmax ever averages in a record that the workflow would re-train."""
    from sweepbench import workloads

    try:
        task = workloads.effective(planned).task
    except SweepbenchError:  # a workload that cannot be loaded here: its record's spec is still compared
        task = None
    rec = load_record(run_dir, task)
    why = spec_mismatch(rec.spec, planned, derived)
    if not why and task and rec.workload.get("task") not in (None, task):  # one without: checked by the plan's task
        why = f"workload.task {rec.workload.get('task')!r} in the record, {task!r} planned"
    if why:
        raise BrokenRecord(f"broken run record {run_dir}: not the planned run: {why}")
    return rec


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def value_problem(section: str, key: str, value) -> str | None:
    """What is wrong with a REQUIRED run.json value, or None: accuracies are None (not evaluated,
    or NaN) or in [0, 1]; losses a number >= 0, "inf" (diverged) or None; flags booleans; n_train an
    integer >= 1; counts, seconds and rates None or finite and >= 0; names text or None (a hand-edited
    "n/a" or an accuracy of 2.5 would otherwise be averaged into the tables)."""
    if _is_number(value) and math.isnan(value):  # NaN (JSON's non-standard token) means "no value", as null does
        value = None
    if key.endswith("accuracy"):
        ok = value is None or (_is_number(value) and 0 <= value <= 1)
        return None if ok else "allowed: an accuracy in [0, 1], or null"
    if key.endswith("loss"):  # MSE, cross-entropy, + an entropy term and an L2 penalty: never below 0
        ok = value is None or value == "inf" or (_is_number(value) and value >= 0)
        return None if ok else 'allowed: a number >= 0, "inf" (diverged) or null'
    if key in ("reached", "diverged", "synthetic"):
        return None if isinstance(value, bool) else "allowed: true or false"
    if key == "n_train":  # every table divides by it (a whole-set batch)
        return None if _is_number(value) and value == int(value) and value >= 1 else "allowed: an integer >= 1"
    if section in ("spec", "workload", "provenance") or key in ("metric", "stack"):
        return None  # the spec is checked against the plan (spec_mismatch); names are text
    if key == "target":
        return None if value is None or _is_number(value) else "allowed: a number or null"
    if key == "block_samples_per_s":
        ok = isinstance(value, list) and all(_is_number(v) and 0 <= v < math.inf for v in value)
        return None if ok else "allowed: a list of finite numbers >= 0"
    ok = value is None or (_is_number(value) and 0 <= value < math.inf)
    return None if ok else "allowed: a finite number >= 0, or null"


CLASSIFICATION_TASKS = ("multiclass", "binary")  # sweepbench.workloads.TASKS that have an accuracy


def _run_json_problem(data: dict, task: str | None = None) -> str | None:
    """What is wrong with a run.json's REQUIRED values (value_problem), or None. A run's status and
    divergence.diverged agree; a run that did not diverge has finite losses >= 0, and a classification
    run (`task`: the plan's, else workload.task) its final and best accuracies."""
    for section, keys in REQUIRED.items():
        for key in keys:
            problem = value_problem(section, key, data[section][key])
            if problem:
                return f"run.json {section}.{key} {data[section][key]!r}: {problem}"
    if data["divergence"]["diverged"] != (data["status"] == "diverged"):
        return (f"run.json divergence.diverged {data['divergence']['diverged']!r} with status {data['status']!r}: "
                "allowed: true exactly when the status is diverged")
    task = task or data["workload"].get("task")
    if data["status"] != "diverged":
        for section in ("final", "best"):
            for key in (k for k in REQUIRED[section] if k.endswith("loss")):
                value = data[section][key]
                if value is not None and not (_is_number(value) and (math.isnan(value) or 0 <= value < math.inf)):
                    return (f"run.json {section}.{key} {value!r}: allowed: a finite loss >= 0, or null (a run "
                            "that did not diverge)")
    if task in CLASSIFICATION_TASKS and data["status"] != "diverged":
        for section in ("final", "best"):
            for key in (m for m in METRICS if m.endswith("accuracy")):
                value = data[section][key]
                if value is None or (_is_number(value) and math.isnan(value)):
                    return (f"run.json {section}.{key} {value!r}: allowed: an accuracy in [0, 1] (a {task} run that "
                            "did not diverge has one)")
    return None


def row_length_problem(header: list[str], rows) -> str | None:
    """The first row (a list of fields, as csv reads it; the first is line 2) with another number of
    fields than the header, as "line N has F fields, the header H", or None: pandas reads such a row
    shifted (one field more makes its first field the index), so a file that is rewritten loses it."""
    for n, row in enumerate(rows, 2):
        if len(row) != len(header):
            return f"line {n} has {len(row)} fields, the header {len(header)}"
    return None


def _csv_values_problem(path: str, name: str, columns: list[str]) -> str | None:
    """Bytes that are not UTF-8, the first row of a record's CSV (`name`: metrics.csv, steps.csv) with
    another number of fields than its header, or the first value of its `columns` that value_problem
    refuses (a loss of "n/a", an accuracy of 2.5) or of its other columns (steps.csv's parameters)
    that is not a number, as "<name> ...", or None. Empty cells and "nan" mean no value."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError as err:  # a hand-edited byte: aggregate and status crashed on it
        return f"{name} is not UTF-8 text (byte {err.start})"
    header, *rows = text.rstrip("\n").split("\n")  # it ends with a newline (_check_csv)
    header = header.split(",")
    for n, line in enumerate(rows, 2):
        cells = line.split(",")
        if len(cells) != len(header):  # a field more or less shifts every column after it
            return f"{name} line {n} has {len(cells)} fields, the header {len(header)}"
        for column, text in zip(header, cells):
            try:
                value = float(text) if text else None
            except ValueError:
                value = text
            problem = (value_problem(name.removesuffix(".csv"), column, value) if column in columns
                       else None if not isinstance(value, str) else "allowed: a number, or empty")
            if problem:
                return f"{name} line {n} {column} {text!r}: {problem}"
    return None


def _check_csv(run_dir: str, name: str, columns: list[str], broken) -> None:
    """The CSV starts with its columns, ends with a newline, and its last row has as many fields
    as the header (a file cut mid-row is broken)."""
    path = os.path.join(run_dir, name)
    try:
        with open(path, "rb") as f:
            header = f.readline().decode(errors="replace").rstrip("\n").split(",")
            size, tail = os.path.getsize(path), ""
            for span in (4096, 65536, size):  # enough to hold the last row, read from the end
                f.seek(max(0, size - span))
                tail = f.read().decode(errors="replace")
                if tail.count("\n") >= 2 or span >= size:
                    break
    except OSError as err:
        raise broken(f"{name} unreadable ({err.strerror})") from None
    if header[:len(columns)] != columns:
        raise broken(f"{name} does not start with the columns {','.join(columns)}")
    if not tail.endswith("\n"):
        raise broken(f"{name} does not end with a newline (cut off?)")
    last = tail.rstrip("\n").rsplit("\n", 1)[-1]
    if last.count(",") != len(header) - 1:
        raise broken(f"{name}'s last row has {last.count(',') + 1} fields, the header {len(header)} (cut off?)")
