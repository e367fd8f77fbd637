"""Run records -> tables under results/tables/ (pandas). Every table is written even when
empty (headers only), atomically.

runs.csv, one row per (study, run); a run reused by two studies appears in both:
    study, cell, run (run id), workload, model and dataset (what it trained: the workload's, or the
    options model and data; a user's function as file:name), optimizer, lr, batch_size (as
    configured: a number or 'full'), effective_batch_size (samples per update; a data-parallel
    run's global batch world_size x batch_size x accum_steps), world_size (0: no DDP), seed,
    status, diverged, synthetic, smoke (the plan ran with `smoke: true`: tiny data, a few steps; the
    regression check never compares smoke with real results), the study's axes (axis_<name>),
    final_<metric> and best_<metric> for train/val/test loss and accuracy, final_epoch_loss (mean
    mini-batch loss of the last evaluation window: a training epoch's running mean, as Keras prints it), target_metric,
    target, target_reached, steps_to_target, epochs_to_target,
    samples_to_target, seconds_to_target (first crossing; empty when never reached),
    convergence_epoch, steps, epochs, train_s, samples_per_s (of this run: the median of its timed
    blocks, sweepbench.rules.timing_blocks; with batched_runs > 1 the batch's steps trained that
    many runs at once, so the batch's rate is that many times higher), samples_per_s_ci_lo and
    _ci_hi (its 95% interval), block_samples_per_s (each block's, space-separated), timing_ci (the
    run's timing rule, 0 = none: a timing run's step count depends on the machine), batched_runs,
    stack (the id of the stack it trained in, sweepbench.train.stacked), step_time_median_s,
    step_time_p10_s, step_time_p90_s, peak_mem_mb, grad_noise_scale, best_model_step and
    best_model_test_accuracy (runs with save_best: the re-loaded best weights on the test set),
    device_name, torch, git_commit, env_lock (the requirements.lock the run's python had: its hash,
    "<hash> (with changes)" when the installed versions differed from it, "not locked" outside a
    clone; empty for a record older than this column)

cells.csv, one row per (study, cell): n_seeds (runs with a record), n_planned, n_missing (planned
    runs without a record: only with `aggregate --partial`), n_diverged, frac_diverged and, for each of
    final_train_loss, final_train_accuracy, final_val_loss, final_val_accuracy, final_test_accuracy,
    best_val_accuracy, best_val_loss, samples_per_s, step_time_median_s, grad_noise_scale:
    <metric>_mean, _std, _ci_lo, _ci_hi over the seeds that did not diverge (sweepbench.aggregate.statistics.summarize);
    n_reached, n_not_reached and, only where every seed reached the target,
    steps/samples/seconds/epochs_to_target _mean, _std, _ci_lo, _ci_hi.

lr_sensitivity.csv, per (study, workload, optimizer, effective_batch_size, lr) of studies that
    sweep lr: the cell means of final/best metrics, frac_diverged, and per group lr_min,
    lr_max, largest_stable_lr (sweepbench.aggregate.statistics.lr_range_picks).
best_lr.csv, per (study, workload, optimizer, effective_batch_size): best_lr, selected_by,
    n_lrs, steps/samples/seconds_to_target_mean at the best lr, and linear_rule_lr and
    sqrt_rule_lr (the smallest batch size's best lr scaled by B/B0 and sqrt(B/B0)).
scaling.csv, per (study, workload, optimizer, effective_batch_size) at the best lr:
    steps_to_target_mean (+ CI), samples_to_target_mean, perfect_scaling_steps
    (steps(B0) B0 / B), fitted_steps, s_min, e_min, b_crit, b_crit_ci_lo, b_crit_ci_hi, regime,
    grad_noise_scale_mean, step_time_median_s, time_to_target_s (steps x median step time on
    this hardware), fastest_to_target (the batch size with the least time to target).
throughput.csv, per (study, workload, device_name, effective_batch_size, world_size, batched_runs): n_runs,
    samples_per_s (median over runs), step_time_median_s, step_time_p10_s, step_time_p90_s
    (medians over runs), time_to_target_s from scaling.csv where the study has one.
bmin_bmax.csv, per (study, workload, optimizer, lr) with at least 3 batch sizes: threshold_pct,
    bmin, bmax, batch_sizes and final_train_accuracy means used (seed 002 Q5).
optimizers.csv, per (study, workload, optimizer, lr, effective_batch_size) of studies with an
    optimizer axis: cell means of final/best validation metrics, frac_diverged, and best
    (the best configuration per study: highest best_val_accuracy, or lowest best_val_loss
    for regression).
data_parallel.csv, studies with a world_size axis (data-parallel runs), per (study, workload, device_name,
    optimizer, lr, batch_size: the per-worker batch b) and worker count world_size N (0: one
    process without DDP, the row that shows DDP's own cost): global_batch (N x b), n_runs,
    step_time_median_s (median over runs of each run's median step time, each step the slowest
    rank's), samples_per_s (global_batch / step_time_median_s: robust to a few slow steps),
    step_time_p90_s, speedup (samples_per_s over N = 1's), scaling_efficiency (weak scaling:
    throughput T(N) / (N x T(1))), ddp_overhead (N = 1 only: its median step time over the no-DDP
    row's, minus 1), steps_from (the study whose runs give steps to target: `steps_from`, else this
    one), steps_seeds and steps_to_target_mean (its runs at the global batch N x b, at this lr or
    else its best lr there), time_to_target_s with time_to_target_ci_lo/_hi
    (sweepbench.rules.time_to_target), n_crit (B_crit / b from the source's scaling.csv: the worker
    count whose global batch is the critical batch size), knee and knee_within_sweep
    (sweepbench.rules.workers_knee).
reproduction.csv, per (study, metric, reference point) of studies with a `reference` block: the
    seed's printed value, ours, diff, band, state and the study's verdict (sweepbench.aggregate.reproduction).
"""

