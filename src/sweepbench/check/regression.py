"""The regression test the check uses (`sweepbench check`): one decision over every (cell, metric)
comparison of the current tables with a baseline. The report's Methods section quotes regression_test's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

POWER = 0.8          # the minimum detectable effect is the change the check catches with this probability
INTERVAL = 0.95      # the interval of the change shown beside each continuous comparison (ci_lo, ci_hi)
MAX_SEEDS_HINT = 64  # the "more seeds" hint looks up to this many seeds


@dataclass
class Comparison:
    """One (cell, metric) of a regression check: the per-seed values of each side. A binary
    outcome (target reached, diverged) has values 0/1 per seed."""
    cell: str
    metric: str
    baseline: np.ndarray
    current: np.ndarray
    higher_is_better: bool
    binary: bool = False
    tolerance: float = 0.0   # absolute effect floor from the config (abs_tol + rel_tol x |baseline mean|)
    log_scale: bool = False  # test on logarithms (steps and samples to target, speed)
    speed: bool = False      # a speed comparison: one value per independent timing (a run or a stack)


def regression_test(comparisons: list, alpha: float, spread_k: float) -> list[dict]:
    """The regression test of `sweepbench check`: one decision over every comparison of one check.

    Binary outcomes (a seed reached the target; a seed diverged): a one-sided Fisher exact test
    on the 2x2 table of seed counts, baseline vs current. Continuous metrics (final and best
    validation accuracy and loss, steps and samples to target; diverged seeds left out): a
    one-sided two-sample t-test of "current is worse", with the variance pooled over both
    sides' seeds (unchanged code keeps the seed spread, and a baseline carries more seeds than
    a normal run); steps and samples to target on a log scale, as their spread is right-skewed.

    Speed (samples/s, a run's median block throughput): the same one-sided pooled t-test, on
    logarithms, with one value per independent timing on each side (a run alone, or a stack,
    whose runs share one clock), between runs of the same device, torch version and stack size.
    The variance is pooled because a normal run has one timing per cell and the baseline ten.

    Many comparisons: the check's alpha (default 0.05) bounds the chance that the check names
    any comparison that did not really get worse, whether or not others did (family-wise).
    Alpha is split equally among the families present: the binary comparisons, Bonferroni-
    adjusted over only those whose seed counts could reach significance at all (Tarone 1990: a
    cell whose seeds all reached the target on both sides cannot, and does not dilute the
    others); the continuous quality ones, Holm-adjusted; the speed ones, Holm-adjusted.

    A regression is a comparison whose adjusted p-value is at most its family's share of alpha
    and, for a continuous metric, whose change is also worse than an effect floor: the configured
    tolerance (abs_tol + rel_tol x the baseline mean) or spread_k x the baseline's seed
    standard deviation, whichever is larger; for speed the configured speed_threshold (a relative
    change; 7% by default) alone: the baseline's timings are made back to back, so their spread
    misses the machine's drift between runs minutes apart, which the floor must carry. An
    improvement is the mirror image.

    Unstable cells: when a cell's baseline seeds disagree (some diverged or reached the target,
    others not), its continuous metrics mix two behaviours and average a seed-dependent subset
    of seeds, so they never fail the check (verdict `unstable`; they still count in the
    correction); its binary outcomes are tested and fail the check when significant. The
    reason says what evidence a change would need.

    Minimum detectable effect (mde): the change that this comparison alone would flag with 80%
    power at the seeds given (continuous: from the t distribution at the Bonferroni level of
    its family, never below the effect floor; binary: the rise in the share of bad seeds, from
    the exact binomial power of the Fisher test). When the mde is above twice the tolerance,
    the reason and seeds_needed name the number of current seeds that would bring it there
    (binary: that would make every current seed failing significant).

    Interval of the change (ci_lo, ci_hi): the 95% confidence interval of current - baseline
    from the same pooled t-test, for each comparison on its own (not widened for the many
    comparisons); for steps and samples to target and speed it is computed on the log scale and
    shown as a change of the baseline mean. Binary rows have none.
    """
    unstable = unstable_cells(comparisons)
    out = [None] * len(comparisons)
    families = [[i for i, c in enumerate(comparisons) if c.binary],
                [i for i, c in enumerate(comparisons) if not c.binary and not c.speed],
                [i for i, c in enumerate(comparisons) if c.speed]]
    level = alpha / max(1, sum(1 for f in families if f))
    bins, cont, speed = ([comparisons[i] for i in f] for f in families)
    for family, rows in zip(families, (_binary_family(bins, level), _continuous_family(cont, level, spread_k),
                                       _continuous_family(speed, level, 0.0))):
        for i, row in zip(family, rows):
            out[i] = row
    for c, row in zip(comparisons, out):
        if c.cell in unstable and not c.speed and (not c.binary or row["verdict"] != "regression"):
            why = "" if c.binary else "; not tested: its seeds mix two behaviours"
            row.update(verdict="unstable", reason=unstable[c.cell] + why)
        row["reason"] = "; ".join(r for r in (row["reason"], row.pop("hint")) if r)
    return out


def unstable_cells(comparisons: list) -> dict:
    """Cells whose baseline seeds disagree on a binary outcome -> why (for the reason column)."""
    out = {}
    for c in comparisons:
        b = np.asarray(c.baseline, float)
        if c.binary and 0 < b.sum() < len(b):
            what = "reached the target" if c.metric == "target_reached" else "diverged"
            out.setdefault(c.cell, f"unstable: {int(b.sum())} of {len(b)} baseline seeds {what}")
    return out


def pooled_t(baseline, current, higher_is_better: bool) -> dict:
    """One-sided two-sample t-test with pooled variance: p_worse (current worse than baseline),
    p_better, the mean change, its standard error and degrees of freedom. NaN p-values when
    there is no seed spread to test with (one seed on each side)."""
    from scipy import special

    b, c = np.asarray(baseline, float), np.asarray(current, float)
    nb, nc, df = len(b), len(c), len(b) + len(c) - 2
    out = {"n_baseline": nb, "n_current": nc, "delta": c.mean() - b.mean() if nb and nc else math.nan,
           "df": df, "sd": math.nan, "se": math.nan, "sd_baseline": float(b.std(ddof=1)) if nb > 1 else math.nan,
           "p_worse": math.nan, "p_better": math.nan}
    if nb == 0 or nc == 0 or df < 1:
        return out
    sd = math.sqrt((((b - b.mean()) ** 2).sum() + ((c - c.mean()) ** 2).sum()) / df)
    se = sd * math.sqrt(1 / nb + 1 / nc)
    worse = -out["delta"] if higher_is_better else out["delta"]
    scale = max(abs(b).max(), abs(c).max(), 1e-300)
    if se <= 1e-12 * scale:   # no spread at all: any change is certain, no change is none
        p_worse, p_better = ((0.0, 1.0) if worse > 1e-12 * scale
                             else (1.0, 0.0) if worse < -1e-12 * scale else (1.0, 1.0))
        se = 0.0
    else:
        p_better = float(special.stdtr(df, worse / se))   # the t distribution's CDF
        p_worse = float(special.stdtr(df, -worse / se))
    return {**out, "sd": sd, "se": se, "p_worse": p_worse, "p_better": p_better}


def t_mde(se: float, df: int, level: float, floor: float) -> float:
    """Smallest true change flagged with POWER probability: it must clear both the critical t at
    `level` and the effect floor, plus the power quantile of its own scatter."""
    from scipy import special

    if not (df >= 1 and np.isfinite(se)):
        return math.nan
    return max(float(special.stdtrit(df, 1 - level)) * se, floor) + float(special.stdtrit(df, POWER)) * se


def change_interval(t: dict) -> tuple[float, float]:
    """The INTERVAL confidence interval of the change (current - baseline) on the test's scale,
    from a pooled_t result; NaN without seed spread to estimate it (one seed on each side)."""
    from scipy import special

    if not (t["df"] >= 1 and np.isfinite(t["se"])):
        return math.nan, math.nan
    half = float(special.stdtrit(t["df"], 0.5 + INTERVAL / 2)) * t["se"]
    return t["delta"] - half, t["delta"] + half


def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count)."""
    p = np.asarray(p_values, float)
    out = np.full(len(p), math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if len(idx):
        order = idx[np.argsort(p[idx], kind="stable")]
        out[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(idx) - np.arange(len(idx)))))
    return out


