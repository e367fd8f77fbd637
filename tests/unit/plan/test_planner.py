import glob
import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

from sweepbench import SweepbenchError
from sweepbench.atomic import WRITTEN
from sweepbench.data import datasets
from sweepbench.plan.planner import (
    DEFAULT_RESOURCES,
    SLURM_RESOURCES,
    load_config,
    load_schema,
    plan,
    read_plan,
    write_job_specs,
    write_plan,
)
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
    assert spec["eval_max_samples"] == 8 and spec["gns_batches"] == 8  # gns is off: its batches are left alone
    gns = plan({**study(grid={"batch_size": [8]}, seeds=[0], fixed={"gns": True}), "smoke": "true"})
    assert gns["cells"]["s/bs~8"]["runs"][0]["spec"]["gns_batches"] == 2
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


def test_tasks_of_a_slurm_job_must_match_its_ranks():
    """tasks > 1: one SLURM task per data-parallel rank, so every run of the job has that world_size,
    the job's threads are shared out evenly (--cpus-per-task) and it has no GPU or one per task."""
    ok = plan(study(fixed={"world_size": 2}, resources={"tasks": 2, "threads": 4}))
    assert next(iter(ok["jobs"].values()))["resources"]["tasks"] == 2
    assert plan(study(grid={"world_size": [0, 2]}))["jobs"]                      # tasks 1 (default): any world_size
    with pytest.raises(SweepbenchError, match=r"^config error in study 's', key resources.tasks: 2 tasks, but job "
                                              r"s/ws~0 has a run with world_size 0; allowed: 1, or the world_size"):
        plan(study(grid={"world_size": [0, 2]}, resources={"tasks": 2, "threads": 2}))
    with pytest.raises(SweepbenchError, match="key resources.threads: 3 threads cannot be shared out evenly among 2"):
        plan(study(fixed={"world_size": 2}, resources={"tasks": 2, "threads": 3}))
    with pytest.raises(SweepbenchError, match="key resources.gpu: 1 GPUs for 2 tasks; allowed: 0, or 2"):
        plan(study(fixed={"world_size": 2}, resources={"tasks": 2, "threads": 2, "gpu": 1}))
    with pytest.raises(SweepbenchError, match="key resources.tasks: 0 is less than the minimum of 1"):
        plan(study(resources={"tasks": 0}))


def test_a_bad_tasks_value_exits_2_with_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("studies:\n  s: {workload: digits_mlp, fixed: {world_size: 2},\n"
                    "      resources: {tasks: 4, threads: 4}}\n")
    res = run_cli("plan", "--config", str(path))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "key resources.tasks: 4 tasks" in res.stderr


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


# results/plan.json: sweepbench.plan.planner.write_plan and read_plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHIPPED = ["config/config.yaml"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(f"{ROOT}/config/studies/*.yaml"))


def count_key(obj, key: str) -> int:
    """How often `key` is a mapping's key anywhere in a JSON value."""
    if isinstance(obj, dict):
        return (key in obj) + sum(count_key(v, key) for v in obj.values())
    return sum(count_key(v, key) for v in obj) if isinstance(obj, list) else 0


@pytest.mark.parametrize("config_file", SHIPPED)
def test_the_plan_file_gives_back_the_plan_with_each_spec_stored_once(tmp_path, config_file):
    the_plan = plan(load_config(os.path.join(ROOT, config_file)))
    path = write_plan(the_plan, str(tmp_path / "results" / "plan.json"))
    back = read_plan(path)
    assert back == the_plan and back == json.loads(json.dumps(the_plan))         # types survive JSON too
    assert list(back) == ["studies", "cells", "jobs", "config", "smoke"] and back["smoke"] is False
    n_runs = sum(len(cell["runs"]) for cell in the_plan["cells"].values())
    assert n_runs == sum(len(job["runs"]) for job in back["jobs"].values()) > 0
    for job_id, job in back["jobs"].items():                          # a job trains its cell's run, the same dict
        for run in job["runs"]:
            cell_run = next(r for c in back["cells"].values() for r in c["runs"] if r["id"] == f"{job_id}/{run['dir']}")
            assert run["spec"] is cell_run["spec"] and list(run)[:3] == ["dir", "seed", "spec"]
    stored = json.loads(Path(path).read_text())
    assert count_key(stored, "spec") == n_runs and count_key(json.loads(json.dumps(the_plan)), "spec") == 2 * n_runs
    job_specs = sum(len(json.dumps(r["spec"])) for job in the_plan["jobs"].values() for r in job["runs"])
    assert os.path.getsize(path) < len(json.dumps(the_plan, indent=1)) - job_specs       # every job spec saved
    assert not [p for p in (tmp_path / "results").iterdir() if p.name not in ("plan.json", WRITTEN)]  # atomically


