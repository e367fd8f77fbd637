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
from sweepbench.aggregate import tables
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
SPEED_METRICS = {"samples_per_s": True}   # a run's median block throughput (sweepbench.rules.timing_blocks)
SEED_COLUMNS = ["study", "cell", "seed", "status", "target", "target_reached", "smoke", "batched_runs", "stack",
                "device_name", "torch", "train_s", "timing_ci"] + list(QUALITY_METRICS) + list(SPEED_METRICS) + [
                "samples_per_s_ci_lo", "samples_per_s_ci_hi",
                "block_samples_per_s"]   # the run's timed blocks, kept with the baseline (not tested: see speed_units)
NUMERIC_COLUMNS = ["seed", "target", "batched_runs", "train_s", "timing_ci"] + list(QUALITY_METRICS) + list(
    SPEED_METRICS) + ["samples_per_s_ci_lo", "samples_per_s_ci_hi"]
BOOL_COLUMNS = ["target_reached", "smoke"]
STATUSES = ("completed", "converged", "target_reached", "diverged")
BASELINE_COMMAND = "make baseline"
BASELINE_FILES = ("seeds.csv", "meta.json")  # what `baseline save` writes (and replaces)
BASELINE_KIND = "baseline"  # the output kind in a baseline folder's written list (atomic.owned_in)
# Defaults; a config's `check:` block overrides them (validated by the config schema).
DEFAULTS = {
    "alpha": 0.05,        # chance that unchanged code reports any quality regression (regression.regression_test)
    "spread_k": 1.0,      # effect floor: at least this many baseline seed standard deviations
    "abs_tol": {"final_val_accuracy": 0.01, "best_val_accuracy": 0.01, "final_val_loss": 0.02,
                "best_val_loss": 0.02, "steps_to_target": 0.0, "samples_to_target": 0.0},
    "rel_tol": {"steps_to_target": 0.10, "samples_to_target": 0.10},
    "speed_threshold": 0.07,   # speed's effect floor: a relative change of samples/s (regression.regression_test)
    "min_timed_s": 0.5,   # speed is compared only for cells whose runs trained at least this long
}
VERDICTS = ("pass", "regression", "improvement", "unstable", "not comparable", "missing")
CHECK_COLUMNS = ["study", "cell", "metric", "baseline", "current", "delta", "ci_lo", "ci_hi", "n_baseline", "n_current",
                 "test", "p_value", "p_adjusted", "threshold", "mde", "seeds_needed", "verdict", "why", "reason"]
