"""Training-loop speed: sweepbench's engine vs a plain DataLoader loop, same process, same model.

For each model and batch size both loops train on the same synthetic Fashion-MNIST-shaped
tensors with plain SGD. sweepbench is timed by its own training clock (run.json's
timing.train_s: every training step plus the loop's own bookkeeping, evaluation excluded);
the plain loop is timed around `for xb, yb in DataLoader(TensorDataset(x, y), batch_size=B,
shuffle=True)` with forward, backward and step, after the same number of warm-up steps.

    python benchmarks/bench_train.py                       # CPU, mnist_mlp and LeNet-5, B = 1 16 64 256
    python benchmarks/bench_train.py --device cuda --batch-sizes 1,16,64,256,1024

Prints a table and writes it as CSV (--out). Speed is a ratio measured here, never a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from sweepbench import engine, models
from sweepbench.spec import resolve

WORKLOADS = {"mlp": "mnist_mlp", "lenet5": "fmnist_lenet5", "wrn": "fmnist_wrn16_10"}


def steps_for(model: str, batch: int, budget_samples: int) -> int:
    return max(30, min(2000, budget_samples // batch))


def sweepbench_rate(workload: str, batch: int, steps: int, device: str, train_size: int) -> float:
    spec = resolve({"workload": workload, "synthetic": True, "batch_size": batch, "max_steps": steps,
                    "epochs": 10_000, "lr": 0.01, "optimizer": "sgd", "train_size": train_size,
                    "device": device, "eval_batch_size": 4096, "augment": False, "schedule": "constant"})
    with tempfile.TemporaryDirectory() as tmp:
        rec = engine.train(spec, os.path.join(tmp, "run"), quiet=True)
    return rec["final"]["samples"] / rec["timing"]["train_s"]


def plain_rate(workload: str, batch: int, steps: int, device: str, train_size: int, warmup: int = 10) -> float:
    torch.manual_seed(0)
    dev = torch.device(device)
    n_in = 784
    model = models.build({"mnist_mlp": "mlp", "fmnist_lenet5": "lenet5", "fmnist_wrn16_10": "wrn16_10"}[workload],
                         {"hidden": [20, 20], "dropout": 0.01}, n_in).to(dev)
    x = torch.rand(train_size, 1, 28, 28)
    y = torch.randint(0, 10, (train_size,))
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    done, samples, start = 0, 0, None
    while done < steps:
        for xb, yb in loader:
            if done == warmup:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                start, samples = time.perf_counter(), 0
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            samples += len(yb)
            done += 1
            if done >= steps:
                break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return samples / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp,lenet5", help="comma list of mlp, lenet5, wrn")
    p.add_argument("--batch-sizes", default="1,16,64,256")
    p.add_argument("--samples", type=int, default=16384, help="training samples per measurement (approx.)")
    p.add_argument("--train-size", type=int, default=8192, help="training set size of the synthetic data")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=2, help="alternating repeats; the best of each is kept")
    p.add_argument("--out", default="results/benchmarks/bench_train.csv")
    args = p.parse_args(argv)

    rows = []
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"{'model':8s} {'B':>5s} {'steps':>6s} {'sweepbench/s':>13s} {'dataloader/s':>13s} {'ratio':>6s}")
    for name in args.models.split(","):
        workload = WORKLOADS[name]
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            steps = steps_for(name, batch, args.samples)
            ours, theirs = 0.0, 0.0
            for _ in range(args.repeats):  # alternate so drift in machine speed hits both
                ours = max(ours, sweepbench_rate(workload, batch, steps, args.device, args.train_size))
                theirs = max(theirs, plain_rate(workload, batch, steps, args.device, args.train_size))
            rows.append((name, batch, steps, ours, theirs, ours / theirs))
            print(f"{name:8s} {batch:5d} {steps:6d} {ours:13.0f} {theirs:13.0f} {ours / theirs:6.2f}", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("model,batch_size,steps,sweepbench_samples_per_s,dataloader_samples_per_s,ratio\n")
        for r in rows:
            f.write(f"{r[0]},{r[1]},{r[2]},{r[3]:.1f},{r[4]:.1f},{r[5]:.3f}\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
