"""Seed vs sweepbench: the numbers a study's seed document printed, beside ours (reproduction.csv).

A study may carry a `reference` block (config/README.md): the seed file and cell the numbers
come from, which of our runs.csv columns each printed number corresponds to, and one row per
point of the sweep (the study's axis values, then the printed values; `nan` where the seed
printed nan). sweepbench.rules.reproduction_verdict decides one verdict per study and metric.
"""

from __future__ import annotations

import math

from sweepbench import rules
from sweepbench.plan.planner import ABBREVIATIONS, value_slug

COLUMNS = ["study", "metric", "source", "point", "x_axis", "x", "reference", "ours", "diff", "band", "state", "n_seeds",
           "verdict", "n_rows", "n_within_band", "n_divergence_mismatches", "n_ordered_pairs", "n_reversed_pairs",
           "kendall_tau", "kendall_p", "abs_tol", "rel_tol"]


# Every reference metric is a runs.csv column (reproduction_table gets the runs table); Keras's
# printed `loss` (a running mean over the epoch) is compared with runs.csv's final_epoch_loss,
# run.json's final.epoch_loss: the mean mini-batch loss of the last evaluation window.


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b) \
            and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)
    return str(a) == str(b)


def _point(axes: dict) -> str:
    return ", ".join(f"{ABBREVIATIONS.get(k, k)}={value_slug(v)}" for k, v in axes.items())


def _ours(study_runs, axes: dict, metric: str) -> tuple[float | None, bool, int]:
    """Our value at one point: the mean over seeds that did not diverge, whether the cell
    diverged (more than half its seeds), and the number of seeds (0: not run here)."""
    import pandas as pd

    mask = pd.Series(True, index=study_runs.index)
    for key, want in axes.items():
        col = f"axis_{key}" if f"axis_{key}" in study_runs else key
        if col not in study_runs:
            return None, False, 0
        mask &= study_runs[col].map(lambda v, w=want: _same(v, w))
    g = study_runs[mask]
    if g.empty or metric not in g:
        return None, False, len(g)
    diverged = g["diverged"].astype(bool)
    values = pd.to_numeric(g.loc[~diverged, metric], errors="coerce").dropna()
    return (float(values.mean()) if len(values) else math.nan), bool(diverged.mean() > 0.5), len(g)


def reproduction_table(the_plan: dict, runs):
    """Seed vs sweepbench: each reference row of a study beside our cell at the same point of
    the sweep (mean over its seeds that did not diverge), the difference and the band, and one
    verdict per study and metric (Reproduction verdict). Points the seed printed but this
    study does not plan are listed as 'not run here' and left out of the verdict; points it
    plans whose records are missing are 'no record yet', and the verdict then starts with
    'incomplete'.

    Known, legitimate differences, so a 'levels differ' verdict is expected and not a bug:
    (1) initialisation and randomness: the Keras-born models here use Keras's scheme
    (Glorot-uniform weights, zero biases, Keras's BatchNorm settings), but PyTorch's random
    streams differ from TensorFlow's, so initial weights and batch orders are other draws from
    the same distributions, and PyTorch's default initialisation would differ again;
    (2) Keras's printed `loss`/`accuracy` is the running mean over the last epoch's
    mini-batches (in training mode: BatchNorm uses batch statistics, the weights keep
    moving), sweepbench's final_train_* is a full training-set evaluation after the epoch in
    evaluation mode (so seed 002's printed `loss` is compared with final_epoch_loss, the same
    running mean over the last epoch, while its `accuracy` can only be compared with the
    full-set evaluation); (3) a seed that printed one run per point is one draw, so differences
    within a few points of accuracy are noise; (4) wall times come from other hardware and
    software, so only their ordering is compared; (5) a study run on a subset (mnist5k:
    4,000 training images) against a seed trained on the full set compares levels that
    cannot be equal."""
    import pandas as pd

    rows = []
    for name, study in the_plan["studies"].items():
        ref = study.get("reference") or {}
        if not ref.get("rows"):
            continue
        study_runs = runs[runs["study"] == name] if not runs.empty else runs
        cells = [the_plan["cells"][c] for c in study.get("cells", []) if c in the_plan.get("cells", {})]
        planned = [{**c["axes"], **(c["runs"][0]["spec"] if c.get("runs") else {})} for c in cells]
        for metric, meta in (ref.get("metrics") or {}).items():
            rows += _metric_rows(name, ref, metric, meta or {}, study_runs, planned)
    return pd.DataFrame(rows, columns=COLUMNS)


