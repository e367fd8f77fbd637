"""Regression check: compare current results with a committed baseline, cell by cell.

`sweepbench baseline save NAME` freezes the per-seed values of every cell plus provenance
into baselines/NAME/ (seeds.csv, meta.json). `sweepbench check --baseline NAME` compares
and writes results/check/check.csv and summary.json; exit 0 when nothing regressed, 1 when
something did, 2 for a usage error (unknown or corrupt baseline, tables missing, a
baseline that shares no cell with the current results).

check.csv columns: study, cell, metric, baseline (mean over seeds), current, delta
(current - baseline), p_value (quality metrics with >= 2 seeds on each side), threshold
(the tolerance or relative speed threshold applied), verdict (pass | regression |
improvement | not comparable | missing), reason.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from sweepbench import SweepbenchError, __version__

# metric -> (higher is better)
QUALITY_METRICS = {"final_val_accuracy": True, "best_val_accuracy": True, "final_val_loss": False,
                   "best_val_loss": False, "steps_to_target": False, "samples_to_target": False}
SPEED_METRICS = {"samples_per_s": True, "step_time_median_s": False}
SEED_COLUMNS = ["study", "cell", "seed", "status", "target_reached", "device_name", "torch", "train_s"] + \
    list(QUALITY_METRICS) + list(SPEED_METRICS)
# Defaults; a config's `check:` block overrides them (validated by the config schema).
DEFAULTS = {
    "alpha": 0.05,
    "abs_tol": {"final_val_accuracy": 0.01, "best_val_accuracy": 0.01, "final_val_loss": 0.02,
                "best_val_loss": 0.02, "steps_to_target": 0.0, "samples_to_target": 0.0},
    "rel_tol": {"steps_to_target": 0.10, "samples_to_target": 0.10},
    "speed_threshold": 0.07,
    "min_timed_s": 1.0,   # speed is compared only for cells whose runs trained at least this long
}
VERDICTS = ("pass", "regression", "improvement", "not comparable", "missing")
CHECK_COLUMNS = ["study", "cell", "metric", "baseline", "current", "delta", "p_value", "threshold", "verdict", "reason"]


def settings(config_check: dict | None) -> dict:
    s = json.loads(json.dumps(DEFAULTS))
    for key, value in (config_check or {}).items():
        if isinstance(value, dict):
            s[key].update(value)
        else:
            s[key] = value
    return s


def one_sided_p(baseline, current, higher_is_better: bool) -> float:
    """One-sided Welch t-test p-value for 'current is worse than baseline' (MLPerf's
    reference-convergence check, per cell). NaN with fewer than 2 values on a side or no
    variance at all."""
    from scipy import stats

    b, c = np.asarray(baseline, float), np.asarray(current, float)
    scale = max(abs(b).max(), abs(c).max(), 1e-300)
    if len(b) < 2 or len(c) < 2 or max(b.std(), c.std()) <= 1e-9 * scale:   # no variance to test with
        return math.nan
    alternative = "less" if higher_is_better else "greater"   # worse = lower accuracy / higher loss
    return float(stats.ttest_ind(c, b, equal_var=False, alternative=alternative).pvalue)


def quality_verdict(baseline, current, higher_is_better: bool, alpha: float, tol: float) -> tuple[str, float, str]:
    """The regression test of a quality metric: a regression when the current mean is worse than
    the baseline mean by more than the tolerance `tol` AND the one-sided test says so at
    level alpha (or, when it cannot be run — one seed, or no variance — by the tolerance
    alone). An improvement is the mirror image. Returns (verdict, p_value, reason)."""
    b, c = np.asarray(baseline, float), np.asarray(current, float)
    delta = c.mean() - b.mean()
    worse = -delta if higher_is_better else delta      # > 0 means current is worse
    p_worse = one_sided_p(b, c, higher_is_better)
    p_better = one_sided_p(b, c, not higher_is_better)
    if worse > tol and (math.isnan(p_worse) or p_worse < alpha):
        return "regression", p_worse, f"worse by {abs(delta):.4g} (tolerance {tol:.4g})"
    if -worse > tol and (math.isnan(p_better) or p_better < alpha):
        return "improvement", p_worse, f"better by {abs(delta):.4g}"
    return "pass", p_worse, ""


def speed_verdict(baseline, current, higher_is_better: bool, threshold: float) -> tuple[str, str]:
    """The speed test: a regression when the current mean is worse than the baseline mean by
    more than `threshold` relative to it (TorchBench's 7% by default). Only applied when the
    device name and torch version match and the runs trained for at least min_timed_s
    seconds (default 1 s): shorter runs cannot be timed to a few percent."""
    b, c = float(np.mean(baseline)), float(np.mean(current))
    rel = (c - b) / b if b else math.nan
    worse = -rel if higher_is_better else rel
    if worse > threshold:
        return "regression", f"{abs(rel):.1%} {'slower' if worse > 0 else 'faster'} (threshold {threshold:.0%})"
    if -worse > threshold:
        return "improvement", f"{abs(rel):.1%} faster"
    return "pass", ""


def compare(base, cur, s: dict):
    """All rows of check.csv from baseline and current per-seed tables (pandas DataFrames)."""
    import pandas as pd

    rows = []
    bcells = {k: g for k, g in base.groupby(["study", "cell"], sort=False)}
    ccells = {k: g for k, g in cur.groupby(["study", "cell"], sort=False)}
    for key in bcells.keys() - ccells.keys():
        rows.append({"study": key[0], "cell": key[1], "metric": "*", "verdict": "missing",
                     "reason": "in the baseline, not in the current results"})
    for key in ccells.keys() - bcells.keys():
        rows.append({"study": key[0], "cell": key[1], "metric": "*", "verdict": "missing",
                     "reason": "in the current results, not in the baseline"})
    for key in [k for k in bcells if k in ccells]:
        b, c = bcells[key], ccells[key]
        row0 = {"study": key[0], "cell": key[1]}
        b_div, c_div = (b["status"] == "diverged").mean(), (c["status"] == "diverged").mean()
        if b_div == 0 and c_div > 0:
            rows.append({**row0, "metric": "divergence", "baseline": b_div, "current": c_div, "delta": c_div - b_div,
                         "verdict": "regression", "reason": f"{int((c['status'] == 'diverged').sum())} seed(s) now diverge"})
        b_all = bool(b["target_reached"].astype(bool).all())
        c_all = bool(c["target_reached"].astype(bool).all())
        if b_all and not c_all:
            rows.append({**row0, "metric": "target_reached", "baseline": 1.0, "current": float(c["target_reached"].mean()),
                         "verdict": "regression", "reason": "every seed reached the target in the baseline; now not"})
        bq, cq = b[b["status"] != "diverged"], c[c["status"] != "diverged"]
        for metric, higher in QUALITY_METRICS.items():
            bv, cv = bq[metric].dropna().astype(float), cq[metric].dropna().astype(float)
            if len(bv) == 0 or len(cv) == 0:
                continue
            tol = s["abs_tol"].get(metric, 0.0) + s["rel_tol"].get(metric, 0.0) * abs(bv.mean())
            verdict, p, reason = quality_verdict(bv, cv, higher, s["alpha"], tol)
            rows.append({**row0, "metric": metric, "baseline": bv.mean(), "current": cv.mean(),
                         "delta": cv.mean() - bv.mean(), "p_value": p, "threshold": tol, "verdict": verdict,
                         "reason": reason})
        same_device = set(b["device_name"]) == set(c["device_name"])
        same_torch = set(b["torch"]) == set(c["torch"])
        for metric, higher in SPEED_METRICS.items():
            bv, cv = b[metric].dropna().astype(float), c[metric].dropna().astype(float)
            if len(bv) == 0 or len(cv) == 0:
                continue
            out = {**row0, "metric": metric, "baseline": bv.mean(), "current": cv.mean(), "delta": cv.mean() - bv.mean(),
                   "threshold": s["speed_threshold"]}
            timed = min(b["train_s"].mean(), c["train_s"].mean()) if "train_s" in b and "train_s" in c else math.inf
            if not (same_device and same_torch):
                what = (f"device {sorted(set(b['device_name']))} vs {sorted(set(c['device_name']))}" if not same_device
                        else f"torch {sorted(set(b['torch']))} vs {sorted(set(c['torch']))}")
                out.update(verdict="not comparable", reason=what)
            elif timed < s["min_timed_s"]:
                out.update(verdict="not comparable",
                           reason=f"runs train {timed:.3g} s, too short to time (min_timed_s {s['min_timed_s']:g})")
            else:
                verdict, reason = speed_verdict(bv, cv, higher, s["speed_threshold"])
                out.update(verdict=verdict, reason=reason)
            rows.append(out)
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def seed_values(runs):
    """The per-seed columns a baseline keeps, from runs.csv."""
    return runs[[c for c in SEED_COLUMNS if c in runs.columns]].copy()


def baseline_dir(name: str, root: str = "baselines") -> str:
    if not name or "/" in name or name.startswith("."):
        raise SweepbenchError(f"bad baseline name {name!r}; allowed: a plain folder name such as 'default'")
    return os.path.join(root, name)


def save_baseline(name: str, tables_dir: str, root: str = "baselines") -> str:
    import pandas as pd

    runs_path = os.path.join(tables_dir, "runs.csv")
    if not os.path.exists(runs_path):
        raise SweepbenchError(f"no tables at {tables_dir}/ (runs.csv missing); run the workflow first")
    runs = pd.read_csv(runs_path)
    if runs.empty:
        raise SweepbenchError(f"{runs_path} has no runs; nothing to save as a baseline")
    out = baseline_dir(name, root)
    tmp = f"{out}.tmp-{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    seed_values(runs).to_csv(os.path.join(tmp, "seeds.csv"), index=False)
    meta = {"name": name, "sweepbench": __version__, "runs": len(runs), "cells": int(runs["cell"].nunique()),
            "studies": sorted(runs["study"].unique()), "device_name": sorted(runs["device_name"].dropna().unique()),
            "torch": sorted(runs["torch"].dropna().unique()), "git_commit": sorted(runs["git_commit"].dropna().unique())}
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    if os.path.exists(out):
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def load_baseline(name: str, root: str = "baselines"):
    import pandas as pd

    path = baseline_dir(name, root)
    if not os.path.isdir(path):
        have = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) if os.path.isdir(root) else []
        raise SweepbenchError(f"unknown baseline {name!r}; allowed: {', '.join(have) or '(none saved yet)'} "
                              f"(sweepbench baseline save NAME creates one)")
    try:
        base = pd.read_csv(os.path.join(path, "seeds.csv"))
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        missing = [c for c in ("study", "cell", "seed", "status") if c not in base.columns]
        if missing:
            raise ValueError(f"columns {missing} missing")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise SweepbenchError(f"corrupt baseline {path}/: {err}") from None
    return base, meta


def run_check(name: str, tables_dir: str, out_dir: str, config_check: dict | None = None,
              root: str = "baselines") -> dict:
    """Compare, write check.csv and summary.json atomically, return the summary."""
    import pandas as pd

    base, meta = load_baseline(name, root)
    runs_path = os.path.join(tables_dir, "runs.csv")
    if not os.path.exists(runs_path):
        raise SweepbenchError(f"no current tables at {tables_dir}/ (runs.csv missing); run the workflow first")
    cur = seed_values(pd.read_csv(runs_path))
    common = set(zip(base["study"], base["cell"])) & set(zip(cur["study"], cur["cell"]))
    if not common:
        raise SweepbenchError(
            f"baseline {name!r} shares no cell with the current results: baseline studies "
            f"{sorted(set(base['study']))}, current {sorted(set(cur['study']))} (a different config or grid?)")
    table = compare(base, cur, settings(config_check))
    counts = {v: int((table["verdict"] == v).sum()) for v in VERDICTS}
    regressed = counts["regression"] > 0
    names = table[table["verdict"] == "regression"][["cell", "metric"]].astype(str).agg(" ".join, axis=1)
    line = (f"{'REGRESSION' if regressed else 'PASS'} against baseline {name!r}: {len(common)} cells compared; "
            + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
            + (f". Regressed: {'; '.join(names.head(5))}" + (" ..." if len(names) > 5 else "") if regressed else ""))
    summary = {"baseline": name, "passed": not regressed, "counts": counts, "line": line}
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, f".check.csv.tmp-{os.getpid()}")
    table.to_csv(tmp, index=False)
    os.replace(tmp, os.path.join(out_dir, "check.csv"))
    tmp = os.path.join(out_dir, f".summary.json.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "summary.json"))
    return summary


def write_not_run(out_dir: str, name: str, reason: str) -> dict:
    """Record that the check could not run (for the report), with the reason."""
    import pandas as pd

    summary = {"baseline": name, "passed": None, "counts": {}, "line": f"not run against baseline {name!r}: {reason}"}
    os.makedirs(out_dir, exist_ok=True)
    pd.DataFrame(columns=CHECK_COLUMNS).to_csv(os.path.join(out_dir, "check.csv"), index=False)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
