"""Render report/index.html (self-contained) and report/report.pdf (the same HTML through
WeasyPrint) from the plan, the tables and the run records.

Only what the results contain gets a section. Nothing time-dependent is written, so the
same inputs give the same HTML bytes.
"""

from __future__ import annotations

import base64
import inspect
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from sweepbench import SweepbenchError, __version__, rules
from sweepbench.aggregate import reproduction, statistics
from sweepbench.aggregate.tables import TABLE_NAMES, table_columns
from sweepbench.atomic import refuse_overwrite, remove_own, write_own
from sweepbench.check import compare, history, regression
from sweepbench.data import generated
from sweepbench.plan.planner import SMOKE_REPORT_MARK, read_plan
from sweepbench.report import check_part, figure_files
from sweepbench.report.blocks import figure, fmt, html_table, read_table
from sweepbench.spec import resolve
from sweepbench.workloads import get as get_workload

TEMPLATE = "report.html.j2"
MAX_CURVES = 8
MAX_TABLE_ROWS = 30  # a study's tables beyond this show a selection and name the CSV with every row


# ---------------------------------------------------------------- small helpers

def docstring(obj) -> str:
    return inspect.cleandoc(obj.__doc__ or "")


# ---------------------------------------------------------------- per-study sections

def _cell_label(cell_row, axes) -> str:
    parts = []
    for a in axes:
        v = cell_row.get(f"axis_{a}")
        parts.append(f"{a}={v:g}" if isinstance(v, float) else f"{a}={v}")
    return ", ".join(parts) or "default"


def _select_cells(cells: pd.DataFrame, axes: list) -> tuple[pd.DataFrame, str]:
    """At most MAX_CURVES cells for curves: all of them, or the best cell per value of the
    first axis that is not lr (by best validation accuracy, else lowest final training loss)."""
    if len(cells) <= MAX_CURVES:
        return cells, ""
    key = "best_val_accuracy_mean" if cells["best_val_accuracy_mean"].notna().any() else "final_train_loss_mean"
    group_axis = next((a for a in axes if a != "lr"), axes[0])
    picked = []
    for _, g in cells.groupby(f"axis_{group_axis}", sort=False):
        g = g.dropna(subset=[key])
        if len(g):
            picked.append(g.loc[g[key].idxmax() if key.endswith("accuracy_mean") else g[key].idxmin()])
    chosen = pd.DataFrame(picked).head(MAX_CURVES)
    how = "best" if key.endswith("accuracy_mean") else "lowest final training loss"
    return chosen, (f" Showing, for each {group_axis}, the cell with the {how} "
                    f"{'validation accuracy' if how == 'best' else ''}").rstrip() + "."


def thin(df: pd.DataFrame, group: str, order: str, per_group: int) -> pd.DataFrame:
    """The rows of at most `per_group` values of `order` in each group, evenly spaced (first and
    last kept), so that a big sweep's tables and figures stay readable."""
    parts = []
    for _, g in df.groupby(group, sort=False):
        values = np.sort(g[order].unique())
        keep = values[np.unique(np.linspace(0, len(values) - 1, min(per_group, len(values))).round().astype(int))]
        parts.append(g[g[order].isin(keep)].sort_values(order, kind="stable"))
    return pd.concat(parts) if parts else df