from __future__ import annotations

import functools
import math
import os
import re

from sweepbench import SweepbenchError, envlock, rules
from sweepbench.aggregate import statistics
from sweepbench.aggregate.reproduction import reproduction_table
from sweepbench.atomic import refuse_overwrite, write_own
from sweepbench.plan.batch_cycle import derived_keys
from sweepbench.plan.planner import read_plan
from sweepbench.record import METRICS, STATUSES, BrokenRecord, RunRecord, load_planned_record

BASE_COLUMNS = ["study", "cell", "run", "workload", "model", "dataset", "optimizer", "lr", "batch_size",
                "effective_batch_size", "world_size",
                "seed", "status", "diverged", "synthetic", "smoke"]
RECORD_COLUMNS = (
    [f"final_{m}" for m in METRICS] + ["final_epoch_loss"] + [f"best_{m}" for m in METRICS]
    + ["target_metric", "target", "target_reached", "steps_to_target", "epochs_to_target",
       "samples_to_target", "seconds_to_target", "convergence_epoch", "steps", "epochs", "train_s",
       "samples_per_s", "samples_per_s_ci_lo", "samples_per_s_ci_hi", "block_samples_per_s", "timing_ci",
       "batched_runs", "stack", "step_time_median_s", "step_time_p10_s", "step_time_p90_s",
       "peak_mem_mb",
       "grad_noise_scale", "best_model_step", "best_model_test_accuracy", "device_name", "torch", "git_commit",
       "env_lock"])


def run_row(rec: RunRecord) -> dict:
    """The runs.csv fields of one run record (sweepbench.record.load_record)."""
    spec, tt, tp, timing = rec.spec, rec.to_target, rec.throughput, rec.timing
    n_train = rec.workload["n_train"]
    micro = n_train if spec["batch_size"] == "full" else spec["batch_size"]
    row = {"workload": spec["workload"], "model": rec.workload.get("model"), "dataset": rec.workload.get("dataset"),
           "optimizer": spec["optimizer"], "lr": spec["lr"],
           "batch_size": spec["batch_size"], "world_size": spec.get("world_size", 0),
           "effective_batch_size": min(micro, n_train) * spec["accum_steps"] * max(1, spec.get("world_size", 0)),
           "seed": spec["seed"], "status": rec.status, "diverged": rec.status == "diverged",
           "synthetic": bool(spec["synthetic"])}
    row.update({f"final_{m}": rec.final[m] for m in METRICS})
    row["final_epoch_loss"] = rec.final["epoch_loss"]
    row.update({f"best_{m}": rec.best[m] for m in METRICS})
    best_model = rec.best_model or {}  # present only with save_best
    row.update({"target_metric": tt["metric"], "target": tt["target"], "target_reached": bool(tt["reached"]),
                "steps_to_target": tt["step"], "epochs_to_target": tt["epoch"],
                "samples_to_target": tt["samples"], "seconds_to_target": tt["wall_s"],
                "convergence_epoch": rec.convergence["epoch"], "steps": timing["steps"],
                "epochs": timing["epochs"], "train_s": timing["train_s"], "samples_per_s": tp["samples_per_s"],
                "samples_per_s_ci_lo": tp["samples_per_s_ci_lo"], "samples_per_s_ci_hi": tp["samples_per_s_ci_hi"],
                "block_samples_per_s": " ".join(f"{r:.6g}" for r in tp["block_samples_per_s"]),
                "timing_ci": spec.get("timing_ci", 0.0),
                "batched_runs": rec.speed["batched_runs"], "stack": rec.speed["stack"],
                "step_time_median_s": tp["step_time_median_s"],
                "step_time_p10_s": tp["step_time_p10_s"], "step_time_p90_s": tp["step_time_p90_s"],
                "peak_mem_mb": rec.memory["peak_mb"], "grad_noise_scale": rec.grad_noise_scale,
                "best_model_step": best_model.get("step"),
                "best_model_test_accuracy": best_model.get("reloaded_test_accuracy"),
                "device_name": rec.provenance["device_name"],
                "torch": rec.provenance["torch"], "git_commit": rec.provenance["git_commit"],
                "env_lock": envlock.label(rec.provenance["env_lock"]) if "env_lock" in rec.provenance else None})
    return row


