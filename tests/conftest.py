"""Shared fixtures: tiny MNIST-format datasets in the real on-disk (IDX) format (sweepbench.data.tinydata)."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tiny_mnist(raw_dir, name="mnist", n_train=64, n_test=32, seed=0, gz=False) -> str:
    from sweepbench.data.tinydata import write_tiny_dataset

    return write_tiny_dataset(str(raw_dir), name, n_train, n_test, seed, gz=gz)


@pytest.fixture
def tiny_image_data(tmp_path):
    """raw_dir and data_dir with tiny MNIST, Fashion-MNIST (IDX) and mnist5k (CSV) in their real layouts."""
    raw_dir = tmp_path / "data"
    make_tiny_mnist(raw_dir, "mnist", seed=0)
    make_tiny_mnist(raw_dir, "fmnist", seed=1)
    make_tiny_mnist(raw_dir, "mnist5k", seed=2)
    return {"raw_dir": str(raw_dir), "data_dir": str(tmp_path / "resources")}


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> str:
    """The package built as a wheel (`pip wheel . --no-deps`), once per session, from a copy of
    pyproject.toml and src/: the build writes build/ and an egg-info, which stay out of the checkout."""
    tree = tmp_path_factory.mktemp("wheel-source")
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tree)
    shutil.copytree(os.path.join(ROOT, "src"), tree / "src", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation",
                           "--quiet", "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    return str(wheel)


def run_cli(*args, cwd=None):
    """Run the sweepbench command in a fresh process; returns CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "sweepbench.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def minimal_record(**sections) -> dict:
    """A run.json with every key record.load_record requires, for tests that write records by
    hand; `sections` replace or extend its sections."""
    from sweepbench import record

    metrics = {m: 0.5 for m in record.METRICS}
    rec = {"schema_version": record.SCHEMA_VERSION, "status": "completed", "stop_reason": "budget exhausted",
           "spec": {"workload": "linreg", "optimizer": "sgd", "lr": 0.1, "batch_size": 32, "accum_steps": 1,
                    "seed": 0, "synthetic": False},
           "workload": {"name": "linreg", "n_train": 100}, "final": {"step": 10, "epoch_loss": 0.5, **metrics},
           "best": dict(metrics),
           "to_target": {"metric": None, "target": None, "reached": False, "step": None, "epoch": None,
                         "samples": None, "wall_s": None},
           "convergence": {"epoch": None}, "divergence": {"diverged": False},
           "throughput": {"samples_per_s": 1000.0, "samples_per_s_ci_lo": 990.0, "samples_per_s_ci_hi": 1010.0,
                          "block_samples_per_s": [1000.0] * 6, "step_time_median_s": 0.001,
                          "step_time_p10_s": 0.001, "step_time_p90_s": 0.001},
           "timing": {"train_s": 1.0, "eval_s": 0.1, "startup_s": 1.0, "steps": 10, "epochs": 1},
           "memory": {"peak_mb": 100}, "speed": {"batched_runs": 1, "stack": None}, "placement": None,
           "grad_noise_scale": None, "best_model": None,
           "provenance": {"device_name": "cpu", "torch": "2.x", "git_commit": "abc", "code_version": "0"}}
    rec.update(sections)
    if "divergence" not in sections:  # as a real record: diverged exactly when the status says so
        rec["divergence"] = {"diverged": rec["status"] == "diverged"}
    return rec


def write_record_files(run_dir, rec: dict) -> None:
    """A complete run record on disk: run.json `rec`, and metrics.csv / steps.csv with their columns."""
    import json
    import os

    from sweepbench import record

    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump(rec, f)
    with open(os.path.join(run_dir, "metrics.csv"), "w") as f:
        f.write(",".join(record.METRIC_COLUMNS) + "\n0" + "," * (len(record.METRIC_COLUMNS) - 1) + "\n")
    with open(os.path.join(run_dir, "steps.csv"), "w") as f:
        f.write(",".join(record.STEP_COLUMNS) + "\n")
