import json

import pytest

from sweepbench import SweepbenchError, datasets
from sweepbench.plan import DEFAULT_RESOURCES, SLURM_RESOURCES, load_schema, plan, write_job_specs
from sweepbench.spec import resolve


def study(**kw):
    return {"studies": {"s": {"workload": "digits_mlp", **kw}}}


def test_ids_axes_seeds_and_packs():
    p = plan(study(grid={"optimizer": ["sgd", "adam"], "lr": [0.01, 0.1]}, seeds=[0, 1], pack_by=["optimizer"]))
    assert sorted(p["jobs"]) == ["s/opt~adam", "s/opt~sgd"]
    assert "s/opt~adam/lr~0.1" in p["cells"]
    runs = p["jobs"]["s/opt~sgd"]["runs"]
    assert [r["dir"] for r in runs] == ["lr~0.01/seed~0", "lr~0.01/seed~1", "lr~0.1/seed~0", "lr~0.1/seed~1"]
    assert p["studies"]["s"]["runs"][0] == "s/opt~sgd/lr~0.01/seed~0"


def test_batch_size_check_matches_the_real_training_set():
    n = datasets.load("digits", resolve({"workload": "digits_mlp"})).counts["n_train"]
    assert plan(study(grid={"batch_size": [n]}))                  # the whole training set is allowed
    with pytest.raises(SweepbenchError, match=f"{n + 1} is larger than the training set of digits_mlp \\({n} samples"):
        plan(study(grid={"batch_size": [n + 1]}))


def test_smoke_keeps_ids_and_shrinks_runs():
    p = plan({**study(grid={"batch_size": [8, 4096]}, seeds=[0, 1, 2]), "smoke": "true"})
    assert sorted(p["cells"]) == ["s/bs~4096", "s/bs~8"]
    spec = p["cells"]["s/bs~4096"]["runs"][0]["spec"]
    assert spec["clip_batch_size"] and spec["train_size"] == 16 and spec["max_steps"] == 2
    assert spec["eval_max_samples"] == 8 and spec["gns_batches"] == 2
    assert [r["seed"] for r in p["cells"]["s/bs~8"]["runs"]] == [0, 1]
    assert p["smoke"] is True and plan(study())["smoke"] is False        # the plan says it once, for its readers


def test_run_selection_from_a_command_line_string():
    config = {"studies": {"a": {"workload": "linreg"}, "b": {"workload": "logreg2d"}, "c": {"workload": "linreg",
                                                                                             "fixed": {"lr": 0.1}}}}
    assert set(plan({**config, "run": "a,c"})["studies"]) == {"a", "c"}
    with pytest.raises(SweepbenchError, match="unknown study 'z'"):
        plan({**config, "run": "[z]"})


def test_device_auto_means_cpu_for_jobs_that_ask_for_no_gpu():
    """A job that holds no GPU resource must not take a GPU behind the scheduler's back."""
    spec = lambda p: next(iter(p["cells"].values()))["runs"][0]["spec"]
    assert spec(plan(study())).get("device") == "cpu"
    assert spec(plan(study(resources={"gpu": 1})))["device"] == "auto"
    assert spec(plan(study(fixed={"device": "cuda"})))["device"] == "cuda"   # an explicit choice is kept


def test_slurm_placement_from_the_config_and_each_study():
    config = {"resources": {"slurm_partition": "cpu", "slurm_account": "acct"},
              "studies": {"a": {"workload": "linreg"},
                          "b": {"workload": "logreg2d", "resources": {"gpu": 1, "slurm_partition": "gpu"}}}}
    jobs = plan(config)["jobs"]
    assert jobs["a/all"]["resources"] == {**DEFAULT_RESOURCES, "slurm_partition": "cpu", "slurm_account": "acct"}
    assert jobs["b/all"]["resources"] == {**DEFAULT_RESOURCES, "gpu": 1, "slurm_partition": "gpu",
                                          "slurm_account": "acct"}


def test_a_slurm_key_set_for_some_studies_only_is_refused():
    """The other studies' jobs would silently go to the cluster's default partition."""
    config = {"studies": {"a": {"workload": "linreg"},
                          "b": {"workload": "logreg2d", "resources": {"gpu": 1, "slurm_partition": "gpu"}}}}
    with pytest.raises(SweepbenchError, match="study 'a', key resources.slurm_partition: missing while study 'b' "
                                              "sets it; allowed: set it in every study, or once in the config's"):
        plan(config)
    assert plan({**config, "run": "b"})["jobs"]                         # only the selected studies count


def test_slurm_keys_are_checked_by_the_schema():
    with pytest.raises(SweepbenchError, match="key resources.slurm_partition: '' should be non-empty"):
        plan({"resources": {"slurm_partition": ""}, "studies": {"a": {"workload": "linreg"}}})
    with pytest.raises(SweepbenchError, match="study 'a', key resources: Additional properties.*allowed: exclusive"):
        plan({"studies": {"a": {"workload": "linreg", "resources": {"partition": "gpu"}}}})
    schema_keys = {k for k in load_schema()["$defs"]["resources"]["properties"] if k.startswith("slurm_")}
    assert schema_keys == set(SLURM_RESOURCES)                       # every placement key reaches sbatch


def test_job_specs_are_written_once_and_rewritten_only_when_changed(tmp_path):
    the_plan = plan(study(grid={"lr": [0.1, 0.2]}, seeds=[0, 1]))
    assert write_job_specs(the_plan, str(tmp_path)) == 2
    path = tmp_path / "s" / "lr~0.1.json"
    assert [r["dir"] for r in json.loads(path.read_text())] == ["seed~0", "seed~1"]
    before = path.stat().st_mtime_ns
    assert write_job_specs(the_plan, str(tmp_path)) == 0                     # unchanged: untouched
    changed = plan(study(grid={"lr": [0.1, 0.2]}, seeds=[0, 1], fixed={"epochs": 3}))
    assert write_job_specs(changed, str(tmp_path)) == 2
    assert json.loads(path.read_text())[0]["spec"]["epochs"] == 3 and path.stat().st_mtime_ns >= before
    assert not [p for p in tmp_path.rglob("*.tmp-*")]                         # written atomically


def test_top_level_seeds_replace_every_studys_seeds():
    config = {"studies": {"a": {"workload": "linreg", "seeds": [0, 1, 2]}, "b": {"workload": "logreg2d"}}}
    for value in ("10-12", [10, 11, 12], "10,11,12"):
        p = plan({**config, "seeds": value})
        assert [r["seed"] for c in p["cells"].values() for r in c["runs"]] == [10, 11, 12] * 2
        assert p["cells"]["a/all"]["runs"][0]["id"] == "a/all/seed~10"
    assert [r["seed"] for r in plan({**config, "seeds": "4-9", "smoke": True})["cells"]["a/all"]["runs"]] == [4, 5]
    for bad in ("x", "3-1", [1, 1], "1,,2"):
        with pytest.raises(SweepbenchError, match="config error in key seeds: bad value"):
            plan({**config, "seeds": bad})
