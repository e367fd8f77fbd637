"""Which runs the planner stacks (sweepbench.plan.stacks): grids by default where it pays, seeds or
nothing on request, bounded in runs and memory, refused where a stack cannot train."""

import collections

import pytest

from sweepbench import SweepbenchError
from sweepbench.plan import stacks
from sweepbench.plan.planner import load_config, plan


def study(**kw):
    return {"studies": {"s": {"workload": "digits_mlp", "fixed": {"epochs": 1}, **kw}}}


def stack_sizes(the_plan):
    """{stack id: number of runs} over every job, and the runs trained alone."""
    runs = [r for job in the_plan["jobs"].values() for r in job["runs"]]
    return dict(collections.Counter(r["stack"] for r in runs if r["stack"])), sum(not r["stack"] for r in runs)


GRID = {"optimizer": ["sgd", "adam"], "lr": [0.01, 0.1, 1.0], "batch_size": [16, 64]}


def test_auto_stacks_a_grid_by_everything_but_its_hyper_parameters():
    p = plan(study(grid=GRID, seeds=[0, 1], pack_by=[]))
    sizes, alone = stack_sizes(p)
    assert alone == 0 and sorted(sizes.values()) == [6, 6, 6, 6]         # optimizer x batch size; lr x seed inside
    for job in p["jobs"].values():
        for stack in {r["stack"] for r in job["runs"]}:
            members = [r["spec"] for r in job["runs"] if r["stack"] == stack]
            assert len({(m["optimizer"], m["batch_size"]) for m in members}) == 1
            assert len({(m["lr"], m["seed"]) for m in members}) == 6


def test_more_seeds_than_the_study_has_stack_in_groups_of_its_own_seed_count():
    """`make baseline` runs seeds 10-19 of a 3-seed study: its stacks are a normal run's (lr x 3 seeds),
    so their speed compares with a normal run's; the 10th seed stacks alone over the lr."""
    config = study(grid=GRID, seeds=[0, 1, 2], pack_by=[])
    normal, _ = stack_sizes(plan(config))
    assert sorted(normal.values()) == [9] * 4                              # 3 lr x 3 seeds
    sizes, alone = stack_sizes(plan({**config, "seeds": "10-19"}))
    assert alone == 0 and sorted(sizes.values()) == [3] * 4 + [9] * 12      # 3 groups of 3 seeds, then seed 19
    p = plan({**config, "seeds": "10-19"})
    for job in p["jobs"].values():
        for stack in {r["stack"] for r in job["runs"]}:
            seeds = {r["spec"]["seed"] for r in job["runs"] if r["stack"] == stack}
            assert seeds in ({10, 11, 12}, {13, 14, 15}, {16, 17, 18}, {19})


def test_stacks_stay_inside_a_job():
    p = plan(study(grid=GRID, pack_by=["optimizer", "batch_size"]))
    assert all(r["stack"].startswith(job_id + "#") for job_id, job in p["jobs"].items() for r in job["runs"])


def test_seeds_stacks_each_cell_and_off_stacks_nothing():
    sizes, alone = stack_sizes(plan(study(grid=GRID, seeds=[0, 1, 2], stack="seeds")))
    assert alone == 0 and list(sizes.values()) == [3] * 12
    one_job = study(grid={"lr": [0.1]}, seeds=[0, 1], stack="seeds")   # the job is the cell: dirs are seed~N
    assert stack_sizes(plan(one_job)) == ({"s/lr~0.1#0": 2}, 0)
    assert stack_sizes(plan(study(grid=GRID, seeds=[0, 1], stack="off"))) == ({}, 24)


