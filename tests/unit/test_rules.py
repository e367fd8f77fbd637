import math

import pytest

from sweepbench import rules


def test_first_crossing_is_first_not_best():
    acc = [0.1, 0.5, 0.86, 0.84, 0.95]
    assert rules.first_crossing(acc, 0.85, "val_accuracy") == 2


def test_first_crossing_loss_goes_down_and_at_target_counts():
    assert rules.first_crossing([3.0, 2.0, 1.0, 0.5], 1.0, "train_loss") == 2


def test_never_crossing_has_no_value_and_nan_never_crosses():
    assert rules.first_crossing([0.1, 0.2], 0.9, "val_accuracy") is None
    assert rules.first_crossing([math.nan, None, 0.95], 0.9, "val_accuracy") == 2
    assert rules.first_crossing([math.nan], 1.0, "train_loss") is None


def test_convergence_is_relative_change_below_tol():
    assert rules.is_converged(100.0, 99.95, 0.001)      # 0.05% change
    assert not rules.is_converged(100.0, 99.8, 0.001)   # 0.2% change
    assert not rules.is_converged(100.0, 100.0, 0.0)    # tol 0 disables the rule
    assert not rules.is_converged(math.nan, 1.0, 0.5)


def test_divergence_non_finite_or_above_factor_times_initial():
    assert rules.is_diverged(math.nan, 2.3, 10)
    assert rules.is_diverged(math.inf, 2.3, 10)
    assert rules.is_diverged(23.1, 2.3, 10)
    assert not rules.is_diverged(22.9, 2.3, 10)


def test_bmin_bmax_on_seed002_accuracies_gives_the_range_the_seed_prints_and_cycles_over():
    # seed 002 Out[111] (training accuracy after 5 epochs, B = 16 ... 8192), full precision
    acc = [0.8360666632652283, 0.8276833295822144, 0.8158666491508484, 0.7914333343505859, 0.7651000022888184,
           0.73580002784729, 0.687250018119812, 0.59375, 0.4340499937534332, 0.25609999895095825]
    sizes = [16 * 2 ** i for i in range(10)]
    assert rules.detect_bmin_bmax(sizes, acc, 3.5) == (16, 256)     # seed: "bmin :16", "bmax :256"
    assert rules.detect_bmin_bmax(sizes, acc, 2.9) == (16, 64)      # 64 -> 128 loses 2.996%
    assert rules.detect_bmin_bmax(sizes, acc, 10) == (16, 1024)
    assert rules.detect_bmin_bmax(sizes, acc, 0.5) == (None, None)  # no doubling is that cheap
    assert rules.detect_bmin_bmax(list(reversed(sizes)), list(reversed(acc)), 3.5) == (16, 256)


def test_bmin_bmax_takes_the_longest_cheap_run_and_never_crosses_a_missing_value():
    sizes = [8, 16, 32, 64, 128, 256]
    assert rules.detect_bmin_bmax(sizes, [0.5, 0.8, 0.8, 0.8, 0.8, 0.5], 3.5) == (8, 128)  # gains are cheap
    assert rules.detect_bmin_bmax(sizes, [0.9, 0.5, 0.5, 0.5, 0.5, 0.1], 3.5) == (16, 128)
    assert rules.detect_bmin_bmax(sizes, [0.9, 0.9, math.nan, 0.9, 0.9, 0.9], 3.5) == (64, 256)
    assert rules.detect_bmin_bmax(sizes, [0.9, 0.9, 0.5, 0.5, 0.1, 0.1], 3.5) == (8, 16)  # tie: smaller


def _verdict(ref, ours, div=None, **kw):
    from sweepbench.rules import reproduction_verdict

    tol = {"abs_tol": 0.05, "rel_tol": 0.0, **kw}
    return reproduction_verdict(ref, ours, div or [False] * len(ref), **tol)


