"""How long aggregating N run records takes (issue: 10,000 records in seconds, not minutes).

Generates N run.json files (one study: 10 learning rates x 10 batch sizes x N/100 seeds),
then times sweepbench.tables.build_tables on them.

    python benchmarks/bench_aggregate.py --runs 10000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from sweepbench import tables


def record(lr, bs, seed):
    steps = int(1000 / bs ** 0.5) + seed
    m = {"train_loss": 0.3, "train_accuracy": 0.9, "val_loss": 0.4, "val_accuracy": 0.9, "test_loss": 0.4,
         "test_accuracy": 0.9}
    return {"status": "completed",
            "spec": {"workload": "digits_mlp", "optimizer": "sgd", "lr": lr, "batch_size": bs, "seed": seed,
                     "accum_steps": 1, "synthetic": False},
            "workload": {"n_train": 100000}, "final": m, "best": m,
            "to_target": {"metric": "val_accuracy", "target": 0.8, "reached": True, "step": steps, "epoch": 1.0,
                          "samples": steps * bs, "wall_s": steps * 0.01},
            "convergence": {"epoch": None}, "timing": {"steps": steps, "epochs": 1.0, "train_s": 1.0},
            "throughput": {"samples_per_s": 1000.0, "step_time_median_s": 0.01, "step_time_p10_s": 0.01,
                           "step_time_p90_s": 0.01},
            "memory": {"peak_mb": 1}, "grad_noise_scale": None,
            "provenance": {"device_name": "cpu", "torch": "x", "git_commit": "x"}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10000)
    args = p.parse_args()
    n_seeds = max(1, args.runs // 100)
    with tempfile.TemporaryDirectory() as root:
        cells = {}
        for lr in [10 ** (-i / 3) for i in range(10)]:
            for bs in [2 ** i for i in range(10)]:
                cell = f"s/lr~{lr!r}/bs~{bs}"
                runs = []
                for seed in range(n_seeds):
                    rid = f"{cell}/seed~{seed}"
                    os.makedirs(os.path.join(root, rid))
                    with open(os.path.join(root, rid, "run.json"), "w") as f:
                        json.dump(record(lr, bs, seed), f)
                    runs.append({"id": rid, "seed": seed, "spec": {"lr": lr, "batch_size": bs}})
                cells[cell] = {"study": "s", "runs": runs}
        plan = {"studies": {"s": {"axes": ["lr", "batch_size"], "cells": list(cells), "runs": []}}, "cells": cells}
        t0 = time.perf_counter()
        result, skipped = tables.build_tables(plan, root)
        seconds = time.perf_counter() - t0
    print(f"aggregated {len(result['runs'])} run records ({len(result['cells'])} cells) into "
          f"{len(result)} tables in {seconds:.1f} s ({skipped} skipped)")


if __name__ == "__main__":
    main()
