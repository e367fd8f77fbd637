import math

import numpy as np
import pytest
from scipy import stats

from sweepbench.check import regression
from sweepbench.check.regression import Comparison, regression_test


def test_pooled_t_matches_scipy_one_sided_student_t():
    b, c = [0.90, 0.91, 0.89, 0.905, 0.895], [0.88, 0.89, 0.87]
    t = regression.pooled_t(b, c, higher_is_better=True)
    assert t["p_worse"] == pytest.approx(stats.ttest_ind(c, b, equal_var=True, alternative="less").pvalue)
    assert t["p_better"] == pytest.approx(stats.ttest_ind(c, b, equal_var=True, alternative="greater").pvalue)
    assert t["df"] == 6 and t["delta"] == pytest.approx(-0.02)
    loss = regression.pooled_t(b, c, higher_is_better=False)          # lower loss is better: the same data improves
    assert loss["p_better"] == pytest.approx(t["p_worse"])


def test_pooled_t_one_current_seed_uses_the_baseline_spread_and_one_seed_each_side_cannot_test():
    t = regression.pooled_t([1.0, 2.0, 3.0], [0.0], higher_is_better=True)
    assert (t["df"] == 2 and t["sd"] == pytest.approx(1.0)
            and t["p_worse"] == pytest.approx(stats.t.sf(2 / math.sqrt(4 / 3), 2)))
    assert math.isnan(regression.pooled_t([1.0], [0.5], True)["p_worse"])


def test_pooled_t_without_any_spread_is_certain_either_way():
    assert regression.pooled_t([5.0] * 4, [5.0] * 3, True)["p_worse"] == 1.0
    assert regression.pooled_t([5.0] * 4, [4.0] * 3, True)["p_worse"] == 0.0


def test_holm_adjustment():
    q = regression.holm_adjust([0.01, 0.04, 0.03, math.nan, 0.5, 0.012])
    # sorted p 0.01, 0.012, 0.03, 0.04, 0.5 with m = 5 -> 0.05, 0.048 -> 0.05 (monotone), 0.09, 0.09 -> 0.09, 0.5
    assert q[0] == pytest.approx(0.05) and q[5] == pytest.approx(0.05) and q[2] == pytest.approx(0.09)
    assert q[1] == pytest.approx(0.09) and math.isnan(q[3]) and q[4] == pytest.approx(0.5)


def test_fisher_one_sided_matches_scipy():
    for bad_b, bad_c in [(0, 3), (1, 2), (3, 1), (0, 0), (10, 3)]:
        table = [[bad_c, 3 - bad_c], [bad_b, 10 - bad_b]]
        want = stats.fisher_exact(table, alternative="greater").pvalue
        assert regression.fisher_worse(bad_b, 10, bad_c, 3) == pytest.approx(want)


def test_tarone_counts_only_comparisons_that_could_be_significant():
    assert regression.tarone_k([0.0035, 1.0, 1.0, 1.0, 0.5], 0.025) == 1
    assert regression.tarone_k([0.001, 0.002, 0.003, 1.0], 0.025) == 3
    assert regression.tarone_k([], 0.025) == 1


def test_binary_mde_from_the_exact_binomial_power():
    # 0 of 10 baseline seeds bad; with 3 current seeds only all 3 bad is significant at 0.025 (p = 1/286)
    mde, n = regression.binary_mde(0, 10, 3, 0.025)
    assert mde == pytest.approx(0.8 ** (1 / 3)) and n == 3
    mde, n = regression.binary_mde(0, 10, 1, 0.025)                  # one seed can never be significant
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
    assert (noisy["mde"] > 0.02 and noisy["seeds_needed"] > 1
            and "current seeds would bring it to 0.02" in noisy["reason"])
    n = int(noisy["seeds_needed"])
    t = regression.pooled_t(comps[1].baseline, np.full(n, 0.9), True)     # with that many seeds the mde is <= 0.02
    sd_pooled = np.std(comps[1].baseline, ddof=1) * math.sqrt(9 / (10 + n - 2))
    assert regression.t_mde(sd_pooled * math.sqrt(1 / 10 + 1 / n), t["df"], 0.025 / 2, 0.01) <= 0.0201


def test_one_seed_on_each_side_is_not_comparable():
    row = regression_test([continuous("s", [0.9], [0.7])], 0.05, 1.0)[0]
    assert row["verdict"] == "not comparable" and "make baseline" in row["reason"]
