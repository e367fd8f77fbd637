"""`sweepbench status`: where a sweep stands, from the run records on disk.

For each study of the plan the workflow last wrote (results/plan.json): runs planned, done,
running, missing, diverged, broken and outdated (complete, but trained by other code or on
other user inputs: the next snakemake trains them again). It reads only the plan, the run
folders, the job logs and (to tell a lock a killed Snakemake left, and training jobs it left
running) this machine's process list, never Snakemake's
state, so it can be asked at any time, while a workflow runs, without touching its lock. Cheap
enough for 10,000 runs: one directory listing per cell folder and one record per finished run.
"""

from __future__ import annotations

import json
import os
import re

from sweepbench import SweepbenchError, record
from sweepbench.plan.batch_cycle import derived_keys
from sweepbench.plan.planner import read_plan

STATES = ("done", "running", "missing", "diverged", "broken", "outdated")
UNREADABLE = "not checked: their workload file or data cannot be read now"  # an outdated reason
PROGRESS = re.compile(r"^runs? (\d+)(?:-(\d+))?/(\d+)\b")  # train-pack's lines: "run 37/120 ..."


def folder_entries(parent: str) -> tuple[set, set]:
    """(finished run folders, runs being written) in one folder. A run being written has the
    temporary sibling `.<name>.tmp-*` that record.RecordWriter holds from its start to its end."""
    try:
        names = os.listdir(parent)
    except OSError:
        return set(), set()
    writing = {name[1:].split(".tmp-")[0] for name in names if name.startswith(".") and ".tmp-" in name}
    return {name for name in names if not name.startswith(".")}, writing


def finished_state(run_dir: str, spec: dict, derived, inputs_read: dict) -> tuple[str, str]:
    """(state, detail) of a run folder that holds a record: broken (not a complete record of the
    planned spec), outdated (complete, but its job would train it again: sweepbench.train.job.
    outdated, e.g. after an edit of the training code), diverged or done. inputs_read: cell_inputs'
    cache, one per status call."""
    from sweepbench.train import job

    try:
        rec = record.load_planned_record(run_dir, spec, derived)
    except record.BrokenRecord as err:
        return "broken", str(err).split(": ", 1)[-1]
    try:
        why = job.outdated(rec, spec, cell_inputs(spec, inputs_read))
    except SweepbenchError as err:  # a workload file that cannot be loaded now: the workflow refuses the config
        why = f"{UNREADABLE}: {err}"
    if why:
        return "outdated", why
    return ("diverged" if rec.status == "diverged" else "done"), ""


def cell_inputs(spec: dict, read: dict):
    """user_inputs.of(spec), read once per workload and data (what it depends on): a sweep's runs
    share few of them, and a user's data is fingerprinted once, not once per run."""
    from sweepbench.plan import user_inputs

    key = (str(spec.get("workload")), json.dumps(spec.get("data"), sort_keys=True, default=str))
    if key not in read:
        read[key] = user_inputs.of(spec)
    return read[key]


def run_states(the_plan: dict, runs_dir: str, workflow_running: bool) -> dict:
    """{run id: (state, detail)} for every planned run. A half-written run (a temporary folder)
    counts as running only while a Snakemake holds its lock; after a kill it is missing."""
    listings, states, inputs_read = {}, {}, {}
    for cell_id, cell in the_plan["cells"].items():
        derived = derived_keys(the_plan, cell_id)
        for run in cell["runs"]:
            parent, name = os.path.split(os.path.join(runs_dir, run["id"]))
            if parent not in listings:
                listings[parent] = folder_entries(parent)
            finished, writing = listings[parent]
            if name in finished:
                states[run["id"]] = finished_state(os.path.join(parent, name), run["spec"], derived, inputs_read)
            elif name in writing and workflow_running:
                states[run["id"]] = ("running", "")
            else:
                states[run["id"]] = ("missing", "")
    return states


def lock_held(workdir: str = ".") -> bool:
    """Whether .snakemake/locks/ in workdir holds a lock (Snakemake writes it while it runs and
    leaves it behind when killed; read, never touched)."""
    try:
        return bool(os.listdir(os.path.join(workdir, ".snakemake", "locks")))
    except OSError:
        return False


