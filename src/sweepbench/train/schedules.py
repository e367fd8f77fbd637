"""Learning-rate and batch-size schedules as plain functions of the step and epoch."""

from __future__ import annotations

import math


def cyclic_lr(iteration: int, base_lr: float, max_lr: float, step_size: int, mode: str, gamma: float = 1.0) -> float:
    """Seed 002's CyclicLR (Smith 2017): triangular, triangular2 or exp_range, per iteration."""
    cycle = math.floor(1 + iteration / (2 * step_size))
    x = abs(iteration / step_size - 2 * cycle + 1)
    if mode == "triangular":
        scale = 1.0
    elif mode == "triangular2":
        scale = 1 / (2.0 ** (cycle - 1))
    else:  # exp_range
        scale = gamma ** iteration
    return base_lr + (max_lr - base_lr) * max(0.0, 1 - x) * scale


def lr_at(spec: dict, step: int, epoch: int, total_steps: int) -> float:
    """The learning rate of update number `step` (0-based) in epoch `epoch` (0-based).

    constant: lr. step: lr * step_gamma ** (milestones passed), seed 000's lr_schedule by
    epoch. cosine: from lr to lr * cosine_min_factor over total_steps. warmup: constant
    after the warm-up. Cyclical modes: seed 002's CyclicLR between lr and clr_max_lr.
    warmup_steps > 0 adds a linear warm-up in front of any schedule.
    """
    lr, name = spec["lr"], spec["schedule"]
    if name == "step":
        value = lr * spec["step_gamma"] ** sum(epoch >= m for m in spec["step_milestones"])
    elif name == "cosine":
        t = min(step / max(total_steps, 1), 1.0)
        m = spec["cosine_min_factor"]
        value = lr * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * t)))
    elif name in ("triangular", "triangular2", "exp_range"):
        value = cyclic_lr(step, lr, spec["clr_max_lr"], spec["clr_step_size"], name, spec["clr_gamma"])
    else:  # constant, warmup
        value = lr
    warm = spec["warmup_steps"]
    if warm and step < warm:
        value *= (step + 1) / warm
    return value


def batch_size_at(spec: dict, epoch: int, n_train: int) -> int:
    """Micro-batch size in epoch `epoch`: the fixed size, the whole set ('full'), or
    the cyclic schedule of seed 002 Q6 (batch_cycle[epoch % len])."""
    if spec["batch_schedule"] == "cyclic":
        size = spec["batch_cycle"][epoch % len(spec["batch_cycle"])]
    elif spec["batch_size"] == "full":
        size = n_train
    else:
        size = spec["batch_size"]
    return min(size, n_train)


def updates_in_epoch(n_train: int, batch_size: int, accum_steps: int) -> int:
    """Optimizer updates per epoch: ceil(n / B) micro-batches (the last partial one kept,
    seed 001), grouped accum_steps to an update (the last group may be shorter)."""
    micro = math.ceil(n_train / batch_size)
    return math.ceil(micro / accum_steps)


def planned_steps(spec: dict, n_train: int) -> int:
    """Updates the run makes if nothing stops it early (for cosine and steps.csv thinning)."""
    total = sum(updates_in_epoch(n_train, batch_size_at(spec, e, n_train), spec["accum_steps"])
                for e in range(spec["epochs"]))
    return min(total, spec["max_steps"]) if spec["max_steps"] else total
