"""What a training run ran with, for run.json `provenance`: versions, device, data source, host."""

from __future__ import annotations

import platform
import socket
import sys
import time

import torch

from sweepbench import __version__, envlock, workloads
from sweepbench.data import datasets
from sweepbench.plan import user_inputs
from sweepbench.provenance import code_version, cpu_name, git_commit


def device_name(device) -> str:
    """The GPU's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def data_source(spec: dict) -> dict:
    """The run's data source (sweepbench.data.datasets.data_source), or why it is unknown."""
    try:
        return datasets.data_source(workloads.effective(spec).dataset, spec)
    except Exception as err:  # provenance must never stop a finished run from being recorded
        return {"error": f"{type(err).__name__}: {err}"}


def collect(device, spec: dict) -> dict:
    """run.json `provenance` of a run with this resolved spec on this torch device."""
    return {
        "sweepbench": __version__,
        "code_version": code_version(),
        **git_commit(),
        "torch": torch.__version__,
        "env_lock": envlock.state(),  # requirements.lock's hash and whether this python matches it; None: no lock
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "device": device.type,
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "seed": spec["seed"],
        "data_seed": spec["data_seed"],
        "data_source": data_source(spec),
        "user_inputs": user_inputs.of(spec),  # the user's workload file and local data (None: built-in only)
        "deterministic": spec["deterministic"],
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "command": " ".join(sys.argv),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
