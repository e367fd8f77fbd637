# Expand the config into cells (sweepbench.plan.planner) before any job starts; a bad config stops here.
import hashlib
import json
import os
import sys

from sweepbench import SweepbenchError
from sweepbench.plan.planner import (
    SMOKE_DATA_DIR,
    SMOKE_RAW_DIR,
    check_results_folder,
    check_smoke_results,
    is_smoke,
    load_config,
    plan,
    plan_is_written,
    write_plan,
)
from sweepbench.data.registry import PREPARED, needs_tensor_file, wildcard_pattern
from sweepbench.plan import user_inputs
from sweepbench.atomic import refuse_overwrites
from sweepbench.provenance import code_version
from sweepbench.report import figure_files
from sweepbench.status import dry_run, stale_manifests

try:
    for path in workflow.configfiles:  # read again strictly: YAML keeps one of two repeated keys silently
        load_config(path)
    PLAN = plan(config)
except SweepbenchError as err:
    print(f"sweepbench: {err}", file=sys.stderr)
    sys.exit(1)

RESULTS = config.get("results_dir", "results")
REPORT = config.get("report_dir", "report")
SMOKE = is_smoke(config)
from sweepbench.aggregate.tables import TABLE_NAMES
from sweepbench.check.compare import CHECK_FILES

TABLES = [f"{RESULTS}/tables/{name}.csv" for name in TABLE_NAMES]
# the report shows the verdict; smoke results are never compared with a baseline
CHECK = [f"{RESULTS}/check/summary.json"] if config.get("baseline") and not SMOKE else []
REPORT_HTML, REPORT_PDF = f"{REPORT}/index.html", f"{REPORT}/report.pdf"
try:
    # outputs never replace what sweepbench did not write: Snakemake deletes a job's outputs before the job
    # runs (and clears the report's figures folder), so each is checked here, before any job
    check_results_folder(RESULTS)
    check_smoke_results(config)
    figure_files.check_folder(os.path.join(REPORT, "figures"), "report_dir's figures folder")
    # (a plan.json that is exactly this config's plan is sweepbench's, listed or not: an older one wrote no list)
    PLAN_FILE = [] if plan_is_written(PLAN, f"{RESULTS}/plan.json") else [f"{RESULTS}/plan.json"]
    refuse_overwrites([*PLAN_FILE, *TABLES, *(f"{RESULTS}/check/{n}" for n in CHECK_FILES)], "results_dir's folder")
    refuse_overwrites([REPORT_HTML, REPORT_PDF], "report_dir")
except SweepbenchError as err:
    print(f"sweepbench: {err}", file=sys.stderr)
    sys.exit(1)

# a run folder deleted after its job finished: the job runs again and trains what is missing (its
# manifest goes, and runs.csv with it: Snakemake re-makes a missing input only for a job that must run);
# a plan.json that is not this config's plan goes the same way (planner.plan_is_written)
STALE = [(manifest, f"{lost} of its runs have no record any more; the job trains them again")
         for manifest, lost in stale_manifests(PLAN, RESULTS)]
if os.path.exists(f"{RESULTS}/plan.json") and not plan_is_written(PLAN, f"{RESULTS}/plan.json"):
    STALE.append((f"{RESULTS}/plan.json", "not this config's plan (another config or sweepbench); written again"))
DRY_RUN = bool(STALE) and dry_run(sys.argv[1:])  # a dry run removes nothing: it says what a real run would
for stale, why in STALE:
    print(f"sweepbench: {stale}: {why}" + (" (in a real run; a dry run removes nothing)" if DRY_RUN else ""),
          file=sys.stderr)
    for path in () if DRY_RUN else (stale, f"{RESULTS}/tables/runs.csv"):
        if os.path.exists(path):
            os.remove(path)
DATA_DIR = SMOKE_DATA_DIR if SMOKE else "resources"  # where prepare_data writes <dataset>.pt
JOBS = PLAN["jobs"]
CODE_VERSION = code_version("training")  # a param of every training job: editing that code re-trains
TABLES_CODE, CHECK_CODE, REPORT_CODE = (code_version(g) for g in ("tables", "check", "report"))


wildcard_constraints:
    job=r"[A-Za-z0-9_-]+/.+",
    dataset=wildcard_pattern(),  # the prepared datasets of sweepbench.data.registry


def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


PLAN_DIGEST = digest(PLAN)


def job_digest(wildcards):
    """Changes exactly when the job's run specs change, so Snakemake re-trains only that job."""
    return digest(JOBS[wildcards.job]["runs"])


# The user's own workloads, models and data: each distinct one is probed once before its training
# jobs (sweepbench.train.probe), and its files' digest is a param of every job that uses it
# (sweepbench.plan.user_inputs): editing the workload file or the data re-trains exactly those jobs.
PROBES = user_inputs.probe_jobs(JOBS)
USER_INPUTS = {job: user_inputs.digest(JOBS[job]["runs"][0]["spec"]) for job in PROBES}


