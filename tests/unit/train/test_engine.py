"""The training engine against the issue's 'done when' list, through the real CLI where exit
codes and files matter and in-process where only values do."""

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_cli

from sweepbench import SweepbenchError, record, spec
from sweepbench.atomic import WRITTEN
from sweepbench.plan import stacks
from sweepbench.spec import resolve
from sweepbench.train import engine, schedules


def train(tmp_path, name="run", **user):
    out = tmp_path / name
    spec = resolve(user)
    result = engine.train(spec, str(out), quiet=True)
    return result, pd.read_csv(out / "metrics.csv"), pd.read_csv(out / "steps.csv")


def assert_complete_record(run_dir):
    assert sorted(os.listdir(run_dir)) == sorted([*record.RECORD_FILES, WRITTEN])
    rec = json.load(open(os.path.join(run_dir, "run.json")))
    for key in ("status", "spec", "final", "best", "to_target", "throughput", "provenance"):
        assert key in rec
    assert rec["status"] in record.STATUSES
    assert {"samples_per_s", "step_time_median_s"} <= set(rec["throughput"])
    return rec


def test_run_json_provenance_records_the_clones_lock_and_whether_this_python_matched_it(tmp_path):
    from sweepbench import envlock

    train(tmp_path, workload="linreg", epochs=1)
    lock = json.load(open(tmp_path / "run" / "run.json"))["provenance"]["env_lock"]
    assert lock["file"] == "requirements.lock" and lock["sha256"] == envlock.read_lock()[0]
    assert lock == envlock.state() and lock["matches"] is (lock["differs"] == [])  # outside a clone: null


@pytest.mark.parametrize("lock_bytes, message", [(b"torch==2.0\n\xff\xfe\n", r": not UTF-8 text \(byte 11\)"),
                                                   (b"numpy>=2.0\n", r":1: bad line 'numpy>=2.0'")])
def test_a_bad_requirements_lock_stops_a_run_before_it_trains(tmp_path, monkeypatch, lock_bytes, message):
    """A non-UTF-8 lock crashed (UnicodeDecodeError) and a malformed line exited 2, both only at
    write_records, after the whole run had trained: the provenance's lock is read first."""
    from sweepbench import envlock

    lock = tmp_path / "requirements.lock"
    lock.write_bytes(lock_bytes)
    monkeypatch.setattr(envlock, "lock_path", lambda: str(lock))
    monkeypatch.setattr(engine, "set_up", lambda *a: pytest.fail("trained before reading the lock"))
    envlock.state.cache_clear()
    try:
        with pytest.raises(SweepbenchError, match=f"^{re.escape(str(lock))}{message}.*allowed: "):
            engine.train(resolve({"workload": "linreg", "epochs": 1}), str(tmp_path / "run"), quiet=True)
    finally:
        envlock.state.cache_clear()
    assert not (tmp_path / "run").exists()


SMALL = {
    "linreg": {"epochs": 3},
    "logreg2d": {"epochs": 2},
    "digits_softmax": {"epochs": 1},
    "digits_mlp": {"epochs": 1},
    "mnist_softmax": {"epochs": 1, "batch_size": 16},
    "mnist_mlp": {"epochs": 1, "batch_size": 16, "val_size": 16, "entropy_alpha": 0.5},
    "fmnist_lenet5": {"epochs": 1, "batch_size": 16},
    "fmnist_wrn16_10": {"epochs": 1, "batch_size": 8, "train_size": 16, "eval_batch_size": 64},
}


@pytest.mark.slow
@pytest.mark.parametrize("workload", list(SMALL))
def test_every_workload_writes_its_three_files(tmp_path, tiny_image_data, workload):
    user = {"workload": workload, **SMALL[workload], **tiny_image_data}
    result, metrics, steps = train(tmp_path, **user)
    rec = assert_complete_record(tmp_path / "run")
    assert list(metrics.columns[:len(record.METRIC_COLUMNS)]) == record.METRIC_COLUMNS
    assert metrics["step"].iloc[0] == 0 and metrics["step"].iloc[-1] == rec["final"]["step"] > 0
    assert len(steps) == rec["final"]["step"]
    if workload.startswith(("digits", "mnist", "fmnist", "logreg")):
        assert metrics["val_accuracy"].between(0, 1).all()
    else:
        assert metrics["val_accuracy"].isna().all()
    if workload in ("linreg", "logreg2d"):   # two-parameter models log their trajectory
        assert {"w", "b"} <= set(steps.columns) or {"w1", "w2"} <= set(steps.columns)