def runs_table(the_plan: dict, runs_dir: str, partial: bool = False):
    """One row per (study, run) of the plan, each record read by sweepbench.record.load_planned_record.
    A broken record (missing file, unreadable or incomplete run.json, wrong schema, garbled
    CSV, or a complete record that is not of the planned spec) is an error naming every broken
    record; a run with no record at all is an error too unless `partial` (then it is counted:
    cells.csv's n_planned and n_missing say so).
    Returns (DataFrame, number of planned runs without a record)."""
    import pandas as pd

    rows, broken, missing, axes_all = [], [], 0, []
    smoke = the_plan["smoke"]
    for study_name, study in the_plan["studies"].items():
        axes_all += [a for a in study["axes"] if a not in axes_all]
        for cell_id in study["cells"]:
            for run in the_plan["cells"][cell_id]["runs"]:
                run_dir = os.path.join(runs_dir, run["id"])
                if partial and not os.path.exists(os.path.join(run_dir, "run.json")):
                    missing += 1
                    continue
                try:
                    row = run_row(load_planned_record(run_dir, run["spec"], derived_keys(the_plan, cell_id)))
                except BrokenRecord as err:
                    broken.append(str(err).removeprefix("broken run record "))
                    continue
                row.update({"study": study_name, "cell": cell_id, "run": run["id"], "smoke": smoke})
                row.update({f"axis_{axis}": run["spec"].get(axis) for axis in study["axes"]})
                rows.append(row)
    if broken:
        shown = "; ".join(broken[:10]) + (f"; and {len(broken) - 10} more" if len(broken) > 10 else "")
        raise SweepbenchError(f"{len(broken)} broken or missing run record(s): {shown} (re-train them with "
                              "`snakemake --forcerun train` (or `sweepbench run --forcerun train`): each job keeps "
                              "its complete records and trains only the rest; or `sweepbench aggregate --partial` to "
                              "tabulate the rest)")
    columns = BASE_COLUMNS + [f"axis_{a}" for a in axes_all] + RECORD_COLUMNS
    return pd.DataFrame(rows, columns=columns), missing


# ---------------------------------------------------------------- what each column holds

