"""Aggregation, the report and `sweepbench status` on N generated run records (issue 16: a
10,000-run sweep aggregates in seconds and gives a report a person can still read).

Plans one digits_mlp study (optimizer x learning rate x batch size, --seeds seeds per cell) with
the real planner, writes a plausible record (run.json, metrics.csv, steps.csv) for every run,
then times, as the workflow runs them:
  aggregate  sweepbench.aggregate.tables.aggregate (all tables to CSV)
  report     sweepbench.report.document.render (HTML and PDF), with the HTML's size and the PDF's pages
  status     sweepbench.status.status (every record read)

    python benchmarks/bench_aggregate.py --cells 1000 --seeds 10     # 10,000 runs
    python benchmarks/bench_aggregate.py --cells 100 --seeds 100     # 10,000 runs, few cells
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

from sweepbench import record, status
from sweepbench.aggregate import tables
from sweepbench.plan.planner import plan, write_plan
from sweepbench.provenance import code_version
from sweepbench.report import document

OPTIMIZERS = ["sgd", "momentum", "adam", "rmsprop"]


def config(n_cells: int, n_seeds: int) -> dict:
    n_bs = max(1, n_cells // (len(OPTIMIZERS) * 10))
    return {"title": f"bench_aggregate: {n_cells} cells x {n_seeds} seeds", "studies": {"grid": {
        "workload": "digits_mlp", "fixed": {"epochs": 5},
        "grid": {"optimizer": OPTIMIZERS, "lr": [round(10 ** (-4 + i / 2), 6) for i in range(10)],
                 "batch_size": [4 * (i + 1) for i in range(n_bs)]},
        "seeds": list(range(n_seeds)), "target": {"metric": "val_accuracy", "value": 0.8}}}}


def fake_record(spec: dict) -> tuple[dict, list[dict], list[dict]]:
    """run.json, metrics rows and step rows of a run that learns faster at a moderate lr."""
    lr, bs, seed = spec["lr"], spec["batch_size"], spec["seed"]
    quality = math.exp(-(math.log10(lr) + 1.5) ** 2) * (0.97 - 0.002 * seed)
    steps_per_epoch = math.ceil(1079 / bs)
    metrics = []
    for epoch in range(6):
        acc = 0.1 + 0.85 * quality * (1 - math.exp(-epoch))
        loss = 2.3 * (1 - quality * (1 - math.exp(-epoch))) + 0.05
        metrics.append({"step": epoch * steps_per_epoch, "epoch": epoch, "samples": epoch * 1079,
                        "wall_s": epoch * 0.1, "eval_s": epoch * 0.01, "lr": lr, "batch_size": bs,
                        "epoch_loss": None if epoch == 0 else loss, "train_loss": loss, "train_accuracy": acc,
                        "val_loss": loss, "val_accuracy": acc, "test_loss": loss, "test_accuracy": acc})
    steps = [{"step": s, "epoch": s / steps_per_epoch, "lr": lr, "batch_size": bs, "loss": 2.3 / (1 + s),
              "step_time_s": 0.001} for s in range(1, 5 * steps_per_epoch + 1, max(1, steps_per_epoch))]
    last, reached = metrics[-1], next((m for m in metrics if m["val_accuracy"] >= 0.8), None)
    final = {k: last[k] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
                                  "test_accuracy")}
    rec = {"schema_version": record.SCHEMA_VERSION, "status": "completed", "stop_reason": "budget exhausted",
           "spec": spec, "workload": {"name": spec["workload"], "n_train": 1079},
           "final": {"step": last["step"], "epoch_loss": last["epoch_loss"], **final}, "best": final,
           "divergence": {"diverged": False},
           "to_target": {"metric": "val_accuracy", "target": 0.8, "reached": reached is not None,
                         "step": reached and reached["step"], "epoch": reached and reached["epoch"],
                         "samples": reached and reached["samples"], "wall_s": reached and reached["wall_s"]},
           "convergence": {"epoch": None}, "speed": {"batched_runs": 1, "stack": None},
           "timing": {"steps": 5 * steps_per_epoch, "epochs": 5, "train_s": 0.5, "eval_s": 0.05, "startup_s": 2.0},
           "throughput": {"samples_per_s": 1000.0 * bs ** 0.3, "samples_per_s_ci_lo": None,
                          "samples_per_s_ci_hi": None, "block_samples_per_s": [1000.0 * bs ** 0.3],
                          "step_time_median_s": 0.001, "step_time_p10_s": 0.001, "step_time_p90_s": 0.001},
           "memory": {"peak_mb": 1}, "grad_noise_scale": None,
           "provenance": {"device_name": "cpu", "torch": "x", "git_commit": "x", "code_version": code_version(),
                          "user_inputs": None}}  # trained by this code: status counts it done, not outdated
    return rec, metrics, steps


def write_records(the_plan: dict, runs_dir: str) -> None:
    for cell in the_plan["cells"].values():
        for run in cell["runs"]:
            rec, metrics, steps = fake_record(run["spec"])
            record.RecordWriter(os.path.join(runs_dir, run["id"])).write_rows(
                metrics, record.METRIC_COLUMNS, steps, record.STEP_COLUMNS, rec)


def timed(fn, *args, **kw) -> tuple:
    """fn's result and a "W s (C s CPU)" text: wall and this process's CPU seconds (the CPU time
    is what to compare on a machine shared with other work)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, f"{time.perf_counter() - t0:.1f} s ({time.process_time() - c0:.1f} s CPU)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--keep", help="write into this folder and keep it (to look at the report)")
    args = p.parse_args()
    the_plan = plan(config(args.cells, args.seeds))
    n_runs = sum(len(c["runs"]) for c in the_plan["cells"].values())
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or scratch
        results = os.path.join(root, "results")
        os.makedirs(results, exist_ok=True)
        write_plan(the_plan, os.path.join(results, "plan.json"))
        _, write_s = timed(write_records, the_plan, os.path.join(results, "runs"))
        counts, agg_s = timed(tables.aggregate, os.path.join(results, "plan.json"), os.path.join(results, "runs"),
                              os.path.join(results, "tables"))
        out, report_s = timed(document.render, os.path.join(results, "plan.json"), os.path.join(results, "tables"),
                              os.path.join(results, "runs"), os.path.join(root, "report"))
        state, status_s = timed(status.status, results, root)
        html_kb = os.path.getsize(out["html"]) / 1024
        from pypdf import PdfReader

        pages = len(PdfReader(out["pdf"]).pages)
    print(f"{len(the_plan['cells'])} cells x {args.seeds} seeds = {n_runs} runs (records written in {write_s})")
    print(f"aggregate: {counts['runs']} runs in {agg_s}; report: {report_s} (HTML {html_kb:,.0f} KiB, "
          f"PDF {pages} pages); status: {status_s} ({state['total']['done']} done)")


if __name__ == "__main__":
    main()
