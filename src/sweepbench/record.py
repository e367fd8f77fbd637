"""The run record: metrics.csv, steps.csv and run.json, written atomically.

This module is the contract every reader (tables, report, check, users' scripts) relies on.
Column meanings are documented here and copied into the README.

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
diverged), stop_reason, spec (resolved), workload, final, best, to_target, convergence,
divergence, throughput, timing, memory, speed, placement, grad_noise_scale, best_model (with
save_best=true: the step and validation value of the best evaluation and the scores of those
weights re-loaded from model.pt, which then sits beside the three files), provenance.

    timing      train_s (training clock), eval_s, startup_s (process start, or the previous run
                of the pack, to the first step: imports, data load, model build), data_load_s,
                compile_s (torch.compile warm-up, excluded from train_s), total_s, steps, epochs
    speed       optimizer_impl (what `auto` resolved to: fused | foreach | for-loop),
                precision, channels_last, compile, compile_s
    placement   scheduler ("train-pack" for workflow jobs, null for a hand-run `train`),
                exclusive (true: the job held every core and GPU slot, so no other sweepbench
                job shared its device; false: others may have; null: unknown), gpu_slots, threads
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile

SCHEMA_VERSION = 1
METRIC_COLUMNS = ["step", "epoch", "samples", "wall_s", "eval_s", "lr", "batch_size", "epoch_loss",
                  "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]
TIME_COLUMNS = {"wall_s", "eval_s", "step_time_s"}
STEP_COLUMNS = ["step", "epoch", "lr", "batch_size", "loss", "step_time_s"]
STATUSES = ("completed", "converged", "target_reached", "diverged")
RECORD_FILES = ("metrics.csv", "steps.csv", "run.json")


def fmt(value) -> str:
    """One CSV cell: empty for None, Python's shortest round-trip repr for floats."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)
    return str(value)


def csv_text(columns: list[str], rows: list[dict]) -> str:
    lines = [",".join(columns)]
    lines += [",".join(fmt(row.get(c)) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


class RecordWriter:
    """Reserves a temporary sibling folder of `out_dir` up front (so an unwritable output
    fails before training) and moves it into place only when the record is complete."""

    def __init__(self, out_dir: str):
        self.out_dir = os.path.abspath(out_dir)
        parent = os.path.dirname(self.out_dir)
        try:
            os.makedirs(parent, exist_ok=True)
            self.tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.out_dir)}.tmp-", dir=parent)
        except OSError as err:
            from sweepbench import SweepbenchError

            raise SweepbenchError(f"cannot write output folder {out_dir!r}: {err.strerror}; "
                                  "allowed: a path in a writable folder") from None

    def write(self, metrics: list[dict], metric_columns: list[str], steps: list[dict],
              step_columns: list[str], record: dict) -> None:
        with open(os.path.join(self.tmp, "metrics.csv"), "w") as f:
            f.write(csv_text(metric_columns, metrics))
        with open(os.path.join(self.tmp, "steps.csv"), "w") as f:
            f.write(csv_text(step_columns, steps))
        with open(os.path.join(self.tmp, "run.json"), "w") as f:
            json.dump(_json_safe(record), f, indent=2, sort_keys=False)
            f.write("\n")
        self._commit()

    def _commit(self) -> None:
        """Replace out_dir by the finished folder. An existing out_dir (e.g. the empty folder
        Snakemake makes, or an older record) is moved aside first, then removed."""
        old = None
        if os.path.lexists(self.out_dir):
            old = f"{self.tmp}.old"
            os.replace(self.out_dir, old)
        os.replace(self.tmp, self.out_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def read_run(run_dir: str) -> dict:
    """Load run.json of a run folder."""
    with open(os.path.join(run_dir, "run.json")) as f:
        return json.load(f)