# (table or "*", column pattern, kind), first match wins: what a reader of the tables may rely on,
# checked on load by check_table (the report reads every table through it). Kinds: any (axis
# values, the reproduction's points), text, status, bool, fraction ([0, 1]), count (an integer
# >= 0), batch (an integer >= 1 or "full"), size (an integer >= 1), nonneg (a number >= 0, or
# inf), number (any number, nan or inf). An empty cell is "no value" for every kind but status and batch.
COLUMN_KINDS = [
    ("bmin_bmax", r"batch_sizes|final_train_accuracy", "text"),   # space-separated lists
    ("runs", r"block_samples_per_s", "text"),                     # space-separated list
    ("runs", r"env_lock", "text"),
    ("reproduction", r"point|x|reference|ours|diff|band|x_axis", "any"),
    ("*", r"axis_.+", "any"),
    ("*", r"study|cell|run|workload|model|dataset|optimizer|target_metric|device_name|torch|git_commit|stack|"
          r"selected_by|regime|steps_from|metric|source|state|verdict", "text"),
    ("*", r"status", "status"),
    ("*", r"diverged|synthetic|smoke|target_reached|best|fastest_to_target|knee|knee_within_sweep", "bool"),
    ("*", r"(final|best)_\w+_accuracy(_mean|_std|_ci_lo|_ci_hi)?|best_model_test_accuracy|frac_diverged", "fraction"),
    ("*", r"n_crit", "nonneg"),
    ("*", r"n_\w+|seed|steps|world_size|batched_runs|steps_seeds|best_model_step|bmin|bmax", "count"),
    ("*", r"batch_size", "batch"),
    ("*", r"effective_batch_size|global_batch", "size"),
    ("*", r"samples_per_s", "positive"),
    ("*", r".*_loss(_mean|_std|_ci_lo|_ci_hi)?", "loss"),
    ("*", r"(best_)?lr|lr_min|lr_max|largest_stable_lr|linear_rule_lr|sqrt_rule_lr|epochs|peak_mem_mb|"
          r"threshold_pct|.*_s|.*_s_(mean|std|ci_lo|ci_hi)|"
          r".*_to_target(_mean|_std|_ci_lo|_ci_hi)?|samples_per_s.*|timing_ci", "nonneg"),
]
KIND_ALLOWED = {"status": "one of " + ", ".join(STATUSES), "bool": "True or False, or empty",
                "fraction": "a number in [0, 1], or empty", "count": "an integer >= 0, or empty",
                "batch": "an integer >= 1 or full", "size": "an integer >= 1, or empty",
                "nonneg": "a finite number >= 0, or empty", "number": "a number, or empty",
                "positive": "a finite number > 0, or empty", "loss": "a number >= 0 (inf: diverged), or empty"}


def column_kind(table: str, column: str) -> str:
    """What a column of a table holds (COLUMN_KINDS); "number" for any other column."""
    for where, pattern, kind in COLUMN_KINDS:
        if where in (table, "*") and re.fullmatch(pattern, column):
            return kind
    return "number"


def _cell_fits(kind: str, text: str) -> bool:
    if kind in ("any", "text"):
        return True
    if kind == "status":
        return text in STATUSES
    if kind == "bool":
        return text in ("True", "False", "")
    if text == "":
        return kind != "batch"
    if kind == "batch" and text == "full":
        return True
    try:
        value = float(text)
    except ValueError:
        return False
    if kind == "number":
        return True
    if math.isnan(value):
        return kind != "size"
    if kind == "fraction":
        return 0 <= value <= 1
    if kind in ("count", "batch", "size"):
        return value == int(value) and value >= (0 if kind == "count" else 1) if math.isfinite(value) else False
    if kind == "loss":
        return value >= 0
    if kind == "positive":
        return 0 < value < math.inf
    return 0 <= value < math.inf


def cell_problem(table: str, column: str, text: str) -> str | None:
    """What is wrong with one cell of a table (its column's kind, COLUMN_KINDS), or None; the
    check reads runs.csv and a baseline's seeds.csv through this too."""
    kind = column_kind(table, column)
    return None if _cell_fits(kind, text) else f"{column} {text!r}: allowed: {KIND_ALLOWED[kind]}"


def table_problem(table: str, header: list[str], rows) -> str | None:
    """The first cell of a table's rows (lists of text, as csv reads them) that its column's kind
    refuses, as "line N column 'text': allowed: ...", a row with another number of fields than the
    header, or None. A table that is not one of TABLE_NAMES (check.csv) is checked for its shape only."""
    kinds = [column_kind(table, c) if table in TABLE_NAMES else "any" for c in header]
    for n, row in enumerate(rows, 2):
        if len(row) != len(header):
            return f"line {n} has {len(row)} fields, the header {len(header)} (cut off?)"
        for column, kind, text in zip(header, kinds, row):
            if not _cell_fits(kind, text):
                return f"line {n} {column} {text!r}: allowed: {KIND_ALLOWED[kind]}"
    return None


CELL_METRICS = ["final_train_loss", "final_train_accuracy", "final_val_loss", "final_val_accuracy",
                "final_test_accuracy", "best_val_accuracy", "best_val_loss", "samples_per_s", "step_time_median_s",
                "grad_noise_scale"]
