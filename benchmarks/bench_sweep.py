"""Whole-sweep wall time of a 100-run LeNet-5 sweep with 1, 4 and 8 runs sharing one GPU.

Writes a config of one study (LeNet-5 on synthetic Fashion-MNIST-shaped data: 5 batch sizes
x 5 learning rates x 4 seeds = 100 runs, one job per cell, each job holding one GPU slot)
and runs the real workflow on it with `--resources gpu_slots=N` for each N, in scratch
folders. Prints the wall time, runs per minute and the gain over one run at a time, and
writes them as CSV (--out).

    python benchmarks/bench_sweep.py                                  # GPU: slots 1, 4, 8
    python benchmarks/bench_sweep.py --device cpu --slots 1,2 --max-steps 5 --train-size 512   # a quick CPU check
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import yaml
from benchlib import run_records, run_snakemake, training_seconds, write_csv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sweep_config(device: str, max_steps: int, train_size: int, results: str, report: str) -> dict:
    return {
        "title": "bench_sweep",
        "results_dir": results,
        "report_dir": report,
        "studies": {"lenet_sweep": {
            "workload": "fmnist_lenet5",
            "fixed": {"synthetic": True, "train_size": train_size, "max_steps": max_steps, "epochs": 1000,
                      "device": device, "eval_max_samples": 1024},
            "grid": {"batch_size": [32, 64, 128, 256, 512], "lr": [0.003, 0.01, 0.03, 0.1, 0.3]},
            "seeds": [0, 1, 2, 3],
            "resources": {"gpu": 1, "threads": 1},
        }},
    }


def run_sweep(slots: int, cores: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = sweep_config(args.device, args.max_steps, args.train_size, f"{tmp}/results", f"{tmp}/report")
        path = os.path.join(tmp, "config.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        wall = run_snakemake([f"{tmp}/results/tables/runs.csv", "--cores", str(cores), "--resources",
                              f"gpu_slots={slots}", "--configfile", path, "--quiet", "all"], cwd=ROOT)
        records = run_records(f"{tmp}/results")
    return {"slots": slots, "runs": len(records), "wall_s": wall, "train_s": training_seconds(records),
            "median_samples_per_s": sorted(r.throughput["samples_per_s"] for r in records)[len(records) // 2]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--slots", default="1,4,8", help="runs sharing the GPU at once")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("--max-steps", type=int, default=300, help="optimizer steps per run")
    p.add_argument("--train-size", type=int, default=60000)
    p.add_argument("--out", default="results/benchmarks/bench_sweep.csv")
    args = p.parse_args(argv)
    rows = []
    for slots in [int(s) for s in args.slots.split(",")]:
        row = run_sweep(slots, args.cores, args)
        rows.append(row)
        gain = rows[0]["wall_s"] / row["wall_s"]
        row["gain_vs_first"] = gain
        print(f"slots {slots}: {row['runs']} runs in {row['wall_s']:.1f} s ({60 * row['runs'] / row['wall_s']:.0f} "
              f"runs/min, {gain:.2f}x the first), training {row['train_s']:.1f} s summed, median run "
              f"{row['median_samples_per_s']:.0f} samples/s", flush=True)
    write_csv(args.out, list(rows[0]), [[round(v, 3) if isinstance(v, float) else v for v in r.values()]
                                        for r in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
