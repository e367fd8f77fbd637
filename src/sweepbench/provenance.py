"""Where and with what a result was produced, torch-free: the code's version (per workflow step), the git
commit, the CPU, the process's start-up cost. What a training run records of its torch, device and
data is sweepbench.environment (training code)."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import time

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


# The files whose code decides each workflow step's output. The workflow passes each group's
# hash as a param of its rules, so editing the training code re-trains, editing the tables code
# re-aggregates, and so on; editing only the CLI or the planner re-runs nothing.
CODE_GROUPS = {
    "training": ("__init__.py", "data/__init__.py", "train/__init__.py", "train/acceleration.py", "train/allocator.py", "data/augment.py", "train/stacked.py", "train/clock.py",
                 "data/registry.py", "data/datasets.py", "train/engine.py", "train/environment.py", "data/generated.py", "train/models.py", "train/noise_scale.py", "train/objective.py",
                 "train/optimizers.py", "data/prepare.py", "record.py", "rules.py", "train/run_state.py", "train/schedules.py", "spec.py",
                 "workloads.py"),
    "tables": ("aggregate/statistics.py", "record.py", "aggregate/reproduction.py", "rules.py", "aggregate/tables.py"),
    "check": ("check/compare.py", "check/regression.py"),
    "report": ("report/figures.py", "data/generated.py", "report/document.py", "aggregate/reproduction.py", "rules.py", "report/templates/report.html.j2",
               "report/templates/table.html.j2"),
}
TRAINING_MODULES = CODE_GROUPS["training"]
# modules no step's output depends on (a test checks every module is in a group or here)
NO_OUTPUT_MODULES = ("atomic.py", "plan/batch_cycle.py", "cli.py", "train/job.py", "plan/planner.py", "provenance.py",
                     "plan/stacks.py", "status.py", "data/tinydata.py", "plan/__init__.py", "aggregate/__init__.py",
                     "check/__init__.py", "report/__init__.py")


@functools.lru_cache(maxsize=None)
def code_version(group: str = "training") -> str:
    """Hash of one group of CODE_GROUPS (default: the training code): changes whenever that
    code changes. Every run records the training hash in run.json provenance."""
    digest = hashlib.sha256()
    for name in CODE_GROUPS[group]:
        with open(os.path.join(PACKAGE_DIR, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def git_commit() -> dict:
    """The commit of the checkout the package runs from, and whether it had local changes."""
    try:
        commit = subprocess.run(["git", "-C", PACKAGE_DIR, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", PACKAGE_DIR, "status", "--porcelain", "--", "."],
                                    capture_output=True, text=True, timeout=5).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"git_commit": commit, "git_dirty": dirty}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def process_age_s() -> float | None:
    """Seconds since this process started (Linux), to measure start-up and import cost."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return max(0.0, time.time() - (boot + start_ticks / os.sysconf("SC_CLK_TCK")))
    except (OSError, ValueError, StopIteration, IndexError):
        return None
