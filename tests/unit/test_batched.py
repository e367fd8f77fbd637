"""Seeds trained as one stacked model (sweepbench.batched) give the records separate runs give."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from sweepbench import SweepbenchError, batched, engine
from sweepbench.spec import check_batchable, resolve

METRICS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]


def both(tmp_path, seeds, **user):
    specs = [resolve({"device": "cpu", **user, "seed": s}) for s in seeds]
    together = batched.train_seeds(specs, [str(tmp_path / f"b{s}") for s in seeds], quiet=True)
    alone = [engine.train(spec, str(tmp_path / f"e{s}"), quiet=True) for s, spec in zip(seeds, specs)]
    return together, alone


def read(tmp_path, name):
    return pd.read_csv(tmp_path / name / "metrics.csv"), pd.read_csv(tmp_path / name / "steps.csv")


@pytest.mark.parametrize("user", [
    {"workload": "digits_mlp", "optimizer": "adam", "lr": 0.003, "batch_size": 16, "epochs": 3},
    {"workload": "digits_softmax", "optimizer": "momentum", "lr": 0.05, "batch_size": 7, "epochs": 2,
     "sampling": "replacement", "schedule": "cosine"},
    {"workload": "mnist_mlp", "synthetic": True, "train_size": 256, "val_size": 64, "eval_max_samples": 128,
     "entropy_alpha": 0.5, "optimizer": "rmsprop", "lr": 0.001, "batch_size": 32, "epochs": 2},
    {"workload": "mnist_softmax", "synthetic": True, "train_size": 256, "eval_max_samples": 128,
     "reg_lambda": 0.01, "optimizer": "sgd", "lr": 0.1, "batch_size": 1, "epochs": 1, "sampling": "sequential"},
])
def test_metrics_equal_those_of_separate_runs(tmp_path, user):
    together, alone = both(tmp_path, [0, 1, 2], **user)
    for s, (a, b) in enumerate(zip(together, alone)):
        assert a["status"] == b["status"] and a["final"]["step"] == b["final"]["step"]
        assert a["speed"]["batched_runs"] == 3 and b["speed"]["batched_runs"] == 1
        (ma, sa), (mb, sb) = read(tmp_path, f"b{s}"), read(tmp_path, f"e{s}")
        assert list(ma.columns) == list(mb.columns) and len(ma) == len(mb) and len(sa) == len(sb)
        assert ma[["step", "samples", "lr", "batch_size"]].equals(mb[["step", "samples", "lr", "batch_size"]])
        np.testing.assert_allclose(ma[METRICS].to_numpy(float), mb[METRICS].to_numpy(float), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sa["loss"], sb["loss"], rtol=1e-5, atol=1e-6)
    # the seeds really differ (each run has its own initial weights and sampling order)
    assert len({round(r["final"]["train_loss"], 6) for r in together}) == 3


def test_each_run_stops_on_its_own_verdict(tmp_path):
    """With a stopping target, seeds stop at different epochs; each batched run stops where it
    would alone, and keeps its record from that point while the others train on."""
    together, alone = both(tmp_path, [0, 1, 2, 3], workload="digits_mlp", optimizer="sgd", lr=0.05, batch_size=32,
                           epochs=12, target_metric="val_accuracy", target=0.9, stop_at_target=True)
    assert [r["final"]["step"] for r in together] == [r["final"]["step"] for r in alone]
    assert [r["status"] for r in together] == [r["status"] for r in alone]
    assert len({r["final"]["step"] for r in alone}) > 1          # the verdicts really differ between seeds


def test_divergence_is_per_run_and_clean(tmp_path):
    together, alone = both(tmp_path, [0, 1], workload="digits_softmax", lr=1e3, epochs=3)
    assert [r["status"] for r in together] == [r["status"] for r in alone] == ["diverged", "diverged"]
    assert [r["divergence"]["step"] for r in together] == [r["divergence"]["step"] for r in alone]


@pytest.mark.parametrize("user, message", [
    ({"workload": "fmnist_lenet5"}, "cannot batch workload fmnist_lenet5 (model lenet5); allowed"),
    ({"workload": "digits_mlp", "accum_steps": 2}, "cannot batch runs with accum_steps=2; allowed: accum_steps=1"),
    ({"workload": "digits_mlp", "eval_every": 5}, "cannot batch runs with eval_every=5; allowed: eval_every=0"),
])
def test_unbatchable_runs_are_named(user, message):
    with pytest.raises(SweepbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_batchable([resolve({**user, "seed": 0}), resolve({**user, "seed": 1})])


def test_runs_of_different_cells_are_not_batched():
    with pytest.raises(SweepbenchError, match=r"cannot batch runs that differ in lr \(0.1 vs 0.2\)"):
        check_batchable([resolve({"workload": "digits_mlp", "lr": 0.1}), resolve({"workload": "digits_mlp", "lr": 0.2})])


def test_train_pack_batches_each_cell(tmp_path):
    runs = [{"dir": f"lr~{lr}/seed~{s}", "seed": s,
             "spec": resolve({"workload": "digits_softmax", "epochs": 1, "lr": lr, "seed": s, "device": "cpu"})}
            for lr in (0.1, 0.2) for s in (0, 1, 2)]
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    proc = run_cli("train-pack", "--runs-file", str(tmp_path / "runs.json"), "--out", str(tmp_path / "job"),
                   "--batch-seeds", "--quiet")
    assert proc.returncode == 0, proc.stderr
    for run in runs:
        rec = json.load(open(tmp_path / "job" / run["dir"] / "run.json"))
        assert rec["speed"]["batched_runs"] == 3 and rec["spec"]["seed"] == run["seed"]


def test_batch_larger_than_the_training_set_is_bad_input_and_writes_nothing(tmp_path):
    specs = [resolve({"workload": "digits_softmax", "batch_size": 5000, "seed": s, "device": "cpu"}) for s in (0, 1)]
    with pytest.raises(SweepbenchError, match="bad batch_size 5000; allowed: 1..1079"):
        batched.train_seeds(specs, [str(tmp_path / "a"), str(tmp_path / "b")], quiet=True)
    assert list(tmp_path.iterdir()) == []