def test_reproduction_verdict_reproduced_shape_only_and_reversed():
    nan = float("nan")
    ref = [nan, 0.098, 0.903, 0.904, 0.867, 0.814]                 # seed 002 Out[58], lr 10 ... 1e-4
    v = _verdict(ref, [nan, 0.10, 0.88, 0.89, 0.85, 0.80], [True, False, False, False, False, False])
    assert v["verdict"] == "reproduced" and v["n_within_band"] == 6 and v["n_reversed_pairs"] == 0
    assert v["rows"][0]["state"] == "both diverged" and v["rows"][2]["diff"] == pytest.approx(-0.023)
    v = _verdict(ref, [nan, 0.10, 0.80, 0.80, 0.75, 0.70], [True] + [False] * 5)
    assert v["verdict"] == "ordering reproduced, levels differ" and v["n_within_band"] == 2
    v = _verdict(ref, [nan, 0.10, 0.70, 0.89, 0.85, 0.80], [True] + [False] * 5)   # lr 0.1 vs 1e-4 reversed
    assert v["verdict"] == "not reproduced" and v["n_reversed_pairs"] == 1


def test_reproduction_verdict_divergence_must_match_both_ways():
    nan = float("nan")
    assert _verdict([nan, 0.9, 0.5], [0.1, 0.9, 0.5])["verdict"] == "not reproduced"     # seed nan, ours not
    v = _verdict([0.2, 0.9, 0.5], [nan, 0.9, 0.5], [True, False, False])
    assert v["verdict"] == "not reproduced" and v["n_divergence_mismatches"] == 1
    assert v["rows"][0]["state"] == "ours diverged, seed did not"


def test_reproduction_verdict_pairs_within_the_band_are_not_ordered_and_few_rows_are_not_compared():
    v = _verdict([0.80, 0.82, 0.5], [0.82, 0.80, 0.5])      # 0.80 vs 0.82 is inside the band: not a reversal
    assert v["verdict"] == "reproduced" and v["n_ordered_pairs"] == 2
    assert _verdict([0.8], [0.8])["verdict"] == "not compared"
    loss = _verdict([2.0, 0.5], [2.4, 0.6], abs_tol=0.05, rel_tol=0.25)   # bands 0.5 and 0.125
    assert loss["verdict"] == "reproduced" and [r["band"] for r in loss["rows"]] == [0.5, 0.125]


def test_reproduction_verdict_for_seconds_compares_ordering_only():
    from sweepbench.rules import reproduction_verdict

    ref = [246.2, 37.8, 24.1, 20.6]                             # seed 004's wall times, B = 1 ... 1000
    v = reproduction_verdict(ref, [900.0, 80.0, 11.0, 9.0], [False] * 4, 0.0, 0.0, compare_level=False)
    assert v["verdict"] == "reproduced" and v["n_within_band"] is None and v["n_ordered_pairs"] == 6
    assert v["kendall_tau"] == pytest.approx(1.0)
    v = reproduction_verdict(ref, [900.0, 80.0, 8.0, 9.0], [False] * 4, 0.0, 0.0, compare_level=False)
    assert v["verdict"] == "not reproduced" and v["n_reversed_pairs"] == 1


def test_reproduction_verdict_a_missing_value_is_not_divergence():
    nan = float("nan")
    v = _verdict([0.9, 0.5, 0.2], [nan, 0.5, 0.2], [False, False, False])
    assert v["rows"][0]["state"] == "no value here" and v["n_rows"] == 2 and v["verdict"] == "reproduced"
    assert _verdict([0.9, 0.5], [None, 0.5])["verdict"] == "not compared"


def test_reproduction_verdict_without_an_ordered_pair_cannot_claim_the_ordering():
    """Seed 004 on mnist5k: two printed accuracies 0.916 and 0.9235, within each other's band, so
    no pair tests the ordering; ours 0.897 and 0.13. Levels differ and nothing of the shape was
    tested: 'not reproduced', not 'ordering reproduced'."""
    v = _verdict([0.916, 0.9235], [0.897, 0.13])
    assert v["n_ordered_pairs"] == 0 and v["n_within_band"] == 1
    assert v["verdict"] == "not reproduced"
    assert _verdict([0.916, 0.9235], [0.90, 0.92])["verdict"] == "reproduced"   # both in band: still reproduced


