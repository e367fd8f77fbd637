"""Bad configs are refused before any job, with one line naming the value and what is allowed."""

import re

import pytest
from conftest import run_cli

from sweepbench import SweepbenchError
from sweepbench.plan.planner import load_config, plan


def study(**extra):
    return {"studies": {"s": {"workload": "digits_mlp", "fixed": {"epochs": 1}, **extra}}}


@pytest.mark.parametrize("config, message", [
    (study(seeds=[0, 0, 1]), "study 's', key seeds: seed 0 appears more than once; allowed: distinct seeds"),
    (study(seeds=[2**32]), "study 's', key seeds.0: 4294967296 is greater than the maximum"),
    ({**study(), "results_dir": ""}, "config error in key results_dir: ''"),
    ({**study(), "results_dir": "/"}, "config error in key results_dir: '/' is the filesystem root"),
    ({**study(), "report_dir": "../elsewhere"}, "config error in key report_dir: '../elsewhere' is not a folder "
                                                "inside the working folder"),
    ({**study(), "results_dir": "."}, "config error in key results_dir: '.' is not a folder inside"),
    ({**study(), "run": None}, "config error in key run: empty; allowed: study names separated by commas, from s"),
    ({"studies": {"s": {"workload": "mnist_mlp", "fixed": {"val_size": 70000}}}},
     "study 's', cell default: bad val_size 70000; allowed: 0..59999 (the training set of mnist has 60000"),
    ({"studies": {"s": {"workload": "digits_mlp", "target": {"metric": "val_accuracy", "value": 1.5}}}},
     "bad target 1.5 for val_accuracy; allowed: a number in [0, 1]"),
    ({"studies": {"s": {"workload": "linreg", "target": {"metric": "train_loss", "value": -1}}}},
     "bad target -1.0 for train_loss; allowed: a number >= 0"),
    ({**study(), "check": {"alpha": float("nan")}}, "config error in key check.alpha: nan is not a finite number"),
    ({**study(), "check": {"abs_tol": {"final_val_loss": float("inf")}}},
     "config error in key check.abs_tol.final_val_loss: inf is not a finite number"),
])
def test_bad_config_values(config, message):
    with pytest.raises(SweepbenchError) as err:
        plan(config)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_explicit_absolute_output_folders_are_allowed(tmp_path):
    p = plan({**study(), "results_dir": str(tmp_path / "r"), "report_dir": str(tmp_path / "rep")})
    assert len(p["jobs"]) == 1


