import json
import os

import pandas as pd
import pytest

from conftest import run_cli
from sweepbench import SweepbenchError, check


def seeds(cells=("s/a", "s/b"), acc=(0.90, 0.91, 0.89), sps=(1000.0, 1010.0, 990.0), device="cpu-x", torch="2.x",
          status="completed", reached=True, train_s=5.0):
    rows = []
    for cell in cells:
        for seed, (a, v) in enumerate(zip(acc, sps)):
            rows.append({"study": "s", "cell": cell, "seed": seed, "status": status, "target_reached": reached,
                         "train_s": train_s,
                         "device_name": device, "torch": torch, "final_val_accuracy": a, "best_val_accuracy": a + 0.01,
                         "final_val_loss": 1 - a, "best_val_loss": 0.9 - a, "steps_to_target": 100 + seed,
                         "samples_to_target": 3200 + 32 * seed, "samples_per_s": v, "step_time_median_s": 32 / v})
    return pd.DataFrame(rows)


def verdicts(table):
    return {(r.cell, r.metric): r.verdict for r in table.itertuples()}


def test_identical_results_pass():
    table = check.compare(seeds(), seeds(), check.settings(None))
    assert set(table["verdict"]) == {"pass"} and len(table) == 2 * 8


def test_identical_but_noisy_runs_pass():
    cur = seeds(acc=(0.905, 0.895, 0.90), sps=(990.0, 1005.0, 1000.0))
    assert set(check.compare(seeds(), cur, check.settings(None))["verdict"]) == {"pass"}


def test_five_point_accuracy_drop_in_one_cell_is_caught_and_named():
    cur = pd.concat([seeds(cells=("s/a",)), seeds(cells=("s/b",), acc=(0.85, 0.86, 0.84))])
    table = check.compare(seeds(), cur, check.settings(None))
    v = verdicts(table)
    assert v[("s/b", "final_val_accuracy")] == "regression" and v[("s/a", "final_val_accuracy")] == "pass"
    row = table[(table["cell"] == "s/b") & (table["metric"] == "final_val_accuracy")].iloc[0]
    assert row["delta"] == pytest.approx(-0.05) and row["p_value"] < 0.05


def test_throughput_down_20_percent_same_device_caught_other_device_not_comparable():
    slow = seeds(sps=(800.0, 808.0, 792.0))
    v = verdicts(check.compare(seeds(), slow, check.settings(None)))
    assert v[("s/a", "samples_per_s")] == "regression" and v[("s/a", "step_time_median_s")] == "regression"
    other = seeds(sps=(800.0, 808.0, 792.0), device="cpu-y")
    table = check.compare(seeds(), other, check.settings(None))
    assert verdicts(table)[("s/a", "samples_per_s")] == "not comparable"
    assert "cpu-x" in table[table["metric"] == "samples_per_s"]["reason"].iloc[0]


def test_runs_too_short_to_time_are_not_compared_for_speed():
    table = check.compare(seeds(train_s=0.05), seeds(sps=(500.0, 505.0, 495.0), train_s=0.05), check.settings(None))
    row = table[table["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "not comparable" and "too short to time" in row["reason"]


def test_newly_diverging_cell_and_lost_target_are_regressions():
    cur = pd.concat([seeds(cells=("s/a",)), seeds(cells=("s/b",), status="diverged", reached=False)])
    v = verdicts(check.compare(seeds(), cur, check.settings(None)))
    assert v[("s/b", "divergence")] == "regression" and v[("s/b", "target_reached")] == "regression"


def test_missing_cells_on_either_side_are_listed():
    table = check.compare(seeds(cells=("s/a", "s/b")), seeds(cells=("s/a", "s/c")), check.settings(None))
    missing = table[table["verdict"] == "missing"]
    assert set(missing["cell"]) == {"s/b", "s/c"}


def test_config_tolerances_override_defaults():
    cur = seeds(acc=(0.85, 0.86, 0.84))
    loose = check.settings({"abs_tol": {"final_val_accuracy": 0.1, "best_val_accuracy": 0.1,
                                        "final_val_loss": 0.1, "best_val_loss": 0.1}})
    assert verdicts(check.compare(seeds(), cur, loose))[("s/a", "final_val_accuracy")] == "pass"


def write_tables(tmp_path, df, name="tables"):
    os.makedirs(tmp_path / name, exist_ok=True)
    df.assign(git_commit="abc").to_csv(tmp_path / name / "runs.csv", index=False)
    return str(tmp_path / name)


def test_cli_save_check_exit_codes_and_files(tmp_path):
    base_tables = write_tables(tmp_path, seeds(), "base")
    root = str(tmp_path / "baselines")
    assert run_cli("baseline", "save", "ref", "--tables", base_tables, "--root", root).returncode == 0
    ok = run_cli("check", "--baseline", "ref", "--tables", base_tables, "--root", root, "--out", str(tmp_path / "c1"))
    assert ok.returncode == 0 and ok.stdout.startswith("PASS")
    bad_tables = write_tables(tmp_path, seeds(acc=(0.80, 0.81, 0.79)), "bad")
    bad = run_cli("check", "--baseline", "ref", "--tables", bad_tables, "--root", root, "--out", str(tmp_path / "c2"))
    assert bad.returncode == 1 and "REGRESSION" in bad.stdout and "s/a final_val_accuracy" in bad.stdout
    table = pd.read_csv(tmp_path / "c2" / "check.csv")
    assert list(table.columns) == check.CHECK_COLUMNS
    assert json.load(open(tmp_path / "c2" / "summary.json"))["passed"] is False
    unknown = run_cli("check", "--baseline", "nope", "--tables", base_tables, "--root", root)
    assert unknown.returncode == 2 and "unknown baseline 'nope'; allowed: ref" in unknown.stderr


def test_corrupt_or_foreign_baseline_is_a_clear_error(tmp_path):
    root = tmp_path / "baselines"
    os.makedirs(root / "broken")
    (root / "broken" / "seeds.csv").write_text("x,y\n1,2\n")
    (root / "broken" / "meta.json").write_text("{}")
    with pytest.raises(SweepbenchError, match="corrupt baseline"):
        check.load_baseline("broken", str(root))
    base_tables = write_tables(tmp_path, seeds(), "base")
    check.save_baseline("ref", base_tables, str(root))
    other = seeds().assign(study="t", cell=lambda d: "t/" + d["cell"])
    with pytest.raises(SweepbenchError, match="shares no cell"):
        check.run_check("ref", write_tables(tmp_path, other, "other"), str(tmp_path / "c"), None, str(root))
