"""The report's figures (matplotlib + seaborn), each returned as deterministic SVG text.

SVG keeps figures as vectors in the PDF; a fixed hash salt and no date make the same
tables give the same bytes.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

matplotlib.rcParams["svg.hashsalt"] = "sweepbench"
matplotlib.rcParams["svg.fonttype"] = "none"       # text stays text (searchable in the PDF)
sns.set_theme(style="whitegrid", context="paper", font_scale=1.05)
PALETTE = "colorblind"
WIDTH, HEIGHT = 6.4, 3.4


def to_svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def _label(metric: str) -> str:
    split, _, kind = metric.partition("_")
    return f"{split} {kind}" + (" (fraction)" if kind == "accuracy" else "")


def _style_axes(ax, xlabel: str, ylabel: str, title: str, log2_x: bool = True, log_y: bool = True,
                legend: bool = True) -> None:
    """Scales (log2 x, log y by default), labels, title and legend: the styling the figures share."""
    if log2_x:
        ax.set_xscale("log", base=2)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=7, frameon=False)


def learning_curves(curves, x: str, metric: str, title: str) -> str:
    """curves: DataFrame with columns label, seed, <x>, <metric>; mean line and min-max band across seeds."""
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    labels = list(dict.fromkeys(curves["label"]))
    colors = sns.color_palette(PALETTE, len(labels))
    for color, label in zip(colors, labels):
        d = curves[curves["label"] == label]
        grid = d.groupby(x)[metric]
        stats = grid.agg(["mean", "min", "max"]).reset_index()
        ax.plot(stats[x], stats["mean"], color=color, label=label, lw=1.4)
        if d["seed"].nunique() > 1:
            ax.fill_between(stats[x], stats["min"], stats["max"], color=color, alpha=0.18, lw=0)
    xlabels = {"epoch": "epoch", "step": "optimizer step", "wall_s": "training time (s)", "samples": "samples seen"}
    ax.set_xlabel(xlabels.get(x, x))
    ax.set_ylabel(_label(metric))
    if (metric.endswith("loss") and (curves[metric] > 0).all()
            and curves[metric].max() / max(curves[metric].min(), 1e-12) > 20):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2 if len(labels) > 6 else 1, frameon=False)
    return to_svg(fig)


def trajectories(surface, paths: dict, names: tuple[str, str], optimum=None, title: str = "") -> str:
    """Parameter paths over a loss-surface contour. surface = (p1 grid, p2 grid, loss grid)."""
    fig, ax = plt.subplots(figsize=(WIDTH, WIDTH * 0.62))
    g1, g2, loss = surface
    low, high = float(loss.min()), float(loss.max())
    levels = low + (high - low) * np.geomspace(1e-4, 1, 20)   # dense near the minimum, where the paths end
    cs = ax.contour(g1, g2, loss, levels=levels, cmap="viridis", linewidths=0.7)
    fig.colorbar(cs, ax=ax, label="training loss", shrink=0.8, format="%.4g")
    colors = sns.color_palette(PALETTE, len(paths))
    for color, (label, (p1, p2)) in zip(colors, paths.items()):
        ax.plot(p1, p2, color=color, lw=1.2, label=label, alpha=0.9)
        ax.plot(p1[-1:], p2[-1:], "o", color=color, ms=4)
    if optimum is not None:
        ax.plot([optimum[0]], [optimum[1]], "*", color="black", ms=10, label="least-squares optimum")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, loc="best")
    return to_svg(fig)


def lr_sensitivity(cells, metric: str, title: str) -> str:
    """Metric vs log10 learning rate per optimizer (and batch size); diverged cells marked x at the top."""
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    groups = list(cells.groupby(["optimizer", "effective_batch_size"], sort=False))
    colors = sns.color_palette(PALETTE, len(groups))
    for color, ((opt, bs), g) in zip(colors, groups):
        g = g.sort_values("lr")
        label = opt if cells["effective_batch_size"].nunique() == 1 else f"{opt}, B={bs}"
        ok = g[g["frac_diverged"] < 1]
        ax.errorbar(np.log10(ok["lr"]), ok[f"{metric}_mean"],
                    yerr=[ok[f"{metric}_mean"] - ok[f"{metric}_ci_lo"], ok[f"{metric}_ci_hi"] - ok[f"{metric}_mean"]],
                    marker="o", ms=4, color=color, label=label, capsize=2, lw=1.2)
        bad = g[g["frac_diverged"] > 0]
        if len(bad):
            top = np.nanmax(cells[f"{metric}_mean"]) if cells[f"{metric}_mean"].notna().any() else 1
            ax.scatter(np.log10(bad["lr"]), [top] * len(bad), marker="x", color=color, s=40, zorder=5)
    ax.set_xlabel("log10 learning rate")
    ax.set_ylabel(_label(metric.replace("final_", "").replace("best_", ""))
                  + (" (best)" if metric.startswith("best_") else " (final)"))
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, ncol=2 if len(groups) > 6 else 1)
    return to_svg(fig)


def heatmap(cells, metric: str, title: str) -> str:
    """Optimizer x learning-rate grid of a metric's mean (seed 003's grid search)."""
    table = cells.pivot_table(index="optimizer", columns="lr", values=f"{metric}_mean")
    fig, ax = plt.subplots(figsize=(WIDTH, 0.5 + 0.45 * len(table)))
    sns.heatmap(table, annot=True, fmt=".3f", cmap="viridis", ax=ax,
                cbar_kws={"label": _label(metric.split("_", 1)[1])}, annot_kws={"fontsize": 7})
    ax.set_xticklabels([f"{c:g}" for c in table.columns], rotation=0, fontsize=7)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("optimizer")
    ax.set_title(title)
    return to_svg(fig)


def scaling(sc, title: str) -> str:
    """Steps to target vs batch size at the best lr per batch size, with the perfect-scaling
    line and the fitted S(B) = S_min (1 + B_crit / B); regimes shaded (Shallue et al. 2018)."""
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT + 0.4))
    sc = sc.sort_values("effective_batch_size")
    b = sc["effective_batch_size"].to_numpy(float)
    b_crit = sc["b_crit"].iloc[0]
    if np.isfinite(b_crit):
        lo, hi = b.min() / 1.5, b.max() * 1.5
        ax.axvspan(lo, min(b_crit / 2, hi), color="tab:green", alpha=0.07, label="perfect scaling")
        ax.axvspan(max(b_crit / 2, lo), min(2 * b_crit, hi), color="tab:orange", alpha=0.07,
                   label="diminishing returns")
        if 2 * b_crit < hi:
            ax.axvspan(2 * b_crit, hi, color="tab:red", alpha=0.07, label="maximal data parallelism")
        xs = np.geomspace(lo, hi, 100)
        ax.plot(xs, sc["s_min"].iloc[0] * (1 + b_crit / xs), color="black", lw=1,
                label=f"fit: S_min={sc['s_min'].iloc[0]:.0f}, B_crit={b_crit:.0f} "
                      f"[{sc['b_crit_ci_lo'].iloc[0]:.0f}, {sc['b_crit_ci_hi'].iloc[0]:.0f}]")
    ax.plot(b, sc["perfect_scaling_steps"], ls="--", color="grey", lw=1, label="perfect scaling from smallest B")
    y = sc["steps_to_target_mean"]
    ax.errorbar(b, y, yerr=[y - sc["steps_to_target_ci_lo"], sc["steps_to_target_ci_hi"] - y], fmt="o",
                color="tab:blue", capsize=2, label="measured (mean, 95% CI)")
    _style_axes(ax, "batch size (samples per update)", "steps to target", title)
    return to_svg(fig)


def best_lr_vs_batch(best, title: str) -> str:
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    for (opt,), g in best.groupby(["optimizer"], sort=False):
        g = g.sort_values("effective_batch_size")
        ax.plot(g["effective_batch_size"], g["best_lr"], "o-", label=f"best lr ({opt})")
        ax.plot(g["effective_batch_size"], g["linear_rule_lr"], ":", color="grey", label="linear scaling rule")
        ax.plot(g["effective_batch_size"], g["sqrt_rule_lr"], "--", color="grey", label="square-root rule")
    _style_axes(ax, "batch size (samples per update)", "learning rate", title)
    return to_svg(fig)


def noise_scale(sc, title: str) -> str:
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    ax.plot(sc["effective_batch_size"], sc["grad_noise_scale_mean"], "o-",
            label="gradient noise scale B_simple (end of run)")
    b_crit = sc["b_crit"].iloc[0]
    if np.isfinite(b_crit):
        ax.axhline(b_crit, color="black", lw=1, label=f"fitted critical batch size B_crit = {b_crit:.0f}")
        ax.axhspan(sc["b_crit_ci_lo"].iloc[0], sc["b_crit_ci_hi"].iloc[0], color="black", alpha=0.08,
                   label="B_crit 95% CI")
    _style_axes(ax, "batch size of the run (samples per update)", "samples", title)
    return to_svg(fig)


def metric_vs_batch(cells, metric: str, title: str) -> str:
    """Seed 002's plot: a metric after a fixed budget vs log2 batch size, one line per lr."""
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    groups = list(cells.groupby(["optimizer", "lr"], sort=False))
    colors = sns.color_palette(PALETTE, len(groups))
    for color, ((opt, lr), g) in zip(colors, groups):
        g = g.sort_values("effective_batch_size")
        ax.plot(np.log2(g["effective_batch_size"]), g[f"{metric}_mean"], "o-", color=color, ms=3,
                label=f"{opt}, lr={lr:g}")
    ax.set_xlabel("log2 batch size")
    ax.set_ylabel(_label(metric.replace("final_", "")) + " (final)")
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, ncol=2 if len(groups) > 6 else 1)
    return to_svg(fig)


