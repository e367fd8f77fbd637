"""Whole-pipeline cost of a config: wall time, runs, and the share of time not spent training.

Runs `snakemake` on a config into a scratch results folder (nothing of yours is touched),
then reads every run.json and every train job's Snakemake benchmark file (its wall time):

  whole pipeline, as shares of core time (wall seconds x cores):
    training           = sum of the runs' training seconds (a stack's shared
                         training time counted once)
    evaluation         = sum of the runs' evaluation seconds (a stack's counted once)
    everything else    = process start-up, imports, data loading, scheduling, aggregation,
                         report, and idle cores
  training jobs only, as shares of the jobs' summed wall time:
    training, evaluation, start-up (imports, data load, model build), the rest (writing
    records, the torch.compile warm-up, interpreter exit)

    python benchmarks/bench_pipeline.py                      # the default config, all cores
    python benchmarks/bench_pipeline.py --config tests/integration/tiny_config.yaml --cores 2
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile

from benchlib import run_records, run_snakemake, shared_seconds, training_seconds

from sweepbench.plan.planner import read_plan


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wall = run_snakemake(["--cores", str(args.cores), "--configfile", args.config, "--config",
                              f"results_dir={tmp}/results", f"report_dir={tmp}/report", "--quiet", "all"])
        records = run_records(f"{tmp}/results")
        jobs = len(read_plan(f"{tmp}/results/plan.json")["jobs"])
        job_wall = sum(float(open(f).read().splitlines()[1].split("\t")[0])
                       for f in glob.glob(f"{tmp}/results/benchmarks/train/**/*.tsv", recursive=True))
    total = {"startup_s": sum(r.timing["startup_s"] or 0 for r in records)}
    train, evaluation = training_seconds(records), shared_seconds(records, "eval_s")
    core_s = wall * args.cores
    print(f"config {args.config}: {len(records)} runs in {jobs} jobs, wall {wall:.1f} s on {args.cores} cores")
    print(f"whole pipeline: training {train:.1f} s ({train / core_s:.0%} of core time), evaluation "
          f"{evaluation:.1f} s ({evaluation / core_s:.0%}), everything else {1 - (train + evaluation) / core_s:.0%}")
    rest = job_wall - train - evaluation - total["startup_s"]
    print(f"training jobs: {job_wall:.1f} s summed wall; training {train / job_wall:.0%}, evaluation "
          f"{evaluation / job_wall:.0%}, start-up {total['startup_s'] / job_wall:.0%} "
          f"({total['startup_s'] / jobs:.2f} s a job), rest {rest / job_wall:.0%}; "
          f"non-training {1 - train / job_wall:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
