"""Sweep-time gain of training a cell's K seeds as one stacked model (sweepbench.train.stacked).

For each workload, batch size and K, trains the same K runs twice in this process: one after
another with the engine (what a train-pack job does with `stack: off`), and at once with
sweepbench.train.stacked. Both times are whole-run wall times (data load, every evaluation, writing
the records), so the ratio is what a sweep of such cells saves. The metrics of the two
agree to float tolerance (tests/unit/test_batched.py checks it).

    python benchmarks/bench_batched.py                      # CPU: digits_mlp and mnist_mlp
    python benchmarks/bench_batched.py --device cuda --seeds 8,32,128
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
from benchlib import write_csv

from sweepbench.spec import resolve
from sweepbench.train import engine, stacked

WORKLOADS = {
    "digits_mlp": {"workload": "digits_mlp", "epochs": 5},
    "mnist_mlp": {"workload": "mnist_mlp", "synthetic": True, "train_size": 8192, "val_size": 1024,
                  "eval_max_samples": 2048, "epochs": 2},
}


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="digits_mlp,mnist_mlp")
    p.add_argument("--batch-sizes", default="1,16,128")
    p.add_argument("--seeds", default="4,16", help="K values: runs per cell")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="results/benchmarks/bench_batched.csv")
    args = p.parse_args(argv)
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()}")
    rows = []
    for name in args.workloads.split(","):
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            for k in [int(v) for v in args.seeds.split(",")]:
                user = {**WORKLOADS[name], "batch_size": batch, "optimizer": "adam", "lr": 0.001,
                        "device": args.device}
                if batch == 1:
                    user["max_steps"] = 2000
                specs = [resolve({**user, "seed": s}) for s in range(k)]
                with tempfile.TemporaryDirectory() as tmp:
                    engine.train(specs[0], os.path.join(tmp, "warm"), quiet=True)  # first-call costs out of the way
                    alone = timed(lambda: [engine.train(s, os.path.join(tmp, f"e{i}"), quiet=True)
                                           for i, s in enumerate(specs)])
                    together = timed(lambda: stacked.train_stack(specs, [os.path.join(tmp, f"b{i}")
                                                                         for i in range(k)], quiet=True))
                rows.append([name, batch, k, round(alone, 3), round(together, 3), round(alone / together, 3)])
                print(f"{name:11s} B={batch:4d} K={k:3d}: one after another {alone:6.2f} s, batched {together:6.2f} s, "
                      f"gain {alone / together:5.2f}x", flush=True)
    write_csv(args.out, ["workload", "batch_size", "runs", "separate_s", "batched_s", "gain"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
