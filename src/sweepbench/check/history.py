"""The check history: one entry per checked set of results, so a change that lasts can be told
from one unlucky check.

`sweepbench check` appends an entry to the history file (default results/history.csv; it
survives `make clean`) after each comparison: one row per (study, cell, metric) that has an
effect floor, with its change in units of that floor (compare.change_in_floors). Checking the
same tables again replaces that entry instead of adding one (the key is the baseline and a
digest of runs.csv), so re-running `make check` does not fake a streak.

history.csv columns: entry (1, 2, ...), recorded (UTC time of the check), baseline, tables
(first 12 hex digits of runs.csv's sha256), commit (the runs' git commits), machine (the runs'
device and torch version: the machine and environment fingerprint; a series never mixes two),
study, cell, metric, current (the current value: mean over seeds), delta, threshold, change
(delta in effect floors, positive = worse), change_lo, change_hi (its 95% interval in floors),
verdict.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time

from sweepbench import SweepbenchError
from sweepbench.atomic import sha256_file, write_file
from sweepbench.check import compare
from sweepbench.record import row_length_problem

HISTORY_COLUMNS = ["entry", "recorded", "baseline", "tables", "commit", "machine", "study", "cell", "metric",
                   "current", "delta", "threshold", "change", "change_lo", "change_hi", "verdict"]
LASTING_CHECKS = 3   # a change past the floor in this many checks in a row is lasting (lasting_changes)
LASTING_COLUMNS = ["study", "cell", "metric", "direction", "checks", "since_entry", "since_commit", "change_first",
                   "change_last", "step"]


def default_path(check_dir: str) -> str:
    """Where the history of checks written to `check_dir` lives: history.csv beside that folder
    (results/check -> results/history.csv), outside what `make clean` removes."""
    return os.path.join(os.path.dirname(os.path.normpath(check_dir)), "history.csv")


def tables_digest(runs_path: str) -> str:
    return sha256_file(runs_path)[:12]


def read_history(path: str):
    """history.csv as a DataFrame (empty with its columns when the file does not exist); a file
    that is not a history is refused naming it and the columns it lacks."""
    import pandas as pd

    if not os.path.exists(path):
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    allowed = "allowed: the history.csv sweepbench check writes (move it away to start a new one)"
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        header, *rows = csv.reader(io.StringIO(text))
        df = pd.read_csv(io.StringIO(text), dtype={"tables": str, "commit": str, "baseline": str, "machine": str})
    except (OSError, ValueError, csv.Error) as err:  # a folder, not UTF-8, empty, a quote left open
        raise SweepbenchError(f"history {path} cannot be read ({type(err).__name__}); {allowed}") from None
    problem = row_length_problem(header, rows)  # a row with a field more or less: pandas shifts it
    if problem:
        raise SweepbenchError(f"history {path} {problem} (left untouched); {allowed}")
    if list(df.columns) != HISTORY_COLUMNS:  # appending rewrites the file: another column would be dropped
        lacking = [c for c in HISTORY_COLUMNS if c not in df.columns]
        other = [c for c in df.columns if c not in HISTORY_COLUMNS]
        what = (f"lacks columns {lacking}" if lacking else f"has columns sweepbench did not write {other}" if other
                else "has its columns in another order")
        raise SweepbenchError(f"history {path} {what} (left untouched); {allowed}")
    df["machine"] = df["machine"].fillna("").astype(str)
    for col in ("entry", "change", "change_lo", "change_hi"):
        values = pd.to_numeric(df[col], errors="coerce")
        wrong = values.isna() & (df[col].notna() | (col == "entry"))
        if wrong.any():
            i = int(wrong.to_numpy().argmax())
            raise SweepbenchError(f"history {path} line {i + 2}: {col} {df[col].iloc[i]!r} is not a number; {allowed}")
        df[col] = values
    return df[HISTORY_COLUMNS]


def entry_rows(table, key: dict):
    """The history rows of one check table (check.csv): every row with an effect floor, and every row
    with a current value that could not be compared (its change empty: the key figures, e.g. samples/s
    on another torch version, are kept all the same)."""
    import pandas as pd

    rows = []
    for row in table.to_dict("records"):
        change, lo, hi = compare.change_in_floors(row)
        current = row.get("current")
        if math.isfinite(change) or (isinstance(current, (int, float)) and math.isfinite(current)):
            rows.append({**key, "study": row["study"], "cell": row["cell"], "metric": row["metric"],
                         "current": row.get("current"), "delta": row["delta"], "threshold": row["threshold"],
                         "change": change, "change_lo": lo,
                         "change_hi": hi, "verdict": row["verdict"]})
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def commits(runs_path: str) -> str:
    """The git commits the current runs were trained at (10 hex digits each, sorted, joined)."""
    import pandas as pd

    runs = pd.read_csv(runs_path, usecols=lambda c: c == "git_commit", dtype=str)
    if "git_commit" not in runs:
        return ""
    return " ".join(sorted(str(v)[:10] for v in runs["git_commit"].dropna().unique()))


def machine(runs_path: str) -> str:
    """The machine and environment fingerprint of the current runs: their device names and torch
    versions ("<device> / torch <version>", sorted, joined by "; ")."""
    import pandas as pd

    runs = pd.read_csv(runs_path, usecols=lambda c: c in ("device_name", "torch"), dtype=str)
    if not {"device_name", "torch"} <= set(runs):
        return ""
    pairs = runs[["device_name", "torch"]].dropna().drop_duplicates().itertuples(index=False)
    return "; ".join(sorted(f"{device} / torch {torch}" for device, torch in pairs))


def record_check(path: str, check_dir: str, baseline: str, tables_dir: str) -> int:
    """Add the check just written to check_dir (check.csv) to the history at `path`."""
    import pandas as pd

    runs_path = os.path.join(tables_dir, "runs.csv")
    table = pd.read_csv(os.path.join(check_dir, "check.csv"))
    return append_entry(path, table, baseline, runs_path, commits(runs_path))


def append_entry(path: str, table, baseline: str, runs_path: str, commit: str = "") -> int:
    """Add this check to the history file (atomically) and return its entry number; the same
    tables checked against the same baseline again replace their entry (same number)."""
    import pandas as pd

    history = read_history(path)
    digest = tables_digest(runs_path)
    same = (history["baseline"] == baseline) & (history["tables"] == digest)
    entry = (int(history.loc[same, "entry"].iloc[0]) if same.any()
             else int(history["entry"].max()) + 1 if len(history) else 1)
    key = {"entry": entry, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "baseline": baseline,
           "tables": digest, "commit": commit, "machine": machine(runs_path)}
    new = entry_rows(table, key)
    kept = history[history["entry"] != entry]
    out = pd.concat([df for df in (kept, new) if len(df)] or [new], ignore_index=True)
    write_file(path, out.sort_values("entry", kind="stable").to_csv(index=False))
    return entry


def lasting_changes(history, baseline: str | None = None, checks: int = LASTING_CHECKS, on: str | None = None):
    """A lasting change: a (cell, metric) whose change from the baseline was past its effect
    floor, in the same direction, in each of the last `checks` (3) entries of the check history
    (still in the latest one), after an entry where it was not: a step the history saw happen.
    The change is counted in effect floors (the check's threshold for that row: its tolerance or
    its baseline seed spread, whichever is larger; for speed the relative threshold), so one
    unlucky check, or a change that came and went, is not lasting, while a step that every later
    check sees is, even where the seeds of each single check were too few to make it
    significant. The report names the entry and commit where the streak began: the step.
    A (cell, metric) past the floor in every entry since the history began shows no step: it is
    a standing difference from the baseline (step = False; the same seeds give the same values,
    so re-checking unchanged code repeats it), counted apart. Only entries against one baseline
    are compared (the latest entry's, unless named), and only entries of one machine and
    environment (`on`: the latest entry's fingerprint, unless named; a series never mixes two
    machines); an entry that did not compare the cell breaks its streak."""
    import pandas as pd

    if history.empty:
        return pd.DataFrame(columns=LASTING_COLUMNS)
    h = one_series(history, baseline, on)
    entries = sorted(h["entry"].unique())
    rows = []
    for (study, cell, metric), g in h.groupby(["study", "cell", "metric"], sort=False):
        series = g.set_index("entry")["change"].reindex(entries)
        streak = _streak(series.to_numpy(float))
        if streak >= checks:
            first = entries[-streak]
            rows.append({"study": study, "cell": cell, "metric": metric,
                         "direction": "worse" if series.iloc[-1] > 0 else "better", "checks": streak,
                         "since_entry": first, "since_commit": h.loc[h["entry"] == first, "commit"].iloc[0],
                         "change_first": series[first], "change_last": series.iloc[-1],
                         "step": bool(series.loc[:first].iloc[:-1].notna().any())})
    return pd.DataFrame(rows, columns=LASTING_COLUMNS)


def one_series(history, baseline: str | None = None, on: str | None = None):
    """The entries against one baseline on one machine and environment (the latest entry's unless named)."""
    baseline = baseline or latest_baseline(history)
    h = history[history["baseline"] == baseline]
    on = latest_machine(h) if on is None else on
    return h[h["machine"].astype(object).fillna("") == on]


def latest_machine(history) -> str:
    """The machine fingerprint of the newest entry ("" where unknown)."""
    last = history.loc[history["entry"] == history["entry"].max(), "machine"]
    return "" if last.empty or pd_isna(last.iloc[-1]) else str(last.iloc[-1])


def pd_isna(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def latest_baseline(history) -> str:
    """The baseline of the newest entry."""
    return history.loc[history["entry"] == history["entry"].max(), "baseline"].iloc[-1]


def _streak(changes) -> int:
    """How many entries at the end of `changes` are past the floor (|change| > 1) in the sign of the last one."""
    n = 0
    last = changes[-1] if len(changes) else math.nan
    for x in changes[::-1]:
        if not (abs(x) > 1 and (x > 0) == (last > 0)):
            break
        n += 1
    return n
