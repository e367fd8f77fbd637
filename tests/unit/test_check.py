import json
import math
import os
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import run_cli
from sweepbench import SweepbenchError, analysis, check, cli
from sweepbench.analysis import Comparison, regression_test

# ---------------------------------------------------------------- the decision rule (analysis.regression_test)


def test_pooled_t_matches_scipy_one_sided_student_t():
    b, c = [0.90, 0.91, 0.89, 0.905, 0.895], [0.88, 0.89, 0.87]
    t = analysis.pooled_t(b, c, higher_is_better=True)
    assert t["p_worse"] == pytest.approx(stats.ttest_ind(c, b, equal_var=True, alternative="less").pvalue)
    assert t["p_better"] == pytest.approx(stats.ttest_ind(c, b, equal_var=True, alternative="greater").pvalue)
    assert t["df"] == 6 and t["delta"] == pytest.approx(-0.02)
    loss = analysis.pooled_t(b, c, higher_is_better=False)          # lower loss is better: the same data improves
    assert loss["p_better"] == pytest.approx(t["p_worse"])


def test_pooled_t_one_current_seed_uses_the_baseline_spread_and_one_seed_each_side_cannot_test():
    t = analysis.pooled_t([1.0, 2.0, 3.0], [0.0], higher_is_better=True)
    assert t["df"] == 2 and t["sd"] == pytest.approx(1.0) and t["p_worse"] == pytest.approx(stats.t.sf(2 / math.sqrt(4 / 3), 2))
    assert math.isnan(analysis.pooled_t([1.0], [0.5], True)["p_worse"])


def test_pooled_t_without_any_spread_is_certain_either_way():
    assert analysis.pooled_t([5.0] * 4, [5.0] * 3, True)["p_worse"] == 1.0
    assert analysis.pooled_t([5.0] * 4, [4.0] * 3, True)["p_worse"] == 0.0


def test_holm_adjustment():
    q = analysis.holm_adjust([0.01, 0.04, 0.03, math.nan, 0.5, 0.012])
    # sorted p 0.01, 0.012, 0.03, 0.04, 0.5 with m = 5 -> 0.05, 0.048 -> 0.05 (monotone), 0.09, 0.09 -> 0.09, 0.5
    assert q[0] == pytest.approx(0.05) and q[5] == pytest.approx(0.05) and q[2] == pytest.approx(0.09)
    assert q[1] == pytest.approx(0.09) and math.isnan(q[3]) and q[4] == pytest.approx(0.5)


def test_fisher_one_sided_matches_scipy():
    for bad_b, bad_c in [(0, 3), (1, 2), (3, 1), (0, 0), (10, 3)]:
        table = [[bad_c, 3 - bad_c], [bad_b, 10 - bad_b]]
        want = stats.fisher_exact(table, alternative="greater").pvalue
        assert analysis.fisher_worse(bad_b, 10, bad_c, 3) == pytest.approx(want)


def test_tarone_counts_only_comparisons_that_could_be_significant():
    assert analysis.tarone_k([0.0035, 1.0, 1.0, 1.0, 0.5], 0.025) == 1
    assert analysis.tarone_k([0.001, 0.002, 0.003, 1.0], 0.025) == 3
    assert analysis.tarone_k([], 0.025) == 1


def test_binary_mde_from_the_exact_binomial_power():
    # 0 of 10 baseline seeds bad; with 3 current seeds only all 3 bad is significant at 0.025 (p = 1/286)
    mde, n = analysis.binary_mde(0, 10, 3, 0.025)
    assert mde == pytest.approx(0.8 ** (1 / 3)) and n == 3
    mde, n = analysis.binary_mde(0, 10, 1, 0.025)                  # one seed can never be significant
    assert math.isnan(mde) and n == 2                                # 2 of 2 bad: p = 1/66


def continuous(cell, base, cur, tol=0.01, higher=True, metric="final_val_accuracy"):
    return Comparison(cell, metric, np.asarray(base, float), np.asarray(cur, float), higher, tolerance=tol)


