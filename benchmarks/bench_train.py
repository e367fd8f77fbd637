"""Training-loop speed: sweepbench's engine vs a plain DataLoader loop, same process, same model.

For each model and batch size both loops train on the same synthetic Fashion-MNIST-shaped
tensors with plain SGD. sweepbench is timed by its own training clock (run.json's
timing.train_s: every training step plus the loop's own bookkeeping, evaluation excluded);
the plain loop is timed around `for xb, yb in DataLoader(TensorDataset(x, y), batch_size=B,
shuffle=True)` with forward, backward and step, after the same number of warm-up steps.

    python benchmarks/bench_train.py                       # CPU, mnist_mlp and LeNet-5, B = 1 16 64 256
    python benchmarks/bench_train.py --device cuda --batch-sizes 1,16,64,256,1024
    python benchmarks/bench_train.py --device cuda --models wrn --batch-sizes 8,64,256,700 \
        --precision bf16 --channels-last --compile max-autotune --peak-tflops 989

Speed options (--precision, --channels-last) apply to both loops, since they change the
model's arithmetic; --compile and --optimizer-impl are sweepbench's own (the plain loop
uses torch.optim.SGD with torch's default kernels). Each row also gives the time of one
60,000-sample epoch at that rate and, from torch's FLOP counter (forward + backward of
convolutions and matrix products), the achieved TFLOP/s and its share of --peak-tflops.

Prints a table and writes it as CSV (--out). Speed is a ratio measured here, never a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from benchlib import write_csv
from torch.utils.data import DataLoader, TensorDataset

from sweepbench.spec import resolve
from sweepbench.train import engine, models
from sweepbench.workloads import get as get_workload

WORKLOADS = {"mlp": "mnist_mlp", "lenet5": "fmnist_lenet5", "wrn": "fmnist_wrn16_10"}


def steps_for(model: str, batch: int, budget_samples: int) -> int:
    return max(30, min(2000, budget_samples // batch))


def sweepbench_rate(workload: str, batch: int, steps: int, device: str, train_size: int, speed: dict) -> float:
    spec = resolve({"workload": workload, "synthetic": True, "batch_size": batch, "max_steps": steps,
                    "epochs": 10_000, "lr": 0.01, "optimizer": "sgd", "train_size": train_size,
                    "device": device, "eval_batch_size": 4096, "eval_max_samples": 4096, "augment": False,
                    "schedule": "constant", **speed})
    with tempfile.TemporaryDirectory() as tmp:
        rec = engine.train(spec, os.path.join(tmp, "run"), quiet=True)
    return rec["final"]["samples"] / rec["timing"]["train_s"]


def build(workload: str, dev: torch.device, speed: dict):
    model = models.build(get_workload(workload).model, {"hidden": [20, 20], "dropout": 0.01},
                         models.ModelInput((1, 28, 28))).to(dev)
    return model.to(memory_format=torch.channels_last) if speed["channels_last"] else model


def flops_per_sample(workload: str, speed: dict) -> float:
    """Forward + backward FLOPs of one training sample (torch's FLOP counter, batch of 4, CPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(workload, torch.device("cpu"), speed)
    x = torch.rand(4, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(4, dtype=torch.long)).backward()
    return counter.get_total_flops() / 4


def plain_rate(workload: str, batch: int, steps: int, device: str, train_size: int, speed: dict,
               warmup: int = 10) -> float:
    torch.manual_seed(0)
    dev = torch.device(device)
    model = build(workload, dev, speed)
    cast = (torch.autocast(dev.type, dtype=torch.bfloat16) if speed["precision"] == "bf16"
            else contextlib.nullcontext())
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
            if speed["channels_last"]:
                xb = xb.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            with cast:
                loss = F.cross_entropy(model(xb), yb)
            loss.backward()
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
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="both loops")
    p.add_argument("--channels-last", action="store_true", help="both loops")
    p.add_argument("--compile", default="off", help="sweepbench's torch.compile mode (warm-up not timed)")
    p.add_argument("--optimizer-impl", default="auto", help="sweepbench's optimizer kernels")
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="the chip's peak for the precision used, e.g. 989 for H200 dense bf16")
    p.add_argument("--out", default="results/benchmarks/bench_train.csv")
    args = p.parse_args(argv)
    speed = {"precision": args.precision, "channels_last": args.channels_last, "compile": args.compile,
             "optimizer_impl": args.optimizer_impl}

    rows = []
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} {speed}")
    header = ["model", "batch_size", "steps", "sweepbench_samples_per_s", "dataloader_samples_per_s", "ratio",
              "epoch_60k_s", "tflops", "share_of_peak"]
    print(" ".join(f"{h:>12s}" for h in header))
    for name in args.models.split(","):
        workload = WORKLOADS[name]
        flops = flops_per_sample(workload, speed)
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            steps = steps_for(name, batch, args.samples)
            ours, theirs = 0.0, 0.0
            for _ in range(args.repeats):  # alternate so drift in machine speed hits both
                ours = max(ours, sweepbench_rate(workload, batch, steps, args.device, args.train_size, speed))
                theirs = max(theirs, plain_rate(workload, batch, steps, args.device, args.train_size, speed))
            tflops = ours * flops / 1e12
            rows.append([name, batch, steps, round(ours, 1), round(theirs, 1), round(ours / theirs, 3),
                         round(60000 / ours, 3), round(tflops, 4),
                         round(tflops / args.peak_tflops, 4) if args.peak_tflops else ""])
            print(" ".join(f"{v:>12}" for v in rows[-1]), flush=True)
    write_csv(args.out, header, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
