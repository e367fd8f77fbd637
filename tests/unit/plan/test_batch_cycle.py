"""batch_cycle_from: a study's cyclic batch sizes from another study's bmin/bmax (seed 002 Q5 -> Q6)."""

import json
import os

import pytest
from conftest import minimal_record, write_record_files

from sweepbench import SweepbenchError
from sweepbench.plan import batch_cycle
from sweepbench.plan.planner import plan, read_plan, write_plan

SEED002_ACC = [0.8361, 0.8277, 0.8159, 0.7914, 0.7651, 0.7358, 0.6873, 0.5938, 0.4340, 0.2561]  # Out[111]
CONFIG = {"studies": {
    "sweep": {"workload": "fmnist_lenet5", "fixed": {"epochs": 1},
              "grid": {"batch_size": [16 * 2 ** i for i in range(10)]}, "pack_by": []},
    "cyclic": {"workload": "fmnist_lenet5", "batch_cycle_from": {"study": "sweep", "threshold_pct": 3.5},
               "fixed": {"epochs": 4, "batch_schedule": "cyclic", "batch_size": 8, "batch_cycle": [8, 16]}},
}}


def _records(runs_dir, the_plan, accuracies, diverged=()):
    for run_id, acc in zip(the_plan["studies"]["sweep"]["runs"], accuracies):
        spec = next(r["spec"] for c in the_plan["cells"].values() for r in c["runs"] if r["id"] == run_id)
        status = "diverged" if spec["batch_size"] in diverged else "completed"
        rec = minimal_record(spec=spec, status=status)
        rec["final"]["train_accuracy"] = acc
        write_record_files(os.path.join(runs_dir, run_id), rec)


def test_the_cycle_is_the_seeds_16_to_256_from_its_own_accuracy_table(tmp_path):
    the_plan = plan(CONFIG)
    _records(str(tmp_path), the_plan, SEED002_ACC)
    job_id = next(j for j, job in the_plan["jobs"].items() if job["study"] == "cyclic")
    runs = batch_cycle.apply(the_plan, job_id, str(tmp_path))
    assert runs[0]["spec"]["batch_cycle"] == [16, 32, 64, 128, 256] and runs[0]["spec"]["batch_size"] == 16
    assert the_plan["jobs"][job_id]["runs"][0]["spec"]["batch_cycle"] == [8, 16]   # the plan itself is untouched
    from_file = read_plan(write_plan(the_plan, str(tmp_path / "plan.json")))      # what --cycle-from-plan reads
    assert batch_cycle.apply(from_file, job_id, str(tmp_path)) == runs



def test_a_source_record_of_another_spec_is_refused_not_read(tmp_path):
    """bmin/bmax come only from records of the planned batch sweep: one trained under an older
    config (here 2 epochs where 1 is planned) would pick another cycle."""
    the_plan = plan(CONFIG)
    _records(str(tmp_path), the_plan, SEED002_ACC)
    stale = os.path.join(str(tmp_path), the_plan["studies"]["sweep"]["runs"][3], "run.json")
    rec = json.load(open(stale))
    rec["spec"]["epochs"] = 2
    json.dump(rec, open(stale, "w"))
    job_id = next(j for j, job in the_plan["jobs"].items() if job["study"] == "cyclic")
    with pytest.raises(SweepbenchError, match=r"cannot read bmin/bmax input: broken run record .*bs~128/seed~0: "
                                              r"not the planned run: epochs 2 in the record, 1 planned"):
        batch_cycle.apply(the_plan, job_id, str(tmp_path))

def test_no_cheap_range_is_an_error_and_smoke_keeps_the_configured_cycle(tmp_path):
    the_plan = plan(CONFIG)
    _records(str(tmp_path), the_plan, [0.9 * 0.5 ** i for i in range(10)])          # every doubling halves it
    job_id = next(j for j, job in the_plan["jobs"].items() if job["study"] == "cyclic")
    with pytest.raises(SweepbenchError, match="no batch-size step of study 'sweep' loses less than 3.5%"):
        batch_cycle.apply(the_plan, job_id, str(tmp_path))
    smoke = plan({**CONFIG, "smoke": True})
    assert batch_cycle.apply(smoke, job_id, str(tmp_path))[0]["spec"]["batch_cycle"] == [8, 16]


def test_config_errors_name_the_study_and_key():
    bad = {"studies": {**CONFIG["studies"], "cyclic": {**CONFIG["studies"]["cyclic"],
                                                       "batch_cycle_from": {"study": "nope"}}}}
    with pytest.raises(SweepbenchError, match="study 'cyclic', key batch_cycle_from.study: 'nope' is not another"):
        plan(bad)
    with pytest.raises(SweepbenchError, match="'sweep' is not selected to run"):
        plan({**CONFIG, "run": ["cyclic"]})
    assert batch_cycle.cycle(16, 256) == [16, 32, 64, 128, 256] and batch_cycle.cycle(32, 32) == [32]
