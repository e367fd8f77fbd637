"""What of the user's own files a run depends on, beside sweepbench's code: the file its workload is
declared in (sha256) and the local data it reads (sweepbench.data.local.fingerprint).

They are training inputs: run.json's provenance records them (`user_inputs`), the workflow passes
their digest to each training job as a param (editing the file or the data re-runs exactly the jobs
that use them), and train-pack keeps a finished record only when they are unchanged
(sweepbench.train.job.is_done). Runs of built-in workloads on built-in data have none (None).
"""

from __future__ import annotations

import hashlib
import json

from sweepbench import workloads
from sweepbench.data import registry


def of(spec: dict) -> dict | None:
    """{"workload_file": {path, sha256} or None, "data": {source, fingerprint} or None}, or None when
    the run uses neither a user's workload file nor local data."""
    file = workloads.user_file(spec["workload"])
    source = workloads.effective(spec).dataset
    data = None
    if isinstance(source, str) and source not in registry.DATASETS:
        from sweepbench.data import local  # only for a run on local data

        data = {"source": source, "fingerprint": local.fingerprint(source)}
    if file is None and data is None:
        return None
    return {"workload_file": file, "data": data}


def digest(spec: dict) -> str:
    """A short digest of `of(spec)` ("" when None): a training job's param in the workflow."""
    found = of(spec)
    return "" if found is None else hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]


def needs_probe(spec: dict) -> bool:
    """Whether a run trains something not built in (a user's workload, a torchvision model, local
    data): then the workflow's probe (sweepbench.train.probe) tries it once before any training job."""
    return workloads.is_user_ref(spec["workload"]) or not is_built_in(workloads.effective(spec))


def is_built_in(workload) -> bool:
    """A built-in model on a built-in dataset (known to fit each other), not a user's or torchvision's."""
    return (isinstance(workload.model, str) and workload.model in workloads.MODELS
            and isinstance(workload.dataset, str) and workload.dataset in registry.DATASETS)


def probe_jobs(jobs: dict) -> dict:
    """{job id: the job whose first run probes it} for every job that needs a probe: one probe per
    distinct workload, model and data (the first job that trains them)."""
    first: dict = {}
    out = {}
    for job_id, job in jobs.items():
        spec = job["runs"][0]["spec"]
        if needs_probe(spec):
            key = (spec["workload"], spec["model"], spec["data"])
            out[job_id] = first.setdefault(key, job_id)
    return out