def capped(df: pd.DataFrame, what: str, csv: str, key: str | None = None, ascending: bool = False,
           group: str = "optimizer", order: str = "effective_batch_size") -> tuple[pd.DataFrame, str]:
    """At most MAX_TABLE_ROWS rows for a report table, and the sentence that says which and
    where the full table is: the best by `key`, else evenly spaced `order` values per `group`."""
    if len(df) <= MAX_TABLE_ROWS:
        return df, ""
    if key:
        shown = df.sort_values(key, ascending=ascending, na_position="last").head(MAX_TABLE_ROWS)
        how = f"those with the {'lowest' if ascending else 'highest'} {key.removesuffix('_mean').replace('_', ' ')}"
    else:
        shown = thin(df, group, order, max(2, MAX_TABLE_ROWS // max(1, df[group].nunique())))
        how = f"{order.replace('_', ' ')}s evenly spaced per {group}"
    return shown, f" Showing {len(shown)} of {len(df):,} {what} ({how}); all of them: {csv}."


def _curves(cells: pd.DataFrame, runs: pd.DataFrame, axes, runs_dir: str) -> pd.DataFrame:
    frames = []
    for _, c in cells.iterrows():
        label = _cell_label(c, axes)
        for _, r in runs[runs["cell"] == c["cell"]].iterrows():
            path = os.path.join(runs_dir, r["run"], "metrics.csv")
            if os.path.exists(path):
                m = pd.read_csv(path)
                m["label"], m["seed"] = label, r["seed"]
                frames.append(m)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _trajectory_section(study, cells, runs, axes, runs_dir, figs) -> None:
    """Seed 001/003: parameter paths over the loss-surface contour (two-parameter models)."""
    workload = study["workload"]
    paths, names = {}, None
    for _, c in cells.iterrows():
        run = runs[runs["cell"] == c["cell"]].sort_values("seed").iloc[0]
        path = os.path.join(runs_dir, run["run"], "steps.csv")
        if not os.path.exists(path):
            continue
        steps = pd.read_csv(path)
        cols = ["w", "b"] if "w" in steps else ["w1", "w2"]
        start = (0.0, 0.0) if cols == ["w", "b"] else (-1.0, 1.0)
        paths[_cell_label(c, axes)] = (np.r_[start[0], steps[cols[0]]], np.r_[start[1], steps[cols[1]]])
        names = cols
    if not paths:
        return
    spec = resolve({"workload": workload})
    x, y = (a.astype(np.float64) for a in generated.training_set(get_workload(workload).dataset, spec))
    all1 = np.concatenate([p[0] for p in paths.values()])
    all2 = np.concatenate([p[1] for p in paths.values()])
    if names == ["w", "b"]:  # show the optimum too
        (w_opt, b_opt), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)
        all1, all2 = np.r_[all1, w_opt], np.r_[all2, b_opt]
    pad1, pad2 = 0.15 * (all1.max() - all1.min() + 1e-9), 0.15 * (all2.max() - all2.min() + 1e-9)
    g1, g2 = np.meshgrid(np.linspace(all1.min() - pad1, all1.max() + pad1, 120),
                         np.linspace(all2.min() - pad2, all2.max() + pad2, 120))
    optimum = None
    if names == ["w", "b"]:
        pred = g1[..., None] * x + g2[..., None]
        loss = ((pred - y) ** 2).mean(-1)
        optimum = (w_opt, b_opt)
        title = "Linear neuron: (w, b) paths over the MSE surface"
    else:
        z = g1[..., None] * x[:, 0] + g2[..., None] * x[:, 1]
        loss = (np.logaddexp(0, z) - y * z).mean(-1)
        title = "Logistic regression: (w1, w2) paths over the cross-entropy surface"
    from sweepbench.report import figures

    svg = figures.trajectories((g1, g2, loss), paths, tuple(names), optimum, title)
    figs.append(figure(svg, title, "Contours of the training loss with the path of the parameters (seed 0 of each "
                       "cell; points are logged updates, the dot marks the end). Gradient descent follows the "
                       "surface smoothly; small batches zig-zag because each step sees another loss surface."))


@dataclass
class StudyView:
    """What the parts of a study's section read: the study, its rows of the tables, and the
    section being filled (figures, tables, notes)."""

    name: str
    study: dict
    t: dict
    runs: pd.DataFrame
    cells: pd.DataFrame
    runs_dir: str
    tables_dir: str
    section: dict

    @property
    def axes(self) -> list:
        return self.study["axes"]

    @property
    def synthetic(self) -> bool:
        return bool(self.runs["synthetic"].any())

    @property
    def has_acc(self) -> bool:
        return bool(self.runs["final_val_accuracy"].notna().any()) and not self.synthetic

    @property
    def target(self) -> dict:
        return self.study.get("target") or {}


def study_section(name: str, study: dict, t: dict, runs_dir: str, tables_dir: str = "results/tables") -> dict:
    """A study's part of the report: notes, figures and tables, each part drawn where the
    study's tables have what it needs."""
    runs = t["runs"][t["runs"]["study"] == name] if not t["runs"].empty else pd.DataFrame()
    cells = t["cells"][t["cells"]["study"] == name] if not t["cells"].empty else pd.DataFrame()
    section = {"id": f"study-{name}", "name": name, "description": study["description"], "workload": study["workload"],
               "n_cells": len(study["cells"]), "n_runs": len(study["runs"]), "figures": [], "tables": [], "notes": []}
    for col in ("model", "dataset"):  # what the runs trained, as their records say
        section[f"{col}s"] = sorted(runs[col].dropna().astype(str).unique()) if col in runs else []
    if runs.empty:
        section["notes"].append("No run of this study has a record yet (still running, or every record was "
                                "malformed); there is nothing to show.")
        return section
    missing = len(study["runs"]) - len(runs)
    if missing > 0:
        section["notes"].append(f"{missing} of {len(study['runs'])} runs have no record yet; "
                                f"the figures show the rest.")
    diverged = int(runs["diverged"].sum())
    if diverged == len(runs):
        section["notes"].append("Every run of this study diverged; only the divergence points can be shown.")
    elif diverged:
        section["notes"].append(f"{diverged} of {len(runs)} runs diverged; they are counted in the tables and "
                                "left out of means.")
    v = StudyView(name, study, t, runs, cells, runs_dir, tables_dir, section)
    chosen = _curve_figures(v)
    if study["workload"] in ("linreg", "logreg2d"):
        _trajectory_section(study, cells, runs, study["axes"], runs_dir, section["figures"])
    _lr_figures(v)
    _batch_figures(v)
    _throughput_part(v)
    _data_parallel_part(v)
    _schedule_figure(v, chosen)
    _cell_table(v)
    return section


def _curve_figures(v: StudyView) -> pd.DataFrame:
    """Learning curves of a few cells (against epoch, step and training time); returns the cells shown."""
    from sweepbench.report import figures

    runs, cells, axes = v.runs, v.cells, v.axes
    runs_dir, figs, synthetic, has_acc = v.runs_dir, v.section["figures"], v.synthetic, v.has_acc
    chosen, how = _select_cells(cells, axes)
    curves = _curves(chosen, runs, axes, runs_dir)
    if not curves.empty and not synthetic and len(curves.dropna(subset=["train_loss"])):
        c = curves.dropna(subset=["train_loss"])
        band = " Lines are the mean over seeds, bands the range across seeds." if runs["seed"].nunique() > 1 else ""
        figs.append(figure(figures.learning_curves(c, "epoch", "train_loss", "Training loss vs epoch"),
                           "Training loss vs epoch", "Full training-set loss after each epoch." + band + how))
        figs.append(figure(figures.learning_curves(c, "step", "train_loss", "Training loss vs optimizer step"),
                           "Training loss vs step", "The same curves against updates: small batches take many "
                           "more steps per epoch." + how))
        metric = "val_accuracy" if has_acc else "val_loss"
        c2 = curves.dropna(subset=[metric])
        if len(c2):
            figs.append(figure(figures.learning_curves(c2, "wall_s", metric,
                                                       f"{metric.replace('_', ' ')} vs training time"),
                               f"{metric} vs training time",
                               "Against measured training seconds on this machine (evaluation excluded): what a "
                               "user waits for." + how))
    return chosen


def _lr_figures(v: StudyView) -> None:
    """Learning-rate sensitivity, the optimizer x learning-rate heatmap and the learning-rate picks."""
    from sweepbench.report import figures

    name, t, cells, axes, tables_dir = v.name, v.t, v.cells, v.axes, v.tables_dir
    figs, section, synthetic, has_acc = v.section["figures"], v.section, v.synthetic, v.has_acc
    ls = t["lr_sensitivity"]
    ls_cells = cells[cells["lr"].isin(ls[ls["study"] == name]["lr"])] if not ls.empty else pd.DataFrame()
    if not ls_cells.empty and "lr" in axes and not synthetic:
        metric = "best_val_accuracy" if has_acc else "final_train_loss"
        n_lines = len(ls_cells.groupby(["optimizer", "effective_batch_size"]))
        shown = ls_cells if n_lines <= MAX_CURVES else thin(ls_cells, "optimizer", "effective_batch_size",
                                                             max(1, MAX_CURVES // ls_cells["optimizer"].nunique()))
        some = "" if shown is ls_cells else (f" Showing {shown['effective_batch_size'].nunique()} of "
                                             f"{ls_cells['effective_batch_size'].nunique()} batch sizes, "
                                             f"evenly spaced; "
                                             f"every one: {tables_dir}/lr_sensitivity.csv.")
        figs.append(figure(figures.lr_sensitivity(shown, metric, "Learning-rate sensitivity"),
                           "Learning-rate sensitivity",
                           "Mean over seeds with 95% bootstrap CI against log10 learning rate; x marks learning "
                           "rates where a seed diverged. The flat top is the usable range (seed 002's lr_min/lr_max)."
                           + some))
        if "optimizer" in axes and cells["optimizer"].nunique() > 1 and has_acc:
            figs.append(figure(figures.heatmap(cells, "best_val_accuracy", "Optimizer x learning rate"),
                               "Optimizer x learning rate",
                               "Best validation accuracy (mean over seeds) for each optimizer and learning rate "
                               "(seed 003's grid search)."))
        picks = ls[ls["study"] == name].drop_duplicates(["optimizer", "effective_batch_size"])
        picks, some = capped(picks, "rows", f"{tables_dir}/lr_sensitivity.csv")
        section["tables"].append(html_table(picks, {"optimizer": "optimizer", "effective_batch_size": "batch size",
                                                    "lr_min": "lr_min", "lr_max": "lr_max",
                                                    "largest_stable_lr": "largest stable lr"},
                                            "Learning-rate picks from the sweep (Methods: lr_range_picks)." + some))


def _batch_figures(v: StudyView) -> None:
    """Steps to target, best lr, noise scale and time to target vs batch size; the metric at a fixed budget."""
    from sweepbench.report import figures

    name, t, cells, axes, tables_dir = v.name, v.t, v.cells, v.axes, v.tables_dir
    figs, section, synthetic, has_acc, target = v.section["figures"], v.section, v.synthetic, v.has_acc, v.target
    sc = t["scaling"][t["scaling"]["study"] == name] if not t["scaling"].empty else pd.DataFrame()
    if not sc.empty and sc["steps_to_target_mean"].notna().any():
        tname = f"{target.get('metric')} >= {target.get('value')}" if target else "target"
        figs.append(figure(figures.scaling(sc, f"Steps to {tname} vs batch size"), "Steps to target vs batch size",
                           "Steps to the target at the best learning rate of each batch size. Below B_crit/2 doubling "
                           "the batch halves the steps (perfect scaling); above 2 B_crit it barely helps."))
        best = t["best_lr"][t["best_lr"]["study"] == name]
        figs.append(figure(figures.best_lr_vs_batch(best, "Best learning rate vs batch size"), "Best lr vs batch size",
                           "The tuned learning rate per batch size beside the linear and square-root scaling rules "
                           "started from the smallest batch size."))
        if sc["grad_noise_scale_mean"].notna().any():
            figs.append(figure(figures.noise_scale(sc, "Gradient noise scale vs critical batch size"),
                               "Gradient noise scale",
                               "McCandlish et al. (2018) predict B_crit ≈ B_simple; the measured "
                               "noise scale (end of each best-lr run) beside the fitted B_crit."))
        if sc["time_to_target_s"].notna().any():
            figs.append(figure(figures.time_to_target(sc, "Time to target vs batch size (this machine)"),
                               "Time to target", "Steps to target times the median step time measured in the same "
                               "runs: the batch size that reaches the target soonest on this hardware."))
        sc_rows, some = capped(sc, "rows", f"{tables_dir}/scaling.csv")
        section["tables"].append(html_table(sc_rows, {
            "optimizer": "optimizer", "effective_batch_size": "batch size", "best_lr": "best lr",
            "steps_to_target_mean": "steps to target", "samples_to_target_mean": "samples to target",
            "perfect_scaling_steps": "perfect-scaling steps", "fitted_steps": "fitted S(B)", "regime": "regime",
            "grad_noise_scale_mean": "noise scale (samples)", "time_to_target_s": "time to target (s)",
            "fastest_to_target": "fastest"}, "Batch-size scaling at the best learning rate per batch size." + some))
    if "batch_size" in axes and cells["effective_batch_size"].nunique() >= 3 and not synthetic:
        metric = "final_train_accuracy" if has_acc else "final_train_loss"
        shown, some = cells, ""
        if len(cells.groupby(["optimizer", "lr"])) > MAX_CURVES:  # each optimizer at its best learning rate
            means = cells.groupby(["optimizer", "lr"])[f"{metric}_mean"].mean().dropna()
            best = (means.groupby(level=0).idxmax() if rules.higher_is_better(metric)
                    else means.groupby(level=0).idxmin())
            shown = cells[cells.set_index(["optimizer", "lr"]).index.isin(list(best))]
            some = (" Showing each optimizer at the learning rate with the best mean over batch sizes; every cell: "
                    f"{tables_dir}/cells.csv.")
        figs.append(figure(figures.metric_vs_batch(shown, metric, f"{metric.replace('_', ' ')} vs log2 batch size"),
                           "Metric vs batch size", "After the same budget (seed 002's plot): at a fixed epoch budget "
                           "large batches take fewer steps and end lower." + some))


def _throughput_part(v: StudyView) -> None:
    """Throughput vs batch size, for a study that measures speed (its jobs run alone)."""
    from sweepbench.report import figures

    name, study, t, figs, section = v.name, v.study, v.t, v.section["figures"], v.section
    th = t["throughput"][t["throughput"]["study"] == name] if not t["throughput"].empty else pd.DataFrame()
    measures_speed = any(c["resources"].get("exclusive") for c in (study.get("_cells") or []))
    if not th.empty and th["effective_batch_size"].nunique() > 1 and measures_speed:
        device = th["device_name"].iloc[0]
        figs.append(figure(figures.throughput_bars(th, f"Training throughput on {device}"), "Throughput vs batch size",
                           "Samples per second: each run's samples over the summed time of its steps after "
                           "warm-up (timing_warmup_steps), the median over runs (seed 000's bar chart)."))
        section["tables"].append(html_table(th, {
            "effective_batch_size": "batch size", "samples_per_s": "samples/s", "step_time_median_s": "median step (s)",
            "step_time_p10_s": "p10 step (s)", "step_time_p90_s": "p90 step (s)", "n_runs": "runs"},
            f"Throughput on {device} (medians over runs)."))


def _data_parallel_part(v: StudyView) -> None:
    """Data-parallel workers: throughput, scaling efficiency, DDP's own cost and time to target vs N."""
    from sweepbench.report import figures

    dp = v.t.get("data_parallel")
    dp = dp[dp["study"] == v.name] if dp is not None and not dp.empty else pd.DataFrame()
    if dp.empty:
        return
    for _, g in dp.groupby(["optimizer", "lr", "batch_size"], sort=False):
        device, b = g["device_name"].iloc[0], int(g["batch_size"].iloc[0])
        v.section["figures"].append(figure(
            figures.workers_scaling(g, f"{b} samples per worker on {device}"), "Data-parallel workers",
            "Left: samples per second (global batch over the median step time, each step the slowest rank's) "
            "against the number of DDP workers N, beside perfect scaling N x T(1) and one process without DDP. "
            "Right: time to target = steps to target at the global batch N x b x median step time at N, with "
            "its 95% bootstrap CI; the star is the knee where more workers stop paying (rules.workers_knee), "
            "the dashed line N_crit = B_crit / b where the global batch reaches the critical batch size."))
        knee = g[g["knee"].astype(bool)]
        if len(knee):
            n = int(knee["world_size"].iloc[0])
            v.section["notes"].append(
                f"Data-parallel workers ({b} samples each, on {device}): more workers stop paying at N = {n}"
                + ("." if knee["knee_within_sweep"].iloc[0] else ", the largest N measured: every step up paid, "
                   "so the knee may lie beyond the sweep."))
        v.section["tables"].append(html_table(g, {
            "world_size": "workers N (0: no DDP)", "global_batch": "global batch", "samples_per_s": "samples/s",
            "step_time_median_s": "median step (s)", "step_time_p90_s": "p90 step (s)", "speedup": "speedup",
            "scaling_efficiency": "efficiency T(N)/(N T(1))", "ddp_overhead": "DDP overhead at N=1",
            "steps_to_target_mean": "steps to target", "time_to_target_s": "time to target (s)",
            "time_to_target_ci_lo": "CI low (s)", "time_to_target_ci_hi": "CI high (s)", "knee": "knee"},
            f"Data-parallel workers on {device}: steps to target from study {g['steps_from'].iloc[0]} "
            "(data_parallel.csv)."))


def _schedule_figure(v: StudyView, chosen: pd.DataFrame) -> None:
    """The learning rate each update used, where it changes."""
    from sweepbench.report import figures

    runs, axes, runs_dir, figs = v.runs, v.axes, v.runs_dir, v.section["figures"]
    lr_paths = []
    for _, c in chosen.iterrows():
        r = runs[runs["cell"] == c["cell"]].iloc[0]
        path = os.path.join(runs_dir, r["run"], "steps.csv")
        if os.path.exists(path):
            s = pd.read_csv(path, usecols=["step", "lr"])
            if s["lr"].nunique() > 1:
                s["label"] = _cell_label(c, axes)
                lr_paths.append(s)
    if lr_paths:
        figs.append(figure(figures.lr_schedule(pd.concat(lr_paths), "Learning rate over iterations"),
                           "Learning-rate schedule",
                           "The learning rate each update used (seed 002's CLR plots)."))


def _cell_table(v: StudyView) -> None:
    """The cell table (the best cells where there are many)."""
    cells, axes, tables_dir, has_acc, section = v.cells, v.axes, v.tables_dir, v.has_acc, v.section
    key_cols = {f"axis_{a}": a for a in axes}
    key_cols.update({"n_seeds": "seeds", "n_diverged": "diverged", "final_train_loss_mean": "final train loss",
                     "final_val_accuracy_mean": "final val acc", "best_val_accuracy_mean": "best val acc",
                     "steps_to_target_mean": "steps to target", "seconds_to_target_mean": "s to target",
                     "n_not_reached": "seeds missing target", "samples_per_s_mean": "samples/s"})
    if not has_acc:
        for k in ("final_val_accuracy_mean", "best_val_accuracy_mean"):
            key_cols.pop(k)
        key_cols["final_val_loss_mean"] = "final val loss"
    rank = "best_val_accuracy_mean" if has_acc else "final_train_loss_mean"
    shown, some = capped(cells, "cells", f"{tables_dir}/cells.csv", key=rank,
                         ascending=not rules.higher_is_better(rank.removesuffix("_mean")))
    section["tables"].append(html_table(shown, key_cols, ("Every cell" if shown is cells else "Cells") + " (means over "
                                        "seeds that did not diverge; steps to target only where every seed reached "
                                        "it)." + some))


# ---------------------------------------------------------------- summary and methods

def headlines(the_plan: dict, t: dict) -> list[str]:
    """The findings in sentences, generated from the tables."""
    out = []
    runs = t["runs"]
    if runs.empty:
        return ["No run has finished yet."]
    opt = t["optimizers"]
    for (study,), g in opt.groupby(["study"], sort=False) if not opt.empty else []:
        b = g[g["best"].astype(bool)]
        if len(b):
            b = b.iloc[0]
            metric = (f"best validation accuracy {b['best_val_accuracy_mean']:.3f}"
                      if pd.notna(b["best_val_accuracy_mean"])
                      else f"best validation loss {b['best_val_loss_mean']:.4g}")
            out.append(f"{study} ({b['workload']}): the best configuration was {b['optimizer']} at learning rate "
                       f"{b['lr']:g} ({metric}, mean over {int(b['n_seeds'])} seeds).")
    sc = t["scaling"]
    for (study, opt_name), g in sc.groupby(["study", "optimizer"], sort=False) if not sc.empty else []:
        g = g.sort_values("effective_batch_size")
        s = g.dropna(subset=["steps_to_target_mean"])
        if len(s) >= 2:
            text = (f"{study} ({g['workload'].iloc[0]}, {opt_name}): steps to target fall from "
                    f"{s['steps_to_target_mean'].iloc[0]:,.0f} at B={int(s['effective_batch_size'].iloc[0])} to "
                    f"{s['steps_to_target_mean'].iloc[-1]:,.0f} at B={int(s['effective_batch_size'].iloc[-1])}")
            if pd.notna(g["b_crit"].iloc[0]):
                text += (f"; the fitted critical batch size is {g['b_crit'].iloc[0]:.0f} "
                         f"(95% CI {g['b_crit_ci_lo'].iloc[0]:.0f}–{g['b_crit_ci_hi'].iloc[0]:.0f})")
            if g["grad_noise_scale_mean"].notna().any():
                text += f", the measured gradient noise scale {g['grad_noise_scale_mean'].median():.0f}"
            fast = g[g["fastest_to_target"].astype(bool)]
            if len(fast):
                text += (f"; fastest to target on this machine: B={int(fast['effective_batch_size'].iloc[0])} "
                         f"({fast['time_to_target_s'].iloc[0]:.3g} s of training)")
            out.append(text + ".")
    th = t["throughput"]
    for (study,), g in th.groupby(["study"], sort=False) if not th.empty else []:
        cells = [the_plan["cells"][c] for c in the_plan["studies"].get(study, {}).get("cells", [])]
        measures_speed = any(c["resources"].get("exclusive") for c in cells)
        if g["effective_batch_size"].nunique() > 1 and measures_speed:
            top = g.loc[g["samples_per_s"].idxmax()]
            out.append(f"{study} ({top['workload']}): peak throughput {top['samples_per_s']:,.0f} samples/s at "
                       f"B={int(top['effective_batch_size'])} on {top['device_name']}.")
    planned = sum(len(s["runs"]) for s in the_plan["studies"].values())
    if len(runs) < planned:
        out.append(f"{planned - len(runs)} of {planned} planned runs have no record yet: the tables are built from "
                   "fewer seeds than planned where cells.csv's n_missing is above 0.")
    div = runs[runs["diverged"].astype(bool)]
    if len(div):
        where = ", ".join(f"{s} ({n})" for s, n in div.groupby("study").size().items())
        out.append(f"{len(div)} of {len(runs)} runs diverged: {where}. They are kept as data and never averaged in.")
    else:
        out.append(f"None of the {len(runs)} runs diverged.")
    return out


def reproduction_part(section: dict, name: str, t: dict) -> None:
    """Seed vs sweepbench for one study: a verdict line, a table and an overlay plot per metric
    the study's `reference` block names (reproduction.csv)."""
    from sweepbench.report import figures

    rep = t.get("reproduction", pd.DataFrame())
    rep = rep[rep["study"] == name] if not rep.empty else rep
    for metric, g in (rep.groupby("metric", sort=False) if not rep.empty else []):
        line = reproduction.verdict_line(g)
        section["notes"].append(f"Seed vs sweepbench, {line}")
        x_axis = g["x_axis"].dropna()
        if len(x_axis) and g["x"].notna().sum() >= 2:
            section["figures"].append(figure(
                figures.reference_overlay(g[g["x"].notna()], metric, x_axis.iloc[0], f"Seed vs sweepbench: {metric}"),
                f"Seed vs sweepbench: {metric}", "Our value at each point of the sweep (line) and the value the "
                "seed document printed (squares); x marks divergence. " + line))
        section["tables"].append(html_table(g, {
            "point": "point", "reference": "seed", "ours": "sweepbench", "diff": "diff", "band": "band (±)",
            "state": "row", "n_seeds": "seeds", "verdict": "verdict"}, f"Seed vs sweepbench, {line}"))


METHOD_RULES = [
    ("Target crossing", rules.first_crossing),
    ("Convergence", rules.is_converged),
    ("Divergence", rules.is_diverged),
    ("Throughput of a run", rules.timing_blocks),
    ("When a timing run stops", rules.timing_settled),
    ("Aggregation across seeds", statistics.summarize),
    ("Best learning rate", statistics.choose_best_lr),
    ("Scaling fit", statistics.fit_steps_vs_batch),
    ("Critical batch size CI", statistics.scaling_fit),
    ("Scaling regimes", statistics.scaling_regime),
    ("bmin / bmax detection", rules.detect_bmin_bmax),
    ("Time to target with N data-parallel workers", rules.time_to_target),
    ("Where more workers stop paying", rules.workers_knee),
    ("Learning-rate picks", statistics.lr_range_picks),
    ("Reproduction verdict (seed vs sweepbench)", rules.reproduction_verdict),
    ("Seed vs sweepbench: reference values and known differences", reproduction.reproduction_table),
    ("Regression test (sweepbench check)", regression.regression_test),
    ("Interval of a check's change in effect floors", compare.change_in_floors),
    ("Lasting change (check history)", history.lasting_changes),
]


_SHARED: dict = {}  # what forked study_sections workers read: the tables and folders (inherited, not pickled)


def _section_worker(name: str, study: dict) -> dict:
    return study_section(name, study, _SHARED["t"], _SHARED["runs_dir"], _SHARED["tables_dir"])


def study_sections(the_plan: dict, t: dict, runs_dir: str, tables_dir: str, workers: int = 1) -> list[dict]:
    """Every study's section in the plan's order. With workers > 1 the studies are drawn in that
    many forked processes at once (figures are most of the report's time, each is drawn on one
    core); the result is the same, figure for figure."""
    from sweepbench.report import figures  # noqa: F401  imported once, before the workers fork

    studies = [(name, {**s, "_cells": [the_plan["cells"][c] for c in s["cells"]]})
               for name, s in the_plan["studies"].items()]
    workers = min(workers, len(studies))
    if workers < 2:
        return [study_section(name, s, t, runs_dir, tables_dir) for name, s in studies]
    import multiprocessing

    _SHARED.update(t=t, runs_dir=runs_dir, tables_dir=tables_dir)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.starmap(_section_worker, studies, chunksize=1)
    finally:
        _SHARED.clear()


def read_tables(tables_dir: str) -> tuple[dict, list[str]]:
    """Every table (TABLE_NAMES) and the names of those with no file (each then an empty table with
    its columns, reported as not found). A table that read_table refuses (a cell out of its column's
    kind, a row cut off, not UTF-8, a folder), one without one of its columns (tables.table_columns),
    or a cells.csv with no rows beside a runs.csv with some (or the other way round), is refused in
    one line naming the file: the report would crash on it or draw from it silently wrong."""
    t, missing, columns = {}, [], table_columns()
    for name in TABLE_NAMES:
        path = os.path.join(tables_dir, f"{name}.csv")
        if not os.path.exists(path):
            missing.append(name)
            t[name] = pd.DataFrame(columns=list(columns[name]))
            continue
        t[name] = read_table(tables_dir, name)
        lacking = [c for c in columns[name] if c not in t[name].columns]
        if lacking:
            more = f" and {len(lacking) - 1} more" if len(lacking) > 1 else ""
            raise SweepbenchError(f"table {path} lacks the column {lacking[0]}{more}; allowed: the tables "
                                  "`sweepbench aggregate` writes (run it again)")
    for empty, full in (("cells", "runs"), ("runs", "cells")):  # one cut short beside the other
        if len(t[full]) and t[empty].empty and empty not in missing:
            raise SweepbenchError(f"table {os.path.join(tables_dir, empty + '.csv')} has no rows, but {full}.csv has "
                                  f"{len(t[full])}; allowed: the tables `sweepbench aggregate` writes (run it again)")
    return t, missing


def build_context(plan_path: str, tables_dir: str, runs_dir: str, check_dir: str | None = None,
                  workers: int = 1, *, out_dir: str | None = None, history_path: str | None = None) -> dict:
    if not os.path.exists(plan_path):
        raise SweepbenchError(f"no plan at {plan_path}; run the workflow (snakemake) or sweepbench aggregate first")
    the_plan = read_plan(plan_path)
    t, missing = read_tables(tables_dir)
    runs = t["runs"]
    check_smoke_tables(the_plan, runs, plan_path, tables_dir)
    config = the_plan.get("config", {})
    studies = study_sections(the_plan, t, runs_dir, tables_dir, workers)
    for section in studies:
        reproduction_part(section, section["name"], t)
    provenance = {}
    if not runs.empty:
        for col, label in (("device_name", "device"), ("torch", "torch"), ("git_commit", "git commit"),
                           ("env_lock", "requirements.lock")):  # env_lock: absent from tables of older sweepbench
            if col in runs:
                provenance[label] = ", ".join(str(v) for v in sorted(runs[col].dropna().unique()))
    provenance["sweepbench"] = __version__
    return {
        "title": config.get("title", "sweepbench report"),
        "n_studies": len(the_plan["studies"]),
        "n_runs_planned": sum(len(s["runs"]) for s in the_plan["studies"].values()),
        "n_runs": len(runs), "train_s": float(runs["train_s"].sum()) if not runs.empty else 0.0,
        "statuses": runs["status"].value_counts().to_dict() if not runs.empty else {},
        "headlines": headlines(the_plan, t),
        "missing_tables": missing,
        "check": check_part.check_section(check_dir, out_dir) if check_dir else None,
        "history": check_part.history_section(history_path),
        "studies": studies,
        "methods": [{"name": n, "doc": docstring(f)} for n, f in METHOD_RULES],
        "study_configs": {name: yaml.safe_dump(config.get("studies", {}).get(name, {}), sort_keys=False,
                                               default_flow_style=None, width=100)
                          for name in the_plan["studies"]},
        "provenance": provenance,
        "smoke_mark": SMOKE_REPORT_MARK if the_plan["smoke"] else "",
        "fmt": fmt,
    }


def check_smoke_tables(the_plan: dict, runs, plan_path: str, tables_dir: str) -> None:
    """Refuse tables whose runs are not of the plan's kind (smoke or real): `report --plan
    results/plan.json --tables results-smoke/tables` drew smoke numbers under a real sweep's plan."""
    if runs.empty or "smoke" not in runs:
        return
    kinds = set(runs["smoke"].astype(str).str.lower() == "true")
    if kinds != {bool(the_plan["smoke"])}:
        word = {True: "smoke", False: "real"}
        held = " and ".join(word[k] for k in sorted(kinds))
        raise SweepbenchError(f"table {tables_dir}/runs.csv holds {held} runs, but {plan_path} is a "
                              f"{word[bool(the_plan['smoke'])]} plan; allowed: the plan and tables of one results_dir")


def render_html(context: dict, for_print: bool = False) -> str:
    """The report page; `for_print`: the page the PDF is made from, without what print hides anyway
    (the folded table of every comparison, `display: none` in print): WeasyPrint computes styles
    for hidden elements too, and that table's 650 rows cost the default report's PDF about 2 of
    its 4.4 s (measured); the PDF is byte for byte the same size without them."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("sweepbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), keep_trailing_newline=True)
    return env.get_template(TEMPLATE).render(**context, for_print=for_print)


def write_figures(context: dict, folder: str) -> list[str]:
    """Every figure of the report as its own SVG file (figure_files.figure_path), for Snakemake's
    report (`snakemake --report`). The report's earlier SVG files there are replaced; a folder that
    holds anything else is refused untouched (figure_files.check_folder)."""
    return figure_files.write(folder, {figure_files.figure_name(section["name"], i, fig["title"]):
                                       base64.b64decode(fig["src"].split(",", 1)[1])
                                       for section in context["studies"]
                                       for i, fig in enumerate(section["figures"], 1)})


REPORT_FILES = ("index.html", "report.pdf")  # what `report --out` writes into its folder (atomic.write_own)


def render(plan_path: str, tables_dir: str, runs_dir: str, out_dir: str, check_dir: str | None = None,
           pdf: bool = True, figures_dir: str | None = None, workers: int = 1) -> dict:
    """Write <out_dir>/index.html, (pdf=True) <out_dir>/report.pdf and (figures_dir) every figure
    as an SVG file there; `workers` processes draw the studies (study_sections); with check_dir,
    the check and its history beside that folder (history.default_path), shown from two checks
    on. Returns their paths; without the PDF, an earlier report.pdf sweepbench wrote there is removed
    (it would be stale beside the new page). A user's own index.html or report.pdf in out_dir, or a figures folder
    holding files the report did not write, is refused before anything is drawn or written."""
    refuse_overwrite(out_dir, REPORT_FILES, "--out")
    if figures_dir:
        figure_files.check_folder(figures_dir)
    context = build_context(plan_path, tables_dir, runs_dir, check_dir, workers, out_dir=out_dir,
                            history_path=history.default_path(check_dir) if check_dir else None)
    page = render_html(context)
    files = {"index.html": page}
    if pdf:
        import weasyprint

        files["report.pdf"] = weasyprint.HTML(string=render_html(context, for_print=True),
                                              base_url=os.path.abspath(out_dir)).write_pdf()
    if figures_dir:
        write_figures(context, figures_dir)
    paths = write_own(out_dir, files, "--out")
    if not pdf:  # an earlier report.pdf of ours would sit beside the new page, stale
        remove_own(out_dir, ["report.pdf"], "--out")
    return dict(zip(("html", "pdf"), paths))
