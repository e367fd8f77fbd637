"""Regression check: compare current results with a committed baseline, cell by cell.

`sweepbench baseline save NAME` freezes the per-seed values of every cell plus how they were
made into baselines/NAME/ (seeds.csv, meta.json); `make baseline` makes the default one with
more seeds than a normal run (and other seeds), so the check has the seeds' own spread to test
against. `sweepbench check --baseline NAME` compares and writes results/check/check.csv and
summary.json; exit 0 when nothing regressed, 1 when something did, 2 for a usage error or
corrupt input (unknown baseline, tables missing, a file that fails validation, smoke results
against a real baseline or the reverse, a baseline that shares no cell with the results).

The decision is sweepbench.check.regression.regression_test (quoted in the report's Methods).

check.csv columns: study, cell, metric, baseline (mean over seeds; for target_reached and
diverged the share of seeds), current, delta (current - baseline), n_baseline, n_current
(seeds compared), test, p_value (one-sided, "current is worse"), p_adjusted (for the many
comparisons), threshold (the effect floor, or the relative speed threshold), mde (minimum
detectable effect: the change caught with 80% power), seeds_needed (current seeds that would
bring the mde to twice the tolerance, where more are needed), verdict (pass | regression |
improvement | unstable | not comparable | missing), why (the verdict's reason in a few words,
the same for every row of its kind: `why_words`), reason (the full reason with its numbers).
ci_lo, ci_hi: the 95% confidence interval of the change (current - baseline), continuous
quality metrics only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from sweepbench import SweepbenchError, __version__
from sweepbench.atomic import (
    TempFolder,
    list_written,
    owned_in,
    refuse_foreign,
    refuse_overwrite,
    write_file,
    write_own,
)
from sweepbench.check import regression
from sweepbench.provenance import cpu_name

# metric -> (higher is better)
QUALITY_METRICS = {"final_val_accuracy": True, "best_val_accuracy": True, "final_val_loss": False,
                   "best_val_loss": False, "steps_to_target": False, "samples_to_target": False}
LOG_SCALE = ("steps_to_target", "samples_to_target")   # tested on logarithms (regression.regression_test)
BINARY_OUTCOMES = {"target_reached": True, "diverged": False}
SPEED_METRICS = {"samples_per_s": True, "step_time_median_s": False}
SEED_COLUMNS = ["study", "cell", "seed", "status", "target", "target_reached", "smoke", "batched_runs", "device_name",
                "torch", "train_s"] + list(QUALITY_METRICS) + list(SPEED_METRICS)
NUMERIC_COLUMNS = ["seed", "target", "batched_runs", "train_s"] + list(QUALITY_METRICS) + list(SPEED_METRICS)
BOOL_COLUMNS = ["target_reached", "smoke"]
STATUSES = ("completed", "converged", "target_reached", "diverged")
BASELINE_COMMAND = "make baseline"
BASELINE_FILES = ("seeds.csv", "meta.json")  # what `baseline save` writes (and replaces)
# Defaults; a config's `check:` block overrides them (validated by the config schema).
DEFAULTS = {
    "alpha": 0.05,        # chance that unchanged code reports any quality regression (regression.regression_test)
    "spread_k": 1.0,      # effect floor: at least this many baseline seed standard deviations
    "abs_tol": {"final_val_accuracy": 0.01, "best_val_accuracy": 0.01, "final_val_loss": 0.02,
                "best_val_loss": 0.02, "steps_to_target": 0.0, "samples_to_target": 0.0},
    "rel_tol": {"steps_to_target": 0.10, "samples_to_target": 0.10},
    "speed_threshold": 0.07,
    "min_timed_s": 1.0,   # speed is compared only for cells whose runs trained at least this long
}
VERDICTS = ("pass", "regression", "improvement", "unstable", "not comparable", "missing")
CHECK_COLUMNS = ["study", "cell", "metric", "baseline", "current", "delta", "ci_lo", "ci_hi", "n_baseline", "n_current",
                 "test", "p_value", "p_adjusted", "threshold", "mde", "seeds_needed", "verdict", "why", "reason"]
# the `why` words for a row that is not comparable, by the start of its reason
NOT_COMPARABLE_WHY = {"device": "different device", "torch": "different torch version",
                      "runs trained together": "different stack size", "runs train": "runs too short to time",
                      "one seed": "one seed on each side"}


def settings(config_check: dict | None) -> dict:
    s = json.loads(json.dumps(DEFAULTS))
    for key, value in (config_check or {}).items():
        if isinstance(value, dict):
            s[key].update(value)
        else:
            s[key] = value
    return s


def speed_verdict(baseline, current, higher_is_better: bool, threshold: float) -> tuple[str, str]:
    """The speed test: a regression when the current mean is worse than the baseline mean by
    more than `threshold` relative to it (TorchBench's 7% by default). Only applied when the
    device name, torch version and number of runs trained together in a stack match and the runs
    trained for at least min_timed_s seconds (default 1 s): shorter runs cannot be timed to a
    few percent."""
    b, c = float(np.mean(baseline)), float(np.mean(current))
    rel = (c - b) / b if b else math.nan
    worse = -rel if higher_is_better else rel
    if worse > threshold:
        return "regression", f"{abs(rel):.1%} {'slower' if worse > 0 else 'faster'} (threshold {threshold:.0%})"
    if -worse > threshold:
        return "improvement", f"{abs(rel):.1%} faster"
    return "pass", ""


def quality_comparisons(key, b, c, s: dict) -> list:
    """The regression.Comparison rows of one cell present on both sides (b, c: its seeds)."""
    cell = f"{key[0]}\0{key[1]}"
    out = []
    for metric, higher in BINARY_OUTCOMES.items():
        if metric == "target_reached" and b["target"].isna().all() and c["target"].isna().all():
            continue   # a cell without a target
        values = (lambda d: d["status"] == "diverged") if metric == "diverged" else (lambda d: d["target_reached"])
        out.append(regression.Comparison(cell, metric, values(b).to_numpy(float), values(c).to_numpy(float), higher,
                                         binary=True))
    bq, cq = b[b["status"] != "diverged"], c[c["status"] != "diverged"]
    for metric, higher in QUALITY_METRICS.items():
        bv, cv = bq[metric].dropna().to_numpy(float), cq[metric].dropna().to_numpy(float)
        if len(bv) and len(cv):
            tol = s["abs_tol"].get(metric, 0.0) + s["rel_tol"].get(metric, 0.0) * abs(bv.mean())
            out.append(regression.Comparison(cell, metric, bv, cv, higher, tolerance=tol,
                                             log_scale=metric in LOG_SCALE))
    return out


def speed_rows(row0: dict, b, c, s: dict) -> list[dict]:
    rows = []
    values = lambda d, col: sorted({int(v) if isinstance(v, float) and v.is_integer() else v for v in d[col]})
    why = next((f"{what} {values(b, col)} vs {values(c, col)}"
                for col, what in (("device_name", "device"), ("torch", "torch"),
                                  ("batched_runs", "runs trained together in a stack"))
                if set(b[col]) != set(c[col])), "")
    timed = min(b["train_s"].mean(), c["train_s"].mean())
    for metric, higher in SPEED_METRICS.items():
        bv, cv = b[metric].dropna(), c[metric].dropna()
        if len(bv) == 0 or len(cv) == 0:
            continue
        out = {**row0, "metric": metric, "baseline": bv.mean(), "current": cv.mean(), "delta": cv.mean() - bv.mean(),
               "n_baseline": len(bv), "n_current": len(cv), "test": "relative threshold",
               "threshold": s["speed_threshold"]}
        if why:
            out.update(verdict="not comparable", reason=why)
        elif not timed >= s["min_timed_s"]:
            out.update(verdict="not comparable",
                       reason=f"runs train {timed:.3g} s, too short to time (min_timed_s {s['min_timed_s']:g})")
        else:
            verdict, reason = speed_verdict(bv, cv, higher, s["speed_threshold"])
            out.update(verdict=verdict, reason=reason)
        rows.append(out)
    return rows


def change_in_floors(row: dict) -> tuple[float, float, float]:
    """(change, interval low, interval high) of a check row in units of its effect floor, positive
    = worse: a quality metric's change (current - baseline, sign turned so that worse is positive)
    over its threshold, a speed metric's relative change over the speed threshold. Past 1 the
    change is larger than the check's floor; the interval is NaN where the row has none. All NaN
    for a row with no floor (binary outcomes, missing cells)."""
    metric, floor = row["metric"], _number(row.get("threshold"))
    higher = {**QUALITY_METRICS, **SPEED_METRICS}.get(metric)
    if higher is None or not floor > 0:
        return math.nan, math.nan, math.nan
    sign = -1.0 if higher else 1.0
    if metric in SPEED_METRICS:
        base = _number(row.get("baseline"))
        scale = base * floor if base > 0 else math.nan
    else:
        scale = floor
    x, lo, hi = (sign * _number(row.get(k)) / scale for k in ("delta", "ci_lo", "ci_hi"))
    return x, min(lo, hi), max(lo, hi)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def why_words(row: dict) -> str:
    """A check row's verdict reason in a few words, the same for every row of its kind, so the
    report can count the rows by it: what changed (quality, seed counts, speed) for a
    regression or improvement, what differs for a row that is not comparable, whether a passing
    change stayed within its effect floor."""
    verdict, metric, reason = row["verdict"], row["metric"], str(row.get("reason") or "")
    kind = ("speed" if metric in SPEED_METRICS else "seeds missing the target" if metric == "target_reached"
            else "seeds diverging" if metric == "diverged" else metric.replace("_", " "))
    if verdict in ("regression", "improvement"):
        return f"{kind} {'worse' if verdict == 'regression' else 'better'}"
    if verdict == "missing":
        return "cell only in the " + ("baseline" if reason.startswith("in the baseline") else "current results")
    if verdict == "unstable":
        return "baseline seeds disagree"
    if verdict == "not comparable":
        return next((w for start, w in NOT_COMPARABLE_WHY.items() if reason.startswith(start)), "not comparable")
    if metric in SPEED_METRICS:
        return "speed within its threshold"
    if metric in BINARY_OUTCOMES:
        return "seed counts not significantly worse"
    delta, floor = row.get("delta"), row.get("threshold")
    past = delta is not None and floor is not None and abs(float(delta)) > float(floor)
    return "past the effect floor, not significant" if past else "within the effect floor"


def compare(base, cur, s: dict):
    """All rows of check.csv from baseline and current per-seed tables (validated DataFrames)."""
    import pandas as pd

    rows = []
    bcells = {k: g for k, g in base.groupby(["study", "cell"], sort=False)}
    ccells = {k: g for k, g in cur.groupby(["study", "cell"], sort=False)}
    for key in [k for k in bcells if k not in ccells]:
        rows.append({"study": key[0], "cell": key[1], "metric": "*", "verdict": "missing",
                     "reason": "in the baseline, not in the current results"})
    for key in [k for k in ccells if k not in bcells]:
        rows.append({"study": key[0], "cell": key[1], "metric": "*", "verdict": "missing",
                     "reason": "in the current results, not in the baseline"})
    comparisons, speed = [], []
    for key in [k for k in bcells if k in ccells]:
        comparisons += quality_comparisons(key, bcells[key], ccells[key], s)
        speed += speed_rows({"study": key[0], "cell": key[1]}, bcells[key], ccells[key], s)
    for comp, result in zip(comparisons, regression.regression_test(comparisons, s["alpha"], s["spread_k"])):
        study, cell = comp.cell.split("\0")
        rows.append({"study": study, "cell": cell, "metric": comp.metric, "baseline": float(np.mean(comp.baseline)),
                     "current": float(np.mean(comp.current)), **result})
    rows = [{**r, "why": why_words(r)} for r in rows + speed]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


# ---------------------------------------------------------------- reading and validating the per-seed tables

def _bad(path: str, line: int | None, problem: str) -> SweepbenchError:
    return SweepbenchError(f"{path}{f' line {line}' if line else ''}: {problem}")


def _parse_row(rec: dict, path: str, line: int) -> dict:
    """One row's SEED_COLUMNS, typed; a bad value raises naming file, line, column and what is allowed."""
    out = {"study": rec["study"], "cell": rec["cell"], "device_name": rec["device_name"], "torch": rec["torch"]}
    for col in ("study", "cell"):
        if not rec[col]:
            raise _bad(path, line, f"empty {col}")
    if rec["status"] not in STATUSES:
        raise _bad(path, line, f"status {rec['status']!r}; allowed: {', '.join(STATUSES)}")
    out["status"] = rec["status"]
    for col in BOOL_COLUMNS:
        if rec[col] not in ("True", "False"):
            raise _bad(path, line, f"{col} {rec[col]!r}; allowed: True, False")
        out[col] = rec[col] == "True"
    for col in NUMERIC_COLUMNS:
        try:
            out[col] = float(rec[col]) if rec[col] != "" else math.nan
        except ValueError:
            raise _bad(path, line, f"{col} {rec[col]!r} is not a number") from None
    if not (math.isfinite(out["seed"]) and out["seed"] == int(out["seed"]) and out["seed"] >= 0):
        raise _bad(path, line, f"seed {rec['seed']!r}; allowed: an integer >= 0")
    return out


def read_seed_table(path: str):
    """runs.csv (the tables) or a baseline's seeds.csv -> a DataFrame of SEED_COLUMNS, validated:
    every row has the header's number of fields, every value its type, no (study, cell, seed)
    twice, and the file ends with a newline (a cut-off file does not)."""
    import pandas as pd

    try:
        with open(path, newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise _bad(path, None, f"cannot read: {getattr(err, 'strerror', None) or err}") from None
    if not text.strip():
        raise _bad(path, None, "empty file")
    if not text.endswith("\n"):
        raise _bad(path, None, "does not end with a newline (cut off?)")
    rows = list(csv.reader(io.StringIO(text)))
    header, records, seen = rows[0], [], set()
    missing = [c for c in SEED_COLUMNS if c not in header]
    if missing:
        raise _bad(path, 1, f"columns {missing} missing (made by an older sweepbench? re-run the workflow, "
                            f"or re-make the baseline: {BASELINE_COMMAND})")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise _bad(path, line, f"{len(row)} fields, the header has {len(header)} (cut off or edited?)")
        rec = _parse_row(dict(zip(header, row)), path, line)
        key = (rec["study"], rec["cell"], rec["seed"])
        if key in seen:
            raise _bad(path, line, f"seed {int(rec['seed'])} of cell {rec['cell']} appears twice")
        seen.add(key)
        records.append(rec)
    if not records:
        raise _bad(path, None, "no rows")
    return pd.DataFrame(records, columns=SEED_COLUMNS)


def smoke_flag(table, path: str) -> bool:
    flags = set(table["smoke"])
    if len(flags) > 1:
        raise _bad(path, None, "mixes smoke and real runs")
    return flags.pop()


# ---------------------------------------------------------------- baselines

def baseline_dir(name: str, root: str = "baselines") -> str:
    if not name or "/" in name or name.startswith("."):
        raise SweepbenchError(f"bad baseline name {name!r}; allowed: a plain folder name such as 'default'")
    return os.path.join(root, name)


def baseline_meta(name: str, runs, seeds) -> dict:
    """meta.json: how the baseline was made (seeds, machine, torch, commit, smoke or not)."""
    col = lambda c: sorted(str(v) for v in runs[c].dropna().unique()) if c in runs else []
    return {"name": name, "sweepbench": __version__, "runs": len(seeds), "cells": int(seeds["cell"].nunique()),
            "studies": sorted(seeds["study"].unique()), "smoke": bool(seeds["smoke"].any()),
            "seeds": {study: sorted(int(x) for x in g["seed"].unique()) for study, g in seeds.groupby("study")},
            "remake": BASELINE_COMMAND, "device_name": col("device_name"), "cpu": cpu_name(),
            "torch": col("torch"), "git_commit": col("git_commit")}


def save_baseline(name: str, tables_dir: str, root: str = "baselines") -> str:
    """baselines/<name>/ (seeds.csv, meta.json) from the tables, replaced as a whole or not at all."""
    runs_path = os.path.join(tables_dir, "runs.csv")
    if not os.path.exists(runs_path):
        raise SweepbenchError(f"no tables at {tables_dir}/ (runs.csv missing); run the workflow first")
    seeds = read_seed_table(runs_path)
    smoke_flag(seeds, runs_path)
    import pandas as pd

    runs = pd.read_csv(runs_path, usecols=lambda c: c in ("device_name", "torch", "git_commit"))
    out = baseline_dir(name, root)
    refuse_foreign(out, owned_in(out, _older_baseline), "baseline folder")
    folder = TempFolder(out)
    try:
        write_file(os.path.join(folder.path, "seeds.csv"),
                   seeds.assign(seed=seeds["seed"].astype(int)).to_csv(index=False))
        write_file(os.path.join(folder.path, "meta.json"),
                   json.dumps(baseline_meta(name, runs, seeds), indent=1) + "\n")
        list_written(folder.path, BASELINE_FILES)  # what a later save may replace (atomic.owned_in)
    except BaseException:
        folder.discard()
        raise
    folder.commit()
    return out


def _older_baseline(path: str) -> tuple[str, ...]:
    """A baseline folder of a sweepbench before the WRITTEN list: its meta.json an object naming the
    sweepbench that saved it (a user's own meta.json or seeds.csv is no baseline). Its files' names, or none."""
    try:
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return ()
    return BASELINE_FILES if isinstance(meta, dict) and {"sweepbench", "remake"} <= set(meta) else ()


def load_baseline(name: str, root: str = "baselines"):
    path = baseline_dir(name, root)
    if not os.path.isdir(path):
        have = (sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
                if os.path.isdir(root) else [])
        raise SweepbenchError(f"unknown baseline {name!r}; allowed: {', '.join(have) or '(none saved yet)'} "
                              f"(sweepbench baseline save NAME creates one)")
    meta_path = os.path.join(path, "meta.json")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as err:
        raise SweepbenchError(f"corrupt baseline {path}/: meta.json: {err}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("runs"), int):
        raise SweepbenchError(f"corrupt baseline {path}/: meta.json has no run count ('runs')")
    base = read_seed_table(os.path.join(path, "seeds.csv"))
    if len(base) != meta["runs"]:
        raise SweepbenchError(f"corrupt baseline {path}/: seeds.csv has {len(base)} rows, meta.json says "
                              f"{meta['runs']} (cut off or edited? re-make it: {BASELINE_COMMAND})")
    return base, meta


def load_both(name: str, tables_dir: str, root: str):
    """Baseline and current per-seed tables, validated, same kind (smoke or real), sharing a cell."""
    base, meta = load_baseline(name, root)
    runs_path = os.path.join(tables_dir, "runs.csv")
    if not os.path.exists(runs_path):
        raise SweepbenchError(f"no current tables at {tables_dir}/ (runs.csv missing); run the workflow first")
    cur = read_seed_table(runs_path)
    base_smoke = smoke_flag(base, os.path.join(baseline_dir(name, root), "seeds.csv"))
    cur_smoke = smoke_flag(cur, runs_path)
    if base_smoke != cur_smoke:
        kinds = ("smoke", "real") if cur_smoke else ("real", "smoke")
        raise SweepbenchError(f"refusing to compare {kinds[0]} results ({runs_path}) with the {kinds[1]} baseline "
                              f"{name!r}: smoke runs use tiny data and a few steps, their numbers mean nothing here")
    common = set(zip(base["study"], base["cell"])) & set(zip(cur["study"], cur["cell"]))
    if not common:
        raise SweepbenchError(
            f"baseline {name!r} shares no cell with the current results: baseline studies "
            f"{sorted(set(base['study']))}, current {sorted(set(cur['study']))} (a different config or grid?)")
    return base, meta, cur, common


def summary_line(name: str, meta: dict, table, n_cells: int) -> str:
    counts = {v: int((table["verdict"] == v).sum()) for v in VERDICTS}
    regressed = counts["regression"] > 0
    names = table[table["verdict"] == "regression"][["cell", "metric"]].astype(str).agg(" ".join, axis=1)
    seeds = sorted({len(v) for v in meta.get("seeds", {}).values()})
    made = f" ({'/'.join(map(str, seeds))} seeds per cell)" if seeds else ""
    hints = int(table["seeds_needed"].notna().sum())
    return (f"{'REGRESSION' if regressed else 'PASS'} against baseline {name!r}{made}: {n_cells} cells compared; "
            + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
            + (f"; {hints} comparisons would need more seeds to detect twice their tolerance "
               "(seeds_needed in check.csv)" if hints else "")
            + (f". Regressed: {'; '.join(names.head(5))}" + (" ..." if len(names) > 5 else "") if regressed else ""))


CHECK_FILES = ("check.csv", "summary.json")  # what `check --out` writes into its folder (atomic.write_own)


def run_check(name: str, tables_dir: str, out_dir: str, config_check: dict | None = None,
              root: str = "baselines") -> dict:
    """Compare, write check.csv and summary.json atomically, return the summary. A file of theirs in
    out_dir that sweepbench did not write (a user's own check.csv) is refused before anything is read."""
    refuse_overwrite(out_dir, CHECK_FILES, "--out")
    base, meta, cur, common = load_both(name, tables_dir, root)
    table = compare(base, cur, settings(config_check))
    counts = {v: int((table["verdict"] == v).sum()) for v in VERDICTS}
    summary = {"baseline": name, "passed": counts["regression"] == 0, "counts": counts, "cells": len(common),
               "line": summary_line(name, meta, table, len(common)),
               "baseline_made": {k: meta.get(k)
                                 for k in ("seeds", "cpu", "device_name", "torch", "git_commit", "smoke")}}
    write_own(out_dir, {"check.csv": table.to_csv(index=False), "summary.json": json.dumps(summary, indent=1)}, "--out")
    return summary



def write_not_run(out_dir: str, name: str, reason: str) -> dict:
    """Record that the check could not run (for the report), with the reason."""
    import pandas as pd

    summary = {"baseline": name, "passed": None, "counts": {}, "line": f"not run against baseline {name!r}: {reason}"}
    write_own(out_dir, {"check.csv": pd.DataFrame(columns=CHECK_COLUMNS).to_csv(index=False),
                        "summary.json": json.dumps(summary, indent=1)}, "--out")
    return summary
