import json
import math
import os
import shutil

import pandas as pd
import pytest
from conftest import minimal_record, write_record_files

from sweepbench import SweepbenchError
from sweepbench.aggregate import tables
from sweepbench.plan.planner import write_plan


def fake_record(lr, bs, seed, steps=None, val_acc=0.9, status="completed", sps=1000.0):
    """A run.json with the fields the tables read (write_record adds what every record has)."""
    metrics = {"train_loss": 0.3, "train_accuracy": val_acc, "val_loss": 0.4, "val_accuracy": val_acc,
               "test_loss": 0.4, "test_accuracy": val_acc}
    if status == "diverged":
        metrics = {k: math.nan for k in metrics}
    return {
        "status": status,
        "spec": {"workload": "digits_mlp", "optimizer": "sgd", "lr": lr, "batch_size": bs, "seed": seed,
                 "accum_steps": 1, "synthetic": False},
        "workload": {"n_train": 1000},
        "final": dict(metrics), "best": dict(metrics),
        "to_target": {"metric": "val_accuracy", "target": 0.8, "reached": steps is not None, "step": steps,
                      "epoch": None if steps is None else steps / 10, "samples": None if steps is None else steps * bs,
                      "wall_s": None if steps is None else steps * 0.01},
        "convergence": {"epoch": None}, "timing": {"steps": 100, "epochs": 10, "train_s": 1.0},
        "throughput": {"samples_per_s": sps, "samples_per_s_ci_lo": None, "samples_per_s_ci_hi": None,
                       "block_samples_per_s": [sps], "step_time_median_s": bs / sps, "step_time_p10_s": bs / sps,
                       "step_time_p90_s": bs / sps},
        "memory": {"peak_mb": 100}, "grad_noise_scale": None,
        "provenance": {"device_name": "cpu", "torch": "2.x", "git_commit": "abc", "code_version": "0"},
    }


def write_record(run_dir, rec):
    """A complete run record on disk from the fake run.json (the sections every record has added)."""
    full = minimal_record(**rec)
    full["timing"] = {"eval_s": 0.1, "startup_s": 1.0, **rec["timing"]}
    full["final"] = {"step": rec["timing"]["steps"], "epoch_loss": None, **rec["final"]}
    full["workload"] = {"name": rec["spec"]["workload"], **rec["workload"]}
    full["divergence"] = {"diverged": rec["status"] == "diverged"}
    write_record_files(run_dir, full)


def make_study(tmp_path, records, study="s"):
    """Write run records in the plan's layout; records: {(lr, bs): [record per seed]}."""
    cells, run_ids = {}, []
    for (lr, bs), recs in records.items():
        cell = f"{study}/lr~{lr}/bs~{bs}"
        runs = []
        for rec in recs:
            rid = f"{cell}/seed~{rec['spec']['seed']}"
            write_record(tmp_path / rid, rec)
            runs.append({"id": rid, "seed": rec["spec"]["seed"], "spec": rec["spec"]})
            run_ids.append(rid)
        cells[cell] = {"study": study, "runs": runs}
    plan = {"studies": {study: {"axes": ["lr", "batch_size"], "cells": list(cells), "runs": run_ids}},
            "cells": cells, "jobs": {}, "config": {}, "smoke": False}
    return plan


def test_cells_aggregate_seeds_and_diverged_runs_never_poison_a_mean(tmp_path):
    plan = make_study(tmp_path, {(0.1, 32): [fake_record(0.1, 32, 0, 100, 0.90), fake_record(0.1, 32, 1, 120, 0.92),
                                             fake_record(0.1, 32, 2, None, status="diverged")]})
    t, skipped = tables.build_tables(plan, str(tmp_path))
    cell = t["cells"].iloc[0]
    assert skipped == 0 and cell["n_seeds"] == 3 and cell["n_diverged"] == 1
    assert cell["frac_diverged"] == pytest.approx(1 / 3)
    assert cell["final_val_accuracy_mean"] == pytest.approx(0.91)
    assert cell["n_not_reached"] == 1 and math.isnan(cell["steps_to_target_mean"])  # not every seed reached


