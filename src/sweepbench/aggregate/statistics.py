"""Definitions the tables use across runs. The report's Methods section quotes these docstrings.

Per-run definitions (target crossing, convergence, divergence) and the bmin/bmax detection are in
sweepbench.rules; the regression test of `sweepbench check` is in sweepbench.check.regression.
"""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


def summarize(values) -> dict:
    """Aggregation across seeds: mean, sample standard deviation (ddof=1, empty for one seed)
    and a 95% percentile-bootstrap confidence interval of the mean (2000 resamples, fixed
    RNG seed 0, so tables are reproducible). Missing values are left out; no values give
    empty cells."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "ci_lo": math.nan, "ci_hi": math.nan}
    if len(v) == 1:
        return {"n": 1, "mean": float(v[0]), "std": math.nan, "ci_lo": float(v[0]), "ci_hi": float(v[0])}
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = v[rng.integers(0, len(v), (BOOTSTRAP_SAMPLES, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"n": len(v), "mean": float(v.mean()), "std": float(v.std(ddof=1)), "ci_lo": float(lo), "ci_hi": float(hi)}


def choose_best_lr(lrs, steps_mean, all_reached, final_metric, higher_is_better: bool) -> tuple[float | None, str]:
    """Best learning rate for one (workload, optimizer, batch size), as Shallue et al. 2018:
    the lr with the fewest mean steps to target among those where every seed reached the
    target; ties go to the smaller lr. When no lr had every seed reach the target, the lr
    with the best mean final value of the target metric is chosen instead and the choice
    is labelled 'final_metric' (steps to target then stay empty). Diverged seeds count as
    not reaching the target. Returns (lr, selected_by)."""
    best = None
    for lr, steps, ok in sorted(zip(lrs, steps_mean, all_reached)):
        if ok and steps is not None and np.isfinite(steps) and (best is None or steps < best[1]):
            best = (lr, steps)
    if best is not None:
        return best[0], "steps_to_target"
    scored = [(lr, m) for lr, m in sorted(zip(lrs, final_metric)) if m is not None and np.isfinite(m)]
    if not scored:
        return None, "none"
    pick = max if higher_is_better else min
    return pick(scored, key=lambda t: t[1])[0], "final_metric"


def fit_steps_vs_batch(batch_sizes, steps) -> tuple[float, float]:
    """Fit S(B) = S_min (1 + B_crit / B) (McCandlish et al. 2018) as S = a + b / B, giving
    S_min = a and B_crit = b / a, by least squares of the relative error (weights 1/S), so
    the many steps at small batch sizes do not outweigh the few at large ones. Returns
    (S_min, B_crit); NaN when fewer than two batch sizes or a non-positive S_min."""
    b = np.asarray(batch_sizes, dtype=float)
    s = np.asarray(steps, dtype=float)
    keep = np.isfinite(b) & np.isfinite(s) & (s > 0)
    b, s = b[keep], s[keep]
    if len(np.unique(b)) < 2:
        return math.nan, math.nan
    a_mat = np.stack([np.ones_like(b), 1.0 / b], axis=1) / s[:, None]
    (a, slope), *_ = np.linalg.lstsq(a_mat, np.ones_like(s), rcond=None)
    if a <= 0:
        return math.nan, math.nan
    return float(a), float(slope / a)


def scaling_fit(per_batch_steps: dict) -> dict:
    """The scaling fit with a 95% CI: fit_steps_vs_batch on the mean steps per batch size,
    CI from 2000 bootstrap refits that resample the seeds within each batch size (fixed RNG
    seed 0). `per_batch_steps` maps batch size -> steps to target of each seed.
    E_min = S_min x B_crit is the fewest samples to target. With 3 to 5 seeds per batch size
    the percentile bootstrap is too narrow: in simulation (5% noise on steps) the nominal
    95% interval held the true B_crit about 87% of the time."""
    sizes = sorted(b for b, v in per_batch_steps.items() if len(v))
    s_min, b_crit = fit_steps_vs_batch(sizes, [np.mean(per_batch_steps[b]) for b in sizes])
    out = {"s_min": s_min, "b_crit": b_crit, "e_min": s_min * b_crit, "b_crit_ci_lo": math.nan,
           "b_crit_ci_hi": math.nan}
    if not np.isfinite(b_crit):
        return out
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    fits = []
    for _ in range(BOOTSTRAP_SAMPLES):
        means = [np.mean(rng.choice(per_batch_steps[b], len(per_batch_steps[b]))) for b in sizes]
        fits.append(fit_steps_vs_batch(sizes, means)[1])
    fits = np.asarray(fits)
    fits = fits[np.isfinite(fits)]
    if len(fits):
        out["b_crit_ci_lo"], out["b_crit_ci_hi"] = (float(x) for x in np.percentile(fits, [2.5, 97.5]))
    return out


def scaling_regime(batch_size: float, b_crit: float) -> str:
    """Regime of a batch size against the fitted critical batch size (Shallue et al. 2018's
    three regimes): 'perfect scaling' when B <= B_crit / 2 (samples to target within 1.5x
    the minimum E_min), 'maximal data parallelism' when B >= 2 B_crit (steps within 1.5x
    the minimum S_min), 'diminishing returns' between; empty without a fit."""
    if not (np.isfinite(b_crit) and b_crit > 0):
        return ""
    if batch_size <= b_crit / 2:
        return "perfect scaling"
    if batch_size >= 2 * b_crit:
        return "maximal data parallelism"
    return "diminishing returns"


def lr_range_picks(lrs, final_losses, diverged_fraction) -> dict:
    """Seed 002's reading of a learning-rate sweep (Smith's range test): lr_max is the lr
    with the lowest final training loss among lrs with no diverged seed; lr_min is the
    largest swept lr at or below lr_max / 10 (one decade lower, as the seed's 1e-4 / 1e-3);
    the largest stable lr is the largest lr with no diverged seed."""
    rows = sorted(zip(lrs, final_losses, diverged_fraction))
    stable = [(lr, loss) for lr, loss, div in rows if div == 0]
    finite = [(lr, loss) for lr, loss in stable if loss is not None and np.isfinite(loss)]
    out = {"lr_min": math.nan, "lr_max": math.nan,
           "largest_stable_lr": max((lr for lr, _ in stable), default=math.nan)}
    if finite:
        out["lr_max"] = min(finite, key=lambda t: t[1])[0]
        lower = [lr for lr, _, _ in rows if lr <= out["lr_max"] / 10 * (1 + 1e-9)]
        out["lr_min"] = max(lower) if lower else math.nan
    return out