TARGET_METRICS = ["steps_to_target", "samples_to_target", "seconds_to_target", "epochs_to_target"]
STATS = ["mean", "std", "ci_lo", "ci_hi"]
CELL_KEYS = ["study", "cell", "workload", "optimizer", "lr", "batch_size", "effective_batch_size", "synthetic"]
CELLS_COLUMNS = (CELL_KEYS + ["n_seeds", "n_planned", "n_missing", "n_diverged", "frac_diverged", "target_metric",
                              "target", "n_reached", "n_not_reached"]
                 + [f"{m}_{s}" for m in CELL_METRICS + TARGET_METRICS for s in STATS])


def cells_table(runs, planned: dict | None = None):
    """One row per (study, cell); see the module docstring. `planned` maps a cell to the number
    of runs the plan has for it (n_planned; n_missing = n_planned - n_seeds)."""
    import pandas as pd

    rows = []
    axis_cols = [c for c in runs.columns if c.startswith("axis_")]
    for (study, cell), g in runs.groupby(["study", "cell"], sort=False):
        first = g.iloc[0]
        row = {k: first[k] for k in CELL_KEYS + axis_cols}
        ok = g[~g["diverged"].astype(bool)]
        n_planned = (planned or {}).get(cell, len(g))
        row.update({"n_seeds": len(g), "n_planned": n_planned, "n_missing": n_planned - len(g),
                    "n_diverged": int(g["diverged"].astype(bool).sum()),
                    "frac_diverged": float(g["diverged"].astype(bool).mean()),
                    "target_metric": first["target_metric"], "target": first["target"],
                    "n_reached": int(g["target_reached"].astype(bool).sum())})
        row["n_not_reached"] = len(g) - row["n_reached"]
        for m in CELL_METRICS:
            for stat, value in statistics.summarize(pd.to_numeric(ok[m], errors="coerce")).items():
                if stat != "n":
                    row[f"{m}_{stat}"] = value
        for m in TARGET_METRICS:
            values = pd.to_numeric(g[m], errors="coerce") if row["n_not_reached"] == 0 else []
            for stat, value in statistics.summarize(values).items():
                if stat != "n":
                    row[f"{m}_{stat}"] = value
        rows.append(row)
    return pd.DataFrame(rows, columns=CELL_KEYS + axis_cols + CELLS_COLUMNS[len(CELL_KEYS):])


GROUP = ["study", "workload", "optimizer", "effective_batch_size"]


def _higher_is_better(metric) -> bool:
    """rules.higher_is_better, for a table cell that may be empty (NaN)."""
    return isinstance(metric, str) and rules.higher_is_better(metric)


def lr_sensitivity_table(cells):
    import pandas as pd

    cols = GROUP + ["lr", "n_seeds", "frac_diverged", "final_train_loss_mean", "final_val_loss_mean",
                    "final_val_accuracy_mean", "best_val_accuracy_mean", "best_val_loss_mean",
                    "lr_min", "lr_max", "largest_stable_lr"]
    parts = []
    for _, g in cells.groupby(GROUP, sort=False):
        if g["lr"].nunique() < 2:
            continue
        g = g.sort_values("lr").copy()
        picks = statistics.lr_range_picks(g["lr"], g["final_train_loss_mean"], g["frac_diverged"])
        for k, v in picks.items():
            g[k] = v
        parts.append(g)
    return pd.concat(parts)[cols] if parts else pd.DataFrame(columns=cols)


def best_lr_table(cells):
    import pandas as pd

    cols = GROUP + ["best_lr", "selected_by", "n_lrs", "steps_to_target_mean", "samples_to_target_mean",
                    "seconds_to_target_mean", "linear_rule_lr", "sqrt_rule_lr"]
    rows = []
    for (study, workload, opt), g in cells.groupby(["study", "workload", "optimizer"], sort=False):
        if g["lr"].nunique() < 2:
            continue
        base = None
        for bs, h in sorted(g.groupby("effective_batch_size"), key=lambda t: t[0]):
            metric = h["target_metric"].iloc[0]
            final_col = f"final_{metric}_mean" if isinstance(metric, str) and f"final_{metric}_mean" in h else \
                "final_val_loss_mean"
            lr, how = statistics.choose_best_lr(list(h["lr"]), list(h["steps_to_target_mean"]),
                                              list(h["n_not_reached"] == 0), list(h[final_col]),
                                              _higher_is_better(metric))
            at = h[h["lr"] == lr].iloc[0] if lr is not None else None
            if base is None and lr is not None:
                base = (bs, lr)
            rows.append({"study": study, "workload": workload, "optimizer": opt, "effective_batch_size": bs,
                         "best_lr": lr, "selected_by": how, "n_lrs": h["lr"].nunique(),
                         "steps_to_target_mean": at["steps_to_target_mean"] if at is not None else None,
                         "samples_to_target_mean": at["samples_to_target_mean"] if at is not None else None,
                         "seconds_to_target_mean": at["seconds_to_target_mean"] if at is not None else None,
                         "linear_rule_lr": base[1] * bs / base[0] if base else None,
                         "sqrt_rule_lr": base[1] * (bs / base[0]) ** 0.5 if base else None})
    return pd.DataFrame(rows, columns=cols)


