"""`sweepbench export tensorboard`: every recorded run as TensorBoard event files, so the curves
can be browsed, overlaid and filtered with `tensorboard --logdir results/tensorboard`.

One folder per run, named by its run id (study/cell/seed, so TensorBoard's run filter selects a
study, a cell or a seed), holding one event file with
- `eval/<metric>` at each evaluation of metrics.csv (train/val/test loss and accuracy, lr,
  batch size, epoch, samples), at its optimizer step;
- `step/<column>` for each logged step of steps.csv (mini-batch loss, lr, batch size);
- the run's hyper-parameters (its study's axes and seed) and final metrics for TensorBoard's
  HParams tab.
Event times are the run's own training seconds (wall_s) counted from 0, so TensorBoard's
"relative" axis is training time. Needs the optional `tensorboard` package (no torch, no
TensorFlow): `pip install 'sweepbench[tensorboard]'`. The folder is written whole or not at all,
and replaces only a folder this command wrote: one whose WRITTEN list (atomic.owned_in) names
this export and each file in it as written (a user's own event files in the folder are refused).
"""

from __future__ import annotations

import glob
import math
import os

import pandas as pd

from sweepbench import SweepbenchError
from sweepbench.atomic import TempFolder, list_written, owned_in, refuse_foreign
from sweepbench.report.blocks import read_table

EVAL_COLUMNS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "lr",
                "batch_size", "epoch", "samples")
STEP_COLUMNS = ("loss", "lr", "batch_size")
FINAL_METRICS = ("final_train_loss", "final_val_loss", "final_val_accuracy", "steps_to_target", "samples_per_s")
EVENT_PREFIX = "events.out.tfevents."
KIND = "tensorboard export"  # its WRITTEN list's kind


def _protos():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import plugin_data_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise SweepbenchError("sweepbench export tensorboard needs the tensorboard package; allowed: install it "
                              "(pip install 'sweepbench[tensorboard]' or pip install tensorboard)") from None
    return event_pb2, summary_pb2, plugin_data_pb2, EventFileWriter


def scalar_events(metrics: pd.DataFrame, steps: pd.DataFrame) -> list[tuple[str, int, float, float]]:
    """(tag, step, seconds, value) of every finite value of a run's metrics.csv and steps.csv."""
    out = []
    for prefix, df, columns in (("eval", metrics, EVAL_COLUMNS), ("step", steps, STEP_COLUMNS)):
        seconds = df["wall_s"] if "wall_s" in df else pd.Series(0.0, index=df.index)
        for col in (c for c in columns if c in df):
            for step, t, value in zip(df["step"], seconds.fillna(0.0), pd.to_numeric(df[col], errors="coerce")):
                if math.isfinite(value):
                    out.append((f"{prefix}/{col}", int(step), float(t), float(value)))
    return out


def hparams(row: dict, axes: list[str]) -> dict:
    """The run's hyper-parameters for the HParams tab: its study, its axes' values and its seed."""
    out = {"study": row["study"], "seed": row["seed"]}
    for axis in axes:
        value = row.get(f"axis_{axis}")
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[axis] = value
    return out


def _hparams_summary(summary_pb2, plugin_data_pb2, values: dict):
    info = plugin_data_pb2.SessionStartInfo()
    for key, value in values.items():
        if isinstance(value, bool):
            info.hparams[key].bool_value = value
        elif isinstance(value, (int, float)):
            info.hparams[key].number_value = float(value)
        else:
            info.hparams[key].string_value = str(value)
    content = plugin_data_pb2.HParamsPluginData(version=0, session_start_info=info).SerializeToString()
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="hparams", content=content))
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="_hparams_/session_start_info", metadata=meta)])


def write_run(folder: str, row: dict, run_dir: str, axes: list[str]) -> int:
    """One run's event file in `folder`; returns the number of scalar values written."""
    event_pb2, summary_pb2, plugin_data_pb2, EventFileWriter = _protos()
    metrics = pd.read_csv(os.path.join(run_dir, "metrics.csv"))
    steps_path = os.path.join(run_dir, "steps.csv")
    steps = pd.read_csv(steps_path) if os.path.exists(steps_path) else pd.DataFrame({"step": []})
    scalars = scalar_events(metrics, steps)
    finals = [(f"final/{m}", int(metrics["step"].max()) if len(metrics) else 0, 0.0, float(row[m]))
              for m in FINAL_METRICS if m in row and pd.notna(row[m])]
    writer = EventFileWriter(folder)
    try:
        writer.add_event(event_pb2.Event(wall_time=0.0, step=0,
                                         summary=_hparams_summary(summary_pb2, plugin_data_pb2, hparams(row, axes))))
        for tag, step, seconds, value in scalars + finals:
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
            writer.add_event(event_pb2.Event(wall_time=seconds, step=step, summary=summary))
    finally:
        writer.close()
    return len(scalars)


def _files_under(folder: str) -> list[str]:
    """Every file under `folder`, as paths relative to it ("/"-separated): what the export wrote."""
    return sorted(os.path.relpath(os.path.join(parent, name), folder).replace(os.sep, "/")
                  for parent, _, names in os.walk(folder) for name in names)


def export(tables_dir: str, runs_dir: str, out: str) -> dict:
    """Every run of runs.csv (the records the tables were built from) into `out`/<run id>/."""
    _protos()
    runs = read_table(tables_dir, "runs")
    if runs.empty:
        raise SweepbenchError(f"no runs in {tables_dir}/runs.csv; allowed: the tables of a sweep with records "
                              "(run the workflow, or sweepbench aggregate)")
    refuse_foreign(out, owned_in(out, kind=KIND), "tensorboard folder")
    axes = {study: [c.removeprefix("axis_") for c in g.columns if c.startswith("axis_") and g[c].notna().any()]
            for study, g in runs.groupby("study")}
    folder = TempFolder(out)
    counts = {"runs": 0, "scalars": 0}
    try:
        for row in runs.to_dict("records"):
            target = os.path.join(folder.path, row["run"])
            os.makedirs(target, exist_ok=True)
            counts["scalars"] += write_run(target, row, os.path.join(runs_dir, row["run"]), axes[row["study"]])
            counts["runs"] += 1
        list_written(folder.path, _files_under(folder.path), KIND)
    except BaseException:
        folder.discard()
        raise
    folder.commit()
    counts["files"] = len(glob.glob(os.path.join(out, "**", EVENT_PREFIX + "*"), recursive=True))
    return counts
