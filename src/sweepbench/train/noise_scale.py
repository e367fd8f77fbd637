"""Gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, appendix A.1).

From squared gradient norms measured at a small batch size b and a big one B:
    |G|^2    ~ (B |G_B|^2 - b |G_b|^2) / (B - b)
    tr(Sigma) ~ (|G_b|^2 - |G_B|^2) / (1/b - 1/B)
Both estimates are noisy and unbiased; each gets its own exponential moving average and
B_simple is the ratio of the averages, as the paper recommends.
"""

from __future__ import annotations

import math


def unbiased_estimates(sq_norm_small: float, b_small: int, sq_norm_big: float, b_big: int) -> tuple[float, float]:
    """(|G|^2, tr(Sigma)) estimates from squared gradient norms at two batch sizes."""
    g2 = (b_big * sq_norm_big - b_small * sq_norm_small) / (b_big - b_small)
    trace = (sq_norm_small - sq_norm_big) / (1.0 / b_small - 1.0 / b_big)
    return g2, trace


class NoiseScaleEMA:
    """Separate moving averages of |G|^2 and tr(Sigma); value() is B_simple."""

    def __init__(self, decay: float = 0.9):
        self.decay = decay
        self.g2 = None
        self.trace = None

    def update(self, sq_norm_small: float, b_small: int, sq_norm_big: float, b_big: int) -> float:
        g2, trace = unbiased_estimates(sq_norm_small, b_small, sq_norm_big, b_big)
        if self.g2 is None:
            self.g2, self.trace = g2, trace
        else:
            self.g2 = self.decay * self.g2 + (1 - self.decay) * g2
            self.trace = self.decay * self.trace + (1 - self.decay) * trace
        return self.value()

    def value(self) -> float:
        if self.g2 is None or not self.g2 > 0 or not math.isfinite(self.trace):
            return math.nan
        return self.trace / self.g2