# the `why` words for a row that is not comparable, by the start of its reason
NOT_COMPARABLE_WHY = {"device": "different device", "torch": "different torch version",
                      "timing unsteady": "timing unsteady", "timing rule differs": "timing rule differs",
                      "no samples_per_s": "speed not measured",
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


def quality_comparisons(key, b, c, s: dict) -> list:
    """The regression.Comparison rows of one cell present on both sides (b, c: its seeds). A
    timing run (timing_ci > 0) stops when its clock is known well enough, so its steps, and with
    them its quality, depend on the machine's noise: a cell of timing runs compares its speed only."""
    if (b["timing_ci"] > 0).any() or (c["timing_ci"] > 0).any():
        return []
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


def steady(d, width: float):
    """The runs whose timing is steady: the 95% interval of their samples/s (the median block's,
    sweepbench.rules.median_interval) is within +-`width` (the speed floor) of it. A run timed while
    another process took the cores has blocks of every speed (measured: intervals of +-16% to
    +-300%, or too few blocks for one, where a quiet run has +-0.4% to +-4%); its median says how
    busy the machine was, not how fast the code is, and it could not show a change of the floor's
    size anyway."""
    half = (d["samples_per_s_ci_hi"] - d["samples_per_s_ci_lo"]) / 2 / d["samples_per_s"]
    return d[half <= width]


def timing_rule_row(key, b, c) -> list[dict]:
    """A cell whose runs are timing runs (timing_ci > 0) on one side only: its quality is not
    comparable (one side trained its budget, the other stopped on its clock), said in one row."""
    timed_b, timed_c = b["timing_ci"] > 0, c["timing_ci"] > 0
    if not (timed_b.any() or timed_c.any()) or (timed_b.all() and timed_c.all()):
        return []
    rules_b, rules_c = sorted(set(b["timing_ci"].fillna(0))), sorted(set(c["timing_ci"].fillna(0)))
    return [{"study": key[0], "cell": key[1], "metric": "*", "verdict": "not comparable",
             "reason": f"timing rule differs: timing_ci {rules_b} in the baseline, {rules_c} now (a timing run stops "
                       "on its clock, so its steps and quality depend on the machine): quality not compared"}]


def speed_units(d, metric: str):
    """One value per independent timing of a cell's runs: a run alone, or a stack (the cell's runs
    in one stack share its clock, so they are one measurement, not several). Diverged runs are
    left out (they stop early). Runs, not their blocks, are the unit: blocks of one run share the
    machine's state during that run, so testing them as independent would count one run's luck
    many times (benchmarks/README.md measures it)."""
    d = d[(d["status"] != "diverged") & d[metric].notna()]
    unit = d["stack"].where(d["stack"] != "", "seed " + d["seed"].astype(int).astype(str))
    return d.groupby(unit, sort=True)[metric].mean().to_numpy(float)


def speed_comparisons(row0: dict, b, c, s: dict) -> tuple[list[dict], list]:
    """A cell's speed: (rows that are not comparable, regression.Comparison of samples/s per
    independent timing, speed_units). Compared only between runs trained the same way: the same
    device name and torch version, and the same number of runs trained together in a stack
    (baseline runs of another stack size are left out: `make baseline` stacks its seeds in groups
    of a normal run's size), that trained at least min_timed_s (0.5 s) on both sides; and only
    runs whose timing was steady (`steady`: the others are left out, and a side with none left
    makes the row not comparable)."""
    values = lambda d, col: sorted({int(v) if isinstance(v, float) and v.is_integer() else v for v in d[col]})
    why = next((f"{what} {values(b, col)} vs {values(c, col)}" for col, what in (("device_name", "device"),
                                                                                  ("torch", "torch"))
                if set(b[col]) != set(c[col])), "")
    same = set(b["batched_runs"]) & set(c["batched_runs"])
    if not why and not same:
        why = f"runs trained together in a stack {values(b, 'batched_runs')} vs {values(c, 'batched_runs')}"
    b, c = b[b["batched_runs"].isin(same)], c[c["batched_runs"].isin(same)]
    timed = min(b["train_s"].mean(), c["train_s"].mean()) if len(b) and len(c) else math.nan
    if not why and not timed >= s["min_timed_s"]:
        why = f"runs train {timed:.3g} s, too short to time (min_timed_s {s['min_timed_s']:g})"
    unmeasured = [side for side, d in (("baseline", b), ("current", c)) if d[list(SPEED_METRICS)[0]].isna().all()]
    if not why and unmeasured:
        why = f"no samples_per_s measured in any {' or '.join(unmeasured)} run"
    unsteady = [side for side, d in (("baseline", b), ("current", c)) if steady(d, s["speed_threshold"]).empty]
    if not why and unsteady:
        why = (f"timing unsteady in every {' and '.join(unsteady)} run: the 95% interval of samples/s is wider than "
               f"+-{s['speed_threshold']:.0%} (speed_threshold) or missing (the machine was busy?)")
    shown = {metric: (b[metric].mean(), c[metric].mean()) for metric in SPEED_METRICS}
    b, c = steady(b, s["speed_threshold"]), steady(c, s["speed_threshold"])
    rows, comps = [], []
    for metric, higher in SPEED_METRICS.items():
        bv, cv = speed_units(b, metric), speed_units(c, metric)
        if why:
            bm, cm = shown[metric]
            rows.append({**row0, "metric": metric, "baseline": bm, "current": cm, "delta": cm - bm,
                         "n_baseline": len(bv), "n_current": len(cv), "verdict": "not comparable", "reason": why})
        elif not (len(bv) and len(cv)):
            rows.append({**row0, "metric": metric, "baseline": shown[metric][0], "current": shown[metric][1],
                         "n_baseline": len(bv), "n_current": len(cv), "verdict": "not comparable",
                         "reason": f"no {metric} measured in any "
                                   + " or ".join(side for side, v in (("baseline", bv), ("current", cv)) if not len(v))
                                   + " run"})
        else:
            comps.append(regression.Comparison(f"{row0['study']}\0{row0['cell']}", metric, bv, cv, higher,
                                               tolerance=s["speed_threshold"] * bv.mean(), log_scale=True,
                                               speed=True))
    return rows, comps


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
    x, lo, hi = (sign * _number(row.get(k)) / floor for k in ("delta", "ci_lo", "ci_hi"))
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
    if metric in BINARY_OUTCOMES:
        return "seed counts not significantly worse"
    delta, floor = row.get("delta"), row.get("threshold")
    past = delta is not None and floor is not None and abs(float(delta)) > float(floor)
    words = "past the effect floor, not significant" if past else "within the effect floor"
    return f"speed {words}" if metric in SPEED_METRICS else words


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
        not_comparable, timed = speed_comparisons({"study": key[0], "cell": key[1]}, bcells[key], ccells[key], s)
        speed += timing_rule_row(key, bcells[key], ccells[key]) + not_comparable
        comparisons += timed
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
    out = {col: rec[col] for col in ("study", "cell", "device_name", "torch", "stack", "block_samples_per_s")}
    try:
        blocks = [float(v) for v in rec["block_samples_per_s"].split()]
    except ValueError:
        blocks = [math.nan]
    if not all(v >= 0 for v in blocks):
        raise _bad(path, line, f"block_samples_per_s {rec['block_samples_per_s']!r}; allowed: numbers >= 0, "
                               "separated by spaces")
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
    for col in NUMERIC_COLUMNS + BOOL_COLUMNS + ["status"]:   # ranges: the tables' column kinds
        problem = tables.cell_problem("runs", col, rec[col])
        if problem:
            raise _bad(path, line, problem)
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
            "torch": col("torch"), "git_commit": col("git_commit"), **environment_made(runs)}