def binary(cell, base, cur, metric="diverged"):
    return Comparison(cell, metric, np.asarray(base, float), np.asarray(cur, float), metric == "target_reached",
                      binary=True)


def null_family(n_cells, seed=0, sd=0.005):
    """n_cells stable cells, 10 baseline and 3 current seeds from the same distribution, both outcomes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_cells):
        out += [continuous(f"c{i}", rng.normal(0.9, sd, 10), rng.normal(0.9, sd, 3)),
                binary(f"c{i}", [0] * 10, [0] * 3), binary(f"c{i}", [1] * 10, [1] * 3, "target_reached")]
    return out


def verdict_of(comps, results, cell, metric):
    return next(r for c, r in zip(comps, results) if c.cell == cell and c.metric == metric)


def test_unchanged_distribution_passes_everywhere():
    comps = null_family(100)
    assert {r["verdict"] for r in regression_test(comps, 0.05, 1.0)} == {"pass"}


def test_multiple_comparison_step_keeps_a_lone_borderline_p_value_from_failing_the_check():
    rng = np.random.default_rng(1)
    base = rng.normal(0.9, 0.01, 10)
    cur = base.mean() - 0.015 + np.array([-0.004, 0.0, 0.004])      # p 0.0019, 1.5 points worse
    alone = regression_test([continuous("x", base, cur)], 0.05, 1.0)[0]
    assert alone["verdict"] == "regression" and alone["p_adjusted"] == pytest.approx(alone["p_value"])
    comps = null_family(200) + [continuous("x", base, cur)]
    row = regression_test(comps, 0.05, 1.0)[-1]
    assert row["p_value"] == pytest.approx(alone["p_value"]) and row["p_adjusted"] > 0.025 and row["verdict"] == "pass"


def test_five_point_drop_in_one_stable_cell_among_many_is_a_regression():
    comps = null_family(150)
    rng = np.random.default_rng(2)
    comps.append(continuous("drop", rng.normal(0.9, 0.005, 10), rng.normal(0.85, 0.005, 3)))
    results = regression_test(comps, 0.05, 1.0)
    assert [c.cell for c, r in zip(comps, results) if r["verdict"] == "regression"] == ["drop"]
    assert "worse by" in results[-1]["reason"] and "Holm-adjusted" in results[-1]["reason"]


def test_two_point_drop_in_every_cell_is_caught_in_most_cells():
    rng = np.random.default_rng(3)
    comps = [continuous(f"c{i}", rng.normal(0.9, 0.005, 10), rng.normal(0.88, 0.005, 3)) for i in range(100)]
    assert sum(r["verdict"] == "regression" for r in regression_test(comps, 0.05, 1.0)) >= 90


def test_a_cell_that_now_diverges_in_every_seed_is_a_regression_among_many_stable_cells():
    comps = null_family(150) + [binary("boom", [0] * 10, [1] * 3)]
    results = regression_test(comps, 0.05, 1.0)
    row = results[-1]
    assert row["verdict"] == "regression" and row["p_value"] == pytest.approx(1 / 286)
    assert row["p_adjusted"] == pytest.approx(1 / 286)                # Tarone: the only testable table
    assert "0 of 10 baseline seeds diverged, 3 of 3 now" in row["reason"]
    assert sum(r["verdict"] == "regression" for r in results) == 1


def test_one_seed_newly_diverging_or_missing_the_target_is_not_a_regression():
    comps = null_family(20) + [binary("one", [0] * 10, [1, 0, 0]),
                               binary("miss", [1] * 10, [1, 1, 0], "target_reached")]
    results = regression_test(comps, 0.05, 1.0)
    assert results[-2]["verdict"] == "pass" and results[-1]["verdict"] == "pass"
    assert results[-1]["p_value"] == pytest.approx(3 / 13)


def test_effect_floor_tolerance_and_seed_spread():
    tiny = regression_test([continuous("t", [0.9] * 10, [0.8999] * 3)], 0.05, 1.0)[0]
    assert tiny["p_value"] == 0.0 and tiny["verdict"] == "pass" and tiny["threshold"] == 0.01   # below the tolerance
    rng = np.random.default_rng(4)
    base = rng.normal(0.9, 0.03, 30)                                  # noisy cell: sd 3 points
    cur = base.mean() - 0.02 + np.array([-0.001, 0, 0.001] * 10)      # 2 points worse, significant with 30 seeds
    row = regression_test([continuous("n", base, cur)], 0.05, 1.0)[0]
    assert row["p_value"] < 0.01 and row["threshold"] == pytest.approx(base.std(ddof=1))
    assert row["verdict"] == "pass"                                    # smaller than the seeds' own spread
    assert regression_test([continuous("n", base, cur)], 0.05, 0.5)[0]["verdict"] == "regression"


def test_improvement_is_the_mirror_image():
    rng = np.random.default_rng(5)
    row = regression_test([continuous("u", rng.normal(0.9, 0.005, 10), rng.normal(0.95, 0.005, 3))], 0.05, 1.0)[0]
    assert row["verdict"] == "improvement" and row["p_value"] > 0.99
    loss = regression_test([continuous("l", [1.0, 1.01, 0.99] * 3, [0.8, 0.81, 0.79], 0.02, False, "final_val_loss")],
                           0.05, 1.0)[0]
    assert loss["verdict"] == "improvement"


def test_cell_whose_baseline_seeds_disagree_is_unstable_with_the_evidence_needed():
    base_reached = [1] * 6 + [0] * 4
    comps = [binary("edge", base_reached, [0, 0, 0], "target_reached"),
             continuous("edge", np.linspace(0.94, 0.96, 10), [0.95, 0.945, 0.955])]
    results = regression_test(comps, 0.05, 1.0)
    assert [r["verdict"] for r in results] == ["unstable", "unstable"]
    assert "6 of 10 baseline seeds reached the target" in results[0]["reason"]
    assert results[0]["seeds_needed"] == 7 and "7 current seeds all bad would be significant" in results[0]["reason"]


def test_continuous_metrics_of_an_unstable_cell_never_fail_the_check():
    comps = [binary("edge", [1] * 6 + [0] * 4, [1, 1, 1], "target_reached"),
             continuous("edge", np.linspace(0.94, 0.96, 10), [0.80, 0.81, 0.80])]
    row = regression_test(comps, 0.05, 1.0)[1]
    assert row["verdict"] == "unstable" and row["p_adjusted"] < 0.01 and "not tested" in row["reason"]


def test_steps_to_target_are_tested_on_a_log_scale():
    base = [100, 110, 120, 130, 150, 170, 200, 240, 300, 400]            # right-skewed, as steps are
    comp = Comparison("s", "steps_to_target", np.array(base, float), np.array([400.0, 420, 390]), False,
                      tolerance=0.1 * np.mean(base), log_scale=True)
    row = regression_test([comp], 0.05, 1.0)[0]
    want = stats.ttest_ind(np.log([400, 420, 390]), np.log(base), alternative="greater").pvalue
    assert row["test"] == "t (pooled, log)" and row["p_value"] == pytest.approx(want)
    assert row["delta"] == pytest.approx(np.mean([400, 420, 390]) - np.mean(base))    # reported in steps
    floor_log = max(math.log1p(0.1), np.std(np.log(base), ddof=1))      # tolerance 10% or one sd of log steps
    assert row["threshold"] == pytest.approx(np.mean(base) * math.expm1(floor_log))


def test_unstable_cell_still_fails_on_a_significant_change():
    comps = [binary("edge", [1] * 9 + [0], [0] * 3, "target_reached")]  # 1 of 10 missed -> 3 of 3 now (p 1/78)
    assert regression_test(comps, 0.05, 1.0)[0]["verdict"] == "regression"


def test_mde_and_seeds_needed():
    rng = np.random.default_rng(6)
    comps = [continuous("q", rng.normal(0.9, 0.004, 10), rng.normal(0.9, 0.004, 3)),
             continuous("n", rng.normal(0.9, 0.015, 10), rng.normal(0.9, 0.015, 1))]
    quiet, noisy = regression_test(comps, 0.05, 0.5)
    assert 0.01 <= quiet["mde"] < 0.02 and math.isnan(quiet["seeds_needed"])
    assert noisy["mde"] > 0.02 and noisy["seeds_needed"] > 1 and "current seeds would bring it to 0.02" in noisy["reason"]
    n = int(noisy["seeds_needed"])
    t = analysis.pooled_t(comps[1].baseline, np.full(n, 0.9), True)     # with that many seeds the mde is <= 0.02
    sd_pooled = np.std(comps[1].baseline, ddof=1) * math.sqrt(9 / (10 + n - 2))
    assert analysis.t_mde(sd_pooled * math.sqrt(1 / 10 + 1 / n), t["df"], 0.025 / 2, 0.01) <= 0.0201


def test_one_seed_on_each_side_is_not_comparable():
    row = regression_test([continuous("s", [0.9], [0.7])], 0.05, 1.0)[0]
    assert row["verdict"] == "not comparable" and "make baseline" in row["reason"]


# ---------------------------------------------------------------- check.compare and the command


def seeds(cells=("s/a", "s/b"), acc=(0.90, 0.91, 0.89, 0.905, 0.895, 0.9, 0.902, 0.898, 0.893, 0.907),
          sps=1000.0, device="cpu-x", torch="2.x", status="completed", reached=True, train_s=5.0, smoke=False,
          batched=1, seed0=0):
    rows = []
    for cell in cells:
        for i, a in enumerate(acc):
            rows.append({"study": "s", "cell": cell, "seed": seed0 + i, "status": status, "target": 0.8,
                         "target_reached": reached, "smoke": smoke, "batched_runs": batched, "train_s": train_s,
                         "device_name": device, "torch": torch, "final_val_accuracy": a, "best_val_accuracy": a + 0.01,
                         "final_val_loss": 1 - a, "best_val_loss": 0.9 - a, "steps_to_target": 100 + i % 3,
                         "samples_to_target": 3200 + 32 * (i % 3), "samples_per_s": sps * (1 + 0.01 * (i % 3 - 1)),
                         "step_time_median_s": 32 / sps})
    return pd.DataFrame(rows)


def current(**kw):
    kw.setdefault("acc", (0.901, 0.899, 0.90))
    return seeds(seed0=100, **kw)


def verdicts(table):
    return {(r.cell, r.metric): r.verdict for r in table.itertuples()}


def test_identical_distribution_passes_with_every_row_and_column():
    table = check.compare(seeds(), current(), check.settings(None))
    assert list(table.columns) == check.CHECK_COLUMNS
    assert set(table["verdict"]) == {"pass"} and len(table) == 2 * (2 + 6 + 2)
    acc = table[(table["cell"] == "s/a") & (table["metric"] == "final_val_accuracy")].iloc[0]
    assert acc["n_baseline"] == 10 and acc["n_current"] == 3 and acc["test"] == "t (pooled)" and acc["mde"] > 0.01


def test_five_point_accuracy_drop_in_one_cell_is_caught_and_named():
    cur = pd.concat([current(cells=("s/a",)), current(cells=("s/b",), acc=(0.85, 0.86, 0.84))])
    table = check.compare(seeds(), cur, check.settings(None))
    v = verdicts(table)
    assert v[("s/b", "final_val_accuracy")] == "regression" and v[("s/a", "final_val_accuracy")] == "pass"
    row = table[(table["cell"] == "s/b") & (table["metric"] == "final_val_accuracy")].iloc[0]
    assert row["delta"] == pytest.approx(-0.05, abs=1e-3) and row["p_adjusted"] < 0.025


def test_throughput_down_20_percent_same_device_caught_other_device_or_batch_not_comparable():
    v = verdicts(check.compare(seeds(), current(sps=800.0), check.settings(None)))
    assert v[("s/a", "samples_per_s")] == "regression" and v[("s/a", "step_time_median_s")] == "regression"
    table = check.compare(seeds(), current(sps=800.0, device="cpu-y"), check.settings(None))
    row = table[table["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "not comparable" and "cpu-x" in row["reason"]
    table = check.compare(seeds(batched=10), current(sps=800.0, batched=3), check.settings(None))
    row = table[table["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "not comparable" and "runs trained together in a stack [10] vs [3]" in row["reason"]


def test_runs_too_short_to_time_are_not_compared_for_speed():
    table = check.compare(seeds(train_s=0.05), current(sps=500.0, train_s=0.05), check.settings(None))
    row = table[table["metric"] == "samples_per_s"].iloc[0]
    assert row["verdict"] == "not comparable" and "too short to time" in row["reason"]


def test_a_cell_that_now_diverges_in_every_seed_is_a_regression():
    cur = pd.concat([current(cells=("s/a",)), current(cells=("s/b",), status="diverged", reached=False)])
    v = verdicts(check.compare(seeds(), cur, check.settings(None)))
    assert v[("s/b", "diverged")] == "regression" and v[("s/b", "target_reached")] == "regression"
    assert ("s/b", "final_val_accuracy") not in v                  # diverged seeds have no accuracy to compare


def test_missing_cells_on_either_side_are_listed():
    table = check.compare(seeds(cells=("s/a", "s/b")), current(cells=("s/a", "s/c")), check.settings(None))
    assert set(table[table["verdict"] == "missing"]["cell"]) == {"s/b", "s/c"}


def test_config_tolerances_override_defaults():
    cur = current(acc=(0.85, 0.86, 0.84))
    loose = check.settings({"abs_tol": {"final_val_accuracy": 0.1, "best_val_accuracy": 0.1,
                                        "final_val_loss": 0.1, "best_val_loss": 0.1}})
    assert verdicts(check.compare(seeds(), cur, loose))[("s/a", "final_val_accuracy")] == "pass"


def write_tables(tmp_path, df, name="tables"):
    os.makedirs(tmp_path / name, exist_ok=True)
    df.assign(git_commit="abc").to_csv(tmp_path / name / "runs.csv", index=False)
    return str(tmp_path / name / "runs.csv")


def cli_check(tmp_path, tables_csv, root, out="c", capsys=None):
    """`sweepbench check` in a fresh process, or in this one (faster) when given capsys."""
    args = ["check", "--baseline", "ref", "--tables", os.path.dirname(tables_csv), "--root", root,
            "--out", str(tmp_path / out)]
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
    check.save_baseline("ref", os.path.dirname(write_tables(tmp_path, seeds(), "base")), root)
    return root


def test_cli_pass_regression_unknown_exit_codes_and_files(tmp_path, saved, capsys):
    ok = cli_check(tmp_path, write_tables(tmp_path, current(), "now"), saved, "c1")   # a real process
    assert ok.returncode == 0 and ok.stdout.startswith("PASS against baseline 'ref' (10 seeds per cell)"), ok.stderr
    bad = cli_check(tmp_path, write_tables(tmp_path, current(acc=(0.80, 0.81, 0.79)), "bad"), saved, "c2", capsys)
    assert bad.returncode == 1 and "REGRESSION" in bad.stdout and "s/a final_val_accuracy" in bad.stdout
    assert list(pd.read_csv(tmp_path / "c2" / "check.csv").columns) == check.CHECK_COLUMNS
    summary = json.load(open(tmp_path / "c2" / "summary.json"))
    assert summary["passed"] is False and summary["baseline_made"]["seeds"] == {"s": list(range(10))}
    assert cli.main(["check", "--baseline", "nope", "--tables", str(tmp_path / "now"), "--root", saved]) == 2
    unknown = capsys.readouterr()
    assert "unknown baseline 'nope'; allowed: ref" in unknown.err


def test_baseline_meta_records_how_it_was_made(saved):
    meta = json.load(open(os.path.join(saved, "ref", "meta.json")))
    assert meta["runs"] == 20 and meta["smoke"] is False and meta["seeds"] == {"s": list(range(10))}
    assert meta["torch"] == ["2.x"] and meta["git_commit"] == ["abc"] and meta["cpu"] and meta["remake"] == "make baseline"


def corrupt(path, fn):
    lines = open(path).read().splitlines(keepends=True)
    open(path, "w").write("".join(fn(lines)))


@pytest.mark.parametrize("edit, message", [
    (lambda ls: [ls[0], ls[1].replace(",0.901,", ",abc,", 1)] + ls[2:], "line 2: final_val_accuracy 'abc' is not a number"),
    (lambda ls: ls[:-1] + [ls[-1][:30]], "does not end with a newline (cut off?)"),
    (lambda ls: ls[:-1] + [ls[-1][:30] + "\n"], "fields, the header has"),
    (lambda ls: [ls[0].replace("status", "stat")] + ls[1:], "columns ['status'] missing"),
    (lambda ls: [ls[0], ls[1].replace("completed", "garbage")] + ls[2:], "line 2: status 'garbage'; allowed: completed"),
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
    check.save_baseline("ref", os.path.dirname(write_tables(tmp_path, seeds(smoke=True), "sb")), saved)
    proc = cli_check(tmp_path, write_tables(tmp_path, current(), "real"), saved, capsys=capsys)
    assert proc.returncode == 2 and "refusing to compare real results" in proc.stderr and "smoke baseline" in proc.stderr


def test_no_fail_records_why_the_check_did_not_run(tmp_path, saved, capsys):
    assert cli.main(["check", "--baseline", "ref", "--tables", str(tmp_path / "none"), "--root", saved,
                     "--out", str(tmp_path / "c"), "--no-fail"]) == 0
    proc = capsys.readouterr()
    assert proc.out.startswith("not run against baseline 'ref': no current tables")
    assert json.load(open(tmp_path / "c" / "summary.json"))["passed"] is None


def test_foreign_baseline_is_a_clear_error(tmp_path, saved):
    other = current().assign(study="t", cell=lambda d: "t/" + d["cell"])
    with pytest.raises(SweepbenchError, match="shares no cell"):
        check.run_check("ref", os.path.dirname(write_tables(tmp_path, other, "other")), str(tmp_path / "c"), None, saved)


def test_report_check_section_lists_non_passing_rows_and_how_sure(tmp_path, saved):
    from sweepbench import report

    cur = pd.concat([current(cells=("s/a",)), current(cells=("s/b",), acc=(0.85, 0.86, 0.84))])
    check.run_check("ref", os.path.dirname(write_tables(tmp_path, cur, "now")), str(tmp_path / "c"), None, saved)
    section = report.check_section(str(tmp_path / "c"))
    assert section["passed"] is False and section["summary"].startswith("REGRESSION")
    verdict_col = section["table"]["headers"].index("verdict")
    assert section["table"]["rows"][0][verdict_col] == "regression"            # regressions first
    assert all(row[verdict_col] != "pass" for row in section["table"]["rows"])
    mde = {row[0]: row for row in section["mde"]["rows"]}
    assert set(mde) == {"final_val_accuracy", "best_val_accuracy", "final_val_loss", "best_val_loss", "steps_to_target",
                        "samples_to_target", "diverged", "target_reached"} and mde["final_val_accuracy"][2] == "10 vs 3"
    assert "seeds s 0-9" in section["made"] and "torch 2.x" in section["made"]
    assert ("Regression test (sweepbench check)", analysis.regression_test) in report.METHOD_RULES