def test_a_repeated_study_name_is_refused_not_dropped(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("studies:\n  a: {workload: linreg}\n  b: {workload: linreg}\n  a: {workload: logreg2d}\n")
    with pytest.raises(SweepbenchError,
                       match=r"config '.*c.yaml': duplicate key 'a' \(line 4\); allowed: each key once"):
        load_config(str(path))


def test_yaml_11_exponent_without_a_dot_is_explained(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("studies:\n  s: {workload: linreg, fixed: {lr: 1e-3}}\n")
    with pytest.raises(SweepbenchError, match="bad lr '1e-3' .*write 1.0e-3 or 0.001"):
        plan(load_config(str(path)))


@pytest.mark.slow
def test_command_line_errors_are_one_line_exit_2(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("title: caf\xe9\nstudies: {}\n".encode("latin-1"))
    proc = run_cli("plan", "--config", str(tmp_path / "latin1.yaml"))
    assert proc.returncode == 2 and "is not UTF-8 text" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("aggregate", "--plan", str(tmp_path / "nope.json"), "--out", str(tmp_path / "t"))
    assert proc.returncode == 2 and "cannot read plan" in proc.stderr and proc.stderr.count("\n") == 1
    (tmp_path / "plan.json").write_text('{"studies": {}, "cells": {}, "jobs": {}, "config": {}, "smoke": false}')
    (tmp_path / "blocker").write_text("a file where a folder should be")
    proc = run_cli("aggregate", "--plan", str(tmp_path / "plan.json"), "--out", str(tmp_path / "blocker" / "t"))
    assert proc.returncode == 2 and "cannot write" in proc.stderr and proc.stderr.count("\n") == 1
    (tmp_path / "plan.json").write_text('{"studies": {}, "cells": {}}')           # a plan.json of an older sweepbench
    proc = run_cli("aggregate", "--plan", str(tmp_path / "plan.json"), "--out", str(tmp_path / "t"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    path = str(tmp_path / "plan.json")
    assert f"plan {path!r} lacks `jobs`, `config`, `smoke`; allowed: the plan.json" in proc.stderr
    proc = run_cli("check", "--baseline", "b", "--plan", str(tmp_path / "plan.json"), "--root", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "lacks `jobs`, `config`, `smoke`" in proc.stderr


@pytest.mark.parametrize("study, cell", [
    ({"workload": "linreg", "grid": {"lr": [0.1, 0.2, 0.1]}}, "s/lr~0.1"),
    ({"workload": "linreg", "rows": [{"lr": 0.1}, {"lr": 0.1}]}, "s/lr~0.1"),
    ({"workload": "linreg", "rows": [{"lr": 0.1, "epochs": 1000}, {"lr": 0.1}]}, "s/"),  # epochs 1000 is the default
    ({"workload": "linreg", "grid": {"lr": [1, 1.0]}}, "s/lr~1"),          # YAML's int 1 and float 1.0: one value
])
def test_points_that_give_the_same_cell_twice_are_refused_naming_it(study, cell):
    """A cell planned twice in one study would tabulate each of its runs twice (n_seeds 4 of 2 planned)."""
    with pytest.raises(SweepbenchError, match=f"config error in study 's', keys grid/rows: two points give the "
                                              f"same runs, cell {cell}"):
        plan({"studies": {"s": study}})


@pytest.mark.parametrize("study, cell", [
    ({"workload": "digits_mlp", "grid": {"model": ["mlp", None]}}, "s/model~mlp"),   # the workload's own model
    ({"workload": "digits_mlp", "grid": {"train_size": [100_000, 0]}}, "s/train_size~100000"),  # above the data: all
    ({"workload": "digits_mlp", "grid": {"data": ["digits", None]}}, "s/data~digits"),  # the workload's own data
    ({"workload": "digits_mlp", "grid": {"reg_lambda": [None, 0]}}, "s/reg_lambda~None"),  # null: no L2 term
    ({"workload": "digits_mlp", "grid": {"entropy_alpha": [0.0, None]}}, "s/entropy_alpha~0.0"),  # no entropy term
])
def test_values_that_mean_the_same_are_one_cell(study, cell):
    with pytest.raises(SweepbenchError, match=f"two points give the same runs, cell {cell}"):
        plan({"studies": {"s": study}})


def test_a_csv_with_and_without_its_default_label_column_named_is_one_cell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.csv").write_text("x,y,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    study = {"workload": "digits_mlp", "fixed": {"hidden": [8]}, "grid": {"data": ["a.csv", "a.csv:label"]}}
    with pytest.raises(SweepbenchError, match="two points give the same runs"):
        plan({"studies": {"s": study}})
    monkeypatch.setenv("HOME", str(tmp_path))
    for spelled in ("./a.csv", str(tmp_path / "a.csv:label"), "sub/../a.csv", "~/a.csv"):  # one file, spelled anew
        (tmp_path / "sub").mkdir(exist_ok=True)
        study["grid"]["data"] = ["a.csv", spelled]
        with pytest.raises(SweepbenchError, match="two points give the same runs"):
            plan({"studies": {"s": study}})
    study["grid"]["data"] = ["a.csv", "a.csv:y"]                                        # another label: two cells
    assert len(plan({"studies": {"s": study}})["cells"]) == 2


@pytest.mark.parametrize("study, message", [
    ({"workload": "digits_mlp", "grid": {"optimizer": ["adam"], "momentum": [0.5, 0.9]}},
     "bad momentum 0.5 with optimizer adam, which ignores it; allowed: leave momentum unset (0.9), or optimizer "
     "momentum or nesterov"),
    ({"workload": "digits_mlp", "rows": [{"step_gamma": 0.5}]},
     "bad step_gamma 0.5 with schedule constant, which ignores it; allowed: leave step_gamma unset (0.1), or "
     "schedule step"),
    ({"workload": "digits_mlp", "grid": {"test_fraction": [0.1, 0.3]}},
     "bad test_fraction 0.1 with workload digits_mlp, which ignores it"),
])
def test_an_axis_value_that_does_nothing_in_its_cell_is_refused(study, message):
    with pytest.raises(SweepbenchError, match=re.escape(message)):
        plan({"studies": {"s": study}})


def test_a_fixed_value_acts_only_on_the_cells_it_acts_on():
    """A study's fixed step_gamma with rows of constant and step schedules, or a fixed momentum over an
    optimizer axis: the value goes to the cells it acts on, the others keep the default (one form per run)."""
    study = {"workload": "digits_mlp", "fixed": {"momentum": 0.5, "step_gamma": 0.5},
             "rows": [{"optimizer": "adam", "schedule": "constant"}, {"optimizer": "momentum", "schedule": "step"}]}
    cells = plan({"studies": {"s": study}})["cells"]
    specs = {c["axes"]["optimizer"]: c["runs"][0]["spec"] for c in cells.values()}
    assert (specs["adam"]["momentum"], specs["adam"]["step_gamma"]) == (0.9, 0.1)
    assert (specs["momentum"]["momentum"], specs["momentum"]["step_gamma"]) == (0.5, 0.5)


def test_a_smoke_run_keeps_once_the_cells_that_its_shrinking_makes_equal():
    """Smoke clamps epochs (and train_size, max_steps, ...): an axis over them gives equal cells,
    which a smoke run of any config must accept (trained and tabulated once)."""
    study = {"workload": "linreg", "grid": {"epochs": [3, 5], "lr": [0.1, 0.2]}, "seeds": [0, 1]}
    assert len(plan({"studies": {"s": study}})["studies"]["s"]["cells"]) == 4
    smoke = plan({"studies": {"s": study}, "smoke": True})["studies"]["s"]
    assert smoke["cells"] == ["s/epochs~2/lr~0.1", "s/epochs~2/lr~0.2"] and len(smoke["runs"]) == 4


@pytest.mark.parametrize("value", ["../../outside", "a/b", "<name>", "{job}", "with space", "x" * 201])
def test_an_axis_value_that_cannot_be_a_folder_name_is_refused(value):
    """Axis values become run folder names: `data_dir: ../x` on an axis wrote records outside results/."""
    with pytest.raises(SweepbenchError, match=r"config error in study 's', keys grid/rows: bad data_dir value .* on "
                                              r"an axis: it becomes the folder name .*; allowed: values whose text "):
        plan({"studies": {"s": {"workload": "linreg", "grid": {"data_dir": ["resources", value]}}}})
    with pytest.raises(SweepbenchError, match="bad data_dir value"):
        plan({"studies": {"s": {"workload": "linreg", "rows": [{"data_dir": value}]}}})


def test_yaml_merge_keys_work_and_repeated_keys_are_still_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &base {workload: linreg, fixed: {epochs: 2}}\n"
                    "studies:\n  a: {<<: *base, seeds: [0, 1]}\n  b:\n    <<: *base\n    workload: logreg2d\n")
    config = load_config(str(path))
    assert config["studies"]["a"] == {"workload": "linreg", "fixed": {"epochs": 2}, "seeds": [0, 1]}
    assert config["studies"]["b"]["workload"] == "logreg2d"                  # an own key overrides a merged one
    path.write_text("studies:\n  a: {<<: {workload: linreg}, workload: x, workload: y}\n")
    with pytest.raises(SweepbenchError, match="duplicate key 'workload'"):
        load_config(str(path))
    with pytest.raises(SweepbenchError) as err:                         # as Snakemake passes it: a PosixPath
        load_config(path)
    assert f"config '{path}': " in str(err.value) and "PosixPath" not in str(err.value)


def test_a_yaml_alias_bomb_is_refused_quickly_in_one_line(tmp_path):
    """Nine levels of ten aliases each: a billion values once expanded (it ran out of memory)."""
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nstudies: {s: {workload: linreg, fixed: {hidden: *a9}}}\n")
    with pytest.raises(SweepbenchError) as err:
        load_config(str(path))
    assert len(str(err.value)) < 300
    assert "more than 1,000,000 values once its YAML aliases are expanded" in str(err.value)


def test_lists_nested_thousands_deep_are_one_line_not_a_recursion_error(tmp_path):
    """3000 nested YAML lists crashed `sweepbench plan` with RecursionError."""
    path = tmp_path / "deep.yaml"
    path.write_text("studies: {s: {workload: linreg, fixed: {lr: " + "[" * 3000 + "]" * 3000 + "}}}\n")
    with pytest.raises(SweepbenchError, match=f"^config '{re.escape(str(path))}' nests its values too deep to read "
                                              r"\(RecursionError\); allowed: a config nested a few levels deep$"):
        load_config(str(path))


def test_a_plan_past_max_runs_is_refused_saying_its_size_unless_the_config_allows_it():
    study = {"workload": "linreg", "grid": {"lr": [0.001 * (i + 1) for i in range(50)]}, "seeds": [0, 1]}
    with pytest.raises(SweepbenchError, match=r"study 's', keys grid/rows/seeds: the plan would have up to 100 runs, "
                                              r"above max_runs 99; allowed: a smaller grid, or `max_runs: 100`"):
        plan({"studies": {"s": study}, "max_runs": 99})
    assert len(plan({"studies": {"s": study}, "max_runs": 100})["cells"]) == 50


@pytest.mark.slow
@pytest.mark.parametrize("text, name", [("1", "1"), ("~", "None")])
def test_a_study_name_that_is_not_text_is_refused_in_one_line(tmp_path, text, name):
    (tmp_path / "c.yaml").write_text(f"studies:\n  {text}: {{workload: linreg}}\n")
    proc = run_cli("plan", "--config", str(tmp_path / "c.yaml"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"config error in key studies: study name {name} is not text" in proc.stderr


@pytest.mark.parametrize("value", ["about 0.5", "high"])
def test_a_reference_row_value_that_is_not_a_number_is_a_config_error(tmp_path, value):
    (tmp_path / "c.yaml").write_text(
        "studies:\n  s:\n    workload: linreg\n    grid: {lr: [0.1]}\n    reference:\n      source: seed\n"
        "      metrics: {final_train_loss: {cell: 'Out[1]'}}\n"
        f"      rows: [{{lr: 0.1, final_train_loss: {value}}}]\n")
    with pytest.raises(SweepbenchError, match=r"config error in study 's', key reference.rows\[0\].final_train_loss: "
                                              r".* is not a printed number; allowed: a number, nan or null"):
        plan(load_config(str(tmp_path / "c.yaml")))


@pytest.mark.parametrize("rows, message", [                                                # B17
    ("{lr: 0.1, final_train_accuracy: 2.5}", r"rows\[0\].final_train_accuracy: 2.5 is out of range; allowed: a "
                                             r"number in \[0, 1\], nan or null"),
    ("{lr: 0.1, train_s: -3}", r"rows\[0\].train_s: -3 is out of range; allowed: a number >= 0, nan or null"),
    ("{lr: 0.1, train_s: 3}, {lr: 0.2, train_s: 4}, {lr: 1.0e-1, train_s: 5}",
     r"rows\[2\].train_s: the point {'lr': 0.1} has it in reference.rows\[0\] too; allowed: one value per point"),
])
def test_a_reference_row_out_of_range_or_twice_for_one_point_is_a_config_error(tmp_path, rows, message):
    (tmp_path / "c.yaml").write_text(
        "studies:\n  s:\n    workload: linreg\n    grid: {lr: [0.1, 0.2]}\n    reference:\n      source: seed\n"
        "      metrics: {final_train_accuracy: {cell: 'Out[1]'}, train_s: {cell: 'Out[2]'}}\n"
        f"      rows: [{rows}]\n")
    with pytest.raises(SweepbenchError, match=r"^config error in study 's', key reference." + message):
        plan(load_config(str(tmp_path / "c.yaml")))


def test_reference_rows_of_one_point_may_print_different_metrics_and_nan(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "studies:\n  s:\n    workload: linreg\n    grid: {lr: [0.1]}\n    reference:\n      source: seed\n"
        "      metrics: {final_train_loss: {cell: 'Out[1]'}, train_s: {cell: 'Out[2]'}}\n"
        "      rows: [{lr: 0.1, final_train_loss: -0.5}, {lr: 0.1, train_s: nan}]\n")
    assert plan(load_config(str(tmp_path / "c.yaml")))["studies"]["s"]


def test_a_yaml_key_that_is_a_list_or_mapping_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text("studies:\n  ? [a, b]\n  : {workload: linreg}\n")
    with pytest.raises(SweepbenchError, match=r"config '.*c.yaml': a key that is a list \(line 2\); allowed: names"):
        load_config(str(tmp_path / "c.yaml"))


def test_many_seeds_are_counted_before_they_are_checked_one_by_one():
    """100,000 seeds took 81 s of a quadratic repeated-seed check before max_runs refused them."""
    with pytest.raises(SweepbenchError, match="the plan would have up to 200,000 runs, above max_runs 100,000"):
        plan({"studies": {"s": {"workload": "linreg", "seeds": list(range(200_000))}}})



def test_a_reference_row_with_a_date_anywhere_is_a_config_error(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "studies:\n  s:\n    workload: linreg\n    grid: {lr: [0.1]}\n    reference:\n      source: seed\n"
        "      metrics: {final_train_loss: {cell: 'Out[1]'}}\n"
        "      rows: [{lr: 2024-01-01, final_train_loss: 0.5}]\n")
    with pytest.raises(SweepbenchError, match=r"config error in study 's', key reference.rows\[0\].lr: "
                                              r"datetime.date\(2024, 1, 1\) is not a number, text or a list"):
        plan(load_config(str(tmp_path / "c.yaml")))


def test_a_results_dir_that_no_workflow_wrote_holds_only_what_the_workflow_writes(tmp_path):
    """Pointed at a user's folder, the workflow would write its logs, specs and manifests among the
    user's files: a results_dir without plan.json holding anything else is refused, untouched."""
    from sweepbench.plan.planner import RESULTS_ENTRIES, check_results_folder

    folder = tmp_path / "home"
    check_results_folder(str(folder))                                   # new: fine
    folder.mkdir()
    for name in ("logs", "specs", "reproduce", "history.csv", ".gitkeep", ".DS_Store"):
        (folder / name).mkdir() if "." not in name else (folder / name).write_text("")
    check_results_folder(str(folder))                # the workflow's names, and hidden files (a clone's .gitkeep)
    (folder / "thesis.tex").write_text("mine")
    (folder / "photos").mkdir()
    with pytest.raises(SweepbenchError, match=r"^config error in key results_dir: '.*home' holds photos, thesis.tex "
                                              r"and no plan.json, so it is not a sweepbench results folder; allowed: "):
        check_results_folder(str(folder))
    assert (folder / "thesis.tex").read_text() == "mine"
    (folder / "plan.json").write_text("{}")                             # a workflow started here: its folder
    check_results_folder(str(folder))
    assert "runs" in RESULTS_ENTRIES and "plan.json" in RESULTS_ENTRIES
