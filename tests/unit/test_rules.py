import math

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