def save_baseline(name: str, tables_dir: str, root: str = "baselines") -> str:
    """baselines/<name>/ (seeds.csv, meta.json) from the tables, replaced as a whole or not at all."""
    runs_path = os.path.join(tables_dir, "runs.csv")
    if not os.path.exists(runs_path):
        raise SweepbenchError(f"no tables at {tables_dir}/ (runs.csv missing); run the workflow first")
    seeds = read_seed_table(runs_path)
    smoke_flag(seeds, runs_path)
    import pandas as pd

    runs = pd.read_csv(runs_path, usecols=lambda c: c in ("device_name", "torch", "git_commit", "env_lock"))
    out = baseline_dir(name, root)
    refuse_foreign(out, owned_in(out, _older_baseline, kind=BASELINE_KIND), "baseline folder")
    folder = TempFolder(out)
    try:
        write_file(os.path.join(folder.path, "seeds.csv"),
                   seeds.assign(seed=seeds["seed"].astype(int)).to_csv(index=False))
        write_file(os.path.join(folder.path, "meta.json"),
                   json.dumps(baseline_meta(name, runs, seeds), indent=1) + "\n")
        list_written(folder.path, BASELINE_FILES, kind=BASELINE_KIND)  # what a later save may replace (owned_in)
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


# ---------------------------------------------------------------- the environment (requirements.lock)

