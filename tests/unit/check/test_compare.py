import json
import os
import re
import subprocess

import pandas as pd
import pytest
from conftest import run_cli

from sweepbench import SweepbenchError, cli
from sweepbench.check import compare

# ---------------------------------------------------------------- compare.compare and the command


def seeds(cells=("s/a", "s/b"), acc=(0.90, 0.91, 0.89, 0.905, 0.895, 0.9, 0.902, 0.898, 0.893, 0.907),
          sps=1000.0, device="cpu-x", torch="2.x", status="completed", reached=True, train_s=5.0, smoke=False,
          batched=1, seed0=0, stack="", timing_ci=0.0, width=0.01):
    rows = []
    for cell in cells:
        for i, a in enumerate(acc):
            rows.append({"study": "s", "cell": cell, "seed": seed0 + i, "status": status, "target": 0.8,
                         "target_reached": reached, "smoke": smoke, "batched_runs": batched, "train_s": train_s,
                         "stack": stack(i) if callable(stack) else stack, "timing_ci": timing_ci,
                         "block_samples_per_s": f"{sps} {sps}", "samples_per_s_ci_lo": sps * (1 - width),
                         "samples_per_s_ci_hi": sps * (1 + width),
                         "device_name": device, "torch": torch, "final_val_accuracy": a, "best_val_accuracy": a + 0.01,
                         "final_val_loss": 1 - a, "best_val_loss": 0.95 - a, "steps_to_target": 100 + i % 3,
                         "samples_to_target": 3200 + 32 * (i % 3), "samples_per_s": sps * (1 + 0.01 * (i % 3 - 1)),
                         "step_time_median_s": 32 / sps})
    return pd.DataFrame(rows)


def current(**kw):
    kw.setdefault("acc", (0.901, 0.899, 0.90))
    return seeds(seed0=100, **kw)


def verdicts(table):
    return {(r.cell, r.metric): r.verdict for r in table.itertuples()}


def test_identical_distribution_passes_with_every_row_and_column():
    table = compare.compare(seeds(), current(), compare.settings(None))
    assert list(table.columns) == compare.CHECK_COLUMNS
    assert set(table["verdict"]) == {"pass"} and len(table) == 2 * (2 + 6 + 1)
    acc = table[(table["cell"] == "s/a") & (table["metric"] == "final_val_accuracy")].iloc[0]
    assert acc["n_baseline"] == 10 and acc["n_current"] == 3 and acc["test"] == "t (pooled)" and acc["mde"] > 0.01


def test_five_point_accuracy_drop_in_one_cell_is_caught_and_named():
    cur = pd.concat([current(cells=("s/a",)), current(cells=("s/b",), acc=(0.85, 0.86, 0.84))])
    table = compare.compare(seeds(), cur, compare.settings(None))
    v = verdicts(table)
    assert v[("s/b", "final_val_accuracy")] == "regression" and v[("s/a", "final_val_accuracy")] == "pass"
    row = table[(table["cell"] == "s/b") & (table["metric"] == "final_val_accuracy")].iloc[0]
    assert row["delta"] == pytest.approx(-0.05, abs=1e-3) and row["p_adjusted"] < 0.025


