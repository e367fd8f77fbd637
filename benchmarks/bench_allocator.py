"""Training and evaluation speed with glibc's default allocator thresholds vs with
sweepbench.train.allocator.keep_large_blocks (the default of every training process).

Each measurement is a whole `engine.train` run in a child process of its own (the thresholds
are per process and must be set before the first large block), on synthetic
Fashion-MNIST-shaped data, one thread; "default" replaces keep_large_blocks by a no-op.
The two settings alternate, repeat after repeat, so a slow minute of the machine hits both.

    python benchmarks/bench_allocator.py                     # LeNet-5, B = 64, 256, 2048
    python benchmarks/bench_allocator.py --batch-sizes 4096 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchlib import write_csv

CHILD = """
import json, os, sys, tempfile
from sweepbench.train import allocator, engine
from sweepbench.spec import resolve

setting, workload, batch, samples = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if setting == "default":
    allocator.keep_large_blocks = lambda *args, **kwargs: False
spec = resolve({"workload": workload, "synthetic": True, "batch_size": batch, "max_steps": max(8, samples // batch),
                "epochs": 10_000, "lr": 1e-4, "optimizer": "sgd", "train_size": 8192, "threads": 1,
                "eval_max_samples": 8192, "eval_every": max(4, samples // batch // 2), "schedule": "constant"})
with tempfile.TemporaryDirectory() as tmp:
    rec = engine.train(spec, os.path.join(tmp, "run"), quiet=True)
t = rec["timing"]
print(json.dumps({"train_samples_per_s": rec["final"]["samples"] / t["train_s"], "eval_s": t["eval_s"],
                  "total_s": t["total_s"]}))
"""


def measure(setting: str, workload: str, batch: int, samples: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", CHILD, setting, workload, str(batch), str(samples)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="fmnist_lenet5")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 2048])
    p.add_argument("--samples", type=int, default=24_576, help="training samples per run (max_steps = samples / B)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="results/benchmarks/bench_allocator.csv")
    args = p.parse_args(argv)
    rows = []
    for batch in args.batch_sizes:
        for repeat in range(args.repeats):
            for setting in ("default", "keep_large_blocks"):
                m = measure(setting, args.workload, batch, args.samples)
                rows.append([args.workload, batch, repeat, setting, round(m["train_samples_per_s"], 1),
                             round(m["eval_s"], 2), round(m["total_s"], 2)])
                print(*rows[-1], flush=True)
    write_csv(args.out, ["workload", "batch_size", "repeat", "allocator", "train_samples_per_s", "eval_s", "total_s"],
              rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
