"""reproduction.csv: the seed's printed numbers beside ours, matched by the sweep's axis values."""

import math

import pandas as pd

from sweepbench.aggregate.reproduction import reproduction_table, verdict_line
from sweepbench.rules import reference_value

REFERENCE = {"source": "seed 002, In [55];", "metrics": {"final_train_accuracy": {"cell": "Out[58]"}},
             "rows": [{"lr": 10.0, "final_train_accuracy": 0.10}, {"lr": 0.1, "final_train_accuracy": 0.903},
                      {"lr": 1e-4, "final_train_accuracy": 0.814}, {"lr": 1e-9, "final_train_accuracy": 0.057}]}


def _runs():
    rows = [("s", "s/lr~10.0", 10.0, 0, False, 0.11), ("s", "s/lr~0.1", 0.1, 0, False, 0.88),
            ("s", "s/lr~0.1", 0.1, 1, False, 0.90), ("s", "s/lr~0.0001", 1e-4, 0, False, 0.80),
            ("s", "s/lr~0.0001", 1e-4, 1, True, math.nan), ("s", "s/lr~100.0", 100.0, 0, True, math.nan)]
    return pd.DataFrame(rows, columns=["study", "cell", "axis_lr", "seed", "diverged", "final_train_accuracy"])


def test_rows_match_by_axis_value_average_seeds_and_list_points_not_run():
    the_plan = {"studies": {"s": {"reference": REFERENCE}, "other": {"reference": None}}}
    t = reproduction_table(the_plan, _runs())
    assert list(t["point"]) == ["lr=10.0", "lr=0.1", "lr=0.0001", "lr=1e-09"]
    by = t.set_index("point")
    assert by.loc["lr=0.1", "ours"] == 0.89 and by.loc["lr=0.1", "n_seeds"] == 2          # mean of two seeds
    assert by.loc["lr=0.0001", "ours"] == 0.80                    # the diverged seed is left out, not a majority
    assert by.loc["lr=1e-09", "state"] == "not run here" and by.loc["lr=1e-09", "n_seeds"] == 0
    assert set(t["verdict"]) == {"reproduced"} and t["n_rows"].iloc[0] == 3
    assert t["source"].iloc[0] == "seed 002, In [55]; Out[58]" and t["x_axis"].iloc[0] == "lr"
    line = verdict_line(t)
    assert line.startswith("final_train_accuracy: reproduced (3 of 4 printed points compared; 3 within the band ±0.05")
    assert "Source: seed 002, In [55]; Out[58]." in line


def test_a_diverged_majority_against_a_finite_seed_value_is_not_reproduced():
    ref = {**REFERENCE, "rows": [{"lr": 100.0, "final_train_accuracy": 0.5}, {"lr": 0.1, "final_train_accuracy": 0.9}]}
    t = reproduction_table({"studies": {"s": {"reference": ref}}}, _runs())
    assert t.set_index("point").loc["lr=100.0", "state"] == "ours diverged, seed did not"
    assert set(t["verdict"]) == {"not reproduced"}


def test_list_valued_axes_and_nan_spellings():
    runs = pd.DataFrame([("c", "c/a", [16, 32, 64], 0, False, 0.9), ("c", "c/b", [16, 32], 0, False, 0.8)],
                        columns=["study", "cell", "axis_batch_cycle", "seed", "diverged", "final_val_accuracy"])
    ref = {"source": "x", "metrics": {"final_val_accuracy": {}},
           "rows": [{"batch_cycle": [16, 32, 64], "final_val_accuracy": 0.91},
                    {"batch_cycle": [16, 32], "final_val_accuracy": 0.85}]}
    t = reproduction_table({"studies": {"c": {"reference": ref}}}, runs)
    assert list(t["ours"]) == [0.9, 0.8] and t["x"].isna().all()          # no numeric axis: no overlay x
    assert math.isnan(reference_value("nan")) and math.isnan(reference_value(None)) and reference_value(2) == 2.0
    assert reproduction_table({"studies": {"c": {}}}, runs).empty


def test_final_epoch_loss_comes_from_the_runs_table():
    """runs.csv's final_epoch_loss: each record's final.epoch_loss, the last epoch's running mean."""
    runs = _runs().assign(final_epoch_loss=[2.3, 0.30, 0.26, 0.5, float("nan"), float("nan")])
    ref = {"source": "s", "metrics": {"final_epoch_loss": {}},
           "rows": [{"lr": 10.0, "final_epoch_loss": 2.306}, {"lr": 0.1, "final_epoch_loss": 0.263}]}
    t = reproduction_table({"studies": {"s": {"reference": ref}}}, runs)
    assert list(t["ours"]) == [2.3, 0.28] and set(t["verdict"]) == {"reproduced"}

def test_planned_points_without_a_record_make_the_verdict_incomplete():
    planned = {"s/lr~10.0": {"lr": 10.0}, "s/lr~0.1": {"lr": 0.1}, "s/lr~0.0001": {"lr": 1e-4}, "s/lr~1.0": {"lr": 1.0}}
    ref = {**REFERENCE, "rows": REFERENCE["rows"] + [{"lr": 1.0, "final_train_accuracy": 0.098}]}
    the_plan = {"studies": {"s": {"reference": ref, "cells": list(planned)}},
                "cells": {c: {"axes": a} for c, a in planned.items()}}
    t = reproduction_table(the_plan, _runs()).set_index("point")
    assert t.loc["lr=1.0", "state"] == "no record yet" and t.loc["lr=1e-09", "state"] == "not run here"
    assert t["verdict"].iloc[0] == "incomplete (1 planned points have no record yet); so far: reproduced"
    assert verdict_line(t.reset_index()).startswith("final_train_accuracy: incomplete (1 planned points have no "
                                                    "record yet); so far: reproduced (3 of 5 printed points compared")