def test_prepared_tensor_file_is_reused_and_training_never_needs_torchvision(tmp_path, tiny_image_data):
    train(tmp_path, "a", workload="mnist_softmax", epochs=1, batch_size=16, **tiny_image_data)
    assert os.path.exists(os.path.join(tiny_image_data["data_dir"], "mnist.pt"))
    import shutil
    shutil.rmtree(tiny_image_data["raw_dir"])          # raw files gone: the tensor file suffices
    result, _, _ = train(tmp_path, "b", workload="mnist_softmax", epochs=1, batch_size=16, **tiny_image_data)
    assert result["workload"]["n_train"] == 64 and result["workload"]["val_is_test"]


def test_two_cpu_runs_are_identical_apart_from_time_columns(tmp_path):
    user = dict(workload="digits_mlp", epochs=2, optimizer="adam", lr=0.01, gns=True)
    _, m1, s1 = train(tmp_path, "a", **user)
    _, m2, s2 = train(tmp_path, "b", **user)
    drop = [c for c in m1.columns if c in record.TIME_COLUMNS]
    pd.testing.assert_frame_equal(m1.drop(columns=drop), m2.drop(columns=drop))
    strip = lambda p: "\n".join(",".join(v for c, v in zip(lines[0].split(","), line.split(","))
                                         if c not in record.TIME_COLUMNS)
                                for lines in [open(p).read().splitlines()] for line in lines)
    assert strip(tmp_path / "a" / "metrics.csv") == strip(tmp_path / "b" / "metrics.csv")
    assert np.isfinite(m1["grad_noise_scale"]).all()


@pytest.mark.parametrize("name", [n for n, o in spec.OPTIONS.items() if o.null_is_zero])
def test_an_option_declared_null_is_zero_trains_alike_at_null_and_0(tmp_path, name):
    """Option.null_is_zero lets the planner refuse `[null, 0]` as one cell twice: true only if both train
    exactly alike (the same losses, bit for bit)."""
    user = dict(workload="digits_mlp", epochs=1, max_steps=5, eval_max_samples=64)
    _, _, at_null = train(tmp_path, "null", **user, **{name: None})
    _, _, at_zero = train(tmp_path, "zero", **user, **{name: 0.0})
    assert at_null["loss"].tolist() == at_zero["loss"].tolist() and len(at_null) == 5