def scaling_records():
    recs = {}
    for bs, steps_by_lr in {8: {0.01: 400, 0.1: 300}, 32: {0.01: 200, 0.1: 100}, 128: {0.1: 60, 1.0: 40}}.items():
        for lr, steps in steps_by_lr.items():
            recs[(lr, bs)] = [fake_record(lr, bs, s, steps + s, sps=100.0 * bs ** 0.5) for s in range(3)]
    recs[(1.0, 8)] = [fake_record(1.0, 8, s, None, status="diverged") for s in range(3)]
    return recs


def test_best_lr_scaling_and_throughput(tmp_path):
    t, _ = tables.build_tables(make_study(tmp_path, scaling_records()), str(tmp_path))
    best = t["best_lr"].set_index("effective_batch_size")
    assert list(best["best_lr"]) == [0.1, 0.1, 1.0]
    assert best.loc[128, "linear_rule_lr"] == pytest.approx(0.1 * 128 / 8)
    assert best.loc[128, "sqrt_rule_lr"] == pytest.approx(0.1 * 4)
    sc = t["scaling"].set_index("effective_batch_size")
    assert sc.loc[8, "steps_to_target_mean"] == 301 and sc.loc[32, "perfect_scaling_steps"] == pytest.approx(301 / 4)
    assert sc["b_crit"].notna().all() and sc["fastest_to_target"].sum() == 1
    assert sc.loc[8, "time_to_target_s"] == pytest.approx(301 * 8 / (100 * 8 ** 0.5))
    th = t["throughput"].set_index("effective_batch_size")
    assert th.loc[32, "samples_per_s"] == pytest.approx(100 * 32 ** 0.5)
    ls = t["lr_sensitivity"]
    assert set(ls["effective_batch_size"]) == {8, 32, 128}
    assert ls[ls["effective_batch_size"] == 8]["largest_stable_lr"].iloc[0] == 0.1


@pytest.mark.parametrize("damage, what", [
    (lambda d: (d / "run.json").write_text('{"status": "completed", "spec": '), "run.json unreadable"),
    (lambda d: os.remove(d / "run.json"), "run.json missing"),
    (lambda d: os.remove(d / "metrics.csv"), "metrics.csv missing"),
    (lambda d: (d / "steps.csv").write_text("garbage\x00\x01,,\n1,2\n"), "steps.csv does not start with"),
    (lambda d: (d / "run.json").write_text(json.dumps({**json.loads((d / "run.json").read_text()),
                                                       "schema_version": 99})), "run.json schema_version 99"),
    (lambda d: (d / "run.json").write_text(json.dumps({k: v for k, v in json.loads((d / "run.json").read_text()).items()
                                                       if k != "throughput"})), "run.json lacks throughput"),
])
def test_broken_records_stop_the_tables_naming_each_record(tmp_path, damage, what):
    plan = make_study(tmp_path, {(0.1, 32): [fake_record(0.1, 32, s, 100) for s in (0, 1, 2)]})
    for seed in (1, 2):
        damage(tmp_path / "s" / "lr~0.1" / "bs~32" / f"seed~{seed}")
    with pytest.raises(SweepbenchError) as err:
        tables.build_tables(plan, str(tmp_path))
    message = str(err.value)
    assert message.startswith("2 broken or missing run record(s): ") and "\n" not in message
    for seed in (1, 2):
        assert f"{tmp_path}/s/lr~0.1/bs~32/seed~{seed}: {what}" in message


