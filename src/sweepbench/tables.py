"""Run records -> tables under results/tables/ (pandas).

runs.csv, one row per (study, run); a run reused by two studies appears in both:
    study, cell, run (run id), workload, the study's axes (one column each), optimizer, lr,
    batch_size, seed, status, final_<metric> and best_<metric> for train/val/test loss and
    accuracy, target_metric, target, target_reached, steps_to_target, epochs_to_target,
    samples_to_target, seconds_to_target (first crossing; empty when never reached),
    convergence_epoch, steps, epochs, train_s, samples_per_s, step_time_median_s,
    step_time_p10_s, step_time_p90_s, peak_mem_mb, device_name, torch, git_commit
"""

from __future__ import annotations

import json
import os
import sys

METRICS = [f"{s}_{m}" for s in ("train", "val", "test") for m in ("loss", "accuracy")]
BASE_COLUMNS = ["study", "cell", "run", "workload", "optimizer", "lr", "batch_size", "seed", "status"]
RECORD_COLUMNS = (
    [f"final_{m}" for m in METRICS] + [f"best_{m}" for m in METRICS]
    + ["target_metric", "target", "target_reached", "steps_to_target", "epochs_to_target",
       "samples_to_target", "seconds_to_target", "convergence_epoch", "steps", "epochs", "train_s",
       "samples_per_s", "step_time_median_s", "step_time_p10_s", "step_time_p90_s", "peak_mem_mb",
       "device_name", "torch", "git_commit"])


def run_row(rec: dict) -> dict:
    """The runs.csv fields of one run.json."""
    spec, tt, tp = rec["spec"], rec["to_target"], rec["throughput"]
    row = {"workload": spec["workload"], "optimizer": spec["optimizer"], "lr": spec["lr"],
           "batch_size": spec["batch_size"], "seed": spec["seed"], "status": rec["status"]}
    row.update({f"final_{m}": rec["final"].get(m) for m in METRICS})
    row.update({f"best_{m}": rec["best"].get(m) for m in METRICS})
    row.update({"target_metric": tt["metric"], "target": tt["target"], "target_reached": bool(tt["reached"]),
                "steps_to_target": tt["step"], "epochs_to_target": tt["epoch"],
                "samples_to_target": tt["samples"], "seconds_to_target": tt["wall_s"],
                "convergence_epoch": rec["convergence"]["epoch"], "steps": rec["timing"]["steps"],
                "epochs": rec["timing"]["epochs"], "train_s": rec["timing"]["train_s"],
                "samples_per_s": tp["samples_per_s"], "step_time_median_s": tp["step_time_median_s"],
                "step_time_p10_s": tp["step_time_p10_s"], "step_time_p90_s": tp["step_time_p90_s"],
                "peak_mem_mb": rec["memory"]["peak_mb"], "device_name": rec["provenance"]["device_name"],
                "torch": rec["provenance"]["torch"], "git_commit": rec["provenance"]["git_commit"]})
    return row


def runs_table(the_plan: dict, runs_dir: str, warn=print):
    """One row per (study, run) of the plan; missing or malformed records are reported by path
    and skipped. Returns (DataFrame, number skipped)."""
    import pandas as pd

    rows, skipped, axes_all = [], 0, []
    for study_name, study in the_plan["studies"].items():
        axes_all += [a for a in study["axes"] if a not in axes_all]
        for cell_id in study["cells"]:
            cell = the_plan["cells"][cell_id]
            for run in cell["runs"]:
                path = os.path.join(runs_dir, run["id"], "run.json")
                try:
                    with open(path) as f:
                        rec = json.load(f)
                    row = run_row(rec)
                except (OSError, ValueError, KeyError, TypeError) as err:
                    warn(f"warning: skipped run record {path}: {type(err).__name__}: {err}")
                    skipped += 1
                    continue
                row.update({"study": study_name, "cell": cell_id, "run": run["id"]})
                for axis in study["axes"]:
                    row[f"axis_{axis}"] = run["spec"].get(axis)
                rows.append(row)
    columns = BASE_COLUMNS + [f"axis_{a}" for a in axes_all] + RECORD_COLUMNS
    return pd.DataFrame(rows, columns=columns), skipped


def write_csv(df, path: str) -> None:
    """Atomic CSV write (temp file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def aggregate(plan_path: str, runs_dir: str, out_dir: str) -> dict:
    with open(plan_path) as f:
        the_plan = json.load(f)
    runs, skipped = runs_table(the_plan, runs_dir, warn=lambda m: print(m, file=sys.stderr))
    write_csv(runs, os.path.join(out_dir, "runs.csv"))
    return {"runs": len(runs), "skipped": skipped}
