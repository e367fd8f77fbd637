"""How often the regression check is wrong: false alarms on unchanged code, and power against
planted regressions, by re-sampling the seeds of one many-seed run of the default config.

    # once: the default config's studies with 20 seeds (10 for throughput), ~35 min on 2 cores
    python benchmarks/bench_check.py --make /tmp/bench_check
    # then: resample (a few minutes)
    python benchmarks/bench_check.py --tables /tmp/bench_check/results/tables

Every trial draws, per study, two disjoint seed sets from the pool: a baseline of
--baseline-seeds seeds and a current run with the study's own number of seeds in
config/config.yaml (3; 1 for throughput). The old check is run as it was used: the config
of --old-commit (1 seed for the linear, logistic and throughput studies) and a baseline of
the same seed count. Scenarios:

- A/A: the two sets as they are (unchanged code, another set of seeds; which is what another
  CPU's rounding amounts to in chaotic cells). A whole check that reports any quality
  regression is a false alarm.
- drop d points: final and best validation accuracy of every current seed in every cell that
  has them lowered by d (1, 2, 5 points). Detected when the check reports any regression.
- 5 points in one cell: one stable cell drawn per trial (over the whole pool: no seed diverged,
  the seeds agree on reaching the target, final accuracy sd <= 1 point), its accuracies lowered
  by 5 points. Detected when that cell is reported.
- diverges: one cell that never diverged in the pool drawn per trial; every current seed marked
  diverged (target not reached, no metrics). Detected when that cell is reported.

Designs compared: the new check (sweepbench.check.compare.compare) with a 10-seed baseline and with a
baseline of the run's own seed count, and the check before issue 13 (check.py at --old-commit,
loaded from git). Speed rows are counted apart ("speed rows regressed"; they compare timings
of one session here). The pool's throughput study has 10 seeds, so its baselines have 9.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types

import numpy as np
import pandas as pd
import yaml

from sweepbench.check import compare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEED = list(compare.SPEED_METRICS)


def make_pool(out: str, seeds: int) -> str:
    """Run the default config's studies with `seeds` seeds (throughput: 10) into out/results."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchlib import run_snakemake

    config = yaml.safe_load(open(os.path.join(ROOT, "config", "config.yaml")))
    for name, study in config["studies"].items():
        study["seeds"] = list(range(10 if name == "throughput" else seeds))
    config.pop("baseline", None)
    os.makedirs(out, exist_ok=True)
    config_path = os.path.join(out, "config.yaml")
    yaml.safe_dump({**config, "results_dir": os.path.join(out, "results")}, open(config_path, "w"), sort_keys=False)
    target = os.path.join(out, "results", "tables", "runs.csv")
    wall = run_snakemake([target, "--cores", str(os.cpu_count()), "--configfile", config_path], cwd=ROOT)
    print(f"pool: {target} in {wall:.0f} s")
    return os.path.dirname(target)


def at_commit(commit: str, path: str) -> str:
    return subprocess.run(["git", "-C", ROOT, "show", f"{commit}:{path}"], capture_output=True, text=True,
                          check=True).stdout


def old_check(commit: str):
    """check.py as it was at `commit`, as a module."""
    module = types.ModuleType("old_check")
    exec(compile(at_commit(commit, "src/sweepbench/check.py"), f"{commit}:check.py", "exec"), module.__dict__)
    return module


def seeds_per_study(config: dict) -> dict:
    return {name: len(s.get("seeds") or [0]) for name, s in config["studies"].items()}


def draw(pool, n_current: dict, n_base: int | None, rng):
    """Disjoint baseline and current seed sets per study -> (baseline rows, current rows)."""
    base, cur = [], []
    for study, g in pool.groupby("study", sort=False):
        seeds = rng.permutation(sorted(g["seed"].unique()))
        nc = n_current[study]
        nb = n_base or nc
        cur.append(g[g["seed"].isin(seeds[:nc])])
        base.append(g[g["seed"].isin(seeds[nc:nc + nb])])
    return pd.concat(base), pd.concat(cur)


def cell_classes(pool) -> dict:
    """Cells eligible for the one-cell scenarios, from the whole pool: 'stable' (no seed diverged,
    the seeds agree on reaching the target, final accuracy sd <= 1 point) and 'never diverged'."""
    g = pool.groupby("cell")
    stats = g.agg(div=("status", lambda s: (s == "diverged").mean()), reach=("target_reached", "mean"),
                  sd=("final_val_accuracy", "std"))
    agree = (stats["div"] == 0) & stats["reach"].isin([0.0, 1.0])
    return {"stable": sorted(stats[agree & (stats["sd"] <= 0.01)].index),
            "never diverged": sorted(stats[stats["div"] == 0].index)}


