"""Runs per minute of a study trained three ways in one process: every run alone, each cell's
seeds as one stack, and whole-grid stacks (sweepbench.train.stacked).

The study comes from a config (default: the embedded default config); its runs are planned by
sweepbench.plan.planner and trained here, one way after another, each on a fresh temporary folder, so
the times are whole-run wall times (data load, every evaluation, the records) without process
start-up. Grid stacks are the runs of a study that differ only in hyper-parameters
(sweepbench.plan.stacks.STACK_VARIES), at most --max-runs per stack, as the planner forms them
(sweepbench.plan.stacks) within each of the study's jobs.

    python benchmarks/bench_stack.py --study digits_optimizers
    python benchmarks/bench_stack.py --study digits_batch_scaling --ways grid
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
import yaml
from benchlib import write_csv

from sweepbench.plan import stacks
from sweepbench.plan.planner import plan
from sweepbench.train import engine, stacked
from sweepbench.train.job import stack_groups

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def groups_of(the_plan: dict, way: str, max_runs: int) -> list[list[dict]]:
    """The study's runs as the planner stacks them with `stack: {mode: way, max_runs: ...}`
    (sweepbench.plan.stacks), grouped as train-pack trains them (sweepbench.train.job.stack_groups)."""
    mode = {"alone": "off"}.get(way, way)
    groups = []
    for job_id, job in the_plan["jobs"].items():
        runs = [dict(r) for r in job["runs"]]
        stacks.form_stacks(job_id, runs, mode, {**stacks.DEFAULTS, "max_runs": max_runs, "max_mb": 1e9},
                             size=lambda spec: 1.0, strict=True)
        groups += stack_groups(runs)
    return groups


def train_all(groups: list[list[dict]], tmp: str) -> float:
    t = time.perf_counter()
    for i, group in enumerate(groups):
        dirs = [os.path.join(tmp, f"{i}-{j}") for j in range(len(group))]
        specs = [r["spec"] for r in group]
        if len(group) == 1:
            engine.train(specs[0], dirs[0], quiet=True)
        else:
            stacked.train_stack(specs, dirs, quiet=True)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=os.path.join(ROOT, "config", "config.yaml"))
    p.add_argument("--study", required=True)
    p.add_argument("--ways", default="alone,seeds,grid")
    p.add_argument("--max-runs", type=int, default=stacks.DEFAULTS["max_runs"])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="results/benchmarks/bench_stack.csv")
    args = p.parse_args(argv)
    config = yaml.safe_load(open(args.config))
    config["run"] = [args.study]
    the_plan = plan(config)
    if args.threads:
        for job in the_plan["jobs"].values():
            job["runs"] = [dict(r, spec=dict(r["spec"], threads=args.threads)) for r in job["runs"]]
    runs = [r for job in the_plan["jobs"].values() for r in job["runs"]]
    print(f"{args.study}: {len(runs)} runs; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        engine.train(runs[0]["spec"], os.path.join(tmp, "warm"), quiet=True)  # first-call costs out of the way
        rows = []
        for way in args.ways.split(","):
            groups = groups_of(the_plan, way, args.max_runs)
            wall = train_all(groups, os.path.join(tmp, way))
            rows.append([args.study, way, len(runs), len(groups), round(wall, 2), round(60 * len(runs) / wall, 1)])
            print(f"{way:6s}: {len(groups):4d} groups, {wall:7.2f} s, {60 * len(runs) / wall:8.1f} runs/min",
                  flush=True)
    write_csv(args.out, ["study", "way", "runs", "groups", "wall_s", "runs_per_min"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