def job_probe(wildcards):
    probe = PROBES.get(wildcards.job)
    return [f"{RESULTS}/probes/{probe}.json"] if probe else []


def job_user_inputs(wildcards):
    return USER_INPUTS.get(wildcards.job, "")


def job_data(wildcards):
    job = JOBS[wildcards.job]
    needs_file = job["dataset"] in PREPARED and needs_tensor_file(job["dataset"], job["runs"][0]["spec"])
    return [f"{DATA_DIR}/{job['dataset']}.pt"] if needs_file else []


def job_runs_dir(wildcards, output):
    """The job's folder of run records, beside its manifest: <results>/runs/<job>."""
    root = output[0][: -len(f"manifests/{wildcards.job}.json")]
    return f"{root}runs/{wildcards.job}"


def job_cycle_source(wildcards):
    """What a job with batch_cycle_from waits for: the plan and the manifests of the study its
    cycle is derived from (sweepbench.plan.batch_cycle); nothing for every other job."""
    source = (JOBS[wildcards.job].get("batch_cycle_from") or {}).get("study")
    if not source:
        return []
    jobs = {PLAN["cells"][c]["job"] for c in PLAN["studies"][source]["cells"]}
    return [f"{RESULTS}/plan.json"] + [f"{RESULTS}/manifests/{j}.json" for j in sorted(jobs)]


def job_cycle_flags(wildcards, input):
    """train-pack's flags that derive the job's batch cycle from the plan (batch_cycle_from)."""
    return f"--cycle-from-plan {input.cycle[0]} --job {wildcards.job}" if input.cycle else ""


def job_resource(key):
    return lambda wildcards: JOBS[wildcards.job]["resources"][key]


def _gpu_slots_given():
    """--resources gpu_slots=N (profiles/local-gpu sets 8): how many runs may share one GPU."""
    given = workflow.global_resources.get("gpu_slots")
    value = getattr(given, "value", given)
    return int(value) if value else 1


GPU_SLOTS = _gpu_slots_given()


def job_gpu_slots(wildcards):
    """A GPU job holds one of the GPU's slots; an exclusive (throughput) job holds them all, so
    no other run shares its GPU. CPU jobs hold none."""
    res = JOBS[wildcards.job]["resources"]
    if not res["gpu"]:
        return 0
    return GPU_SLOTS if res["exclusive"] else 1


def job_flags(wildcards):
    """train-pack's flags: whether the job runs alone (run.json placement.exclusive). Which runs
    train as one stack is in the job's runs file (sweepbench.plan.stacks)."""
    return "--exclusive" if JOBS[wildcards.job]["resources"]["exclusive"] else "--shared"


import functools

from snakemake.exceptions import WorkflowError
from sweepbench.plan.planner import SLURM_RESOURCES, write_job_specs


def on_cluster():
    """Jobs go through a cluster executor (e.g. SLURM): this Snakemake submits them, or runs
    inside one of them (--mode remote). Each job then has an allocation of its own."""
    return workflow.non_local_exec or workflow.remote_exec


def submits_to_slurm():
    """This Snakemake submits the jobs to SLURM (the SLURM executor plugin), not a job inside one."""
    plugin = workflow.executor_plugin
    return plugin is not None and plugin.name == "slurm" and not workflow.remote_exec


def local_cores():
    """--cores of this Snakemake (None when not given, e.g. --workflow-profile none on a cluster)."""
    cores = workflow.global_resources.get("_cores")
    cores = getattr(cores, "value", cores)
    return cores if isinstance(cores, int) and 0 < cores < sys.maxsize else None


def job_threads(wildcards):
    """The study's threads. A study with `exclusive: true` measures throughput: on one machine
    its jobs take every core, so nothing else runs beside them; on a cluster the job is alone
    on its node (job_slurm_extra) and keeps the study's threads."""
    res = JOBS[wildcards.job]["resources"]
    if res["exclusive"] and not on_cluster():
        return max(local_cores() or res["threads"], res["threads"])
    return res["threads"]


def job_cpus(wildcards):
    """CPUs a cluster allocates to each task of the job (sbatch and srun --cpus-per-task): the study's
    threads (shared out evenly among its `tasks`), which Snakemake's own threads would cap at the
    submitting host's --cores."""
    check_array_jobs()
    res = JOBS[wildcards.job]["resources"]
    return res["threads"] // res["tasks"]


# A job with `tasks` > 1 (plan.check_tasks: one SLURM task per data-parallel rank) runs, on a cluster,
# as the SLURM plugin's MPI job: `tasks` and `mpi` make the plugin's sbatch line carry --ntasks=<tasks>
# and its job step run the rule's shell command directly, where `{resources.mpi} -n <tasks>` (srun)
# starts the tasks (job_launch); each GPU job's task gets one GPU (--gpus-per-task=1, job_slurm_extra,
# instead of --gpus, which the plugin would pair with --ntasks-per-gpu). On one machine none of
# this applies: the job spawns its ranks itself.
MPI_LAUNCHER = "srun"


