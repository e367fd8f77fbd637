"""Speed options (sweepbench.train.acceleration) on the CPU: the same code the GPU runs, device cpu.
Each option must be recorded in run.json and must not change what is trained beyond its
arithmetic (bf16) or not at all (memory format, optimizer kernels, compile warm-up)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_cli

from sweepbench import SweepbenchError
from sweepbench.spec import resolve
from sweepbench.train import acceleration, engine

LENET = {"workload": "fmnist_lenet5", "synthetic": True, "train_size": 96, "val_size": 32, "epochs": 2,
         "batch_size": 32, "device": "cpu", "threads": 1, "eval_max_samples": 64}


def run(tmp_path, name, **user):
    out = tmp_path / name
    rec = engine.train(resolve(user), str(out), quiet=True)
    return rec, pd.read_csv(out / "metrics.csv")


def test_defaults_are_recorded_and_auto_means_foreach_on_the_cpu(tmp_path):
    rec, _ = run(tmp_path, "a", workload="digits_softmax", epochs=1, device="cpu")
    assert rec["speed"] == {"optimizer_impl": "foreach", "precision": "fp32", "channels_last": False,
                            "compile": "off", "compile_s": 0.0, "batched_runs": 1, "stack": None}
    assert rec["timing"]["compile_s"] == 0.0
    assert rec["placement"] == engine.PLACEMENT_UNKNOWN


def test_auto_is_fused_on_cuda_where_torch_has_it():
    cuda = torch.device("cuda")  # only the name is used: no GPU needed
    assert acceleration.optimizer_impl({"optimizer_impl": "auto", "optimizer": "adamw"}, cuda) == "fused"
    assert acceleration.optimizer_impl({"optimizer_impl": "auto", "optimizer": "rmsprop"}, cuda) == "foreach"


def test_fused_where_torch_has_none_is_a_clear_error(tmp_path):
    with pytest.raises(SweepbenchError, match="bad optimizer_impl 'fused' for optimizer 'rmsprop' on cpu"):
        run(tmp_path, "a", workload="digits_softmax", epochs=1, device="cpu", optimizer="rmsprop",
            optimizer_impl="fused")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("optimizer", ["momentum", "adam", "adagrad"])
def test_optimizer_kernels_train_the_same_model(tmp_path, optimizer):
    """fused, foreach and for-loop kernels are the same update rule: equal up to float rounding."""
    base = {"workload": "digits_mlp", "epochs": 2, "device": "cpu", "optimizer": optimizer, "lr": 0.01}
    losses = {}
    for impl in ("for-loop", "foreach", "fused"):
        rec, metrics = run(tmp_path, impl, **base, optimizer_impl=impl)
        assert rec["speed"]["optimizer_impl"] == impl
        losses[impl] = metrics["train_loss"].to_numpy()
    np.testing.assert_allclose(losses["foreach"], losses["for-loop"], rtol=1e-5)
    np.testing.assert_allclose(losses["fused"], losses["for-loop"], rtol=1e-4)


def test_channels_last_trains_the_same_lenet(tmp_path):
    rec, plain = run(tmp_path, "plain", **LENET)
    rec_cl, cl = run(tmp_path, "cl", **LENET, channels_last=True)
    assert rec_cl["speed"]["channels_last"] is True
    np.testing.assert_allclose(cl["train_loss"], plain["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(cl["val_accuracy"], plain["val_accuracy"], atol=1 / 32 + 1e-9)


def test_bf16_autocast_changes_the_arithmetic_but_not_the_training(tmp_path):
    _, fp32 = run(tmp_path, "fp32", **LENET)
    rec, bf16 = run(tmp_path, "bf16", **LENET, precision="bf16")
    assert rec["speed"]["precision"] == "bf16"
    assert fp32["train_loss"].iloc[0] == pytest.approx(bf16["train_loss"].iloc[0], rel=0.02)  # same init
    assert not np.array_equal(fp32["train_loss"].to_numpy(), bf16["train_loss"].to_numpy())  # really bf16
    assert np.isfinite(bf16["train_loss"]).all()


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")),
                    reason="torch.compile on the CPU needs a C++ compiler (g++), and this machine has none")
@pytest.mark.slow
def test_compile_warm_up_is_timed_apart_and_leaves_training_unchanged(tmp_path):
    """torch.compile (inductor, C++ on the CPU) compiles each batch size before the clock starts:
    training time excludes it, timing.compile_s records it, and the run trains as in eager mode
    (batch-norm statistics and RNG restored after the warm-up)."""
    user = dict(LENET, train_size=80)  # 80 = 2 x 32 + 16: two batch sizes to compile
    _, eager = run(tmp_path, "eager", **user)
    rec, comp = run(tmp_path, "compiled", **user, compile="default")
    assert rec["speed"]["compile"] == "default"
    assert rec["timing"]["compile_s"] > 0 and rec["speed"]["compile_s"] == rec["timing"]["compile_s"]
    assert rec["timing"]["train_s"] < rec["timing"]["compile_s"]  # the warm-up is not training time
    np.testing.assert_allclose(comp["train_loss"], eager["train_loss"], rtol=1e-4)


def test_warmup_batches_cover_every_micro_batch_size():
    from sweepbench.data import datasets

    x = torch.zeros(100, 3)
    splits = datasets.Splits(x, torch.zeros(100), x, torch.zeros(100), x, torch.zeros(100))
    spec = resolve({"workload": "linreg", "batch_size": 32, "compile": "default"})
    assert [len(y) for _, y in engine.warmup_batches(spec, splits, 100)] == [4, 32]
    spec = resolve({"workload": "linreg", "batch_schedule": "cyclic", "batch_cycle": [10, 50], "epochs": 4,
                    "compile": "default"})
    assert [len(y) for _, y in engine.warmup_batches(spec, splits, 100)] == [10, 50]
    assert engine.warmup_batches(resolve({"workload": "linreg"}), splits, 100) == []


@pytest.mark.slow
def test_train_pack_records_placement(tmp_path):
    spec = resolve({"workload": "digits_softmax", "epochs": 1, "device": "cpu"})
    runs = tmp_path / "runs.json"
    runs.write_text(json.dumps([{"dir": "seed~0", "seed": 0, "spec": spec}]))
    for flag, exclusive in (("--exclusive", True), ("--shared", False)):
        out = tmp_path / flag.strip("-")
        proc = run_cli("train-pack", "--runs-file", str(runs), "--out", str(out), "--threads", "1",
                       "--gpu-slots", "0", flag, "--quiet")
        assert proc.returncode == 0, proc.stderr
        rec = json.load(open(out / "seed~0" / "run.json"))
        assert rec["placement"] == {"scheduler": "train-pack", "exclusive": exclusive, "gpu_slots": 0, "threads": 1}
        assert rec["timing"]["startup_s"] > 0


def test_bad_speed_option_is_one_line(tmp_path):
    proc = run_cli("train", "--workload", "digits_softmax", "--out", str(tmp_path / "x"), "--set", "precision=fp8")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "sweepbench train: error: unknown precision 'fp8'; allowed: fp32, bf16"