def test_time_to_target_is_steps_at_the_global_batch_times_the_step_time_at_n_with_a_bootstrap_ci():
    out = rules.time_to_target([100, 120, 110], [0.01, 0.012, 0.011])
    assert out["time_to_target_s"] == pytest.approx(110 * 0.011)
    assert out["ci_lo"] < out["time_to_target_s"] < out["ci_hi"]
    assert out["ci_lo"] >= 100 * 0.01 and out["ci_hi"] <= 120 * 0.012
    assert rules.time_to_target([100, 120, 110], [0.01, 0.012, 0.011]) == out      # reproducible (fixed seed)
    one = rules.time_to_target([50], [0.02])
    assert one == {"time_to_target_s": 1.0, "ci_lo": 1.0, "ci_hi": 1.0}
    assert math.isnan(rules.time_to_target([100, float("nan")], [0.01])["time_to_target_s"])  # a seed missed it
    assert math.isnan(rules.time_to_target([], [0.01])["time_to_target_s"])


def test_the_knee_is_where_the_next_worker_count_cuts_time_to_target_by_less_than_ten_percent():
    assert rules.workers_knee([1, 2, 4, 8], [10.0, 5.5, 3.0, 2.9]) == (4, True)     # 4 -> 8 saves 3%
    assert rules.workers_knee([8, 1, 4, 2], [2.9, 10.0, 3.0, 5.5]) == (4, True)     # any order
    assert rules.workers_knee([1, 2], [10.0, 12.0]) == (1, True)                    # a second worker already costs
    assert rules.workers_knee([1, 2, 4], [10.0, 6.0, 3.5]) == (4, False)            # every step paid
    assert rules.workers_knee([1, 2], [10.0, float("nan")]) == (None, False)


# ---------------------------------------------------------------- timing: blocks, the median's interval, the stop rule

def test_timing_blocks_group_steps_to_at_least_block_s_and_drop_an_unfinished_last_block():
    times, samples = [0.02] * 7, [10] * 7                       # 3 blocks of 0.06 s (3 steps), 1 step left over
    assert rules.timing_blocks(times, samples, 0.05) == pytest.approx([500.0, 500.0])
    assert rules.timing_blocks([0.02, 0.03, 0.2], [10, 10, 40], 0.05) == pytest.approx([400.0, 200.0])
    assert rules.timing_blocks([0.01], [10], 0.05) == pytest.approx([1000.0])   # the only block, unfinished: kept
    assert rules.timed_steps([9, 1, 1, 1], [1, 1, 1, 1], 10) == ([1, 1], [1, 1])  # warm-up: at most half


def test_median_interval_is_the_order_statistics_of_the_binomial_rank():
    assert rules.median_interval(range(1, 11)) == (2.0, 5.5, 9.0)        # n = 10: 2nd and 9th values (97.9%)
    assert rules.median_interval(range(1, 21)) == (6.0, 10.5, 15.0)      # n = 20: 6th and 15th
    lo, mid, hi = rules.median_interval([1, 2, 3, 4, 5])                  # too few for a 95% interval
    assert mid == 3 and math.isnan(lo) and math.isnan(hi)


def test_median_interval_covers_the_true_median_at_least_95_percent_of_the_time():
    import numpy as np

    rng = np.random.default_rng(0)
    hits = [(lo <= 0.0 <= hi) for lo, _, hi in (rules.median_interval(rng.standard_cauchy(15)) for _ in range(2000))]
    assert 0.95 <= np.mean(hits) <= 0.99


def test_timing_settles_once_the_interval_is_narrow_or_the_budget_is_spent():
    steady = [100.0, 100.2, 99.9, 100.1, 99.8, 100.0, 100.3, 99.7]
    # n = 8: the 1st and 8th values (99.2%): 99.7 and 100.3 around the median 100.0
    settled = rules.timing_settled(steady, 1.0, 0.01, 10)
    assert settled == "timing settled: median throughput +-0.3% (95%) after 8 blocks"
    assert rules.timing_settled(steady[:7], 1.0, 0.01, 10) is None        # fewer than TIMING_MIN_BLOCKS
    noisy = [100.0, 140, 70, 120, 90, 60, 150, 110]
    assert rules.timing_settled(noisy, 1.0, 0.01, 10) is None
    assert "timing budget of 10 s spent: median throughput +-" in rules.timing_settled(noisy, 10.0, 0.01, 10)
    assert rules.timing_settled(steady, 99.0, 0.0, 10) is None              # timing_ci 0: the whole budget