def test_throughput_down_20_percent_same_device_caught_other_device_or_batch_not_comparable():
    v = verdicts(compare.compare(seeds(), current(sps=800.0), compare.settings(None)))
    assert v[("s/a", "samples_per_s")] == "regression"
    table = compare.compare(seeds(), current(sps=800.0, device="cpu-y"), compare.settings(None))
    row = table[table["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "not comparable" and "cpu-x" in row["reason"]
    table = compare.compare(seeds(batched=10), current(sps=800.0, batched=3), compare.settings(None))
    row = table[table["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "not comparable" and "runs trained together in a stack [10] vs [3]" in row["reason"]


def test_speed_is_tested_on_logs_with_a_seven_percent_floor_and_its_own_share_of_alpha():
    """Baseline: 10 runs within +-1%; one current run. 10% slower: a regression (t-test on logs, Holm
    over the speed family at alpha / 3); 3% slower: significant but within the 7% floor, a pass."""
    base = seeds(cells=("s/a",))
    row = compare.compare(base, current(cells=("s/a",), acc=(0.9,), sps=900.0), compare.settings(None))
    row = row[row["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "regression" and row["test"] == "t (pooled, log)"
    assert (row["n_baseline"], row["n_current"]) == (10, 1) and row["p_adjusted"] <= 0.05 / 3
    assert row["threshold"] == pytest.approx(70.0, rel=1e-2) and row["ci_lo"] < -100 < row["ci_hi"] < 0
    table = compare.compare(base, current(cells=("s/a",), acc=(0.9,), sps=970.0), compare.settings(None))
    row = table[table["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "pass" and row["why"] == "speed within the effect floor"
    assert row["p_value"] < 0.01   # the change is real, but smaller than the floor


def test_runs_of_one_stack_are_one_timing_and_other_stack_sizes_are_left_out():
    """The baseline's 10 seeds in stacks of 3 (+ one alone): 3 timings of stack size 3, the lone
    run (stack size 1) left out; the current's 3 seeds in one stack: one timing."""
    base = seeds(cells=("s/a",), batched=3, stack=lambda i: f"s/all#{i // 3}" if i < 9 else "")
    base.loc[9, "batched_runs"] = 1
    cur = current(cells=("s/a",), batched=3, stack="s/all#0")
    row = compare.compare(base, cur, compare.settings(None))
    row = row[row["metric"] == "samples_per_s"].iloc[0]
    assert (row["n_baseline"], row["n_current"]) == (3, 1) and row["verdict"] == "pass"


def test_runs_timed_unsteadily_are_left_out_and_a_side_without_steady_runs_is_not_comparable():
    """A run timed while the machine was busy has a wide interval (measured: +-16% to +-300%); its
    median says how busy the machine was. Left out; with none steady on a side: not comparable."""
    base = seeds(cells=("s/a",))
    busy = current(cells=("s/a",), acc=(0.9,), sps=300.0, width=0.4)
    row = compare.compare(base, busy, compare.settings(None))
    row = row[row["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "not comparable" and row["why"] == "timing unsteady"
    assert row["reason"].startswith("timing unsteady in every current run: the 95% interval of samples/s is wider "
                                    "than +-7%") and row["current"] == pytest.approx(297.0)
    mixed = pd.concat([base.assign(samples_per_s_ci_lo=float("nan")).head(3), base.iloc[3:]])
    row = compare.compare(mixed, current(cells=("s/a",), acc=(0.9,), sps=900.0), compare.settings(None))
    row = row[row["metric"] == "samples_per_s"].iloc[0]
    assert row["n_baseline"] == 7 and row["verdict"] == "regression"      # 3 runs without an interval left out


@pytest.mark.parametrize("column, value, message", [
    ("samples_per_s", 0.0, "samples_per_s '0.0': allowed: a finite number > 0, or empty"),
    ("samples_per_s", -5.0, "samples_per_s '-5.0': allowed: a finite number > 0"),
    ("samples_per_s", float("inf"), "samples_per_s 'inf': allowed: a finite number > 0"),
    ("final_val_accuracy", 2.5, "final_val_accuracy '2.5': allowed: a number in [0, 1]"),
    ("train_s", float("inf"), "train_s 'inf': allowed: a finite number >= 0"),
])
def test_the_per_seed_tables_are_read_with_the_ranges_of_their_columns(tmp_path, column, value, message):
    """A hand-edited runs.csv or seeds.csv with a value of the right type but out of range was compared
    (samples/s of 0 dropped the speed row and passed; an accuracy of 2.5 was an improvement)."""
    path = write_tables(tmp_path, current().assign(**{column: [value] + [1.0] * 5}))
    with pytest.raises(SweepbenchError, match=f"line 2: {re.escape(message)}"):
        compare.read_seed_table(path)


def test_a_side_without_any_samples_per_s_is_not_comparable_never_silently_dropped():
    cur = current(cells=("s/a",)).assign(samples_per_s=float("nan"))
    row = compare.compare(seeds(cells=("s/a",)), cur, compare.settings(None))
    row = row[row["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "not comparable" and row["reason"] == "no samples_per_s measured in any current run"


def test_a_timing_rule_on_one_side_only_says_the_quality_is_not_compared():
    """One hand-edited baseline row with timing_ci > 0 dropped every quality row of its cell silently."""
    base = seeds(cells=("s/a",))
    base.loc[0, "timing_ci"] = 0.01
    table = compare.compare(base, current(cells=("s/a",), acc=(0.5, 0.5, 0.5)), compare.settings(None))
    row = table[table["metric"] == "*"].iloc[0]
    assert row["verdict"] == "not comparable" and row["why"] == "timing rule differs"
    assert "timing_ci [0.0, 0.01] in the baseline, [0.0] now" in row["reason"]


def test_timing_runs_compare_their_speed_only():
    """A timing run (timing_ci > 0) stops when its clock is known: its steps, so its quality, vary."""
    table = compare.compare(seeds(timing_ci=0.01), current(timing_ci=0.01, acc=(0.5, 0.5, 0.5)),
                            compare.settings(None))
    assert set(table["metric"]) == {"samples_per_s"} and set(table["verdict"]) == {"pass"}


def test_runs_too_short_to_time_are_not_compared_for_speed():
    table = compare.compare(seeds(train_s=0.05), current(sps=500.0, train_s=0.05), compare.settings(None))
    row = table[table["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "not comparable" and "too short to time" in row["reason"]


def test_a_cell_that_now_diverges_in_every_seed_is_a_regression():
    cur = pd.concat([current(cells=("s/a",)), current(cells=("s/b",), status="diverged", reached=False)])
    v = verdicts(compare.compare(seeds(), cur, compare.settings(None)))
    assert v[("s/b", "diverged")] == "regression" and v[("s/b", "target_reached")] == "regression"
    assert ("s/b", "final_val_accuracy") not in v                  # diverged seeds have no accuracy to compare


def test_missing_cells_on_either_side_are_listed():
    table = compare.compare(seeds(cells=("s/a", "s/b")), current(cells=("s/a", "s/c")), compare.settings(None))
    assert set(table[table["verdict"] == "missing"]["cell"]) == {"s/b", "s/c"}


def test_config_tolerances_override_defaults():
    cur = current(acc=(0.85, 0.86, 0.84))
    loose = compare.settings({"abs_tol": {"final_val_accuracy": 0.1, "best_val_accuracy": 0.1,
                                        "final_val_loss": 0.1, "best_val_loss": 0.1}})
    assert verdicts(compare.compare(seeds(), cur, loose))[("s/a", "final_val_accuracy")] == "pass"


def write_tables(tmp_path, df, name="tables"):
    os.makedirs(tmp_path / name, exist_ok=True)
    df.assign(git_commit="abc").to_csv(tmp_path / name / "runs.csv", index=False)
    return str(tmp_path / name / "runs.csv")


def cli_check(tmp_path, tables_csv, root, out="c", capsys=None):
    """`sweepbench check` in a fresh process, or in this one (faster) when given capsys."""
    args = ["check", "--baseline", "ref", "--tables", os.path.dirname(tables_csv), "--root", root,
            "--out", str(tmp_path / out), "--plan", str(tmp_path / "no-plan.json")]  # not the checkout's results/
    if capsys is None:
        return run_cli(*args)
    capsys.readouterr()
    code = cli.main(args)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.fixture
def saved(tmp_path):
    """A baseline 'ref' of 10 seeds per cell under tmp_path/baselines; returns the root."""
    root = str(tmp_path / "baselines")
    compare.save_baseline("ref", os.path.dirname(write_tables(tmp_path, seeds(), "base")), root)
    return root


def test_cli_pass_regression_unknown_exit_codes_and_files(tmp_path, saved, capsys):
    ok = cli_check(tmp_path, write_tables(tmp_path, current(), "now"), saved, "c1")   # a real process
    assert ok.returncode == 0 and ok.stdout.startswith("PASS against baseline 'ref' (10 seeds per cell)"), ok.stderr
    bad = cli_check(tmp_path, write_tables(tmp_path, current(acc=(0.80, 0.81, 0.79)), "bad"), saved, "c2", capsys)
    assert bad.returncode == 1 and "REGRESSION" in bad.stdout and "s/a final_val_accuracy" in bad.stdout
    assert list(pd.read_csv(tmp_path / "c2" / "check.csv").columns) == compare.CHECK_COLUMNS
    summary = json.load(open(tmp_path / "c2" / "summary.json"))
    assert summary["passed"] is False and summary["baseline_made"]["seeds"] == {"s": list(range(10))}
    assert cli.main(["check", "--baseline", "nope", "--tables", str(tmp_path / "now"), "--root", saved,
                     "--plan", str(tmp_path / "no-plan.json"), "--out", str(tmp_path / "c3")]) == 2
    unknown = capsys.readouterr()
    assert "unknown baseline 'nope'; allowed: ref" in unknown.err



def test_check_out_replaces_its_own_files_and_refuses_a_users_check_csv_untouched(tmp_path, saved, capsys):
    """`check --out X` overwrote whatever X/check.csv was, a user's own file of that name included."""
    now = write_tables(tmp_path, current(), "now")
    assert cli_check(tmp_path, now, saved, "c", capsys).returncode == 0
    assert cli_check(tmp_path, now, saved, "c", capsys).returncode == 0          # its own earlier output: replaced
    os.makedirs(tmp_path / "mine")
    (tmp_path / "mine" / "check.csv").write_text("my,own\n1,2\n")
    history = (tmp_path / "history.csv").read_text()
    for no_fail in ([], ["--no-fail"]):                                           # --no-fail: no "not run" files there
        assert cli.main(["check", "--baseline", "ref", "--tables", str(tmp_path / "now"), "--root", saved, "--out",
                         str(tmp_path / "mine"), "--plan", str(tmp_path / "no-plan.json"), *no_fail]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(
            f"sweepbench check: error: bad --out '{tmp_path}/mine': it holds check.csv, which sweepbench did not write")
    assert os.listdir(tmp_path / "mine") == ["check.csv"] and (tmp_path / "mine" / "check.csv").read_text() == \
        "my,own\n1,2\n"
    assert (tmp_path / "history.csv").read_text() == history                      # no entry for a refused check


def test_baseline_save_replaces_its_own_files_and_refuses_a_folder_with_others(tmp_path, saved):
    """`baseline save NAME` replaced the whole folder: a NOTES.md beside the tables was lost."""
    tables = os.path.dirname(write_tables(tmp_path, seeds(), "again"))
    assert compare.save_baseline("ref", tables, saved) == os.path.join(saved, "ref")   # its own files: replaced
    notes = tmp_path / "baselines" / "ref" / "NOTES.md"
    notes.write_text("why this baseline")
    before = {f: open(os.path.join(saved, "ref", f), "rb").read() for f in os.listdir(os.path.join(saved, "ref"))}
    with pytest.raises(SweepbenchError, match=r"bad baseline folder '.*ref': it holds files sweepbench did not "
                                              r"write \(NOTES.md\), left untouched"):
        compare.save_baseline("ref", tables, saved)
    assert {f: open(os.path.join(saved, "ref", f), "rb").read() for f in os.listdir(os.path.join(saved, "ref"))} \
        == before

def test_baseline_save_recognises_its_folder_by_its_written_list_not_by_file_names(tmp_path, saved):
    """A user's own folder holding a seeds.csv (or meta.json) was replaced: the names were all it checked."""
    from sweepbench.atomic import WRITTEN, written

    tables = os.path.dirname(write_tables(tmp_path, seeds(), "again"))
    assert set(written(os.path.join(saved, "ref"))) == set(compare.BASELINE_FILES)
    mine = tmp_path / "baselines" / "mine"
    os.makedirs(mine)
    (mine / "seeds.csv").write_text("my,own\n1,2\n")
    with pytest.raises(SweepbenchError, match=r"bad baseline folder '.*mine': it holds files sweepbench did not "
                                              r"write \(seeds.csv\)"):
        compare.save_baseline("mine", tables, saved)
    assert os.listdir(mine) == ["seeds.csv"] and (mine / "seeds.csv").read_text() == "my,own\n1,2\n"
    seeds_csv = tmp_path / "baselines" / "ref" / "seeds.csv"
    seeds_csv.write_text(seeds_csv.read_text() + "\n")                   # sweepbench's, edited since: not its own
    with pytest.raises(SweepbenchError, match=r"\(seeds.csv\)"):
        compare.save_baseline("ref", tables, saved)
    os.remove(tmp_path / "baselines" / "ref" / WRITTEN)                   # a baseline of an older sweepbench:
    assert compare.save_baseline("ref", tables, saved)                   # recognised by its meta.json
    assert set(written(os.path.join(saved, "ref"))) == set(compare.BASELINE_FILES)


def test_baseline_save_never_replaces_a_folder_another_output_wrote(tmp_path):
    """`baseline save tables --root results` deleted every table, the runs.csv it had just read too."""
    from sweepbench.atomic import write_own

    tables = tmp_path / "results" / "tables"
    write_own(str(tables), {"runs.csv": seeds().to_csv(index=False), "seeds.csv": "a\n1\n"}, "--out")
    before = {f: (tables / f).read_bytes() for f in os.listdir(tables)}
    with pytest.raises(SweepbenchError, match="bad baseline folder"):
        compare.save_baseline("tables", str(tables), str(tmp_path / "results"))
    assert {f: (tables / f).read_bytes() for f in os.listdir(tables)} == before


def test_baseline_meta_records_how_it_was_made(saved):
    meta = json.load(open(os.path.join(saved, "ref", "meta.json")))
    assert meta["runs"] == 20 and meta["smoke"] is False and meta["seeds"] == {"s": list(range(10))}
    assert (meta["torch"] == ["2.x"] and meta["git_commit"] == ["abc"] and meta["cpu"]
            and meta["remake"] == "make baseline")


def corrupt(path, fn):
    lines = open(path).read().splitlines(keepends=True)
    open(path, "w").write("".join(fn(lines)))


@pytest.mark.parametrize("edit, message", [
    (lambda ls: [ls[0], ls[1].replace(",0.901,", ",abc,", 1)] + ls[2:],
     "line 2: final_val_accuracy 'abc': allowed: a number in [0, 1]"),
    (lambda ls: ls[:-1] + [ls[-1][:30]], "does not end with a newline (cut off?)"),
    (lambda ls: ls[:-1] + [ls[-1][:30] + "\n"], "fields, the header has"),
    (lambda ls: [ls[0].replace("status", "stat")] + ls[1:], "columns ['status'] missing"),
    (lambda ls: [ls[0], ls[1].replace("completed", "garbage")] + ls[2:],
     "line 2: status 'garbage'; allowed: completed"),
    (lambda ls: ls + [ls[1]], "appears twice"),
    (lambda ls: [ls[0], ls[1].replace(",False,", ",maybe,", 1)] + ls[2:], "smoke 'maybe'; allowed: True, False"),
])
def test_corrupt_current_tables_exit_2_naming_file_and_line(tmp_path, saved, edit, message, capsys):
    path = write_tables(tmp_path, current(), "now")
    corrupt(path, edit)
    proc = cli_check(tmp_path, path, saved, capsys=capsys)
    assert proc.returncode == 2 and message in proc.stderr and "runs.csv" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not os.path.exists(tmp_path / "c" / "check.csv")


def test_corrupt_baseline_exit_2(tmp_path, saved, capsys):
    now = write_tables(tmp_path, current(), "now")
    seeds_csv = os.path.join(saved, "ref", "seeds.csv")
    corrupt(seeds_csv, lambda ls: ls[:-3])                                    # cut at a line boundary
    proc = cli_check(tmp_path, now, saved, capsys=capsys)
    assert proc.returncode == 2 and "seeds.csv has 17 rows, meta.json says 20" in proc.stderr
    corrupt(seeds_csv, lambda ls: [ls[0], ls[1].replace(",True,", ",1.5,", 1)] + ls[2:])
    proc = cli_check(tmp_path, now, saved, capsys=capsys)
    assert proc.returncode == 2 and "seeds.csv line 2: target_reached '1.5'" in proc.stderr
    open(os.path.join(saved, "ref", "meta.json"), "w").write("{not json")
    proc = cli_check(tmp_path, now, saved, capsys=capsys)
    assert proc.returncode == 2 and "corrupt baseline" in proc.stderr and "meta.json" in proc.stderr


def test_smoke_results_and_real_baseline_are_refused_both_ways(tmp_path, saved, capsys):
    proc = cli_check(tmp_path, write_tables(tmp_path, current(smoke=True), "smoke"), saved)  # a real process
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "refusing to compare smoke results" in proc.stderr and "real baseline 'ref'" in proc.stderr
    compare.save_baseline("ref", os.path.dirname(write_tables(tmp_path, seeds(smoke=True), "sb")), saved)
    proc = cli_check(tmp_path, write_tables(tmp_path, current(), "real"), saved, capsys=capsys)
    assert (proc.returncode == 2 and "refusing to compare real results" in proc.stderr
            and "smoke baseline" in proc.stderr)


def test_no_fail_records_why_the_check_did_not_run(tmp_path, saved, capsys):
    assert cli.main(["check", "--baseline", "ref", "--tables", str(tmp_path / "none"), "--root", saved,
                     "--out", str(tmp_path / "c"), "--no-fail", "--plan", str(tmp_path / "no-plan.json")]) == 0
    proc = capsys.readouterr()
    assert proc.out.startswith("not run against baseline 'ref': no current tables")
    assert json.load(open(tmp_path / "c" / "summary.json"))["passed"] is None


def test_foreign_baseline_is_a_clear_error(tmp_path, saved):
    other = current().assign(study="t", cell=lambda d: "t/" + d["cell"])
    with pytest.raises(SweepbenchError, match="shares no cell"):
        compare.run_check("ref", os.path.dirname(write_tables(tmp_path, other, "other")), str(tmp_path / "c"), None,
                          saved)


def test_each_continuous_row_has_the_95_percent_interval_of_its_change_and_every_row_its_why():
    cur = pd.concat([current(cells=("s/a",)), current(cells=("s/b",), acc=(0.85, 0.86, 0.84))])
    table = compare.compare(seeds(), cur, compare.settings(None)).set_index(["cell", "metric"])
    drop = table.loc[("s/b", "final_val_accuracy")]
    assert drop["ci_lo"] < drop["delta"] < drop["ci_hi"] < -0.03            # the whole interval is a drop
    same = table.loc[("s/a", "final_val_accuracy")]
    assert same["ci_lo"] < 0 < same["ci_hi"] and same["ci_hi"] - same["ci_lo"] < 0.03
    steps = table.loc[("s/a", "steps_to_target")]                          # log scale, shown as a change in steps
    assert steps["ci_lo"] < steps["delta"] < steps["ci_hi"] and abs(steps["ci_hi"]) < 10
    assert table.loc[("s/a", "diverged"), ["ci_lo", "ci_hi"]].isna().all()   # binary: no interval
    assert drop["why"] == "final val accuracy worse" and same["why"] == "within the effect floor"
    assert table.loc[("s/a", "diverged"), "why"] == "seed counts not significantly worse"
    assert table.loc[("s/a", "samples_per_s"), "why"] == "speed within the effect floor"
    speed = table.loc[("s/a", "samples_per_s")]                             # log scale, shown in samples/s
    assert speed["ci_lo"] < speed["delta"] < speed["ci_hi"]
    other = compare.compare(seeds(), current(device="cpu-y"), compare.settings(None))
    assert set(other[other["metric"] == "samples_per_s"]["why"]) == {"different device"}
    gone = compare.compare(seeds(), current(cells=("s/a",)), compare.settings(None))
    assert gone[gone["cell"] == "s/b"]["why"].tolist() == ["cell only in the baseline"]


@pytest.mark.parametrize("row, expected", [
    ({"metric": "final_val_accuracy", "threshold": 0.01, "delta": -0.03, "ci_lo": -0.04, "ci_hi": -0.02},
     (3.0, 2.0, 4.0)),                                                     # accuracy down 3 floors: worse
    ({"metric": "final_val_loss", "threshold": 0.02, "delta": -0.01, "ci_lo": -0.03, "ci_hi": 0.01},
     (-0.5, -1.5, 0.5)),                                                   # loss down: better
    ({"metric": "samples_per_s", "threshold": 50.0, "baseline": 1000.0, "delta": -500.0, "ci_lo": -600.0,
      "ci_hi": -400.0}, (10.0, 8.0, 12.0)),                                # half the speed, floor 5% of 1000
    ({"metric": "diverged", "threshold": 0.0, "delta": 0.5}, (None, None, None)),   # no floor
])
def test_change_in_floors_turns_a_row_into_effect_floors_worse_positive(row, expected):
    got = compare.change_in_floors(row)
    assert [None if g != g else pytest.approx(g) for g in got] == list(expected)


# ---------------------------------------------------------------- the environment line (requirements.lock)

def locked_tables(tmp_path, df, lock, name):
    """runs.csv whose runs had this env_lock (runs.csv's column: a hash, '<hash> (with changes)', 'not locked')."""
    return write_tables(tmp_path, df.assign(env_lock=lock), name)


def test_baseline_records_the_lock_and_its_versions_and_the_same_lock_prints_no_environment_line(tmp_path, capsys):
    from sweepbench import envlock

    digest, pins = envlock.read_lock()  # the clone's requirements.lock
    root = str(tmp_path / "baselines")
    compare.save_baseline("ref", os.path.dirname(locked_tables(tmp_path, seeds(), digest, "base")), root)
    meta = json.load(open(os.path.join(root, "ref", "meta.json")))
    assert meta["env_lock"] == [digest] and meta["env_packages"] == dict(pins.values())
    assert meta["env_packages"]["torch"] == pins["torch"][1]
    same = cli_check(tmp_path, locked_tables(tmp_path, current(), digest, "now"), root, "c1", capsys)
    assert same.returncode == 0 and same.stdout.startswith("PASS against baseline 'ref'"), same.stdout
    assert json.load(open(tmp_path / "c1" / "summary.json"))["environment"] is None
    assert json.load(open(tmp_path / "c1" / "summary.json"))["baseline_made"]["env_lock"] == [digest]


def test_another_lock_is_named_in_one_line_before_the_verdict_and_in_the_summary(tmp_path, capsys):
    root = str(tmp_path / "baselines")
    compare.save_baseline("ref", os.path.dirname(locked_tables(tmp_path, seeds(torch="2.15.0"), "0f9e8d7c6b5a",
                                                                "base")), root)
    assert json.load(open(os.path.join(root, "ref", "meta.json")))["env_packages"] is None  # not the clone's lock
    other = cli_check(tmp_path, locked_tables(tmp_path, current(torch="2.14.1"), "a1b2c3d4e5f6", "now"), root, "c",
                      capsys)
    line = ("environment differs from the baseline's: lock a1b2c3d4e5f6 (these results) vs 0f9e8d7c6b5a (baseline): "
            "torch 2.14.1 vs 2.15.0")
    assert other.stdout.splitlines()[0] == line and other.stdout.splitlines()[1].startswith(("PASS", "REGRESSION"))
    assert json.load(open(tmp_path / "c" / "summary.json"))["environment"] == line


def test_environment_line_says_may_differ_when_a_side_was_not_locked_or_unknown(tmp_path):
    now = os.path.dirname(locked_tables(tmp_path, current(), "not locked", "now"))
    meta = {"env_lock": ["a1b2c3d4e5f6"], "torch": ["2.x"]}
    assert compare.environment_line(meta, now) == ("environment may differ from the baseline's: lock not locked "
                                                   "(these results) vs a1b2c3d4e5f6 (baseline)")
    drifted = os.path.dirname(locked_tables(tmp_path, current(), "a1b2c3d4e5f6 (with changes)", "drift"))
    assert compare.environment_line(meta, drifted).startswith(
        "environment may differ from the baseline's: lock a1b2c3d4e5f6 (with changes) (these results)")
    old = os.path.dirname(write_tables(tmp_path, current(), "old"))  # tables and a baseline from before env_lock
    assert compare.environment_line({"torch": ["2.x"]}, old) is None
    assert compare.environment_line({"torch": ["2.15.0"]}, old) == (
        "environment differs from the baseline's: lock unknown (these results) vs unknown (baseline): "
        "torch 2.x vs 2.15.0")


def test_package_changes_name_torch_first_then_the_rest_by_name_four_at_most():
    now = {"torch": "2.14.1", "numpy": "2.4.6", "scipy": "1.17.1", "a": "1", "b": "1", "c": "1", "PyYAML": "6.0.4"}
    base = {"torch": "2.15.0", "numpy": "2.4.5", "scipy": "1.17.1", "pyyaml": "6.0.4", "d": "2"}
    assert compare.package_changes(now, base, ("x", "y")) == "torch 2.14.1 vs 2.15.0, a 1 vs none, b 1 vs none, " \
                                                              "c 1 vs none, +2 more"
    assert compare.package_changes({"torch": "2.14.1"}, {"torch": "2.14.1"}, ("x", "x")) == ""
    assert compare.package_changes(None, base, ("2.14.1", "2.15.0")) == "torch 2.14.1 vs 2.15.0"