def slurm_tasks(wildcards):
    """The job's SLURM tasks where they are more than one and jobs go to a cluster, else None."""
    tasks = JOBS[wildcards.job]["resources"]["tasks"]
    return tasks if tasks > 1 and on_cluster() else None


def job_tasks(wildcards):
    return slurm_tasks(wildcards)


def job_mpi(wildcards):
    return MPI_LAUNCHER if slurm_tasks(wildcards) else None


def job_gpu(wildcards):
    """The job's GPUs; a cluster job of several tasks asks them per task instead (job_slurm_extra)."""
    return None if slurm_tasks(wildcards) else JOBS[wildcards.job]["resources"]["gpu"]


def job_launch(wildcards, resources):
    """What starts train-pack: nothing (one process, which spawns any ranks itself), or on a cluster
    for a job of several tasks the srun line of its tasks, each with its CPUs (and its GPU), the
    others stopped when one fails; train-pack then runs as one of them (--slurm-tasks)."""
    if not resources.get("mpi"):
        return ""
    gpus = " --gpus-per-task=1" if JOBS[wildcards.job]["resources"]["gpu"] else ""
    return (f"{resources.mpi} -n {resources.tasks} --cpus-per-task={resources.cpus_per_task}{gpus} "
            f"--kill-on-bad-exit=1 ")


def job_task_flags(wildcards):
    tasks = slurm_tasks(wildcards)
    return f"--slurm-tasks {tasks}" if tasks else ""


def check_array_jobs():
    """--slurm-array-jobs=train (or all) submits the ready training jobs as one job array with the
    first job's resources (plugin 2.8): refused when the training jobs differ in resources, as a
    GPU study's job would run in a CPU study's allocation (or the other way round)."""
    arrays = str(getattr(workflow.executor_settings, "array_jobs", None) or "")
    if {"train", "all"} & {name.strip() for name in arrays.split(",")} and distinct_resources() > 1:
        raise WorkflowError(f"--slurm-array-jobs={arrays}: the training jobs ask for {distinct_resources()} different "
                            "resources (studies' `resources`), and an array job gives every task the first "
                            "one's; allowed: --slurm-array-jobs for a config whose studies share their resources")


@functools.lru_cache(maxsize=1)
def distinct_resources():
    """How many different `resources` the training jobs ask for (counted once per Snakemake)."""
    return len({json.dumps(job["resources"], sort_keys=True) for job in JOBS.values()})


def job_torch_threads(wildcards, threads):
    """torch threads of a training job: Snakemake's threads on one machine, the allocation on a cluster
    (all its tasks': data-parallel ranks share them out, sweepbench.train.distributed.threads_per_rank)."""
    if on_cluster():
        check_array_jobs()
        return JOBS[wildcards.job]["resources"]["threads"]
    return threads


def job_slurm_extra(wildcards):
    """sbatch --exclusive for an exclusive (throughput) job: no other job shares its node; and
    --gpus-per-task=1 for a GPU job of several tasks."""
    res = JOBS[wildcards.job]["resources"]
    extra = (["--exclusive"] if res["exclusive"] else []) + (["--gpus-per-task=1"] if res["gpu"] and
                                                              slurm_tasks(wildcards) else [])
    return " ".join(extra) or None


def train_slurm_resources():
    """The studies' SLURM placement as the plugin's resources (plan.SLURM_RESOURCES), only for keys
    the studies set (every study or none: plan.check_slurm_keys), so that otherwise the
    profile's default-resources apply; --exclusive where a study asks for it, and a GPU per task
    for GPU jobs of several tasks."""
    used = {key for job in JOBS.values() for key in job["resources"] if key in SLURM_RESOURCES}
    out = {SLURM_RESOURCES[key]: (lambda w, key=key: JOBS[w.job]["resources"][key]) for key in sorted(used)}
    if any(job["resources"]["exclusive"] or job["resources"]["tasks"] > 1 for job in JOBS.values()):
        out["slurm_extra"] = job_slurm_extra
    return out


def config_slurm_resources():
    """The config's top-level SLURM placement, for jobs that belong to no study (prepare_data)."""
    given = config.get("resources") or {}
    return {SLURM_RESOURCES[key]: given[key] for key in SLURM_RESOURCES if key in given}


def baseline_files(wildcards):
    """The baseline's files, so saving a new baseline re-runs the check (none: the check says so)."""
    folder = os.path.join("baselines", config.get("baseline", "default"))
    return [os.path.join(folder, f) for f in ("seeds.csv", "meta.json") if os.path.exists(os.path.join(folder, f))]