def test_unquoted_off_in_yaml_means_off(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("studies:\n  s:\n    workload: digits_mlp\n    stack: off\n    grid: {lr: [0.1, 1.0]}\n"
                    "    pack_by: []\n")
    assert stack_sizes(plan(load_config(str(path)))) == ({}, 2)
    path.write_text(path.read_text().replace("stack: off", "stack: {mode: off, max_runs: 4}"))
    assert stack_sizes(plan(load_config(str(path)))) == ({}, 2)


def test_a_stack_holds_at_most_max_runs_and_max_mb():
    sizes, _ = stack_sizes(plan(study(grid={"lr": [0.01, 0.1, 1.0]}, seeds=[0, 1, 2, 3], pack_by=[],
                                 stack={"mode": "grid", "max_runs": 5})))
    assert sorted(sizes.values()) == [2, 5, 5]
    spec = plan(study(grid={"lr": [0.1]}))["jobs"]["s/lr~0.1"]["runs"][0]["spec"]
    per_run = stacks.run_mb("mlp", spec, 64, 32)
    assert stack_sizes(plan(study(grid={"lr": [0.01, 0.1, 1.0]}, pack_by=[],
                             stack={"mode": "grid", "max_mb": 2.5 * per_run}))) == ({"s/all#0": 2}, 1)


def test_run_mb_counts_weights_states_and_activations():
    spec = {"hidden": [100]}
    params = (64 + 1) * 100 + (100 + 1) * 10
    assert stacks.run_mb("mlp", spec, 64, 32) == pytest.approx(4 * (4 * params + 3 * 32 * 2 * 110) / 2**20)
    assert stacks.run_mb("softmax", spec, 64, 1) == pytest.approx(4 * (4 * 650 + 3 * 2 * 10) / 2**20)
    assert stacks.largest_batch({"batch_size": "full", "batch_schedule": "constant", "batch_cycle": []}, 1000) == 1000
    assert stacks.largest_batch({"batch_size": 8, "batch_schedule": "cyclic", "batch_cycle": [8, 64]}, 1000) == 64


def test_auto_leaves_alone_what_cannot_stack_or_should_not():
    assert stack_sizes(plan({"studies": {"s": {"workload": "linreg", "grid": {"lr": [0.1, 0.01]}, "pack_by": []}}})) \
        == ({}, 2)                                                           # no stackable model
    assert stack_sizes(plan(study(grid={"lr": [0.1, 0.01]}, pack_by=[], fixed={"save_best": True}))) == ({}, 2)
    exclusive = study(grid={"lr": [0.1, 0.01]}, pack_by=[], resources={"exclusive": True})
    assert stack_sizes(plan(exclusive)) == ({}, 2)                               # throughput: each run timed alone
    lenet = {"workload": "fmnist_lenet5", "fixed": {"synthetic": True, "epochs": 1}, "grid": {"lr": [0.1, 0.01]},
             "pack_by": []}
    assert stack_sizes(plan({"studies": {"s": lenet}})) == ({}, 2)               # LeNet-5 on a CPU gains nothing
    assert stack_sizes(plan({"studies": {"s": {**lenet, "resources": {"gpu": 1}}}}))[1] == 0


@pytest.mark.parametrize("config, message", [
    ({"studies": {"s": {"workload": "linreg", "grid": {"lr": [0.1, 0.01]}, "stack": "grid"}}},
     "config error in study 's', key stack: cannot stack workload linreg (model linear_neuron); "
     "allowed: workloads whose model is softmax, mlp, lenet5 (a plain layer stack)"),
    (study(grid={"lr": [0.1, 0.01]}, stack="grid", pack_by=[], fixed={"save_best": True}),
     "key stack: cannot stack runs with save_best=True; allowed: save_best=False"),
    (study(grid={"lr": [0.1, 0.01]}, stack="seeds", resources={"exclusive": True}),
     "key stack: stack 'seeds' with resources.exclusive: a throughput study times each run alone; allowed: stack: off"),
    (study(stack="sideways"), "key stack: 'sideways' is not a stack setting; allowed: auto, grid, seeds, off, "
                              "or a mapping {mode, max_runs (an integer >= 1), max_mb (a number > 0)}"),
    (study(stack={"mode": "grid", "max_runs": 0}), "key stack: {'mode': 'grid', 'max_runs': 0} is not a stack "
                                                    "setting (0 is less than the minimum of 1); allowed: auto"),
    (study(stack={"moed": "grid"}), "('moed' was unexpected)); allowed: auto, grid"),
])
def test_bad_stack_settings_are_refused_with_the_reason(config, message):
    with pytest.raises(SweepbenchError) as err:
        plan(config)
    assert message in str(err.value)


def test_a_cell_shared_with_an_earlier_study_trains_as_that_study_planned_it():
    a = {"workload": "digits_mlp", "fixed": {"epochs": 1}, "grid": {"lr": [0.01, 0.1, 0.3]}, "pack_by": [],
         "seeds": [0, 1]}
    b = {**a, "grid": {"lr": [0.1]}}
    for a_stack, b_stack in (("off", "grid"), ("grid", "off"), ("grid", {"mode": "grid", "max_runs": 2})):
        alone = plan({"studies": {"a": {**a, "stack": a_stack}}})
        shared = plan({"studies": {"a": {**a, "stack": a_stack}, "b": {**b, "stack": b_stack}}})
        assert shared["jobs"]["a/all"]["runs"] == alone["jobs"]["a/all"]["runs"]   # b changes nothing of a
        assert shared["studies"]["b"]["cells"] == ["a/all/lr~0.1"]                 # and trains nothing itself
    timed = plan({"studies": {"a": a, "b": {**b, "resources": {"exclusive": True}}}})
    assert timed["studies"]["b"]["cells"] == ["b/all/lr~0.1"]              # a run timed alone is its own cell
    assert stack_sizes({"jobs": {"b/all": timed["jobs"]["b/all"]}}) == ({}, 2)  # and never stacked


def test_every_option_is_classified_for_stacks_exactly_once():
    """A new option must say how a stack treats it: varies per run, shared (and implemented by the
    stacked model), or required at a value. Unclassified, a stack would silently ignore it."""
    from sweepbench.spec import OPTIONS

    classes = [set(stacks.STACK_VARIES), set(stacks.STACK_SHARED), set(stacks.STACK_REQUIRES)]
    assert set.union(*classes) == set(OPTIONS)
    assert sum(len(c) for c in classes) == len(OPTIONS)  # no option in two classes


@pytest.mark.parametrize("key, value", [("augment", True), ("compile", "default"), ("optimizer_impl", "fused"),
                                        ("accum_steps", 2), ("precision", "bf16")])
def test_a_stack_refuses_a_required_option_at_another_value(key, value):
    from sweepbench.spec import resolve

    workload = "fmnist_lenet5" if key == "augment" else "digits_mlp"  # augment acts on image models only
    specs = [resolve({"workload": workload, "seed": s, key: value}) for s in (0, 1)]
    with pytest.raises(SweepbenchError, match=f"cannot stack runs with {key}={value!r}; allowed: "):
        stacks.check_stackable(specs)
    stacks.check_stackable([resolve({"workload": "digits_mlp", "seed": s}) for s in (0, 1)])  # defaults stack
