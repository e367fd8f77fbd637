"""The definitions that decide a run's result. The report's Methods section quotes these docstrings.

Training (sweepbench.train.engine) and the analysis tables use these same functions, so a
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


def detect_bmin_bmax(batch_sizes, accuracies, threshold_pct: float = 3.5) -> tuple[int | None, int | None]:
    """Seed 002's automatic bmin/bmax (Q5, used as Q6's cycle of batch sizes): the range of
    batch sizes over which growing the batch is cheap. With batch sizes in increasing order
    (doublings in the seed), a step from B_i to B_(i+1) is cheap when it loses less than
    threshold_pct percent of the training accuracy at B_i (a gain is cheap too; a missing or
    non-finite accuracy is not). bmin and bmax are the first and last batch size of the
    longest run of consecutive cheap steps (the run at the smaller batch sizes on a tie).
    None, None when no step is cheap.

    On the seed's own table (Out[111], threshold 3.5%) the steps 16 -> 32 -> 64 -> 128 -> 256
    lose 1.0, 1.4, 3.0 and 3.3%, then 256 -> 512 loses 3.8%: bmin = 16, bmax = 256, the range
    the seed prints and cycles over. The seed's code (In [27]) divides by the accuracy at
    B_(i+1) with the sign reversed, which never fires on falling accuracies, so its printout
    follows its stated intent, not its code; this implements the intent."""
    pairs = sorted(zip(batch_sizes, accuracies))
    cheap = [a is not None and b is not None and math.isfinite(a) and math.isfinite(b) and a > 0
             and 100.0 * (a - b) / a < threshold_pct
             for (_, a), (_, b) in zip(pairs, pairs[1:])]
    best, start = None, None
    for i, ok in enumerate(cheap + [False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    if best is None:
        return None, None
    return int(pairs[best[0]][0]), int(pairs[best[1]][0])


# Reference tolerance per kind of metric: (abs_tol, rel_tol, compare_level). The band of a row
# is max(abs_tol, rel_tol x |reference|). Seconds are compared by ordering only: the seed's
# hardware is not ours.
REFERENCE_TOLERANCES = {"accuracy": (0.05, 0.0, True), "loss": (0.05, 0.25, True), "seconds": (0.0, 0.0, False)}
VERDICTS = ("reproduced", "ordering reproduced, levels differ", "not reproduced", "not compared")


def reference_value(value) -> float:
    """A printed number; nan, None or the text 'nan' mean the seed printed nan (diverged). Anything
    else (a date, a word) is a ValueError, which the planner reports as a config error."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "nan"):
        return math.nan
    if isinstance(value, str):  # YAML reads 1e-3 (no dot) as text
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a printed number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a printed number")
    return float(value)


def reference_kind(metric: str) -> str:
    """accuracy, loss or seconds, from the name of our metric column (e.g. final_train_accuracy, train_s)."""
    if metric.endswith("accuracy"):
        return "accuracy"
    if "loss" in metric:
        return "loss"
    return "seconds"


