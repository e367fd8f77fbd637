"""The report's regression-check and check-history sections, read in a minute: the verdict,
the comparisons counted by verdict and reason in words, a dot figure of every change against
its effect floor, the regressions and improvements only, and the full table folded away (in
the HTML) and linked as check.csv; then the history's trend and its lasting changes.
"""

from __future__ import annotations

import json
import os

import pandas as pd

from sweepbench import SweepbenchError
from sweepbench.check import compare, history
from sweepbench.report.blocks import figure, html_table, read_table

CHECK_ORDER = {"regression": 0, "missing": 1, "unstable": 2, "improvement": 3, "not comparable": 4, "pass": 5}
SHORT_COLUMNS = {"cell": "cell", "metric": "metric", "baseline": "baseline", "current": "now",
                 "delta": "change", "interval": "95% interval", "threshold": "floor", "p_adjusted": "p adj.",
                 "reason": "reason"}


def check_mde_table(df: pd.DataFrame) -> dict:
    """Per metric: how many comparisons, the median and largest minimum detectable effect, and how
    many would need more seeds to detect twice their tolerance."""
    rows = []
    tested = df["test"].fillna("").str.startswith(("t (pooled", "Fisher exact"))
    for metric, g in df[tested].groupby("metric", sort=False):
        mde = pd.to_numeric(g["mde"], errors="coerce")
        rows.append({"metric": metric, "n": len(g), "seeds": f"{int(g['n_baseline'].median())} vs "
                                                            f"{int(g['n_current'].median())}",
                     "mde_median": mde.median(), "mde_max": mde.max(), "undetectable": int(mde.isna().sum()),
                     "need_seeds": int(g["seeds_needed"].notna().sum())})
    columns = {"metric": "metric", "n": "comparisons", "seeds": "seeds (median, baseline vs current)",
               "mde_median": "median mde", "mde_max": "largest mde", "undetectable": "no mde (undetectable)",
               "need_seeds": "need more seeds"}
    caption = ("How sure the check is: the minimum detectable effect (mde), the change a comparison catches "
               "with 80% power at these seeds, in the metric's units (target_reached, diverged: share of seeds)")
    return html_table(pd.DataFrame(rows), columns, caption)


def counts_in_words(df: pd.DataFrame) -> list[str]:
    """One line per verdict, most serious first: how many rows, and how many for each reason
    (compare.why_words), e.g. 'pass 412: 398 within the effect floor, 14 past the effect floor,
    not significant'; a verdict with one reason: 'unstable 68: baseline seeds disagree'."""
    why = df["why"] if "why" in df else df.apply(lambda r: compare.why_words(r.to_dict()), axis=1)
    lines = []
    for verdict in sorted(df["verdict"].unique(), key=lambda v: CHECK_ORDER.get(v, 9)):
        reasons = why[df["verdict"] == verdict].fillna("").value_counts()
        named = [(reason, n) for reason, n in reasons.items() if reason]
        parts = named[0][0] if len(named) == 1 else "; ".join(f"{n} {reason}" for reason, n in named)
        lines.append(f"{verdict} {int(reasons.sum())}" + (f": {parts}" if parts else ""))
    return lines


# the check figure's rows: a study's metrics of one kind share a line (final and best, steps and samples,
# samples/s and step time move together)
FAMILIES = {"final_val_accuracy": "accuracy", "best_val_accuracy": "accuracy", "final_val_loss": "loss",
            "best_val_loss": "loss", "steps_to_target": "to target", "samples_to_target": "to target",
            "samples_per_s": "speed", "step_time_median_s": "speed"}