def processes_in(workdir: str = ".") -> list[tuple[int, list[bytes]]] | None:
    """(pid, command line) of every process of this machine working in workdir (from /proc); None
    where /proc cannot tell. Another user's processes and ones gone meanwhile are skipped."""
    if not os.path.isdir("/proc"):
        return None
    target, found = os.path.realpath(workdir), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.path.realpath(f"/proc/{pid}/cwd") == target:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found.append((int(pid), f.read().split(b"\0")))
        except OSError:  # gone meanwhile, or another user's process
            continue
    return found


def snakemake_alive(workdir: str = ".") -> bool | None:
    """Whether a Snakemake process runs in workdir on this machine (its command line names
    snakemake); None where /proc cannot tell. A Snakemake started with --nolock never holds the
    lock: the one inside each cluster job (the SLURM plugin's job step, on a compute node that may
    be this machine) is not the workflow's."""
    procs = processes_in(workdir)
    if procs is None:
        return None
    return any(any(b"snakemake" in os.path.basename(part) for part in argv[:3]) and b"--nolock" not in argv
               for _, argv in procs)


def training_jobs_alive(runs_dir: str, workdir: str = ".") -> list[int]:
    """The pids of `sweepbench train-pack` processes (the workflow's training jobs) working in workdir
    on this machine and writing into runs_dir (their --out): a Snakemake killed with kill -9 leaves
    its local jobs running, still writing their runs; an --unlock and the same command then would
    train those runs a second time."""
    runs = os.path.realpath(os.path.join(workdir, runs_dir))
    return sorted(pid for pid, argv in processes_in(workdir) or [] if b"train-pack" in argv[:4]
                  and any(b"sweepbench" in part for part in argv[:3]) and _writes_into(argv, workdir, runs))


def _writes_into(argv: list[bytes], workdir: str, folder: str) -> bool:
    """Whether a train-pack command line's --out is `folder` or inside it."""
    out = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == b"--out"), None)
    if out is None:
        return False
    path = os.path.realpath(os.path.join(workdir, os.fsdecode(out)))
    return path == folder or path.startswith(folder + os.sep)


def workflow_state(workdir: str = ".") -> str:
    """"running" (a lock, and a Snakemake in this folder on this machine, or no /proc to tell),
    "lock, none here" (a lock, but no Snakemake in this folder on this machine: one killed, or one
    running on another host), or "not running"."""
    if not lock_held(workdir):
        return "not running"
    return "lock, none here" if snakemake_alive(workdir) is False else "running"


