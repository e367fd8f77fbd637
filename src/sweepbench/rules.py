"""The definitions that decide a run's result. The report's Methods section quotes these docstrings.

Training (sweepbench.engine) and the analysis tables use these same functions, so a
threshold means the same thing everywhere.
"""

from __future__ import annotations

import math
from typing import Sequence


def higher_is_better(metric: str) -> bool:
    """Accuracy metrics improve upwards; loss metrics improve downwards."""
    return metric.endswith("accuracy")


def reaches(value: float, target: float, metric: str) -> bool:
    """A value reaches the target when it is at or past it: >= for accuracy, <= for loss.

    A missing or non-finite value never reaches a target.
    """
    if value is None or not math.isfinite(value):
        return False
    return value >= target if higher_is_better(metric) else value <= target


def first_crossing(values: Sequence[float], target: float, metric: str) -> int | None:
    """Target crossing: the index of the first evaluation at or past the target, never the best one.

    Returns None when no evaluation reaches it: a run that never crosses has no
    steps-to-target (not zero, not its budget).
    """
    for i, value in enumerate(values):
        if reaches(value, target, metric):
            return i
    return None


def relative_change(previous: float, current: float) -> float:
    """|current - previous| / |previous| (inf when previous is 0 or either is non-finite)."""
    if not (math.isfinite(previous) and math.isfinite(current)) or previous == 0:
        return math.inf
    return abs(current - previous) / abs(previous)


def is_converged(previous_epoch_loss: float, epoch_loss: float, tol: float) -> bool:
    """Convergence (seed 001): the epoch-mean training loss changed by less than `tol`
    (a fraction, 0.001 = the seed's 0.1%) relative to the previous epoch's mean.

    The epoch-mean loss is the mean of the mini-batch losses seen during the epoch, as the
    seed computes it; with gradient descent (one batch per epoch) it is the loss before
    that epoch's update. tol <= 0 disables the rule.
    """
    return tol > 0 and relative_change(previous_epoch_loss, epoch_loss) < tol


def is_diverged(loss: float, initial_loss: float, factor: float) -> bool:
    """Divergence: a loss that is not finite, or above `factor` x the initial loss.

    The engine applies it to every mini-batch loss for the non-finite part and to the mean
    over windows of up to 64 steps and to every evaluated training loss for the factor
    part, so one unlucky batch at B=1 does not count as divergence. The initial loss is
    the training-set loss before the first update.
    """
    if loss is None or not math.isfinite(loss):
        return True
    return math.isfinite(initial_loss) and loss > factor * abs(initial_loss)