def forest_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows the check figure draws: every comparison with an effect floor that was compared
    (not 'not comparable' or missing), in floors, under its study and kind of metric."""
    rows = [{"study": r["study"], "metric": FAMILIES.get(r["metric"], r["metric"]), "verdict": r["verdict"],
             **dict(zip(("change", "change_lo", "change_hi"), compare.change_in_floors(r)))}
            for r in df.to_dict("records") if r["verdict"] not in ("not comparable", "missing")]
    out = pd.DataFrame(rows, columns=["study", "metric", "verdict", "change", "change_lo", "change_hi"])
    return out[out["change"].notna()]


def changes_table(df: pd.DataFrame, csv_name: str) -> dict:
    """The regressions and improvements only, regressions first, with the change's interval."""
    shown = df[df["verdict"].isin(["regression", "improvement"])]
    shown = shown.sort_values("verdict", key=lambda v: v.map(CHECK_ORDER), kind="stable").copy()
    shown["interval"] = [f"{lo:.3g}\u00a0to\u00a0{hi:.3g}" if pd.notna(lo) else "–"
                         for lo, hi in zip(shown["ci_lo"], shown["ci_hi"])]
    caption = (f"Regressions and improvements ({len(shown)} of {len(df)} comparisons; every one: {csv_name}). "
               "Change: now - baseline (speed: samples/s); floor: the effect floor a change must pass; "
               "p adj.: after the correction for the many comparisons.")
    return html_table(shown, SHORT_COLUMNS, caption, text=("reason",))


def full_table(df: pd.DataFrame) -> dict:
    shown = df.sort_values("verdict", key=lambda v: v.map(CHECK_ORDER), kind="stable")
    columns = {c: c.replace("_", " ") for c in df.columns}
    columns.update(p_value="p", p_adjusted="p adj.", n_baseline="n base", n_current="n now")
    return html_table(shown, columns, f"Every comparison ({len(df)}), the most serious first.", text=("reason",))