def test_partial_tables_count_the_missing_runs(tmp_path):
    plan = make_study(tmp_path, {(0.1, 32): [fake_record(0.1, 32, s, 100) for s in (0, 1, 2)]})
    shutil.rmtree(tmp_path / "s" / "lr~0.1" / "bs~32" / "seed~2")     # not trained yet
    with pytest.raises(SweepbenchError, match="1 broken or missing run record"):
        tables.build_tables(plan, str(tmp_path))
    t, missing = tables.build_tables(plan, str(tmp_path), partial=True)
    cell = t["cells"].iloc[0]
    assert missing == 1 and (cell["n_seeds"], cell["n_planned"], cell["n_missing"]) == (2, 3, 1)


def test_empty_study_gives_empty_tables_with_headers(tmp_path):
    plan = {"studies": {"s": {"axes": [], "cells": [], "runs": []}}, "cells": {}, "jobs": {}, "config": {},
            "smoke": False}
    write_plan(plan, str(tmp_path / "plan.json"))
    counts = tables.aggregate(str(tmp_path / "plan.json"), str(tmp_path), str(tmp_path / "tables"))
    assert counts == {"runs": 0, "missing": 0}
    for name in tables.TABLE_NAMES:
        df = pd.read_csv(tmp_path / "tables" / f"{name}.csv")
        assert df.empty and len(df.columns) > 3