def test_the_default_plan_file_keeps_stacks_and_smoke(tmp_path):
    config = load_config(os.path.join(ROOT, "config", "config.yaml"))
    the_plan = plan(config)
    stacks = [r["stack"] for job in the_plan["jobs"].values() for r in job["runs"] if r.get("stack")]
    back = read_plan(write_plan(the_plan, str(tmp_path / "plan.json")))
    assert os.path.getsize(tmp_path / "plan.json") < 0.6 * len(json.dumps(the_plan, indent=1))   # 854 KB before
    assert stacks and [r["stack"] for job in back["jobs"].values() for r in job["runs"] if r.get("stack")] == stacks
    smoke = plan({**config, "smoke": "true"})                         # --config smoke=true arrives as a string
    assert smoke["smoke"] is True and read_plan(write_plan(smoke, str(tmp_path / "smoke.json")))["smoke"] is True


def test_plan_json_cli_prints_the_plan_file(tmp_path):
    proc = run_cli("plan", "--config", os.path.join(ROOT, "config", "config.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    the_plan = plan(load_config(os.path.join(ROOT, "config", "config.yaml")))
    assert proc.stdout == Path(write_plan(the_plan, str(tmp_path / "plan.json"))).read_text() + "\n"
    (tmp_path / "printed.json").write_text(proc.stdout)
    assert read_plan(str(tmp_path / "printed.json")) == the_plan


def bad_plan_file(tmp_path, change) -> str:
    """A plan.json of a small study (two jobs of two runs), changed by `change(stored)`."""
    the_plan = plan(study(grid={"lr": [0.1, 0.2]}, seeds=[0, 1]))
    stored = json.loads(Path(write_plan(the_plan, str(tmp_path / "plan.json"))).read_text())
    change(stored)
    (tmp_path / "plan.json").write_text(json.dumps(stored))
    return str(tmp_path / "plan.json")


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("smoke"), "lacks `smoke`; allowed: the plan.json the workflow writes"),
    (lambda p: [p.pop(k) for k in ("jobs", "smoke")], "lacks `jobs`, `smoke`; allowed: "),
    (lambda p: p.update(smoke="true"), "`smoke` is 'true'; allowed: true or false"),
    (lambda p: p.update(cells=[]), "`cells` is []; allowed: a mapping"),
    (lambda p: p.update(config=["x" * 50]), "`config` is a list; allowed: a mapping"),
    (lambda p: p["jobs"]["s/lr~0.1"]["runs"][0].update(spec={}), "job 's/lr~0.1' run 'seed~0' holds a spec"),
    (lambda p: p["jobs"]["s/lr~0.1"]["runs"][1].update(dir="seed~7"), "job 's/lr~0.1' run 'seed~7' is no run of a"),
    (lambda p: p["studies"]["s"]["runs"].append("s/lr~0.3/seed~0"), "study 's' names 's/lr~0.3/seed~0', which is no"),
    (lambda p: p["cells"]["s/lr~0.1"].pop("runs"), "is malformed (KeyError: 'runs')"),
])
def test_a_bad_plan_file_is_a_one_line_error_naming_it(tmp_path, change, message):
    path = bad_plan_file(tmp_path, change)
    with pytest.raises(SweepbenchError) as err:
        read_plan(path)
    assert str(err.value).startswith(f"plan {path!r}") and message in str(err.value) and "\n" not in str(err.value)


def test_read_plan_names_an_unreadable_file_and_write_plan_checks_what_it_writes(tmp_path):
    with pytest.raises(SweepbenchError, match=r"cannot read plan '.*nope.json': No such file or directory; allowed: "):
        read_plan(str(tmp_path / "nope.json"))
    (tmp_path / "half.json").write_text('{"studies": ')
    with pytest.raises(SweepbenchError, match=r"plan '.*half.json' is not valid JSON \(Expecting value"):
        read_plan(str(tmp_path / "half.json"))
    the_plan = plan(study(grid={"lr": [0.1, 0.2]}, seeds=[0, 1]))
    the_plan["jobs"]["s/lr~0.2"]["runs"][0] = {**the_plan["jobs"]["s/lr~0.2"]["runs"][0], "spec": {"lr": 9}}
    with pytest.raises(SweepbenchError, match="job 's/lr~0.2' run 'seed~0' is not cell run 's/lr~0.2/seed~0' with the "
                                              "same spec"):
        write_plan(the_plan, str(tmp_path / "plan.json"))
    with pytest.raises(SweepbenchError, match="lacks `smoke`"):
        write_plan({k: v for k, v in the_plan.items() if k != "smoke"}, str(tmp_path / "plan.json"))
    assert not list(tmp_path.glob("plan.json*")) and not list(tmp_path.glob(".plan.json*"))      # nothing written