def environment_made(runs) -> dict:
    """meta.json's `env_lock` (the runs' distinct runs.csv env_lock: a lock's hash, '<hash> (with changes)'
    or 'not locked'; [] for runs from before the column) and `env_packages` (name -> version of the
    clone's requirements.lock when every run had exactly that lock, so a later check can name each
    package that differs; else null)."""
    from sweepbench import envlock

    locks = sorted(str(v) for v in runs["env_lock"].dropna().unique()) if "env_lock" in runs else []
    lock = envlock.read_lock()
    same = lock is not None and locks == [lock[0]]
    return {"env_lock": locks, "env_packages": dict(sorted(lock[1].values())) if same else None}


def package_changes(current: dict | None, baseline: dict | None, torch: tuple) -> str:
    """'torch 2.14.1 vs 2.15.0, numpy 2.4.6 vs 2.4.5, +3 more' (these results' version first; torch
    first), from both sides' locked versions; without them, torch from the tables (torch: (now, baseline))."""
    if not (current and baseline):
        return f"torch {torch[0]} vs {torch[1]}" if torch[0] != torch[1] else ""
    from sweepbench import envlock

    now = {envlock.normalize(k): (k, v) for k, v in current.items()}
    base = {envlock.normalize(k): (k, v) for k, v in baseline.items()}
    keys = sorted((k for k in set(now) | set(base) if now.get(k, (0, None))[1] != base.get(k, (0, None))[1]),
                  key=lambda k: (k != "torch", k))
    words = [f"{(now.get(k) or base.get(k))[0]} {now.get(k, (0, 'none'))[1]} vs {base.get(k, (0, 'none'))[1]}"
             for k in keys]
    return ", ".join(words[:4] + ([f"+{len(words) - 4} more"] if len(words) > 4 else []))


def environment_line(meta: dict, tables_dir: str) -> str | None:
    """How the current results' environment differs from the baseline's, in one line (None when both had
    the same requirements.lock, matched exactly): 'environment differs from the baseline's: lock a1b2c3d4e5f6
    (these results) vs 0f9e8d7c6b5a (baseline): torch 2.14.1 vs 2.15.0'. The check prints it before its
    verdict and keeps it in summary.json `environment`."""
    import pandas as pd

    from sweepbench import envlock

    runs = pd.read_csv(os.path.join(tables_dir, "runs.csv"), usecols=lambda c: c in ("env_lock", "torch"))
    now = sorted(str(v) for v in runs["env_lock"].dropna().unique()) if "env_lock" in runs else []
    base = list(meta.get("env_lock") or [])
    if now == base and len(now) == 1 and envlock.is_hash(now[0]):
        return None
    lock = envlock.read_lock()
    current = dict(lock[1].values()) if lock and now == [lock[0]] else None
    torch = tuple(", ".join(sorted(map(str, v))) or "unknown"
                  for v in (runs["torch"].dropna().unique() if "torch" in runs else [], meta.get("torch") or []))
    changes = package_changes(current, meta.get("env_packages"), torch)
    known = bool(now and base) and all(map(envlock.is_hash, now + base))
    if not (changes or now or base):
        return None  # neither side recorded its lock (tables of an older sweepbench) and torch is the same
    return (f"environment {'differs from' if known or changes else 'may differ from'} the baseline's: lock "
            f"{', '.join(now) or 'unknown'} (these results) vs {', '.join(base) or 'unknown'} (baseline)"
            + (f": {changes}" if changes else ""))


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
               "environment": environment_line(meta, tables_dir),
               "baseline_made": {k: meta.get(k)
                                 for k in ("seeds", "cpu", "device_name", "torch", "git_commit", "env_lock", "smoke")}}
    write_own(out_dir, {"check.csv": table.to_csv(index=False), "summary.json": json.dumps(summary, indent=1)}, "--out")
    return summary



def write_not_run(out_dir: str, name: str, reason: str) -> dict:
    """Record that the check could not run (for the report), with the reason."""
    import pandas as pd

    summary = {"baseline": name, "passed": None, "counts": {}, "line": f"not run against baseline {name!r}: {reason}"}
    write_own(out_dir, {"check.csv": pd.DataFrame(columns=CHECK_COLUMNS).to_csv(index=False),
                        "summary.json": json.dumps(summary, indent=1)}, "--out")
    return summary
