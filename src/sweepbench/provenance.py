"""Where and with what a result was produced, torch-free: the code's version (per workflow step), the git
commit, the CPU, the process's start-up cost. What a training run records of its torch, device and
data is sweepbench.train.environment (training code)."""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import platform
import subprocess
import time

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


# The workflow steps whose output depends on code, and the stage packages that are that code. A
# step's group is those packages' files plus every sweepbench module they import, at any depth
# (imports inside functions too), with the data files a reached module reads (a folder beside it
# that its source names: report/templates, plan/schemas). So editing the training code re-trains,
# editing the tables code re-aggregates, and a shared module re-runs every step that imports it;
# editing the planner re-runs the tables, check and report steps (they read plan.json through it),
# and editing only the CLI or `status` re-runs nothing. The workflow passes each group's hash as a
# param of its rules.
STEP_PACKAGES = {"training": ("data", "train"), "tables": ("aggregate",), "check": ("check",), "report": ("report",)}


def module_path(module: str) -> str | None:
    """The file of a sweepbench module ('sweepbench.train.engine' -> 'train/engine.py'), relative
    to the package folder; None when the name is not a module (e.g. a function)."""
    rel = module.split(".")[1:]
    for candidate in (os.path.join(*rel) + ".py" if rel else None, os.path.join(*rel, "__init__.py")):
        if candidate and os.path.isfile(os.path.join(PACKAGE_DIR, candidate)):
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def imports_of(rel_path: str) -> tuple[str, ...]:
    """The sweepbench modules a file of the package imports, anywhere in it (lazy imports too),
    with the packages each import executes ('sweepbench', 'sweepbench.train', ...)."""
    with open(os.path.join(PACKAGE_DIR, rel_path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), rel_path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "sweepbench")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "sweepbench":
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names if module_path(f"{node.module}.{a.name}"))
    found = set()
    for name in names:
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return tuple(sorted(m for m in found if module_path(m)))


def package_files(package: str) -> list[str]:
    """Every file of a stage package (its modules and data files), relative to the package folder."""
    root = os.path.join(PACKAGE_DIR, package)
    return sorted(os.path.relpath(os.path.join(d, f), PACKAGE_DIR) for d, dirs, files in os.walk(root)
                  if "__pycache__" not in d for f in files if not f.endswith((".pyc", ".pyo")))


@functools.lru_cache(maxsize=None)
def data_files_read_by(module_file: str) -> tuple[str, ...]:
    """The data files in folders beside a module whose names its source mentions (e.g. report/document.py
    reads report/templates/)."""
    folder = os.path.dirname(os.path.join(PACKAGE_DIR, module_file))
    with open(os.path.join(PACKAGE_DIR, module_file), encoding="utf-8") as f:
        source = f.read()
    subdirs = [d for d in sorted(os.listdir(folder)) if os.path.isdir(os.path.join(folder, d)) and d != "__pycache__"
               and not os.path.isfile(os.path.join(folder, d, "__init__.py"))
               and (f'"{d}"' in source or f"'{d}'" in source)]
    rel = os.path.relpath(folder, PACKAGE_DIR)
    return tuple(f for d in subdirs for f in package_files(os.path.normpath(os.path.join(rel, d))))


@functools.lru_cache(maxsize=None)
def code_group(group: str) -> tuple[str, ...]:
    """The files whose code decides one workflow step's output (STEP_PACKAGES, with their imports)."""
    files = {f for package in STEP_PACKAGES[group] for f in package_files(package)}
    todo = [f for f in files if f.endswith(".py")]
    while todo:
        for path in map(module_path, imports_of(todo.pop())):
            for f in [path, *data_files_read_by(path)]:
                if f not in files:
                    files.add(f)
                    todo += [f] if f.endswith(".py") else []
    return tuple(sorted(files))


@functools.lru_cache(maxsize=None)
def code_version(group: str = "training") -> str:
    """Hash of one step's code (code_group; default: the training code): changes whenever that
    code changes, and when a file moves (its path is hashed). Every run records the training hash
    in run.json provenance."""
    digest = hashlib.sha256()
    for name in code_group(group):
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


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity; the machine's count where unknown)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_mb() -> float | None:
    """Memory this process can still have, in MB: Linux's MemAvailable, capped by the cgroup's limit
    (a SLURM job's or a container's) less what the cgroup already uses; None where unknown."""
    have = []
    try:
        with open("/proc/meminfo") as f:
            have += [int(line.split()[1]) / 1024 for line in f if line.startswith("MemAvailable:")]
        with open("/sys/fs/cgroup/memory.max") as f, open("/sys/fs/cgroup/memory.current") as g:
            limit = f.read().strip()
            if limit != "max":
                have.append((int(limit) - int(g.read())) / 2**20)
    except (OSError, ValueError, IndexError):
        pass
    return min(have) if have else None


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
