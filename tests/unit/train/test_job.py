"""A workflow job (sweepbench.train.job): done only when every run is, and a re-run trains only what is missing."""

import json
import os

import pytest

from sweepbench import SweepbenchError
from sweepbench.spec import resolve
from sweepbench.train import job


def runs(lrs, batch_size=32, seeds=(0,)):
    return [{"dir": f"lr~{lr}/seed~{s}", "seed": s,
             "spec": resolve({"workload": "digits_softmax", "epochs": 1, "lr": lr, "seed": s, "device": "cpu",
                              "batch_size": batch_size})}
            for lr in lrs for s in seeds]


def started(tmp_path, run):
    return json.load(open(tmp_path / "job" / run["dir"] / "run.json"))["provenance"]["started_utc"] + \
        str(os.stat(tmp_path / "job" / run["dir"] / "run.json").st_mtime_ns)


def test_a_failure_mid_job_leaves_no_manifest_and_the_rerun_trains_only_the_rest(tmp_path):
    good = runs([0.1, 0.2])
    bad = runs([0.3], batch_size=5000)             # fails when its data are loaded (1,079 training samples)
    opts = job.PackOptions(out=str(tmp_path / "job"), quiet=True)
    manifest = tmp_path / "manifest.json"
    with pytest.raises(SweepbenchError, match="bad batch_size 5000"):
        job.train_pack(good + bad + runs([0.4]), opts, str(manifest))
    assert not manifest.exists()                                    # the job is not done
    assert not (tmp_path / "job" / "lr~0.4").exists()
    kept = {r["dir"]: started(tmp_path, r) for r in good}

    again = job.train_pack(runs([0.1, 0.2, 0.3, 0.4]), opts, str(manifest))   # the fixed job, re-run
    assert (again["kept"], again["trained"]) == (2, 2)
    assert {r["dir"]: started(tmp_path, r) for r in good} == kept   # finished records were not re-trained
    assert json.load(open(manifest)) == again and len(again["runs"]) == 4


def test_a_changed_spec_or_training_code_is_trained_again(tmp_path, monkeypatch):
    opts = job.PackOptions(out=str(tmp_path / "job"), quiet=True)
    assert job.train_pack(runs([0.1]), opts)["trained"] == 1
    assert job.train_pack(runs([0.1]), opts)["trained"] == 0
    changed = runs([0.1])
    changed[0]["spec"]["epochs"] = 2
    assert job.train_pack(changed, opts)["trained"] == 1
    monkeypatch.setattr(job, "code_version", lambda: "edited")
    assert job.train_pack(changed, opts)["trained"] == 1


def stacked(lrs, seeds, stack="job#0"):
    return [dict(r, stack=stack) for r in runs(lrs, seeds=seeds)]


def test_a_stack_trains_as_one_and_resumes_with_the_missing_runs_only(tmp_path):
    opts = job.PackOptions(out=str(tmp_path / "job"), quiet=True)
    job.train_pack(stacked([0.1, 0.3], seeds=(0, 1)), opts)
    first = json.load(open(tmp_path / "job" / "lr~0.3" / "seed~0" / "run.json"))
    assert first["speed"]["batched_runs"] == 4 and first["speed"]["stack"] == "job#0"
    os.remove(tmp_path / "job" / "lr~0.1" / "seed~1" / "metrics.csv")     # a broken record
    os.remove(tmp_path / "job" / "lr~0.3" / "seed~0" / "run.json")        # and another
    result = job.train_pack(stacked([0.1, 0.3], seeds=(0, 1)), opts)
    assert (result["kept"], result["trained"]) == (2, 2)
    for lr, seed in ((0.1, 1), (0.3, 0)):                                 # the two missing ones, as a stack
        rec = json.load(open(tmp_path / "job" / f"lr~{lr}" / f"seed~{seed}" / "run.json"))
        assert rec["speed"]["batched_runs"] == 2 and rec["spec"]["seed"] == seed and rec["spec"]["lr"] == lr


def test_stack_groups_keep_first_appearance_order_and_unstacked_runs_alone():
    a, b, c, d, e = ({"stack": s} for s in ("x", None, "y", "x", None))
    assert job.stack_groups([a, b, c, d, e]) == [[a, d], [b], [c], [e]]


def test_a_stack_that_cannot_train_together_fails_before_any_training(tmp_path):
    bad = stacked([0.1], seeds=(0,)) + [dict(r, stack="job#0") for r in runs([0.1], batch_size=16, seeds=(1,))]
    with pytest.raises(SweepbenchError, match="cannot stack runs that differ in batch_size"):
        job.train_pack(bad, job.PackOptions(out=str(tmp_path / "job"), quiet=True))
    assert not (tmp_path / "job").exists()
