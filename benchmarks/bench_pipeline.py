"""Whole-pipeline cost of a config: wall time, runs, and the share of core time not spent training.

Runs `snakemake` on a config into a scratch results folder (nothing of yours is touched),
then reads every run.json:

    training share     = sum of training seconds / (wall seconds x cores)
    evaluation share   = sum of evaluation seconds / (wall x cores)
    overhead share     = the rest: process start-up, imports, data loading, scheduling,
                         aggregation, report, and idle cores

    python benchmarks/bench_pipeline.py                      # the default config, all cores
    python benchmarks/bench_pipeline.py --config tests/integration/tiny_config.yaml --cores 2
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(args.cores), "--configfile",
                               args.config, "--config", f"results_dir={tmp}/results", f"report_dir={tmp}/report",
                               "--quiet", "all"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            print(proc.stderr[-3000:])
            return proc.returncode
        records = [json.load(open(f)) for f in glob.glob(f"{tmp}/results/runs/**/run.json", recursive=True)]
        jobs = len(json.load(open(f"{tmp}/results/plan.json"))["jobs"])
    train = sum(r["timing"]["train_s"] for r in records)
    evaluation = sum(r["timing"]["eval_s"] for r in records)
    core_s = wall * args.cores
    print(f"config {args.config}: {len(records)} runs in {jobs} jobs, wall {wall:.0f} s on {args.cores} cores")
    print(f"training {train:.0f} s ({train / core_s:.0%} of core time), evaluation {evaluation:.0f} s "
          f"({evaluation / core_s:.0%}), everything else {1 - (train + evaluation) / core_s:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