def _test_scale(c: Comparison) -> tuple:
    """(baseline, current, tolerance, to_native) on the scale the t-test uses: logarithms for
    steps and samples to target, whose seed spread is right-skewed and grows with their size."""
    b, cur = np.asarray(c.baseline, float), np.asarray(c.current, float)
    if not (c.log_scale and (b > 0).all() and (cur > 0).all()):   # a zero (target met at step 0): as it is
        return b, cur, c.tolerance, lambda x: x
    mean = b.mean()
    return np.log(b), np.log(cur), math.log1p(c.tolerance / mean), lambda x: mean * float(np.expm1(x))


def _continuous_family(comps: list, level: float, spread_k: float) -> list[dict]:
    scaled = [_test_scale(c) for c in comps]
    tests = [pooled_t(b, cur, c.higher_is_better) for c, (b, cur, _, _) in zip(comps, scaled)]
    q_worse = holm_adjust([t["p_worse"] for t in tests])
    q_better = holm_adjust([t["p_better"] for t in tests])
    m = max(1, int(np.isfinite(q_worse).sum()))
    rows = []
    for c, (_, _, tol, native), t, qw, qb in zip(comps, scaled, tests, q_worse, q_better):
        spread = spread_k * t["sd_baseline"] if np.isfinite(t["sd_baseline"]) else 0.0
        floor = max(tol, spread)
        worse = -t["delta"] if c.higher_is_better else t["delta"]
        mde = t_mde(t["se"], t["df"], level / m, floor)
        lo, hi = change_interval(t)
        row = {"delta": float(np.mean(c.current) - np.mean(c.baseline)), "ci_lo": native(lo), "ci_hi": native(hi),
               "n_baseline": t["n_baseline"],
               "n_current": t["n_current"], "test": "t (pooled, log)" if c.log_scale else "t (pooled)",
               "p_value": t["p_worse"], "p_adjusted": qw, "threshold": native(floor), "mde": native(mde)}
        sure = f"n {t['n_baseline']} vs {t['n_current']}, p {t['p_worse']:.2g}, Holm-adjusted {qw:.2g}"
        change = f"{abs(row['delta']):.3g} (floor {row['threshold']:.3g})"
        if not np.isfinite(qw):
            row.update(verdict="not comparable", reason="one seed on each side: no seed spread to test with "
                                                        "(make a baseline with more seeds: make baseline)")
        elif qw <= level and worse > floor:
            row.update(verdict="regression", reason=f"worse by {change}; {sure} <= {level:g}")
        elif qb <= level and -worse > floor:
            row.update(verdict="improvement", reason=f"better by {change}; {sure.replace('p ', 'p(better) ', 1)}")
        else:
            row.update(verdict="pass", reason="")
        row["seeds_needed"], row["hint"] = _seeds_hint_t(t, tol, spread, level / m, mde, native)
        rows.append(row)
    return rows


