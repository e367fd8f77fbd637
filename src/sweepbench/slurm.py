"""What sweepbench adds to Snakemake's SLURM executor plugin (2.8): a failed job is reported, and
reported with what to do.

1. `sacct` answers `CANCELLED by <uid>` for a cancelled job (`scancel`, an administrator, a
   preemption that cancels), and the plugin takes only the exact word `CANCELLED` as a failure: it
   keeps the job as running and Snakemake waits forever. When this Snakemake submits to SLURM, the
   workflow's `onstart` puts a `sacct` of its own first on the PATH of this process (and of
   nothing else): it runs the real `sacct` with the same arguments and exit code and writes its
   output with `CANCELLED by <uid>` as `CANCELLED`, so the plugin reports the job at its next
   status poll, with its SLURM log. It depends on two things that have not changed for years:
   the plugin calls `sacct` by name (it checks `which sacct` first), and sacct's spelling of the
   state (SLURM's src/sacct/print.c). The plugin itself is left untouched.
   The same shim answers the plugin's node query (`sacct -j <id> -X -o nodelist`) after a
   NODE_FAIL with nothing instead of `None assigned` (what sacct says once SLURM has requeued the
   job): the plugin adds that answer to the nodes it excludes and then writes
   `--exclude=None assigned` into every later sbatch line, which sbatch refuses ("Unable to open
   file assigned"), so no job after a requeued one could be submitted.
2. The plugin's failure message gives the SLURM state and the log but not the remedy: the
   workflow's `onerror` reads the failures from Snakemake's log and prints, for each failed SLURM
   job, what the user does next (a TIMEOUT: raise the study's `runtime`), always the same command
   again, which submits only the jobs whose output is missing; complete run records are kept.
"""

from __future__ import annotations

import os
import re
import shutil
import sys

from sweepbench.atomic import write_file

SHIM_FOLDER = os.path.join(".snakemake", "sweepbench", "bin")  # in the workflow's folder

SACCT_SHIM = '''#!{python}
# Written by sweepbench (src/sweepbench/slurm.py) for Snakemake's SLURM plugin: the real sacct, its
# output with "CANCELLED by <uid>" as "CANCELLED", the plugin's only word for a cancelled job.
import os, re, shutil, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                       if p and os.path.abspath(p) != here)
real = shutil.which("sacct", path=path)
if real is None:
    print("sacct: command not found", file=sys.stderr)
    sys.exit(127)
proc = subprocess.run([real, *sys.argv[1:]], stdout=subprocess.PIPE)
out = re.sub(rb"CANCELLED by [0-9]+", b"CANCELLED", proc.stdout)
# the plugin's node query (-o nodelist) for a job SLURM requeued after a node failure: no node, not one
# named "None assigned" (which the plugin would pass to every later sbatch as --exclude=None assigned)
out = re.sub(rb"(?m)^[ \t]*None assigned[ \t]*$", b"", out)
sys.stdout.buffer.write(out)
sys.exit(proc.returncode)
'''


def put_sacct_shim_on_path(folder: str = SHIM_FOLDER) -> str | None:
    """Write the sacct shim into `folder` and put `folder` first on this process's PATH (the
    plugin's status polls run from it). Returns the shim's path; None (nothing done) where no
    real sacct is on PATH, as the plugin then polls with squeue."""
    folder = os.path.abspath(folder)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != folder]
    if shutil.which("sacct", path=os.pathsep.join(path)) is None:
        return None
    shim = os.path.join(folder, "sacct")
    write_file(shim, SACCT_SHIM.replace("{python}", sys.executable))
    os.chmod(shim, 0o755)
    os.environ["PATH"] = os.pathsep.join([folder, *path])
    return shim


# The plugin's lines (snakemake_executor_plugin_slurm 2.8, __init__.py).
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$", re.M)
FAILED = re.compile(r"SLURM-job '(\d+)' failed(?: due to a node failure)?, SLURM status is: '([A-Z_]+)'")

RERUN = "run the same command again: it submits only the jobs whose output is missing (complete runs are kept)"
REMEDIES = {
    "TIMEOUT": "ran past its time limit: raise `runtime` (minutes) in its study's `resources`, then " + RERUN,
    "OUT_OF_MEMORY": "ran out of memory: raise `mem_mb` in its study's `resources`, then " + RERUN,
    "CANCELLED": "was cancelled (scancel, an administrator or a preemption): " + RERUN,
    "NODE_FAIL": "lost its node: " + RERUN + "; with --slurm-requeue SLURM runs such a job again itself",
    "BOOT_FAIL": "lost its node: " + RERUN,
    "DEADLINE": "passed its deadline: " + RERUN,
}


def failure_hints(log_text: str) -> list[str]:
    """One line per SLURM job that the plugin reported as failed in a Snakemake log: its id, its
    SLURM log, its state and what to do next."""
    logs = dict(SUBMITTED.findall(log_text))
    hints, seen = [], set()
    for job_id, state in FAILED.findall(log_text):
        if job_id in seen:
            continue
        seen.add(job_id)
        where = f" (log: {logs[job_id]})" if job_id in logs else ""
        remedy = REMEDIES.get(state, "failed: its SLURM log and its job's log (results/logs/) say why; fix that, "
                                     "then " + RERUN)
        hints.append(f"sweepbench: SLURM job {job_id}{where} {state}: it {remedy}")
    return hints


def print_failure_hints(logfiles) -> None:
    """onerror: the hints for the failures in Snakemake's log file(s) (a path or a list of them),
    on stderr."""
    text = ""
    for path in [logfiles] if isinstance(logfiles, str) else list(logfiles or []):
        try:
            with open(path, errors="replace") as f:
                text += f.read()
        except OSError:
            continue
    for line in failure_hints(text):
        print(line, file=sys.stderr)
