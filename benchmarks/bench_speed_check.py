"""How often the check's speed verdicts are wrong: false alarms of unchanged code (A/A) and the
share of checks that catch a planted 10% slowdown, on this machine, with the default config's
throughput study (its cells, options and timing rule) and the check's speed test.

    python benchmarks/bench_speed_check.py --out /tmp/bench_speed --repeats 10   # ~10 min on 2 cores

What runs, in this order, each as one `sweepbench train-pack` process like the workflow's job:
  1. the baseline, as `make baseline` makes it: one process training every cell with
     --baseline-seeds seeds (10);
  2. --repeats pairs of current runs, one process each, alternating A (unchanged) and B (the
     same runs with `debug_slowdown` 1/9: each step waits a ninth of its own time inside the
     step, so samples/s is 10% lower; planted in the timing, not in the table);
  3. a second baseline, after them (so that each current run has a baseline made before it
     and one made after it, minutes apart, as a real baseline is made on another day).
Each current run is checked against each baseline (sweepbench.check.compare.compare, the
check's settings of config/config.yaml): an A run with any speed regression is a false alarm,
a B run with any speed regression caught the slowdown (per row counts are printed too).

The alternative design the check does not use is measured on the same runs: a Mann-Whitney
test over the blocks of each run (every block as if independent), Holm over the cells; its
false alarms show why the check tests runs, not blocks (compare.speed_units).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from sweepbench.aggregate.tables import run_row
from sweepbench.check import compare, regression
from sweepbench.plan.planner import load_config, plan, timed_order
from sweepbench.record import load_record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOWDOWN = 1 / 9   # wait 1/9 of each step's time: the step takes 10/9 as long, samples/s is 10% lower
STUDY = "throughput"


def study_runs(config_path: str) -> tuple[dict, list[dict], dict]:
    """The config, the throughput study's planned runs (one per cell) and the check settings."""
    config = load_config(config_path)
    the_plan = plan(config)
    runs = [r for job in the_plan["jobs"].values() if job["study"] == STUDY for r in job["runs"]]
    return config, runs, compare.settings(config.get("check"))


def train(out: str, runs: list[dict], seeds: list[int], slowdown: float, threads: int) -> float:
    """One train-pack process over `runs` x `seeds` (seed by seed over the cells, as the planner orders
    a job timed alone: planner.timed_order); wall s."""
    job = timed_order([{**r, "dir": f"{r['dir'].rpartition('/')[0]}/seed~{s}", "seed": s,
                        "spec": {**r["spec"], "seed": s, "debug_slowdown": slowdown}, "stack": None}
                       for r in runs for s in seeds])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "runs.json"), "w") as f:
        json.dump(job, f)
    t0 = time.perf_counter()
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "sweepbench"), "train-pack", "--runs-file",
                    os.path.join(out, "runs.json"), "--out", os.path.join(out, "runs"), "--threads", str(threads),
                    "--exclusive", "--quiet"], check=True)
    return time.perf_counter() - t0


def seed_table(out: str, runs: list[dict], seeds: list[int]) -> pd.DataFrame:
    """The check's per-seed table (compare.SEED_COLUMNS) of one process's records."""
    rows = []
    for r in runs:
        cell = r["dir"].rpartition("/")[0]
        for s in seeds:
            row = run_row(load_record(os.path.join(out, "runs", cell, f"seed~{s}")))
            rows.append({**row, "study": STUDY, "cell": f"{STUDY}/{cell}", "smoke": False,
                         "stack": row["stack"] or ""})
    return pd.DataFrame(rows)[compare.SEED_COLUMNS]


def speed_verdicts(base: pd.DataFrame, cur: pd.DataFrame, settings: dict) -> pd.DataFrame:
    table = compare.compare(base, cur, settings)
    return table[table["metric"].isin(list(compare.SPEED_METRICS))]


def block_design_alarm(base: pd.DataFrame, cur: pd.DataFrame, alpha: float) -> bool:
    """The design not used: every block a sample (Mann-Whitney, one-sided, Holm over the cells)."""
    from scipy import stats

    p = []
    for cell, b in base.groupby("cell"):
        c = cur[cur["cell"] == cell]
        blocks = lambda d: np.array([float(v) for text in d["block_samples_per_s"] for v in text.split()])
        p.append(stats.mannwhitneyu(blocks(c), blocks(b), alternative="less").pvalue)
    return bool((regression.holm_adjust(p) <= alpha).any())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default=os.path.join(ROOT, "config", "config.yaml"))
    ap.add_argument("--repeats", type=int, default=10, help="pairs of current runs (A unchanged, B slowed)")
    ap.add_argument("--baseline-seeds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--analyse-only", action="store_true", help="check the runs already in --out again")
    args = ap.parse_args()
    _, runs, settings = study_runs(args.config)
    base_seeds = list(range(10, 10 + args.baseline_seeds))
    walls = {}
    if not args.analyse_only:
        walls["baseline 1"] = train(f"{args.out}/base1", runs, base_seeds, 0.0, args.threads)
        for i in range(args.repeats):
            for arm, slow in (("A", 0.0), ("B", SLOWDOWN)):
                walls[f"{arm}{i}"] = train(f"{args.out}/{arm}{i}", runs, [i], slow, args.threads)
        walls["baseline 2"] = train(f"{args.out}/base2", runs, base_seeds, 0.0, args.threads)
    bases = [seed_table(f"{args.out}/base{k}", runs, base_seeds) for k in (1, 2)]
    report(args, runs, bases, settings, walls)
    return 0


def report(args, runs, bases, settings, walls) -> None:
    out = {"A": [], "B": []}
    rows = {"A": [0, 0, 0], "B": [0, 0, 0]}   # regressions, rows, rows not comparable (timing unsteady)
    block_alarms = 0
    ratios = []
    for i in range(args.repeats):
        for arm in ("A", "B"):
            cur = seed_table(f"{args.out}/{arm}{i}", runs, [i])
            for base in bases:
                v = speed_verdicts(base, cur, settings)
                out[arm].append(bool((v["verdict"] == "regression").any()))
                rows[arm][0] += int((v["verdict"] == "regression").sum())
                rows[arm][1] += len(v)
                rows[arm][2] += int((v["verdict"] == "not comparable").sum())
                ratios += [(arm, r.cell, r.current / r.baseline) for r in v.itertuples()]
                if arm == "A":
                    block_alarms += block_design_alarm(base, cur, settings["alpha"] / 3)
    n = len(out["A"])
    print(f"{len(runs)} cells; baseline {args.baseline_seeds} seeds x 2 (before and after); {args.repeats} current "
          f"runs per arm; speed_threshold {settings['speed_threshold']:g}; wall s: "
          + ", ".join(f"{k} {v:.0f}" for k, v in walls.items()))
    for arm, what in (("A", "A/A false alarms"), ("B", "planted 10% slowdown caught")):
        print(f"{what}: {sum(out[arm])} of {n} checks ({sum(out[arm]) / n:.0%}); rows {rows[arm][0]} of "
              f"{rows[arm][1]}, {rows[arm][2]} not comparable")
    print(f"blocks-as-samples design (not used): A/A false alarms {block_alarms} of {n} checks")
    r = pd.DataFrame(ratios, columns=["arm", "cell", "ratio"])
    print("current / baseline samples/s, by arm and cell (median, min, max):")
    print(r.groupby(["arm", "cell"])["ratio"].agg(["median", "min", "max"]).round(3).to_string())


if __name__ == "__main__":
    sys.exit(main())