def _planned(axes: dict, planned: list[dict]) -> bool:
    """Whether the plan has a cell at this point (then a missing record is 'no record yet')."""
    return any(all(k in cell and _same(cell[k], v) for k, v in axes.items()) for cell in planned)


def _metric_rows(name: str, ref: dict, metric: str, meta: dict, study_runs, planned: list[dict]) -> list[dict]:
    abs_tol, rel_tol, level = rules.REFERENCE_TOLERANCES[rules.reference_kind(metric)]
    abs_tol, rel_tol = float(meta.get("abs_tol", abs_tol)), float(meta.get("rel_tol", rel_tol))
    metric_keys = set(ref["metrics"])
    points, compared, skipped = [], [], []
    for row in ref["rows"]:
        if metric not in row:
            continue
        axes = {k: v for k, v in row.items() if k not in metric_keys}
        value, diverged, n = _ours(study_runs, axes, metric) if not study_runs.empty else (None, False, 0)
        entry = {"point": _point(axes), "point_axes": axes, **_x(axes, ref["rows"], metric_keys),
                 "reference": rules.reference_value(row[metric]), "n_seeds": n}
        (compared if n else skipped).append((entry, value, diverged))
    verdict = rules.reproduction_verdict([e["reference"] for e, _, _ in compared], [v for _, v, _ in compared],
                                         [d for _, _, d in compared], abs_tol, rel_tol, level)
    waiting = sum(_planned(e["point_axes"], planned) for e, _, _ in skipped)
    if waiting:   # never a verdict on an unfinished study without saying so
        verdict["verdict"] = f"incomplete ({waiting} planned points have no record yet); so far: {verdict['verdict']}"
    common = {"study": name, "metric": metric, "source": f"{ref.get('source', '')} {meta.get('cell', '')}".strip(),
              "abs_tol": abs_tol, "rel_tol": rel_tol,
              **{k: verdict[k] for k in ("verdict", "n_rows", "n_within_band", "n_divergence_mismatches",
                                         "n_ordered_pairs", "n_reversed_pairs", "kendall_tau", "kendall_p")}}
    for (entry, _, _), judged in zip(compared, verdict["rows"]):
        points.append({**common, **entry, **{k: judged[k] for k in ("ours", "diff", "band", "state")}})
    for entry, _, _ in skipped:
        state = "no record yet" if _planned(entry["point_axes"], planned) else "not run here"
        points.append({**common, **entry, "ours": None, "diff": math.nan, "band": math.nan, "state": state})
    for point in points:
        del point["point_axes"]
    return points


def _x(axes: dict, all_rows: list, metric_keys: set) -> dict:
    """The numeric axis the reference rows vary along (for the overlay plot's x), if one."""
    varying = [k for k in axes if len({repr(r.get(k)) for r in all_rows}) > 1]
    key = varying[0] if len(varying) == 1 else None
    value = axes.get(key) if key else None
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {"x_axis": key if numeric else None, "x": float(value) if numeric else math.nan}


def verdict_line(group) -> str:
    """One sentence per study and metric for the report, with how sure it is."""
    first = group.iloc[0]
    parts = [f"{first['metric']}: {first['verdict']} ({int(first['n_rows'])} of {len(group)} printed points compared"]
    if first["n_within_band"] == first["n_within_band"] and first["n_within_band"] is not None:
        band = (f"±max({first['abs_tol']:g}, {first['rel_tol']:g} × seed)" if first["rel_tol"]
                else f"±{first['abs_tol']:g}")
        parts.append(f"{int(first['n_within_band'])} within the band {band}")
    parts.append(f"{int(first['n_reversed_pairs'])} of {int(first['n_ordered_pairs'])} clearly ordered pairs reversed")
    if int(first["n_divergence_mismatches"]):
        parts.append(f"{int(first['n_divergence_mismatches'])} divergence mismatches")
    if first["kendall_tau"] == first["kendall_tau"]:
        parts.append(f"Kendall tau {first['kendall_tau']:.2f}, p = {first['kendall_p']:.2g}")
    return "; ".join(parts) + f"). Source: {first['source']}."
