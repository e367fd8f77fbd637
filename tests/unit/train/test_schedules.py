import math

import numpy as np
import pytest

from sweepbench.spec import defaults
from sweepbench.train import schedules


def spec(**kw):
    s = defaults()
    s.update(kw)
    return s


def seed002_clr(iterations, base_lr, max_lr, step_size, mode, gamma=1.0):
    """The seed's CyclicLR.clr(), transcribed with numpy as in the seed."""
    cycle = np.floor(1 + iterations / (2 * step_size))
    x = np.abs(iterations / step_size - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1 / (2.0 ** (cycle - 1)), "exp_range": gamma ** iterations}[mode]
    return base_lr + (max_lr - base_lr) * np.maximum(0, (1 - x)) * scale


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_lr_matches_the_seed(mode):
    for it in [0, 1, 999, 2000, 2500, 4000, 6001, 12345]:
        ours = schedules.cyclic_lr(it, 1e-4, 1e-3, 2000, mode, 0.99994)
        assert ours == pytest.approx(seed002_clr(it, 1e-4, 1e-3, 2000, mode, 0.99994), rel=1e-12)
    assert schedules.cyclic_lr(2000, 1e-4, 1e-3, 2000, "triangular") == pytest.approx(1e-3)


def test_step_schedule_is_seed000_lr_schedule():
    s = spec(schedule="step", lr=0.01)
    assert [schedules.lr_at(s, 0, e, 100) for e in (0, 14, 15, 24, 25, 35)] == pytest.approx(
        [0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-5])


def test_cosine_and_warmup():
    s = spec(schedule="cosine", lr=1.0, cosine_min_factor=0.1)
    assert schedules.lr_at(s, 0, 0, 100) == pytest.approx(1.0)
    assert schedules.lr_at(s, 50, 0, 100) == pytest.approx(0.55)
    assert schedules.lr_at(s, 100, 0, 100) == pytest.approx(0.1)
    w = spec(schedule="warmup", lr=1.0, warmup_steps=4)
    assert [schedules.lr_at(w, i, 0, 10) for i in range(6)] == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1])


def test_batch_sizes_and_updates():
    assert schedules.batch_size_at(spec(batch_size="full"), 3, 100) == 100
    cyc = spec(batch_schedule="cyclic", batch_cycle=[16, 32, 64])
    assert [schedules.batch_size_at(cyc, e, 1000) for e in range(5)] == [16, 32, 64, 16, 32]
    assert schedules.updates_in_epoch(100, 32, 1) == 4          # last partial batch kept
    assert schedules.updates_in_epoch(100, 8, 4) == math.ceil(13 / 4)
    assert schedules.planned_steps(spec(batch_size=32, epochs=3, max_steps=0), 100) == 12
    assert schedules.planned_steps(spec(batch_size=32, epochs=3, max_steps=5), 100) == 5