SCALING_COLUMNS = GROUP + ["best_lr", "selected_by", "steps_to_target_mean", "steps_to_target_ci_lo",
                           "steps_to_target_ci_hi", "samples_to_target_mean", "perfect_scaling_steps",
                           "fitted_steps", "s_min", "e_min", "b_crit", "b_crit_ci_lo", "b_crit_ci_hi", "regime",
                           "grad_noise_scale_mean", "step_time_median_s", "time_to_target_s", "fastest_to_target"]


def scaling_table(runs, cells, best):
    import pandas as pd

    rows = []
    for (study, workload, opt), g in best.groupby(["study", "workload", "optimizer"], sort=False):
        if g["effective_batch_size"].nunique() < 2:
            continue
        per_batch, picked = {}, []
        for _, b in g.sort_values("effective_batch_size").iterrows():
            cell = cells[(cells["study"] == study) & (cells["optimizer"] == opt) & (cells["lr"] == b["best_lr"])
                         & (cells["effective_batch_size"] == b["effective_batch_size"])]
            if cell.empty:
                continue
            c = cell.iloc[0]
            seeds = runs[runs["cell"] == c["cell"]]
            if b["selected_by"] == "steps_to_target":
                per_batch[b["effective_batch_size"]] = list(seeds["steps_to_target"].astype(float))
            picked.append((b, c))
        fit = statistics.scaling_fit(per_batch)
        steps0 = next(((b["effective_batch_size"], c["steps_to_target_mean"]) for b, c in picked
                       if b["selected_by"] == "steps_to_target"), None)
        for b, c in picked:
            bs = b["effective_batch_size"]
            steps = c["steps_to_target_mean"] if b["selected_by"] == "steps_to_target" else float("nan")
            rows.append({"study": study, "workload": workload, "optimizer": opt, "effective_batch_size": bs,
                         "best_lr": b["best_lr"], "selected_by": b["selected_by"], "steps_to_target_mean": steps,
                         "steps_to_target_ci_lo": c["steps_to_target_ci_lo"],
                         "steps_to_target_ci_hi": c["steps_to_target_ci_hi"],
                         "samples_to_target_mean": c["samples_to_target_mean"],
                         "perfect_scaling_steps": steps0[1] * steps0[0] / bs if steps0 else float("nan"),
                         "fitted_steps": fit["s_min"] * (1 + fit["b_crit"] / bs), **fit,
                         "regime": statistics.scaling_regime(bs, fit["b_crit"]),
                         "grad_noise_scale_mean": c["grad_noise_scale_mean"],
                         "step_time_median_s": c["step_time_median_s_mean"],
                         "time_to_target_s": steps * c["step_time_median_s_mean"]})
    table = pd.DataFrame(rows, columns=SCALING_COLUMNS)
    table["fastest_to_target"] = False
    for _, g in table.groupby(["study", "optimizer"], sort=False):
        t = pd.to_numeric(g["time_to_target_s"], errors="coerce")
        if t.notna().any():
            table.loc[t.idxmin(), "fastest_to_target"] = True
    return table


