"""The probe: a study's own workload, model or data tried once before the sweep fans out.

The workflow runs `sweepbench probe` once for each distinct (workload, model, data) of the plan that
is not built-in, before any training job that uses it (sweepbench.plan.user_inputs says which are
the user's). It loads the data as a run does (sweepbench.data.datasets checks the tensors' shapes,
dtypes and labels), checks the batch size against them, builds the model and runs one forward pass
of two samples (sweepbench.train.models.check_output). Whatever is wrong is one line naming the
workload, its file and what was expected, exit code 2, and no training job starts.
"""

from __future__ import annotations

import json

from sweepbench import atomic, workloads
from sweepbench.data import datasets
from sweepbench.train import engine, models


def probe(spec: dict) -> dict:
    """Load the data and run the model once on the CPU, as a run of `spec` would; returns what was
    found (the probe file's content). Raises SweepbenchError on the first mismatch."""
    spec = dict(spec, device="cpu")
    workload = workloads.effective(spec)
    splits = datasets.load(workload.dataset, spec, task=workload.task, who=f"workload {workload.name}")
    engine.check_batch_sizes(spec, len(splits.y_train), workload.name)
    inputs = engine.model_input(splits, workload.task)
    module = models.build(workload.model, spec, inputs)
    models.check_output(module, splits.inputs(splits.x_train[:2]), splits.y_train[:2], inputs,
                        f"{workloads.label(workload.model)} (workload {workload.name})")
    return {"workload": workload.name, "file": workload.file or None, "model": workloads.label(workload.model),
            "dataset": workloads.label(workload.dataset), "task": workload.task, **splits.counts,
            "sample_shape": list(inputs.sample_shape), "n_classes": inputs.n_classes,
            **models.count_parameters(module)}


def probe_file(runs_file: str, out: str) -> dict:
    """Probe the first run of a job's runs file and write the result to `out` (atomically)."""
    from sweepbench.train.job import read_runs

    result = probe(read_runs(runs_file)[0]["spec"])
    atomic.write_file(out, json.dumps(result, indent=1) + "\n")
    return result