@pytest.mark.slow
def test_huge_lr_diverges_cleanly_with_exit_code_zero(tmp_path):
    out = tmp_path / "div"
    proc = run_cli("train", "--workload", "linreg", "--lr", "1e3", "--epochs", "50", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    rec = assert_complete_record(out)
    assert rec["status"] == "diverged" and rec["divergence"]["diverged"]
    assert rec["final"]["step"] < 50 and rec["to_target"]["reached"] is False


def closed_form_linreg():
    from sweepbench.data import datasets
    from sweepbench.spec import resolve as r

    s = datasets.load("linreg", r({"workload": "linreg"}))
    x, y = s.x_train.double().numpy(), s.y_train.double().numpy()
    A = np.stack([x, np.ones_like(x)], 1)
    (w, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    return w, b, float(np.mean((A @ [w, b] - y) ** 2))


def test_gradient_descent_reaches_the_least_squares_solution(tmp_path):
    w, b, loss = closed_form_linreg()
    result, metrics, steps = train(tmp_path, workload="linreg", batch_size="full", lr=0.025, epochs=20000,
                                   converge_tol=1e-10, steps_cap=100000)
    assert result["status"] == "converged"
    last = steps.iloc[-1]
    assert last["w"] == pytest.approx(w, rel=0.01)
    assert last["b"] == pytest.approx(b, rel=0.01)
    assert result["final"]["train_loss"] == pytest.approx(loss, rel=0.01)


def test_seed001_rule_stops_gradient_descent_early(tmp_path):
    _, _, loss = closed_form_linreg()
    result, metrics, steps = train(tmp_path, workload="linreg", batch_size="full", lr=0.001, epochs=1000,
                                   converge_tol=0.001)
    assert result["status"] == "converged"
    epoch = result["convergence"]["epoch"]
    assert 10 < epoch < 1000 and result["final"]["step"] == epoch
    # stopped on a plateau of relative change, not at the optimum
    assert result["final"]["train_loss"] > loss
    losses = steps["loss"].to_numpy()
    assert abs(losses[-1] - losses[-2]) / losses[-2] < 0.001 <= abs(losses[-2] - losses[-3]) / losses[-3]


def test_sgd_b1_and_minibatch_keep_last_partial_batch(tmp_path):
    result, metrics, steps = train(tmp_path, "b1", workload="linreg", batch_size=1, epochs=2, lr=0.001)
    assert result["final"]["step"] == 200
    result, metrics, steps = train(tmp_path, "b32", workload="linreg", batch_size=32, epochs=2, lr=0.001,
                                   sampling="sequential")
    assert result["final"]["step"] == 8 and list(steps["batch_size"][:4]) == [32, 32, 32, 4]


def test_sampling_schemes_differ_and_replacement_uses_full_batches(tmp_path):
    finals = {}
    for sampling in ("shuffle", "replacement", "sequential"):
        result, _, steps = train(tmp_path, sampling, workload="logreg2d", sampling=sampling, epochs=2)
        finals[sampling] = (steps["w1"].iloc[-1], steps["w2"].iloc[-1])
        if sampling == "replacement":
            assert (steps["batch_size"] == 16).all() and len(steps) == 2 * 32
    assert len(set(finals.values())) == 3


def test_gradient_accumulation_equals_the_big_batch(tmp_path):
    common = dict(workload="digits_softmax", sampling="sequential", epochs=2, lr=0.1)
    _, big, _ = train(tmp_path, "big", batch_size=64, **common)
    _, acc, steps = train(tmp_path, "acc", batch_size=16, accum_steps=4, **common)
    assert list(steps["batch_size"].iloc[15:18]) == [64, 1079 - 16 * 64, 64]   # each epoch ends short
    np.testing.assert_allclose(acc["train_loss"], big["train_loss"], rtol=1e-4)
    assert list(acc["step"]) == list(big["step"])


def test_cyclic_batch_size_and_cyclical_lr_are_applied(tmp_path):
    _, metrics, steps = train(tmp_path, "cyc", workload="digits_softmax", epochs=4, batch_schedule="cyclic",
                              batch_cycle=[16, 32, 64])
    assert list(metrics["batch_size"].iloc[1:]) == [16, 32, 64, 16]
    result, _, steps = train(tmp_path, "clr", workload="digits_softmax", epochs=3, schedule="triangular",
                             lr=0.01, clr_max_lr=0.1, clr_step_size=10)
    expected = [schedules.cyclic_lr(s - 1, 0.01, 0.1, 10, "triangular") for s in steps["step"]]
    np.testing.assert_allclose(steps["lr"], expected)


def test_target_with_patience_stops_and_first_crossing_is_recorded(tmp_path):
    result, metrics, _ = train(tmp_path, workload="digits_softmax", epochs=30, target=0.9, stop_at_target=True,
                               patience=2)
    assert result["status"] == "target_reached"
    hits = metrics.index[metrics["val_accuracy"] >= 0.9]
    assert result["to_target"]["step"] == metrics["step"][hits[0]]
    assert metrics["val_accuracy"].iloc[-2:].ge(0.9).all() and len(metrics) < 31


def test_eval_max_samples_evaluates_a_prefix_of_each_split(tmp_path):
    _, full, _ = train(tmp_path, "full", workload="digits_softmax", epochs=1, sampling="sequential")
    _, part, _ = train(tmp_path, "part", workload="digits_softmax", epochs=1, sampling="sequential",
                       eval_max_samples=50)
    assert list(part["step"]) == list(full["step"])
    assert (part["train_loss"] != full["train_loss"]).all()      # other samples, other loss
    assert ((part["val_accuracy"] * 50).round(6) % 1 == 0).all()  # accuracy over exactly 50 samples


def test_eval_every_k_steps_and_steps_csv_thinning(tmp_path):
    result, metrics, steps = train(tmp_path, workload="linreg", batch_size=1, epochs=10, lr=0.001,
                                   eval_every=250, steps_cap=50)
    assert list(metrics["step"]) == [0, 100, 200, 250, 300, 400, 500, 600, 700, 750, 800, 900, 1000]
    assert len(steps) == 50 and list(steps["step"][:3]) == [1, 21, 41]
    assert result["throughput"]["timed_steps"] == 990


def test_synthetic_data_is_recorded(tmp_path):
    result, _, _ = train(tmp_path, workload="fmnist_lenet5", synthetic=True, max_steps=3, batch_size=16,
                         eval_max_samples=64, train_size=256)
    assert result["workload"]["synthetic"] and result["spec"]["synthetic"]
    assert result["final"]["step"] == 3 and "max_steps" in result["stop_reason"]


@pytest.mark.parametrize("args, message", [
    (["--workload", "resnet"], "unknown workload 'resnet'; allowed:"),
    (["--workload", "linreg", "--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'; allowed:"),
    (["--workload", "linreg", "--set", "schedule=zigzag"], "unknown schedule 'zigzag'; allowed:"),
    (["--workload", "linreg", "--lr", "0"], "bad lr 0.0; allowed: a finite number > 0"),
    (["--workload", "linreg", "--batch-size", "0"], "bad batch_size 0"),
    (["--workload", "linreg", "--batch-size", "101"], "bad batch_size 101; allowed: 1..100"),
    (["--workload", "linreg", "--epochs", "0"], "bad epochs 0; allowed: an integer >= 1"),
    (["--workload", "linreg", "--set", "colour=red"], "unknown option 'colour'"),
])
@pytest.mark.slow
def test_bad_input_is_one_line_exit_2_and_leaves_no_folder(tmp_path, args, message):
    out = tmp_path / "runs" / "r"
    proc = run_cli("train", *args, "--out", str(out))
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert not (tmp_path / "runs").exists() or os.listdir(tmp_path / "runs") == []


@pytest.mark.slow
def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli("train", "--workload", "linreg", "--out", str(blocker / "r"))
    assert proc.returncode == 2 and "cannot write output folder" in proc.stderr


@pytest.mark.slow
def test_missing_mnist_offline_names_folder_and_files(tmp_path):
    proc = run_cli("train", "--workload", "mnist_mlp", "--out", str(tmp_path / "r"),
                   "--set", f"raw_dir={tmp_path}/data", "--set", f"data_dir={tmp_path}/res")
    assert proc.returncode == 2
    assert f"{tmp_path}/data/MNIST/raw" in proc.stderr and "train-images-idx3-ubyte" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_help_documents_every_option():
    proc = run_cli("train", "--help")
    from sweepbench.spec import OPTIONS as DEFAULTS
    assert proc.returncode == 0
    for key in DEFAULTS:
        assert f"  {key} = " in proc.stdout


def test_save_best_keeps_reloads_and_evaluates_the_best_weights(tmp_path, tiny_image_data):
    import torch

    from sweepbench.train import models

    result, metrics, _ = train(tmp_path, workload="mnist_mlp", epochs=3, batch_size=16, val_size=16, lr=0.05,
                               optimizer="adam", save_best=True, **tiny_image_data)
    best = result["best_model"]
    assert best["step"] == int(metrics.loc[metrics["val_accuracy"].idxmax(), "step"])
    assert best["value"] == metrics["val_accuracy"].max()
    assert os.path.exists(tmp_path / "run" / "model.pt")
    assert best["reloaded_val_accuracy"] == pytest.approx(best["value"])   # the re-loaded weights score the same
    at_best = metrics[metrics["step"] == best["step"]].iloc[0]
    assert best["reloaded_test_accuracy"] == pytest.approx(at_best["test_accuracy"])
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    fresh = models.build("mlp", {"hidden": [20, 20]}, models.ModelInput((1, 28, 28)))
    fresh.load_state_dict(state)                                            # a usable checkpoint


def test_a_model_and_batch_that_cannot_fit_are_refused_before_the_model_is_built(tmp_path, monkeypatch):
    """hidden [10^9] allocated until the process crashed: the estimate is checked first, nothing written."""
    monkeypatch.setattr(engine.provenance, "available_mb", lambda: 512.0)
    spec = resolve({"workload": "digits_mlp", "hidden": [100_000, 100_000], "epochs": 1})
    with pytest.raises(SweepbenchError, match=r"bad hidden \[100000, 100000\] / batch_size 32 for this machine: the "
                                              r"run needs about [\d,]+ MB .*, 512 MB is available; allowed: a smaller"):
        engine.train(spec, str(tmp_path / "run"), quiet=True)
    assert not (tmp_path / "run").exists()
    # the noise scale keeps a gradient per small batch: gns_batches 1024 of 4.2 M parameters is about 33 GB
    gns = resolve({"workload": "digits_mlp", "hidden": [2000, 2000], "epochs": 1, "gns": True, "gns_batches": 1024})
    with pytest.raises(SweepbenchError, match=r"bad hidden \[2000, 2000\] / batch_size 32 / gns_batches 1024 for "
                                              r"this machine: the run needs about 3[23],\d+ MB .*the noise-scale "
                                              r"gradients\)"):
        engine.train(gns, str(tmp_path / "gns"), quiet=True)
    assert stacks.run_mb("mlp", {**gns, "gns": False}, 64, 32) < 512                    # without gns it fits
    monkeypatch.setattr(engine.provenance, "available_mb", lambda: None)               # unknown: not refused
    engine.train(resolve({"workload": "digits_mlp", "epochs": 1}), str(tmp_path / "ok"), quiet=True)


def test_a_timing_run_stops_when_its_median_throughput_is_known_and_records_its_blocks(tmp_path):
    result, metrics, steps = train(tmp_path, "timed", workload="linreg", batch_size=1, epochs=1000, lr=0.001,
                                   timing_ci=0.5, timing_block_s=0.001, timing_budget_s=30)
    tp = result["throughput"]
    assert result["status"] == "completed" and result["stop_reason"].startswith("timing settled")
    assert len(tp["block_samples_per_s"]) >= 8 and result["timing"]["steps"] < 1000 * 90
    assert tp["samples_per_s_ci_lo"] <= tp["samples_per_s"] <= tp["samples_per_s_ci_hi"]
    assert metrics["step"].iloc[-1] == result["timing"]["steps"]            # evaluated where it stopped
    spent, _, _ = train(tmp_path, "budget", workload="linreg", batch_size=1, epochs=1000, lr=0.001,
                        timing_ci=0.0001, timing_block_s=0.001, timing_budget_s=0.05)
    assert spent["stop_reason"].startswith("timing budget of 0.05 s spent")


def test_debug_slowdown_sleeps_its_fraction_of_each_step_inside_the_step(tmp_path, monkeypatch):
    """The planted slowdown of benchmarks/bench_speed_check.py: every step, before its end mark, waits
    debug_slowdown x the step's time so far (not timed here: a fake clock)."""
    from sweepbench.train import clock

    readings = []
    ticks = iter(range(10**6))

    def perf_counter():
        readings.append(next(ticks) * 0.01)              # each reading of the clock 10 ms later
        return readings[-1]

    monkeypatch.setattr(clock.time, "perf_counter", perf_counter)
    c = clock.Clock(torch.device("cpu"))
    mark = c.step_begin()                                 # 0.00
    c.stall(2.0)                                          # at 0.01 (a step of 10 ms so far): wait 20 ms more
    assert readings[-1] == 0.03 and c.step_end(mark) == 0.04    # spun until 0.03; the wait is inside the step
    monkeypatch.undo()
    calls = []
    monkeypatch.setattr(clock.Clock, "stall", lambda self, fraction: calls.append(fraction))
    result, _, _ = train(tmp_path, workload="digits_mlp", batch_size=64, max_steps=7, debug_slowdown=0.1)
    assert calls == [0.1] * 7 and result["spec"]["debug_slowdown"] == 0.1
    train(tmp_path, "off", workload="digits_mlp", batch_size=64, max_steps=7)
    assert len(calls) == 7                                      # 0 (the default): never called