def last_progress(log_path: str) -> str | None:
    """The last "run i/n" line of a training job's log."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(log_path) - 65536))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    return next((line for line in reversed(lines) if PROGRESS.match(line)), None)


def status(results_dir: str, workdir: str = ".") -> dict:
    """{"studies": {name: {"planned": n, state: count}}, "total": {...} (each run once, also one
    that two studies share), "jobs": [in-progress job lines], "broken" and "outdated": [(run id, why)],
    "workflow_running": bool, "workflow": workflow_state, "orphan_jobs": [pids of training jobs running
    here without a Snakemake]}."""
    plan_path = os.path.join(results_dir, "plan.json")
    if not os.path.exists(plan_path):
        raise SweepbenchError(f"no plan at {plan_path}; allowed: the results folder of a workflow that has "
                              f"started (snakemake writes plan.json first), e.g. --results-dir results")
    the_plan = read_plan(plan_path)
    workflow = workflow_state(workdir)
    orphans = (training_jobs_alive(os.path.join(results_dir, "runs"), workdir)
               if workflow != "running" else [])  # jobs of a killed Snakemake
    running = workflow != "not running" or bool(orphans)  # a lock: its runs may be running on another host
    states = run_states(the_plan, os.path.join(results_dir, "runs"), running)
    studies = {}
    for name, study in the_plan["studies"].items():
        counts = dict.fromkeys(STATES, 0)
        for run_id in study["runs"]:
            counts[states[run_id][0]] += 1
        studies[name] = {"planned": len(study["runs"]), **counts, "workload": study["workload"]}
    total = {"planned": len(states), **dict.fromkeys(STATES, 0)}  # a run shared by two studies counts once
    for state, _ in states.values():
        total[state] += 1
    busy = sorted({the_plan["cells"][c]["job"] for c in the_plan["cells"]
                   for r in the_plan["cells"][c]["runs"] if states[r["id"]][0] == "running"})
    jobs = [f"{job}: {last_progress(os.path.join(results_dir, 'logs', 'train', job + '.log')) or 'started'}"
            for job in busy]
    broken, outdated = ([(run_id, why) for run_id, (state, why) in states.items() if state == kind]
                        for kind in ("broken", "outdated"))
    return {"studies": studies, "total": total, "jobs": jobs, "broken": broken, "outdated": outdated,
            "workflow_running": running, "workflow": workflow, "orphan_jobs": orphans}


def format_status(result: dict, max_broken: int = 10) -> str:
    """The table `sweepbench status` prints."""
    width = max([len("study"), len("total")] + [len(n) for n in result["studies"]])
    cols = ("planned", *STATES)
    lines = [f"{'study':<{width}}" + "".join(f"{c:>10}" for c in cols) + "  workload"]
    for name, counts in [*result["studies"].items(), ("total", result["total"])]:
        lines.append(f"{name:<{width}}" + "".join(f"{counts[c]:>10,}" for c in cols)
                     + (f"  {counts['workload']}" if "workload" in counts else ""))
    lines.append("snakemake: " + {"running": "running (its lock is held)", "not running": "not running",
                                  "lock, none here": "its lock is held, but no Snakemake runs in this folder on "
                                                     "this machine; if none runs anywhere (a killed run), clear "
                                                     "it: snakemake --unlock (or sweepbench run --unlock)"
                                  }[result["workflow"]])
    if result.get("orphan_jobs"):
        lines.append(f"training jobs still run in this folder without a Snakemake (pids "
                     f"{', '.join(map(str, result['orphan_jobs']))}): a killed Snakemake leaves them running; let "
                     f"them finish or kill them before snakemake --unlock and the same command, which would "
                     f"otherwise train their runs a second time")
    lines += [f"in progress: {line}" for line in result["jobs"]]
    lines += [f"broken: {run_id}: {why}" for run_id, why in result["broken"][:max_broken]]
    if len(result["broken"]) > max_broken:
        lines.append(f"... and {len(result['broken']) - max_broken} more broken runs (--json lists all)")
    for why in sorted({why for _, why in result["outdated"]}):
        n = sum(w == why for _, w in result["outdated"])
        then = ("snakemake refuses the config until they can" if why.startswith(UNREADABLE) else
                "the next snakemake (or sweepbench run) trains them again")
        lines.append(f"outdated: {n} complete runs {why}: {then}")
    if result["broken"]:
        lines.append("re-train the broken runs: snakemake --forcerun train, or sweepbench run --forcerun train "
                     "(each job keeps its complete records)")
    return "\n".join(lines)


def dry_run(snakemake_args: list[str]) -> bool:
    """Whether a Snakemake command line (its arguments: -n, --dry-run, -np, ...) asks for a dry run:
    the workflow removes stale manifests only when it really runs (a dry run deletes nothing).
    Read by Snakemake's own parser; arguments it cannot parse (the Snakefile loaded through an
    API, not the command line) are not a dry run."""
    from snakemake.cli import get_argument_parser

    try:
        args, _ = get_argument_parser().parse_known_args(snakemake_args)
    except SystemExit:
        return False
    return bool(getattr(args, "dryrun", False))


def stale_manifests(plan: dict, results_dir: str) -> list[tuple[str, int]]:
    """Jobs whose manifest says done while run records are gone (a user deleted a run folder):
    [(manifest path, runs without run.json)]. The workflow removes these manifests when it starts,
    so Snakemake runs the job again, and the job keeps its complete records and trains the rest."""
    stale = []
    for job_id, job in plan["jobs"].items():
        manifest = os.path.join(results_dir, "manifests", f"{job_id}.json")
        if not os.path.exists(manifest):
            continue
        lost = sum(not os.path.exists(os.path.join(results_dir, "runs", job_id, run["dir"], "run.json"))
                   for run in job["runs"])
        if lost:
            stale.append((manifest, lost))
    return stale