def reproduction_verdict(reference, ours, ours_diverged, abs_tol: float, rel_tol: float,
                         compare_level: bool = True) -> dict:
    """Reproduction of a seed's printed numbers (one verdict per study and metric).

    Rows are the sweep's points present on both sides. A reference value that is NaN (the
    seed printed nan: it diverged) agrees only with a cell of ours that diverged, and a
    diverged cell of ours agrees only with a NaN reference (a cell counts as diverged when
    more than half of its seeds diverged); a point with no value of ours that did not diverge
    (a metric the run did not record) is listed as 'no value here' and not judged.
    Level: a finite row is within the band when
    |ours - reference| <= max(abs_tol, rel_tol x |reference|). Shape: every pair of finite rows
    whose reference values differ by more than the larger of their two bands (for seconds:
    by anything) must be ordered the same way by our values; one pair ordered the other
    way is a reversal. Verdict: 'not compared' with fewer than 2 rows; 'not reproduced' on
    any divergence mismatch or reversal; else 'reproduced' when every finite row is within
    its band (or levels are not compared, as for seconds measured on other hardware), else
    'ordering reproduced, levels differ' when at least one pair was clearly ordered (and none
    reversed), and 'not reproduced' when none was: then nothing of the shape was tested, and
    the levels differ. Kendall's tau between the two columns (and its
    two-sided p, scipy) is reported beside it; with one run per row and side the band is a
    fixed tolerance, not a confidence interval.
    """
    rows = []
    for ref, val, div in zip(reference, ours, ours_diverged):
        if not div and (val is None or not math.isfinite(val)):   # missing here, not diverged: not compared
            rows.append({"reference": ref, "ours": val, "diff": math.nan, "band": math.nan, "state": "no value here"})
            continue
        ref_nan, val_div = ref is None or not math.isfinite(ref), bool(div)
        band = math.inf if not compare_level else max(abs_tol, rel_tol * abs(ref)) if not ref_nan else math.nan
        if ref_nan or val_div:
            state = "both diverged" if ref_nan and val_div else "seed diverged, ours did not" if ref_nan \
                else "ours diverged, seed did not"
        else:
            state = "within band" if abs(val - ref) <= band else "outside band"
        rows.append({"reference": ref, "ours": val, "diff": (val - ref) if state in ("within band", "outside band")
                     else math.nan, "band": band, "state": state})
    finite = [r for r in rows if r["state"] in ("within band", "outside band")]
    pairs, reversed_pairs = _ordered_pairs(finite, [abs_tol if not compare_level else r["band"] for r in finite])
    judged = [r for r in rows if r["state"] != "no value here"]
    mismatches = sum(r["state"] in ("seed diverged, ours did not", "ours diverged, seed did not") for r in judged)
    in_band = sum(r["state"] in ("within band", "both diverged") for r in judged)
    tau, p = _kendall([r["reference"] for r in finite], [r["ours"] for r in finite])
    if len(judged) < 2:
        verdict = "not compared"
    elif mismatches or reversed_pairs:
        verdict = "not reproduced"
    elif not compare_level or in_band == len(judged):
        verdict = "reproduced"
    elif pairs == 0:   # no ordering was tested, so only the levels speak, and they differ
        verdict = "not reproduced"
    else:
        verdict = "ordering reproduced, levels differ"
    return {"verdict": verdict, "n_rows": len(judged), "n_within_band": in_band if compare_level else None,
            "n_divergence_mismatches": mismatches, "n_ordered_pairs": pairs, "n_reversed_pairs": reversed_pairs,
            "kendall_tau": tau, "kendall_p": p, "rows": rows}


def _ordered_pairs(finite: list[dict], order_tol: list[float]) -> tuple[int, int]:
    """(pairs whose reference values differ by more than the larger of their two tolerances,
    those of them that our values order the other way)."""
    pairs = reversed_pairs = 0
    for i in range(len(finite)):
        for j in range(i + 1, len(finite)):
            d_ref = finite[i]["reference"] - finite[j]["reference"]
            if abs(d_ref) > max(order_tol[i], order_tol[j]):
                pairs += 1
                reversed_pairs += (finite[i]["ours"] - finite[j]["ours"]) * d_ref < 0
    return pairs, reversed_pairs


def _kendall(x, y) -> tuple[float, float]:
    if len(x) < 3:
        return math.nan, math.nan
    from scipy.stats import kendalltau

    tau, p = kendalltau(x, y)
    return float(tau), float(p)


TIMING_LEVEL = 0.95     # confidence of the interval of a run's median block throughput
TIMING_MIN_BLOCKS = 8   # the fewest timed blocks a run's timing may stop at (timing_settled)


