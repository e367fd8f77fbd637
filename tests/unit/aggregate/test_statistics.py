import math

import numpy as np
import pytest

from sweepbench.aggregate import statistics


def test_summarize_mean_std_and_reproducible_bootstrap_ci():
    s = statistics.summarize([1.0, 2.0, 3.0, None, math.nan])
    assert s["n"] == 3 and s["mean"] == 2.0 and s["std"] == pytest.approx(1.0)
    assert s["ci_lo"] >= 1.0 and s["ci_lo"] < 2.0 < s["ci_hi"] and s["ci_hi"] <= 3.0   # CI of the mean
    assert statistics.summarize([1.0, 2.0, 3.0]) == s                      # fixed RNG seed
    one = statistics.summarize([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["std"]) and one["ci_lo"] == one["ci_hi"] == 5.0
    assert statistics.summarize([])["n"] == 0 and math.isnan(statistics.summarize([])["mean"])


def test_best_lr_fewest_steps_among_all_reached_ties_to_smaller():
    lr, how = statistics.choose_best_lr([0.1, 0.01, 0.3, 1.0], [50, 80, 50, 10], [True, True, True, False],
                                      [0.9, 0.9, 0.9, 0.2], True)
    assert (lr, how) == (0.1, "steps_to_target")   # 1.0 is fastest but not every seed reached


def test_best_lr_when_no_lr_reached_uses_final_metric():
    lr, how = statistics.choose_best_lr([0.1, 0.01], [math.nan, math.nan], [False, False], [0.7, 0.8], True)
    assert (lr, how) == (0.01, "final_metric")
    lr, how = statistics.choose_best_lr([0.1, 0.01], [math.nan, math.nan], [False, False], [0.3, 0.5], False)
    assert (lr, how) == (0.1, "final_metric")


@pytest.mark.slow
def test_scaling_fit_recovers_a_known_critical_batch_size(monkeypatch):
    monkeypatch.setattr(statistics, "BOOTSTRAP_SAMPLES", 400)
    s_min, b_crit, covered, trials = 100.0, 64.0, 0, 40
    for t in range(trials):
        rng = np.random.default_rng(100 + t)
        per_batch = {b: list(s_min * (1 + b_crit / b) * rng.normal(1, 0.05, 3))
                     for b in [4, 8, 16, 32, 64, 128, 256, 512, 1024]}
        fit = statistics.scaling_fit(per_batch)
        assert fit["b_crit"] == pytest.approx(b_crit, rel=0.15) and fit["s_min"] == pytest.approx(s_min, rel=0.1)
        assert fit["e_min"] == pytest.approx(fit["s_min"] * fit["b_crit"])
        covered += fit["b_crit_ci_lo"] <= b_crit <= fit["b_crit_ci_hi"]
    assert covered / trials >= 0.8     # nominal 95%; a 3-seed percentile bootstrap covers ~87%


def test_exact_curve_is_fit_exactly_and_degenerate_input_gives_nan():
    b = [8, 16, 32, 64]
    s_min, b_crit = statistics.fit_steps_vs_batch(b, [50 * (1 + 20 / x) for x in b])
    assert (s_min, b_crit) == (pytest.approx(50), pytest.approx(20))
    assert all(math.isnan(v) for v in statistics.fit_steps_vs_batch([8], [10]))


def test_regimes():
    assert statistics.scaling_regime(16, 64) == "perfect scaling"
    assert statistics.scaling_regime(64, 64) == "diminishing returns"
    assert statistics.scaling_regime(128, 64) == "maximal data parallelism"
    assert statistics.scaling_regime(128, math.nan) == ""


def test_lr_range_picks_as_seed002_reads_its_sweep():
    lrs = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    loss = [2.30, 2.20, 0.90, 0.45, math.nan, math.nan]
    div = [0, 0, 0, 0, 1, 1]
    assert statistics.lr_range_picks(lrs, loss, div) == {"lr_min": 1e-4, "lr_max": 1e-3, "largest_stable_lr": 1e-3}
