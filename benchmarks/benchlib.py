"""Helpers the benchmark scripts share: running the workflow, reading its run records, writing CSV."""

from __future__ import annotations

import csv
import glob
import os
import subprocess
import sys
import time


def run_snakemake(args: list[str], cwd: str | None = None) -> float:
    """Run `snakemake ARGS` with this interpreter (its bin folder first on PATH, for the rules'
    `sweepbench` command); returns the wall seconds, exits with Snakemake's error on failure."""
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return wall


def run_records(results_dir: str) -> list:
    """Every run record under results_dir/runs/ (sweepbench.record.load_record)."""
    from sweepbench.record import load_record

    return [load_record(os.path.dirname(f)) for f in glob.glob(f"{results_dir}/runs/**/run.json", recursive=True)]


def shared_seconds(records: list, key: str) -> float:
    """Summed timing[key] (train_s, eval_s) over the runs, each stack counted once: its runs share
    one clock, and each run's value is the stack's time until it stopped, so a stack costs the
    largest of them."""
    alone = sum(r.timing[key] or 0 for r in records if not r.speed["stack"])
    stacks: dict = {}
    for r in records:
        if r.speed["stack"]:
            stacks[r.speed["stack"]] = max(stacks.get(r.speed["stack"], 0.0), r.timing[key] or 0)
    return alone + sum(stacks.values())


def training_seconds(records: list) -> float:
    """Summed training time, each stack counted once (shared_seconds)."""
    return shared_seconds(records, "train_s")


def write_csv(path: str, header: list[str], rows: list) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {path}")