def baseline_made(summary: dict) -> str:
    """How the baseline was made, in one short line: its seeds, machine, torch and commit."""
    made = dict(summary.get("baseline_made") or {})
    if made.get("cpu") and [made["cpu"]] == made.get("device_name"):
        made.pop("cpu")
    made["git_commit"] = [str(c)[:10] for c in made.get("git_commit") or []]
    text = "; ".join(f"{k.replace('_', ' ')} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in made.items() if k != "seeds" and v not in (None, [], False))
    seeds = {s: f"{min(v)}-{max(v)}" for s, v in (made.get("seeds") or {}).items()}
    if len(set(seeds.values())) == 1:
        text = f"seeds {next(iter(seeds.values()))} in every study; " + text
    elif seeds:
        text = "seeds " + ", ".join(f"{s} {v}" for s, v in seeds.items()) + "; " + text
    return text


def check_section(check_dir: str, out_dir: str | None = None) -> dict | None:
    """The check section's context from check_dir's check.csv and summary.json (None without a
    check); out_dir (the report's folder) makes the link to check.csv relative to the page."""
    path = os.path.join(check_dir, "check.csv")
    if not os.path.exists(path):
        return None
    df = read_table(check_dir, "check")
    summary = read_summary(os.path.join(check_dir, "summary.json"))
    link = os.path.relpath(path, out_dir) if out_dir else path
    out = {"summary": summary.get("line", ""), "headline": summary.get("line", ""), "passed": summary.get("passed"),
           "csv": link, "counts": [],
           "figure": None, "changes": {"rows": []}, "table": {"rows": []}, "mde": {"rows": []},
           "made": baseline_made(summary), "n": len(df), "environment": summary.get("environment")}
    if "verdict" not in df or df.empty:
        return out
    for col in ("ci_lo", "ci_hi"):   # a check.csv of an older sweepbench: no intervals
        if col not in df:
            df[col] = float("nan")
    from sweepbench.report import figures

    drawn = forest_rows(df)
    if len(drawn):
        out["figure"] = figure(figures.check_forest(drawn, "Change from the baseline, every comparison"),
                               "Change from the baseline", FOREST_CAPTION)
    out.update(counts=counts_in_words(df), changes=changes_table(df, link), table=full_table(df),
               mde=check_mde_table(df), headline=headline(summary, df))
    return out


def read_summary(path: str) -> dict:
    """The check's summary.json ({} when there is none), or one line naming the file when it is not
    the JSON object `sweepbench check` writes (`[]`, text that is not JSON, a folder)."""
    if not os.path.exists(path):
        return {}
    allowed = "allowed: the summary.json `sweepbench check` writes (run the check again)"
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except OSError as err:
        raise SweepbenchError(f"check summary {path} cannot be read ({err.strerror}); {allowed}") from None
    except ValueError as err:  # not JSON, not UTF-8
        raise SweepbenchError(f"check summary {path} is not JSON ({type(err).__name__}); {allowed}") from None
    if not isinstance(summary, dict):
        raise SweepbenchError(f"check summary {path} is a JSON {type(summary).__name__}, not an object; {allowed}")
    return summary


def headline(summary: dict, df: pd.DataFrame) -> str:
    """The verdict in one short line; the counts follow it (counts_in_words)."""
    regressed = int((df["verdict"] == "regression").sum())
    cells = summary.get("cells") or df[["study", "cell"]].drop_duplicates().shape[0]
    what = f"{regressed} regression{'s' if regressed != 1 else ''}" if regressed else "no regression"
    return (f"{'REGRESSION' if regressed else 'PASS'} against baseline {summary.get('baseline', '?')!r}: {what} in "
            f"{len(df):,} comparisons of {cells} cells.")


FOREST_CAPTION = ("One dot per cell and metric (final and best, steps and samples, samples/s and step time share "
                  "a line): the change from the baseline in effect floors (the row's threshold), right = worse; "
                  "lines are 95% intervals, the band is the floor. A regression is past the band and significant "
                  "after the correction for many comparisons (Methods); triangles: past 5 floors. Seed counts "
                  "and rows not comparable are counted above only.")


def history_section(path: str | None) -> dict | None:
    """The check-history section: how many checks, the lasting changes (history.lasting_changes)
    and the trend figure; None without a history of at least two checks."""
    if not path or not os.path.exists(path):
        return None
    h = history.read_history(path)
    if h["entry"].nunique() < 2:
        return None
    from sweepbench.report import figures

    found = history.lasting_changes(h)
    lasting, standing = found[found["step"].astype(bool)], found[~found["step"].astype(bool)]
    lasting = lasting.sort_values("direction", ascending=False, kind="stable")     # worse first
    baseline = history.latest_baseline(h)
    everything, h = h, history.one_series(h)
    machine = history.latest_machine(h)
    others = everything[everything["baseline"] == baseline]["entry"].nunique() - h["entry"].nunique()
    keys = list(zip(lasting["study"], lasting["cell"], lasting["metric"]))[:8]
    svg = figures.check_trend(h, keys, f"Change from baseline {baseline!r} over {h['entry'].nunique()} checks"
                                       + (f" on {machine}" if machine else ""))
    columns = {"study": "study", "cell": "cell", "metric": "metric", "direction": "direction",
               "checks": "checks in a row", "since_entry": "since check", "since_commit": "since commit",
               "change_first": "change then (floors)", "change_last": "change now (floors)"}
    caption = (f"Lasting changes ({len(lasting)}): past the effect floor in the same direction in each of the "
               f"last {history.LASTING_CHECKS} or more checks, after a check where they were not (Methods: lasting "
               "change); the step is where the streak began")
    first, last = h["recorded"].min(), h["recorded"].max()
    return {"n": int(h["entry"].nunique()), "baseline": baseline, "first": first, "last": last, "path": path,
            "machine": machine, "others": int(others),
            "lasting": html_table(lasting, columns, caption), "n_lasting": len(lasting), "n_standing": len(standing),
            "figure": figure(svg, "Check history", TREND_CAPTION)}


TREND_CAPTION = ("Each cell and metric's change from the baseline in effect floors (+ = worse) at each check in "
                 "the history: grey lines are every comparison, coloured ones the lasting changes (at most 8), "
                 "triangles what each check flagged (red down: a regression, green up: an improvement); "
                 "the shaded band is the floor, values past 5 floors sit at the edge.")