def _seeds_hint_t(t: dict, tolerance: float, spread: float, level: float, mde: float, native) -> tuple[float, str]:
    """When the mde is above twice the tolerance: (current seeds that would bring it there, or NaN; why)."""
    goal = 2 * tolerance
    if not (goal > 0 and np.isfinite(mde) and mde > goal):
        return math.nan, ""
    text = f"mde {native(mde):.3g} > 2 x tolerance"
    if spread > goal:
        return math.nan, f"{text}: this cell's own seed spread is that large"
    nb = t["n_baseline"]
    for n in range(t["n_current"] + 1, MAX_SEEDS_HINT + 1):
        if t_mde(t["sd"] * math.sqrt(1 / nb + 1 / n), nb + n - 2, level, max(tolerance, spread)) <= goal:
            return n, f"{text}; {n} current seeds would bring it to {native(goal):.3g}"
    return math.nan, f"{text} even with {MAX_SEEDS_HINT} current seeds: the baseline needs more seeds"


def fisher_worse(bad_baseline: int, n_baseline: int, bad_current: int, n_current: int) -> float:
    """One-sided Fisher exact test: P(at least `bad_current` of the current seeds are bad) given
    the table's margins (hypergeometric)."""
    return _hypergeom_tail(bad_baseline + bad_current, n_baseline, n_current, bad_current, upper=True)


