"""Data-parallel workers on this machine (issue 25): DDP's own cost at N = 1 and weak-scaling
efficiency at N = 2, from whole runs of `sweepbench train` (the same code the workflow runs).

    python benchmarks/bench_ddp.py [--workload digits_mlp] [--batch 32] [--steps 400] [--repeats 3]

Each repeat trains, in turn, one process without DDP (world_size 0), DDP over 1 process and over 2,
each worker on one thread (weak scaling: every worker gets one core), `--steps` updates at `--batch`
samples per worker, and reads each record's median step time (each step the slowest rank's).
Prints the medians over repeats: step time, samples/s (global batch / median step), the overhead
of DDP at N = 1 and the efficiency T(2) / (2 T(1)).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from sweepbench.spec import resolve
from sweepbench.train import engine


def one_run(args, world: int, folder: str) -> float:
    spec = resolve({"workload": args.workload, "batch_size": args.batch, "world_size": world,
                    "threads": max(1, world), "max_steps": args.steps, "epochs": 1000, "eval_every": 0,
                    "timing_warmup_steps": 20, "device": "cpu", "target_metric": None, "target": None})
    result = engine.train(spec, f"{folder}/ws{world}", quiet=True)
    return result["throughput"]["step_time_median_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="digits_mlp")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for _ in range(args.repeats):
        for world in times:
            with tempfile.TemporaryDirectory() as folder:
                times[world].append(one_run(args, world, folder))
    med = {n: statistics.median(t) for n, t in times.items()}
    for n, t in med.items():
        print(f"world_size {n}: median step {t * 1e3:.3f} ms ({', '.join(f'{x * 1e3:.3f}' for x in times[n])}), "
              f"{args.batch * max(1, n) / t:,.0f} samples/s")
    print(f"DDP overhead at N=1: {med[1] / med[0] - 1:+.1%} of the no-DDP step")
    print(f"weak-scaling efficiency at N=2: T(2)/(2 T(1)) = {med[1] / med[2]:.2f}")


if __name__ == "__main__":
    main()