def timed_steps(step_times: Sequence[float], step_samples: Sequence[int], warmup: int) -> tuple[list, list]:
    """The steps a run's speed is measured on: all but the first `warmup` (timing_warmup_steps),
    but never more than half of the steps left out."""
    warm = min(warmup, len(step_times) // 2)
    return list(step_times[warm:]), list(step_samples[warm:])


def timing_blocks(step_times: Sequence[float], step_samples: Sequence[int], block_s: float) -> list[float]:
    """Throughput of a run, in blocks: the timed steps (after the run's timing_warmup_steps) are
    cut, in order, into consecutive blocks of at least `block_s` seconds (one step when a step
    takes that long), and each block's throughput is its samples over its seconds; an unfinished
    last block is left out (kept only when it is the only one). A run's `samples_per_s` is the
    median over its blocks (robust to a few slow blocks: another process waking, a page fault),
    with a distribution-free interval of that median (median_interval). Blocks, not single
    steps, so that a step of a millisecond is not timed alone against the clock's resolution."""
    rates, seconds, samples = [], 0.0, 0
    for sec, n in zip(step_times, step_samples):
        seconds, samples = seconds + sec, samples + n
        if seconds >= block_s:
            rates.append(samples / seconds)
            seconds, samples = 0.0, 0
    if not rates and seconds > 0:
        rates.append(samples / seconds)
    return rates


def median_interval(values: Sequence[float], level: float = TIMING_LEVEL) -> tuple[float, float, float]:
    """(low, median, high): the median of `values` and its distribution-free confidence interval
    from order statistics (the j-th smallest and j-th largest value, j the largest rank whose
    binomial(n, 1/2) tail stays within (1 - level) / 2); NaN bounds with fewer than 6 values at 95%."""
    from scipy import stats

    x = sorted(float(v) for v in values)
    n = len(x)
    if not n:
        return math.nan, math.nan, math.nan
    mid = (x[(n - 1) // 2] + x[n // 2]) / 2
    j = int(stats.binom.ppf((1 - level) / 2, n, 0.5))   # P(Bin < j) <= (1 - level) / 2 for this j
    while j >= 1 and stats.binom.cdf(j - 1, n, 0.5) > (1 - level) / 2:
        j -= 1
    if j < 1:
        return math.nan, mid, math.nan
    return x[j - 1], mid, x[n - j]


def timing_settled(rates: Sequence[float], timed_s: float, target: float, budget_s: float) -> str | None:
    """When a run's timing stops (a timing study sets timing_ci > 0; otherwise runs train their
    whole budget): once it has at least TIMING_MIN_BLOCKS blocks (timing_blocks) and the 95%
    interval of their median throughput (median_interval) is within +-`target` of the median
    (relative half-width), or once `budget_s` seconds of timed steps are spent, whichever comes
    first. Returns the stop reason (with the width reached), or None to keep timing. Such a run's
    step count depends on the machine's noise, so the check compares its speed, never its quality."""
    if not target > 0 or not rates:
        return None
    lo, mid, hi = median_interval(rates)
    width = (hi - lo) / 2 / mid if mid > 0 and math.isfinite(lo) else math.inf
    said = f"+-{width:.1%}" if math.isfinite(width) else "no interval yet"
    if len(rates) >= TIMING_MIN_BLOCKS and width <= target:
        return f"timing settled: median throughput {said} (95%) after {len(rates)} blocks"
    if timed_s >= budget_s:
        return f"timing budget of {budget_s:g} s spent: median throughput {said} (95%) after {len(rates)} blocks"
    return None


TIME_TO_TARGET_RESAMPLES = 2000
WORKERS_MIN_GAIN = 0.10


def time_to_target(steps_per_seed: Sequence[float], step_times: Sequence[float]) -> dict:
    """Time to target with N data-parallel workers: time-to-target(N) = steps-to-target(B = N x b) x
    step time(N). The steps are measured at the global batch B = N x b (the mean over the seeds of
    every run at that global batch, with or without DDP: N workers at b take the same steps as one
    process at N x b), the step time is the median over the runs at N workers of each run's median
    step time after warm-up, each step timed on its slowest rank. Evaluation is outside both. The
    95% confidence interval is a percentile bootstrap (2000 resamples, fixed RNG seed 0) that
    resamples the seeds' steps and the runs' step times independently. Empty when a seed at B did
    not reach the target (a diverged seed counts as not reaching it) or nothing was measured."""
    import numpy as np

    steps = np.asarray([s for s in steps_per_seed], dtype=float)
    times = np.asarray([t for t in step_times if t is not None and math.isfinite(t)], dtype=float)
    out = {"time_to_target_s": math.nan, "ci_lo": math.nan, "ci_hi": math.nan}
    if not len(steps) or not len(times) or not np.isfinite(steps).all():
        return out
    out["time_to_target_s"] = float(steps.mean() * np.median(times))
    rng = np.random.default_rng(0)
    means = steps[rng.integers(0, len(steps), (TIME_TO_TARGET_RESAMPLES, len(steps)))].mean(axis=1)
    medians = np.median(times[rng.integers(0, len(times), (TIME_TO_TARGET_RESAMPLES, len(times)))], axis=1)
    out["ci_lo"], out["ci_hi"] = (float(x) for x in np.percentile(means * medians, [2.5, 97.5]))
    return out


def workers_knee(workers: Sequence[int], times: Sequence[float], min_gain: float = WORKERS_MIN_GAIN) -> tuple:
    """The knee where more workers stop paying: with the worker counts N in increasing order and
    their time to target (rows without one are left out), the smallest N from which the next
    count measured cuts the time to target by less than `min_gain` (10%) of its own. Returns
    (knee, within_sweep): within_sweep is False when every step up paid, so the knee is the
    largest N measured and may lie beyond the sweep; (None, False) with fewer than two counts.
    Beside it the report shows N_crit = B_crit / b, the worker count at which the global batch
    reaches the critical batch size: past it, steps to target stop falling (Shallue et al. 2018)."""
    pairs = sorted((int(n), float(t)) for n, t in zip(workers, times) if t is not None and math.isfinite(t) and t > 0)
    if len(pairs) < 2:
        return None, False
    for (n, t), (_, t_next) in zip(pairs, pairs[1:]):
        if t_next > t * (1 - min_gain):
            return n, True
    return pairs[-1][0], False