def _hypergeom_tail(total_bad: int, n_baseline: int, n_current: int, bad_current: int, upper: bool) -> float:
    """P(X >= bad_current) (upper) or P(X <= bad_current) for X the bad current seeds given the margins."""
    lo, hi = max(0, total_bad - n_baseline), min(n_current, total_bad)
    ks = range(max(lo, bad_current), hi + 1) if upper else range(lo, min(hi, bad_current) + 1)
    hits = sum(math.comb(total_bad, k) * math.comb(n_baseline + n_current - total_bad, n_current - k) for k in ks)
    return min(1.0, hits / math.comb(n_baseline + n_current, n_current))


def tarone_k(min_p, level: float) -> int:
    """Tarone's count for discrete tests: the smallest K such that at most K comparisons could
    reach p <= level / K at all (their smallest attainable p-value); Bonferroni then uses K."""
    min_p = np.asarray(min_p, float)
    for k in range(1, len(min_p) + 1):
        if (min_p <= level / k).sum() <= k:
            return k
    return max(1, len(min_p))


def binary_mde(bad_baseline: int, n_baseline: int, n_current: int, level: float) -> tuple[float, int]:
    """(rise in the share of bad seeds that the Fisher test flags with POWER probability, NaN when
    even every current seed bad would not be significant; current seeds for which it would be)."""
    from scipy import special

    for k in range(1, n_current + 1):
        if fisher_worse(bad_baseline, n_baseline, k, n_current) <= level:
            share = float(special.betaincinv(k, n_current - k + 1, POWER))  # P(Binomial(n, share) >= k) = POWER
            return share - bad_baseline / n_baseline, n_current
    for n in range(n_current + 1, MAX_SEEDS_HINT + 1):
        if fisher_worse(bad_baseline, n_baseline, n, n) <= level:
            return math.nan, n
    return math.nan, 0


def _binary_family(comps: list, level: float) -> list[dict]:
    counts = []
    for c in comps:
        b, cur = np.asarray(c.baseline, float), np.asarray(c.current, float)
        bad_b, bad_c = (len(b) - b.sum(), len(cur) - cur.sum()) if c.higher_is_better else (b.sum(), cur.sum())
        counts.append((int(bad_b), len(b), int(bad_c), len(cur)))
    p_worse = [fisher_worse(*k) for k in counts]
    p_better = [_hypergeom_tail(bb + bc, nb, nc, bc, upper=False) for bb, nb, bc, nc in counts]
    # the smallest p-value each table's margins allow: every bad seed current (worse) or baseline (better)
    k_worse = tarone_k([_hypergeom_tail(bb + bc, nb, nc, min(nc, bb + bc), True) for bb, nb, bc, nc in counts], level)
    k_better = tarone_k([_hypergeom_tail(bb + bc, nb, nc, max(0, bb + bc - nb), False)
                         for bb, nb, bc, nc in counts], level)
    rows = []
    for c, (bb, nb, bc, nc), pw, pb in zip(comps, counts, p_worse, p_better):
        adj_w, adj_b = min(1.0, pw * k_worse), min(1.0, pb * k_better)
        mde, need = binary_mde(bb, nb, nc, level / k_worse) if bb < nb else (math.nan, 0)
        what = "missed the target" if c.higher_is_better else "diverged"
        share = f"{bb} of {nb} baseline seeds {what}, {bc} of {nc} now"
        row = {"delta": (bc / nc - bb / nb) * (-1 if c.higher_is_better else 1), "n_baseline": nb, "n_current": nc,
               "test": "Fisher exact", "p_value": pw, "p_adjusted": adj_w, "threshold": 0.0, "mde": mde}
        sure = f"p {pw:.2g}, Bonferroni over {k_worse} testable {adj_w:.2g}"
        if adj_w <= level:
            row.update(verdict="regression", reason=f"{share}; {sure} <= {level:g}")
        elif adj_b <= level:
            row.update(verdict="improvement", reason=f"{share}; p(better) {pb:.2g}, adjusted {adj_b:.2g}")
        else:
            row.update(verdict="pass", reason="")
        row["seeds_needed"] = need if need and not np.isfinite(mde) and bb < nb else math.nan
        row["hint"] = ("" if bb == nb or np.isfinite(mde) else
                       f"undetectable with {nc} seeds: {need} current seeds all bad would be significant" if need else
                       f"undetectable with {nc} seeds: the baseline needs more seeds")
        rows.append(row)
    return rows
