"""How long a 10,000-run sweep takes to plan, to write its job specs and to dry-run (issue 16:
each in under a minute).

Generates one digits_mlp study of N cells (5 optimizers x 40 learning rates x N/200 batch
sizes, one seed: N jobs, the worst case for Snakemake) and times:
  plan         sweepbench.plan.planner.plan(config), what the Snakefile does at every start
  job specs    sweepbench.plan.planner.write_job_specs, what the workflow does when it starts (onstart):
               all N files, then again with nothing changed
  write_plan   the workflow's write_plan step (results/plan.json), `snakemake results/plan.json`
  dry-run      `snakemake -n` in a scratch copy of the workflow (DAG of N training jobs)

    python benchmarks/bench_scale.py --runs 10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import yaml
from benchlib import run_snakemake

from sweepbench.plan.planner import plan, write_job_specs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(n_runs: int) -> dict:
    n_bs = max(1, n_runs // 200)
    return {"title": f"{n_runs} runs", "studies": {"scale": {
        "workload": "digits_mlp", "fixed": {"epochs": 1},
        "grid": {"optimizer": ["sgd", "momentum", "adam", "rmsprop", "adamw"],
                 "lr": [round(10 ** (-4 + 4 * i / 39), 6) for i in range(40)],
                 "batch_size": list(range(1, n_bs + 1))}}}}


def timed(fn, *args) -> tuple:
    """fn's result and a "W s (C s CPU)" text: wall seconds and the CPU seconds of this process
    and its children (what to compare on a machine shared with other work)."""
    t0, c0 = time.perf_counter(), os.times()
    out = fn(*args)
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) \
        + (c1.children_system - c0.children_system)
    return out, f"{time.perf_counter() - t0:.1f} s ({cpu:.1f} s CPU)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10000)
    args = p.parse_args()
    cfg = config(args.runs)
    the_plan, plan_s = timed(plan, cfg)
    with tempfile.TemporaryDirectory() as wd:
        n_specs, specs_s = timed(write_job_specs, the_plan, os.path.join(wd, "specs"))
        n_again, again_s = timed(write_job_specs, the_plan, os.path.join(wd, "specs"))
        for name in ("Snakefile", "profiles"):  # the root Snakefile includes the package's workflow
            src = os.path.join(ROOT, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(wd, name))
        os.makedirs(os.path.join(wd, "config"))
        with open(os.path.join(wd, "config", "config.yaml"), "w") as f:
            yaml.safe_dump(cfg, f)
        _, write_s = timed(run_snakemake, ["results/plan.json", "--cores", "1", "--quiet", "all"], wd)
        _, dry_s = timed(run_snakemake, ["-n", "--quiet", "all"], wd)
    print(f"{len(the_plan['cells'])} cells, {len(the_plan['jobs'])} jobs, "
          f"{sum(len(c['runs']) for c in the_plan['cells'].values())} runs")
    print(f"plan: {plan_s}; job specs: {n_specs} written in {specs_s}, then {n_again} in {again_s}; "
          f"snakemake results/plan.json (its start writes the job specs): {write_s}; snakemake -n: {dry_s}")


if __name__ == "__main__":
    main()
