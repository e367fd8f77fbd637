import numpy as np
import pytest

from sweepbench.train.noise_scale import NoiseScaleEMA, unbiased_estimates


def test_recovers_known_gradient_and_noise_from_expected_norms():
    g2, trace = 4.0, 200.0          # |G|^2 and tr(Sigma): B_simple = 50
    expected = lambda b: g2 + trace / b   # E|G_b|^2
    est_g2, est_trace = unbiased_estimates(expected(8), 8, expected(64), 64)
    assert est_g2 == pytest.approx(g2)
    assert est_trace == pytest.approx(trace)


def test_ema_of_sampled_gradients_estimates_b_simple():
    rng = np.random.RandomState(0)
    dim, G, sigma = 50, np.full(50, 0.2), 1.0      # |G|^2 = 2, tr(Sigma) = 50 -> B_simple = 25
    ema = NoiseScaleEMA(decay=0.99)
    for _ in range(2000):
        per_sample = G + sigma * rng.randn(64, dim)
        small = per_sample[:8].mean(0)
        big = per_sample.mean(0)
        ema.update(float(small @ small), 8, float(big @ big), 64)
    assert ema.value() == pytest.approx(25.0, rel=0.15)


def test_no_estimate_is_nan():
    assert np.isnan(NoiseScaleEMA().value())