def test_a_smoke_run_never_replaces_a_real_sweeps_records(tmp_path):
    """The README's smoke line in a folder with finished real results replaced them (165 of 245)."""
    from sweepbench.plan.planner import check_smoke_results

    config = {"studies": {"s": {"workload": "linreg"}}, "results_dir": str(tmp_path / "results")}
    check_smoke_results({**config, "smoke": True})                                   # nothing there yet
    write_plan(plan(config), str(tmp_path / "results" / "plan.json"))
    check_smoke_results({**config, "smoke": True})                                   # a plan, no records yet
    os.makedirs(tmp_path / "results" / "runs" / "s")
    with pytest.raises(SweepbenchError, match=r"config error in key smoke: true, but .*results/ holds a real "
                                              r"sweep's records .*; allowed: smoke=true with "
                                              r"results_dir=results-smoke"):
        check_smoke_results({**config, "smoke": True})
    check_smoke_results(config)                                                      # a real run may go there
    write_plan(plan({**config, "smoke": True}), str(tmp_path / "results" / "plan.json"))
    check_smoke_results({**config, "smoke": True})                                   # smoke over smoke: fine
    os.makedirs(tmp_path / "results" / "runs" / "s" / "seed~0")
    real = next(iter(plan(config)["cells"].values()))["runs"][0]["spec"]
    (tmp_path / "results" / "runs" / "s" / "seed~0" / "run.json").write_text(json.dumps({"spec": real}))
    os.remove(tmp_path / "results" / "plan.json")                                    # no plan: the records tell
    with pytest.raises(SweepbenchError, match="holds a real sweep's records that smoke runs would replace"):
        check_smoke_results({**config, "smoke": True})


def test_a_data_parallel_study_names_where_its_steps_come_from_and_never_stacks():
    config = {"studies": {
        "batch": {"workload": "digits_mlp", "grid": {"batch_size": [32, 64]}},
        "ddp": {"workload": "digits_mlp", "grid": {"world_size": [0, 1, 2]}, "steps_from": "batch"}}}
    the_plan = plan(config)
    assert the_plan["studies"]["ddp"]["steps_from"] == "batch" and the_plan["studies"]["batch"]["steps_from"] is None
    cells = [the_plan["cells"][c] for c in the_plan["studies"]["ddp"]["cells"]]
    assert sorted(c["runs"][0]["spec"]["world_size"] for c in cells) == [0, 1, 2]   # ws~0 is batch's bs~32 cell
    runs = [r for j in the_plan["jobs"].values() if j["study"] == "ddp" for r in j["runs"]]
    assert sorted(r["spec"]["world_size"] for r in runs) == [1, 2]
    assert all(r["stack"] is None for r in runs)            # stack: auto trains data-parallel runs alone
    config["studies"]["ddp"]["steps_from"] = "nope"
    with pytest.raises(SweepbenchError, match=r"^config error in study 'ddp', key steps_from: 'nope' is not a study "
                                              r"of this run; allowed: batch, ddp$"):
        plan(config)


def test_a_plan_json_of_another_config_is_told_from_this_ones(tmp_path):
    """Without Snakemake's metadata (make clean removes .snakemake/) a plan.json written for another
    config looked up to date, and every record was then refused as 'not the planned run'."""
    from sweepbench.plan.planner import plan_is_written, write_plan

    one = plan({"studies": {"s": {"workload": "linreg", "grid": {"lr": [0.1, 0.2]}}}})
    other = plan({"studies": {"s": {"workload": "linreg", "grid": {"lr": [0.1, 0.3]}}}})
    path = str(tmp_path / "plan.json")
    assert not plan_is_written(one, path)                              # none yet
    write_plan(one, path)
    assert plan_is_written(one, path) and not plan_is_written(other, path)


def test_a_job_timed_alone_trains_seed_by_seed_over_its_cells_and_others_cell_by_cell():
    """A throughput study's baseline seeds spread over the job's whole time (planner.timed_order), so
    their spread includes the machine's slower and faster spells; other jobs keep cell by cell."""
    timed = plan(study(grid={"batch_size": [8, 32]}, seeds=[3, 1], pack_by=[],
                       resources={"exclusive": True, "threads": 1}))
    assert [r["dir"] for r in timed["jobs"]["s/all"]["runs"]] == ["bs~8/seed~3", "bs~32/seed~3", "bs~8/seed~1",
                                                                  "bs~32/seed~1"]
    other = plan(study(grid={"batch_size": [8, 32]}, seeds=[3, 1], pack_by=[], stack="off"))
    assert [r["dir"] for r in other["jobs"]["s/all"]["runs"]] == ["bs~8/seed~3", "bs~8/seed~1", "bs~32/seed~3",
                                                                  "bs~32/seed~1"]