def throughput_bars(th, title: str) -> str:
    """Seed 000's plot: samples per second vs batch size."""
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    th = th.sort_values("effective_batch_size")
    labels = [str(int(b)) for b in th["effective_batch_size"]]
    bars = ax.bar(labels, th["samples_per_s"], color=sns.color_palette(PALETTE)[0])
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in th["samples_per_s"]], fontsize=7)
    _style_axes(ax, "batch size", "throughput (samples / s)", title, log2_x=False, log_y=False, legend=False)
    return to_svg(fig)


def time_to_target(sc, title: str) -> str:
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    sc = sc.sort_values("effective_batch_size")
    ax.plot(sc["effective_batch_size"], sc["time_to_target_s"], "o-", label="steps to target x median step time")
    fast = sc[sc["fastest_to_target"].astype(bool)]
    if len(fast):
        ax.plot(fast["effective_batch_size"], fast["time_to_target_s"], "*", ms=12, color="tab:red",
                label=f"fastest: B = {int(fast['effective_batch_size'].iloc[0])}")
    _style_axes(ax, "batch size (samples per update)", "time to target on this machine (s)", title)
    return to_svg(fig)


def workers_scaling(dp, title: str) -> str:
    """Data-parallel workers (issue 25): throughput vs N beside perfect scaling N x T(1), and time to
    target vs N with its CI, the knee and N_crit = B_crit / b."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, HEIGHT))
    ddp = dp[dp["world_size"] > 0].sort_values("world_size")
    n = ddp["world_size"].astype(int)
    left.plot(n, ddp["samples_per_s"], "o-", label="measured")
    one = ddp[ddp["world_size"] == 1]
    if len(one):
        left.plot(n, n * one["samples_per_s"].iloc[0], "--", color="grey", label="perfect: N x T(1)")
    plain = dp[dp["world_size"] == 0]
    if len(plain):
        left.axhline(plain["samples_per_s"].iloc[0], color="tab:green", lw=1, ls=":", label="no DDP")
    _style_axes(left, "workers N", "samples / s", "throughput", log2_x=False, log_y=False)
    left.set_xticks(list(n))
    t = ddp["time_to_target_s"]
    err = [t - ddp["time_to_target_ci_lo"], ddp["time_to_target_ci_hi"] - t]
    right.errorbar(n, t, yerr=err, fmt="o-", capsize=3, label="time to target (95% CI)")
    knee = ddp[ddp["knee"].astype(bool)]
    if len(knee):
        right.plot(knee["world_size"], knee["time_to_target_s"], "*", ms=12, color="tab:red",
                   label=f"knee: N = {int(knee['world_size'].iloc[0])}")
    n_crit = ddp["n_crit"].iloc[0] if len(ddp) else float("nan")
    if n_crit == n_crit and n_crit > 0:
        right.axvline(n_crit, color="grey", ls="--", lw=1, label=f"N_crit = B_crit / b = {n_crit:.2g}")
    _style_axes(right, "workers N", "seconds", "time to target", log2_x=False, log_y=False)
    right.set_xticks(list(n))
    fig.suptitle(title, fontsize=9)
    return to_svg(fig)


def lr_schedule(steps, title: str) -> str:
    """The learning rate over iterations (seed 002's CLR plots), one line per cell."""
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    for label, g in steps.groupby("label", sort=False):
        ax.plot(g["step"], g["lr"], lw=1, label=label)
    _style_axes(ax, "optimizer step", "learning rate", title, log2_x=False, log_y=False)
    return to_svg(fig)


def reference_overlay(rep, metric: str, x_axis: str, title: str) -> str:
    """Seed vs sweepbench: our value at each point of the sweep (line) with the seed's printed
    value over it (hollow markers); an x marks a diverged point (the seed printed nan, or our
    cell diverged), drawn at the top of the plot; losses and seconds spanning more than 20x on
    a log scale. rep: reproduction.csv rows of one metric."""
    d = rep.sort_values("x")
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    ours, seed = d[d["ours"].notna()], d[d["reference"].notna()]
    ax.plot(ours["x"], ours["ours"], marker="o", color="C0", label="sweepbench")
    ax.plot(seed["x"], seed["reference"], linestyle="none", marker="s", markerfacecolor="none", markersize=8,
            color="C3", label="seed (printed)")
    top = np.nanmax(np.concatenate([d["ours"].astype(float).to_numpy(), d["reference"].astype(float).to_numpy(),
                                    [0.0]]))
    for kind, rows, color in (("seed diverged", d[d["reference"].isna()], "C3"),
                              ("ours diverged", d[d["state"].isin(["ours diverged, seed did not", "both diverged"])],
                               "C0")):
        if len(rows):
            ax.plot(rows["x"], [top * 1.05 if top > 0 else 1.0] * len(rows), linestyle="none", marker="x",
                    markersize=9, color=color, label=kind)
    positive = d["x"] > 0
    if positive.all() and d["x"].max() / d["x"].min() >= 8:
        ax.set_xscale("log", base=2 if x_axis in ("batch_size", "accum_steps") else 10)
    values = np.concatenate([ours["ours"].astype(float).to_numpy(), seed["reference"].astype(float).to_numpy()])
    log_y = not metric.endswith("accuracy") and len(values) and (values > 0).all() and values.max() / values.min() > 20
    _style_axes(ax, x_axis, metric.replace("_", " "), title, log2_x=False, log_y=bool(log_y))
    return to_svg(fig)


VERDICT_COLORS = {"regression": "#b3261e", "improvement": "#1e7a3c", "unstable": "#e0a800", "pass": "#5b6472",
                  "not comparable": "#9aa3ad"}
FLOOR_CLIP = 5.0   # change axes of the check figures end at this many effect floors; points beyond sit at the edge


def check_forest(rows, title: str) -> str:
    """The regression check at a glance: one line per (study, metric), one dot per cell at its
    change in effect floors (positive = worse) with its 95% interval; the band is the floor (|x| <= 1).
    rows: study, metric, change, change_lo, change_hi, verdict."""
    groups = list(rows.groupby(["study", "metric"], sort=False))
    fig, ax = plt.subplots(figsize=(WIDTH, 0.9 + 0.16 * len(groups)))
    ax.axvspan(-1, 1, color="#1e7a3c", alpha=0.08, lw=0, label="within the effect floor")
    ax.axvline(0, color="black", lw=0.6)
    index = {key: y for y, (key, _) in enumerate(groups)}
    y = np.array([index[k] for k in zip(rows["study"], rows["metric"])], float)
    y += np.random.default_rng(0).uniform(-0.25, 0.25, len(y)) * (rows.groupby(["study", "metric"])["metric"]
                                                                  .transform("size").to_numpy() > 1)
    x = rows["change"].to_numpy(float)
    lo, hi = (np.clip(rows[c].to_numpy(float), -FLOOR_CLIP, FLOOR_CLIP) for c in ("change_lo", "change_hi"))
    for verdict, color in VERDICT_COLORS.items():
        m = (rows["verdict"] == verdict).to_numpy()
        loud = verdict in ("regression", "improvement")
        ok = m & np.isfinite(lo)
        ax.hlines(y[ok], lo[ok], hi[ok], color=color, lw=1.2 if loud else 0.5, alpha=0.9 if loud else 0.35)
        for marker, part in (("o", np.abs(x) <= FLOOR_CLIP), (">", x > FLOOR_CLIP), ("<", x < -FLOOR_CLIP)):
            pick = m & part
            if pick.any():
                ax.plot(np.clip(x[pick], -FLOOR_CLIP, FLOOR_CLIP), y[pick], marker, ls="none", color=color,
                        ms=5 if loud else 2.5, alpha=1 if loud else 0.7)
    for verdict, color in VERDICT_COLORS.items():
        if (rows["verdict"] == verdict).any():
            ax.plot([], [], "o", color=color, ms=4, label=verdict)
    ax.set_yticks(range(len(groups)), [f"{s}: {m.replace('_', ' ')}" for s, m in (k for k, _ in groups)], fontsize=7.5)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    ax.set_xlim(-FLOOR_CLIP - 0.3, FLOOR_CLIP + 0.3)
    ax.set_xlabel("change from the baseline in effect floors (right = worse; 1 = the floor)")
    ax.set_title(title, pad=18)
    ax.legend(fontsize=7, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, borderaxespad=0.2)
    return to_svg(fig)


def check_trend(history, highlight: list, title: str) -> str:
    """Each (cell, metric)'s change from the baseline, in effect floors, over the checks in the
    history (grey), with the highlighted ones (lasting changes) in colour and the points each check
    flagged (its regressions and improvements) marked; the band is the floor.
    history: entry, study, cell, metric, change, verdict; highlight: [(study, cell, metric)]."""
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    ax.axhspan(-1, 1, color="#1e7a3c", alpha=0.08, lw=0, label="within the effect floor")
    keyed = history.assign(change=history["change"].clip(-FLOOR_CLIP, FLOOR_CLIP))
    marked = set(map(tuple, highlight))
    colors = iter(sns.color_palette(PALETTE, max(1, len(marked))))
    for key, g in keyed.groupby(["study", "cell", "metric"], sort=False):
        g = g.sort_values("entry")
        if key in marked:
            ax.plot(g["entry"], g["change"], "o-", lw=1.6, ms=3, color=next(colors),
                    label=f"{key[1]}: {key[2].replace('_', ' ')}")
        else:
            ax.plot(g["entry"], g["change"], "-", lw=0.5, color="#9aa3ad", alpha=0.2)
    for verdict, color, marker in (("regression", "#b3261e", "v"), ("improvement", "#1e7a3c", "^")):
        flagged = keyed[keyed["verdict"] == verdict] if "verdict" in keyed else keyed.iloc[:0]
        if len(flagged):  # what each check itself flagged, on any line
            ax.scatter(flagged["entry"], flagged["change"], s=14, marker=marker, color=color, zorder=3,
                       label=f"flagged by that check: {verdict}")
    entries = sorted(keyed["entry"].unique())
    ax.set_xticks(entries, [str(int(e)) for e in entries], fontsize=7)
    ax.set_ylim(-FLOOR_CLIP - 0.3, FLOOR_CLIP + 0.3)
    ax.set_xlabel("check (history entry)")
    ax.set_ylabel("change in effect floors (+ = worse)")
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return to_svg(fig)