def throughput_table(runs, scaling):
    import pandas as pd

    cols = ["study", "workload", "device_name", "effective_batch_size", "world_size", "batched_runs", "n_runs",
            "samples_per_s", "step_time_median_s", "step_time_p10_s", "step_time_p90_s", "time_to_target_s"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    g = runs.groupby(["study", "workload", "device_name", "effective_batch_size", "world_size", "batched_runs"],
                     sort=False)
    table = g.agg(n_runs=("run", "count"), samples_per_s=("samples_per_s", "median"),
                  step_time_median_s=("step_time_median_s", "median"),
                  step_time_p10_s=("step_time_p10_s", "median"),
                  step_time_p90_s=("step_time_p90_s", "median")).reset_index()
    ttt = scaling.groupby(["study", "effective_batch_size"])["time_to_target_s"].min() if not scaling.empty else None
    table["time_to_target_s"] = [ttt.get((s, b), float("nan")) if ttt is not None else float("nan")
                                 for s, b in zip(table["study"], table["effective_batch_size"])]
    return table[cols]


def bmin_bmax_table(cells, threshold_pct: float = 3.5):
    import pandas as pd

    cols = ["study", "workload", "optimizer", "lr", "threshold_pct", "bmin", "bmax", "batch_sizes",
            "final_train_accuracy"]
    rows = []
    for (study, workload, opt, lr), g in cells.groupby(["study", "workload", "optimizer", "lr"], sort=False):
        if g["effective_batch_size"].nunique() < 3 or g["synthetic"].any():  # accuracy of random labels means nothing
            continue
        acc_col = "final_train_accuracy_mean" if "final_train_accuracy_mean" in g else None
        g = g.sort_values("effective_batch_size")
        accs = list(g[acc_col]) if acc_col else []
        if not accs or pd.isna(accs).all():
            continue
        bmin, bmax = rules.detect_bmin_bmax(list(g["effective_batch_size"]), accs, threshold_pct)
        rows.append({"study": study, "workload": workload, "optimizer": opt, "lr": lr, "threshold_pct": threshold_pct,
                     "bmin": bmin, "bmax": bmax,
                     "batch_sizes": " ".join(str(int(b)) for b in g["effective_batch_size"]),
                     "final_train_accuracy": " ".join(f"{a:.4f}" for a in accs)})
    return pd.DataFrame(rows, columns=cols)


def optimizers_table(cells):
    import pandas as pd

    cols = ["study", "workload", "optimizer", "lr", "effective_batch_size", "n_seeds", "frac_diverged",
            "final_val_accuracy_mean", "final_val_loss_mean", "best_val_accuracy_mean", "best_val_loss_mean", "best"]
    parts = []
    for study, g in cells.groupby("study", sort=False):
        if g["optimizer"].nunique() < 2:
            continue
        g = g.copy()
        acc = g["best_val_accuracy_mean"]
        key = acc if acc.notna().any() else -g["best_val_loss_mean"]
        g["best"] = False
        if key.notna().any():
            g.loc[key.idxmax(), "best"] = True
        parts.append(g)
    return pd.concat(parts)[cols] if parts else pd.DataFrame(columns=cols)


DATA_PARALLEL_KEYS = ["study", "workload", "device_name", "optimizer", "lr", "batch_size"]
DATA_PARALLEL_COLUMNS = DATA_PARALLEL_KEYS + [
    "world_size", "global_batch", "n_runs", "samples_per_s", "step_time_median_s", "step_time_p90_s", "speedup",
    "scaling_efficiency", "ddp_overhead", "steps_from", "steps_seeds", "steps_to_target_mean", "time_to_target_s",
    "time_to_target_ci_lo", "time_to_target_ci_hi", "n_crit", "knee", "knee_within_sweep"]


def data_parallel_table(runs, best, scaling, studies: dict):
    """Data-parallel studies (a world_size >= 1 run): one row per worker count N (0: no DDP) of each
    (study, workload, device, optimizer, lr, per-worker batch); see the module docstring."""
    import pandas as pd

    rows = []
    ddp_studies = set(runs.loc[runs["world_size"] > 0, "study"]) if not runs.empty else set()
    for key, g in runs[runs["study"].isin(ddp_studies)].groupby(DATA_PARALLEL_KEYS, sort=False):
        source = studies[key[0]].get("steps_from") or key[0]
        per_n = {n: h for n, h in g.groupby("world_size")}
        base = per_n.get(1)
        part = [_data_parallel_row(key, n, h, base, per_n.get(0), _steps_at(runs, best, source, key, h))
                for n, h in sorted(per_n.items())]
        for row in part:
            row["steps_from"] = source
        b_crit = scaling[(scaling["study"] == source) & (scaling["optimizer"] == key[3])]["b_crit"]
        knee, within = rules.workers_knee([r["world_size"] for r in part if r["world_size"] > 0],
                                          [r["time_to_target_s"] for r in part if r["world_size"] > 0])
        for row in part:
            row.update(n_crit=float(b_crit.iloc[0]) / key[5] if len(b_crit) else float("nan"),
                       knee=row["world_size"] == knee, knee_within_sweep=within)
        rows += part
    return pd.DataFrame(rows, columns=DATA_PARALLEL_COLUMNS)


def _steps_at(runs, best, source: str, key: tuple, here):
    """Steps to target of every seed at this row's global batch in the source study: its runs at the
    row's lr, else at the best lr there (best_lr.csv); NaN for a seed that did not reach the target."""
    batch = here["effective_batch_size"].iloc[0]
    at = runs[(runs["study"] == source) & (runs["optimizer"] == key[3]) & (runs["effective_batch_size"] == batch)]
    if not (at["lr"] == key[4]).any():
        pick = best[(best["study"] == source) & (best["optimizer"] == key[3]) & (best["effective_batch_size"] == batch)]
        key = key[:4] + ((pick["best_lr"].iloc[0] if len(pick) else None),) + key[5:]
    at = at[at["lr"] == key[4]]
    return [s if reached else float("nan") for s, reached in zip(at["steps_to_target"], at["target_reached"])]


def _data_parallel_row(key: tuple, n: int, h, base, plain, steps: list) -> dict:
    import pandas as pd

    step = h["step_time_median_s"].median()
    tput = h["effective_batch_size"].iloc[0] / step
    base_tput = base["effective_batch_size"].iloc[0] / base["step_time_median_s"].median() if base is not None \
        else float("nan")
    ttt = rules.time_to_target(steps, list(pd.to_numeric(h["step_time_median_s"], errors="coerce")))
    overhead = float("nan")
    if n == 1 and plain is not None:
        overhead = step / plain["step_time_median_s"].median() - 1
    return {**dict(zip(DATA_PARALLEL_KEYS, key)), "world_size": n, "global_batch": h["effective_batch_size"].iloc[0],
            "n_runs": len(h), "samples_per_s": tput, "step_time_median_s": step,
            "step_time_p90_s": h["step_time_p90_s"].median(),
            "speedup": tput / base_tput if n > 0 else float("nan"),
            "scaling_efficiency": tput / (n * base_tput) if n > 0 else float("nan"), "ddp_overhead": overhead,
            "steps_seeds": len(steps), "steps_to_target_mean": pd.Series(steps, dtype=float).mean(),
            "time_to_target_s": ttt["time_to_target_s"], "time_to_target_ci_lo": ttt["ci_lo"],
            "time_to_target_ci_hi": ttt["ci_hi"]}


TABLE_NAMES = ["runs", "cells", "lr_sensitivity", "best_lr", "scaling", "throughput", "bmin_bmax", "optimizers",
               "reproduction", "data_parallel"]


def build_tables(the_plan: dict, runs_dir: str, partial: bool = False,
                 bmin_threshold_pct: float = 3.5) -> tuple[dict, int]:
    """Every table from the run records of a plan (runs_table says which may be missing).
    Returns ({name: DataFrame}, number of planned runs without a record)."""
    runs, missing = runs_table(the_plan, runs_dir, partial)
    cells = cells_table(runs, {cell_id: len(cell["runs"]) for cell_id, cell in the_plan["cells"].items()})
    best = best_lr_table(cells)
    scaling = scaling_table(runs, cells, best)
    tables = {"runs": runs, "cells": cells, "lr_sensitivity": lr_sensitivity_table(cells), "best_lr": best,
              "scaling": scaling, "throughput": throughput_table(runs, scaling),
              "bmin_bmax": bmin_bmax_table(cells, bmin_threshold_pct), "optimizers": optimizers_table(cells)}
    tables["reproduction"] = reproduction_table(the_plan, runs)
    tables["data_parallel"] = data_parallel_table(runs, best, scaling, the_plan["studies"])
    return tables, missing


@functools.lru_cache(maxsize=1)
def table_columns() -> dict[str, tuple[str, ...]]:
    """The columns each table always has (those of a plan with no runs; runs.csv and cells.csv add
    an axis_<name> column per axis): what a reader of the tables may rely on."""
    empty = {"studies": {}, "cells": {}, "jobs": {}, "config": {}, "smoke": False}
    return {name: tuple(df.columns) for name, df in build_tables(empty, "")[0].items()}


def aggregate(plan_path: str, runs_dir: str, out_dir: str, partial: bool = False) -> dict:
    """Tables of a plan's run records, written atomically to out_dir. A file of one of their names
    there that sweepbench did not write (a user's own runs.csv) is refused before any record is read."""
    refuse_overwrite(out_dir, [f"{name}.csv" for name in TABLE_NAMES], "--out")
    tables, missing = build_tables(read_plan(plan_path), runs_dir, partial)
    write_own(out_dir, {f"{name}.csv": df.to_csv(index=False) for name, df in tables.items()}, "--out")
    return {"runs": len(tables["runs"]), "missing": missing}