def plant(cur, scenario: str, classes: dict, rng):
    """The current rows with the scenario's change; returns (rows, the planted cell or None)."""
    cur = cur.copy()
    acc = ["final_val_accuracy", "best_val_accuracy"]
    if scenario.startswith("drop"):
        cur[acc] = cur[acc] - float(scenario.split()[1]) / 100
        return cur, None
    if scenario == "5 points in one cell":
        cell = rng.choice(classes["stable"])
        cur.loc[cur["cell"] == cell, acc] -= 0.05
    else:   # diverges
        cell = rng.choice(classes["never diverged"])
        rows = cur["cell"] == cell
        cur.loc[rows, "status"] = "diverged"
        cur.loc[rows, "target_reached"] = False
        cur.loc[rows, list(compare.QUALITY_METRICS)] = np.nan
    return cur, cell


def run_trials(pool, design, scenario: str, trials: int, seed: int) -> dict:
    """The scenario's detection rate (A/A: false-alarm rate) over `trials` draws; for one-cell
    scenarios also by the planted cell's number of current seeds."""
    name, compare, settings, n_base, n_current = design
    rng, classes = np.random.default_rng(seed), cell_classes(pool)
    seeds_of = pool.groupby("cell")["study"].first().map(n_current)
    hits, rows_flagged, wrong_cell, by_seeds, speed = 0, 0, 0, {}, 0
    for _ in range(trials):
        base, cur = draw(pool, n_current, n_base, rng)
        cur, cell = plant(cur, scenario, classes, rng) if scenario != "A/A" else (cur, None)
        table = compare(base, cur, settings)
        bad = table[(table["verdict"] == "regression") & ~table["metric"].isin(SPEED)]
        speed += bool(((table["verdict"] == "regression") & table["metric"].isin(SPEED)).any())
        rows_flagged += len(bad)
        hit = cell in set(bad["cell"]) if cell is not None else len(bad) > 0
        hits += hit
        if cell is not None:
            wrong_cell += len(set(bad["cell"]) - {cell}) > 0
            by_seeds.setdefault(int(seeds_of[cell]), []).append(hit)
    split = "; ".join(f"{n}-seed cells {np.mean(v):.0%} of {len(v)}" for n, v in sorted(by_seeds.items()))
    return {"design": name, "scenario": scenario, "trials": trials, "rate": hits / trials,
            "mean_rows_flagged": rows_flagged / trials, "other_cells_flagged": wrong_cell / trials, "by_seeds": split,
            "speed_alarms": speed / trials}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--make", metavar="DIR", help="first run the default studies with --pool-seeds seeds into DIR")
    p.add_argument("--pool-seeds", type=int, default=20)
    p.add_argument("--tables", help="tables folder of a many-seed run (runs.csv)")
    p.add_argument("--baseline-seeds", type=int, default=10)
    p.add_argument("--trials", type=int, default=300, help="trials of the A/A scenario")
    p.add_argument("--power-trials", type=int, default=100, help="trials of each planted scenario")
    p.add_argument("--old-commit", default="73abdf5", help="a commit with the check before issue 13")
    p.add_argument("--designs", default="0,1,2", help="which designs (0: new with --baseline-seeds, 1: new with "
                                                         "the run's seed count, 2: old)")
    p.add_argument("--scenarios", default="A/A,drop 1,drop 2,drop 5,5 points in one cell,diverges")
    p.add_argument("--out", default="bench_check.csv")
    args = p.parse_args()
    tables = make_pool(args.make, args.pool_seeds) if args.make else args.tables
    if not tables:
        p.error("give --tables DIR (or --make DIR to run the pool first)")
    pool = compare.read_seed_table(os.path.join(tables, "runs.csv"))
    config = yaml.safe_load(open(os.path.join(ROOT, "config", "config.yaml")))
    old_config = yaml.safe_load(at_commit(args.old_commit, "config/config.yaml"))
    settings, old = compare.settings(config.get("check")), old_check(args.old_commit)
    designs = [(f"new, {args.baseline_seeds}-seed baseline", compare.compare, settings, args.baseline_seeds,
                seeds_per_study(config)),
               ("new, baseline of the run's seeds", compare.compare, settings, None, seeds_per_study(config)),
               ("old (before issue 13)", old.compare, old.settings(old_config.get("check")), None,
                seeds_per_study(old_config))]
    results = []
    for design in [designs[int(i)] for i in args.designs.split(",")]:
        for i, scenario in enumerate(args.scenarios.split(",")):
            t0 = time.perf_counter()
            r = run_trials(pool, design, scenario, args.trials if scenario == "A/A" else args.power_trials, seed=i)
            results.append(r)
            print(f"{r['design']:36s} {scenario:22s} {r['rate']:6.1%} of {r['trials']} trials, "
                  f"{r['mean_rows_flagged']:.2f} rows flagged, other cells flagged {r['other_cells_flagged']:.1%} "
                  f"{r['by_seeds']}; speed rows regressed in {r['speed_alarms']:.0%} "
                  f"({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    pd.DataFrame(results).to_csv(args.out, index=False)
    print(f"wrote {args.out}; pool {tables}: {pool['seed'].nunique()} seeds, {pool['cell'].nunique()} cells")


if __name__ == "__main__":
    main()