def test_aggregate_out_replaces_its_own_tables_and_refuses_a_users_runs_csv_untouched(tmp_path, capsys):
    """`aggregate --out X` overwrote whatever X/runs.csv was, a user's own file of that name included."""
    from sweepbench import cli

    plan = {"studies": {"s": {"axes": [], "cells": [], "runs": []}}, "cells": {}, "jobs": {}, "config": {},
            "smoke": False}
    write_plan(plan, str(tmp_path / "plan.json"))
    args = ["aggregate", "--plan", str(tmp_path / "plan.json"), "--runs-dir", str(tmp_path)]
    assert cli.main([*args, "--out", str(tmp_path / "tables")]) == 0
    assert cli.main([*args, "--out", str(tmp_path / "tables")]) == 0            # its own earlier tables: replaced
    os.makedirs(tmp_path / "mine")
    (tmp_path / "mine" / "runs.csv").write_text("my,own\n")
    capsys.readouterr()
    assert cli.main([*args, "--out", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err == (f"sweepbench aggregate: error: bad --out '{tmp_path}/mine': it holds runs.csv, which sweepbench "
                   "did not write there (or which changed since), left untouched; allowed: a new folder, or one where "
                   "sweepbench wrote these files (move yours away)\n")
    assert os.listdir(tmp_path / "mine") == ["runs.csv"] and (tmp_path / "mine" / "runs.csv").read_text() == "my,own\n"


def test_tables_with_rows_have_every_column_of_the_empty_tables_the_report_requires(tmp_path):
    """tables.table_columns (the empty tables' columns) is what the report requires of each table."""
    plan = make_study(tmp_path, {(lr, bs): [fake_record(lr, bs, s, 100 * bs // 32) for s in (0, 1)]
                                 for lr in (0.1, 0.3) for bs in (32, 64)})
    t, _ = tables.build_tables(plan, str(tmp_path))
    assert set(tables.table_columns()) == set(tables.TABLE_NAMES)
    filled = [name for name, df in t.items() if len(df)]
    assert {"runs", "cells", "best_lr", "scaling"} <= set(filled)
    for name in filled:
        assert set(tables.table_columns()[name]) <= set(t[name].columns), name


def test_runs_trained_together_are_marked_and_kept_apart_in_throughput(tmp_path):
    together = [dict(fake_record(0.1, 32, s, sps=500.0), speed={"batched_runs": 2, "stack": "j:0"}) for s in (0, 1)]
    plan = make_study(tmp_path, {(0.1, 32): together, (0.1, 64): [fake_record(0.1, 64, 0)]})
    t, _ = tables.build_tables(plan, str(tmp_path))
    assert sorted(t["runs"]["batched_runs"]) == [1, 2, 2]
    tp = t["throughput"].set_index("effective_batch_size")
    assert tp.loc[32, "batched_runs"] == 2 and tp.loc[32, "samples_per_s"] == 500.0
    assert tp.loc[64, "batched_runs"] == 1


def test_runs_of_a_smoke_plan_are_marked_smoke(tmp_path):
    plan = make_study(tmp_path, {(0.1, 32): [fake_record(0.1, 32, 0, 100)]})
    assert not tables.build_tables(plan, str(tmp_path))[0]["runs"]["smoke"].any()
    smoke, _ = tables.build_tables({**plan, "smoke": True}, str(tmp_path))     # the plan's flag, set by plan()
    assert smoke["runs"]["smoke"].tolist() == [True]


def test_runs_name_the_lock_their_environment_had_or_say_not_locked(tmp_path):
    recs = [fake_record(0.1, 32, s, 100) for s in range(4)]
    for rec, lock in zip(recs, [{"file": "requirements.lock", "sha256": "a1b2c3d4e5f6", "matches": True, "differs": []},
                                {"file": "requirements.lock", "sha256": "a1b2c3d4e5f6", "matches": False,
                                 "differs": ["torch 2.15.0 installed, lock 2.14.1"]},
                                None]):
        rec["provenance"]["env_lock"] = lock  # the fourth is a record from before env_lock: no key
    t, _ = tables.build_tables(make_study(tmp_path, {(0.1, 32): recs}), str(tmp_path))
    got = t["runs"].sort_values("seed")["env_lock"].tolist()
    assert got[:3] == ["a1b2c3d4e5f6", "a1b2c3d4e5f6 (with changes)", "not locked"] and pd.isna(got[3])


def test_aggregate_refuses_a_complete_record_that_is_not_the_planned_run(tmp_path):
    """A smoke record among real ones, or a record trained under an older config, is never averaged
    in: the tables stop naming the file and the first option that differs."""
    from sweepbench.plan.planner import plan

    config = {"studies": {"s": {"workload": "linreg", "grid": {"lr": [0.1, 0.2]}, "seeds": [0]}}}
    real, smoke = plan(config), plan({**config, "smoke": True})
    write_plan(real, str(tmp_path / "plan.json"))
    for the_plan in (real, smoke):  # smoke's records where real ones should be, then the real ones
        for cell in the_plan["cells"].values():
            for run in cell["runs"]:
                write_record_files(tmp_path / "runs" / run["id"], minimal_record(spec=run["spec"]))
    with pytest.raises(SweepbenchError, match=r"2 broken or missing run record\(s\): .*s/lr~0.1/seed~0: not the "
                                              r"planned run: clip_batch_size True in the record, False planned"):
        tables.aggregate(str(tmp_path / "plan.json"), str(tmp_path / "runs"), str(tmp_path / "tables"))
    for cell in real["cells"].values():  # the real records back: the same call tabulates both runs
        for run in cell["runs"]:
            write_record_files(tmp_path / "runs" / run["id"], minimal_record(spec=run["spec"]))
    assert tables.aggregate(str(tmp_path / "plan.json"), str(tmp_path / "runs"), str(tmp_path / "tables"))["runs"] == 2


def ddp_runs(steps_by_batch: dict, step_time: dict, study="w", seeds=(0, 1)) -> pd.DataFrame:
    """runs.csv rows of a data-parallel study at 32 samples per worker: world_size -> median step time."""
    rows = []
    for n, t in step_time.items():
        batch = 32 * max(1, n)
        for seed in seeds:
            steps = steps_by_batch[batch][seed]
            rows.append({"study": study, "workload": "digits_mlp", "device_name": "cpu", "optimizer": "sgd",
                         "lr": 0.1, "batch_size": 32, "world_size": n, "effective_batch_size": batch, "seed": seed,
                         "step_time_median_s": t * (1 + seed / 100), "step_time_p90_s": 2 * t,
                         "steps_to_target": steps, "target_reached": steps is not None})
    return pd.DataFrame(rows)


def test_data_parallel_table_joins_steps_at_the_global_batch_with_the_step_time_at_n():
    steps = {32: [400, 420], 64: [220, 230], 128: [150, 150]}
    runs = ddp_runs(steps, {0: 0.010, 1: 0.012, 2: 0.013, 4: 0.016})
    scaling = pd.DataFrame({"study": ["w"], "optimizer": ["sgd"], "b_crit": [96.0]})
    dp = tables.data_parallel_table(runs, pd.DataFrame(columns=tables.GROUP + ["best_lr"]), scaling, {"w": {}})
    assert list(dp.columns) == tables.DATA_PARALLEL_COLUMNS
    by_n = dp.set_index("world_size")
    assert list(by_n["global_batch"]) == [32, 32, 64, 128]
    assert by_n.loc[1, "ddp_overhead"] == pytest.approx(0.012 / 0.010 - 1, rel=0.02)   # against the no-DDP row
    assert math.isnan(by_n.loc[2, "ddp_overhead"]) and math.isnan(by_n.loc[0, "scaling_efficiency"])
    t1 = 32 / by_n.loc[1, "step_time_median_s"]
    assert by_n.loc[2, "samples_per_s"] == pytest.approx(64 / by_n.loc[2, "step_time_median_s"])
    assert by_n.loc[2, "scaling_efficiency"] == pytest.approx(by_n.loc[2, "samples_per_s"] / (2 * t1))
    assert by_n.loc[4, "speedup"] == pytest.approx(by_n.loc[4, "samples_per_s"] / t1)
    # steps at B = N x b: the study's runs at that global batch (N = 1 pools the no-DDP runs at 32)
    assert by_n.loc[1, "steps_seeds"] == 4 and by_n.loc[2, "steps_to_target_mean"] == 225
    assert by_n.loc[2, "time_to_target_s"] == pytest.approx(225 * by_n.loc[2, "step_time_median_s"])
    assert by_n.loc[2, "time_to_target_ci_lo"] <= by_n.loc[2, "time_to_target_s"] <= by_n.loc[2, "time_to_target_ci_hi"]
    # time to target: N=1 5.0 s, N=2 2.9 s, N=4 2.4 s (a 17% cut): every step paid, the knee is N = 4 at the edge
    assert list(by_n["knee"]) == [False, False, False, True] and not by_n["knee_within_sweep"].any()
    assert by_n["n_crit"].iloc[0] == 3.0 and set(by_n["steps_from"]) == {"w"}


def test_data_parallel_steps_come_from_a_named_study_and_a_seed_that_missed_the_target_empties_the_time():
    own = ddp_runs({32: [None, None], 64: [None, None]}, {1: 0.01, 2: 0.02}, study="w")
    batch = ddp_runs({32: [100, 110], 64: [60, 70]}, {0: 0.005}, study="b")
    batch = pd.concat([batch, batch.assign(effective_batch_size=64, batch_size=64)])
    runs = pd.concat([own, batch], ignore_index=True)
    runs.loc[(runs["study"] == "b") & (runs["effective_batch_size"] == 64), "steps_to_target"] = [60, 70]
    empty = pd.DataFrame(columns=["study", "optimizer", "b_crit"])
    dp = tables.data_parallel_table(runs, pd.DataFrame(columns=tables.GROUP + ["best_lr"]), empty,
                                    {"w": {"steps_from": "b"}, "b": {}}).set_index("world_size")
    assert list(dp["steps_from"]) == ["b", "b"] and list(dp["steps_to_target_mean"]) == [105, 65]
    assert dp.loc[2, "time_to_target_s"] > dp.loc[1, "time_to_target_s"]   # 65 x 0.02 > 105 x 0.01
    assert list(dp["knee"]) == [True, False] and dp["knee_within_sweep"].all()
    assert math.isnan(dp["n_crit"].iloc[0])
    alone = tables.data_parallel_table(own, pd.DataFrame(columns=tables.GROUP + ["best_lr"]), empty, {"w": {}})
    assert alone["time_to_target_s"].isna().all() and not alone["knee"].any()   # no seed reached the target
