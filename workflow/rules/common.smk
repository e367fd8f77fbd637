# Expand the config into cells (sweepbench.plan) before any job starts; a bad config stops here.
import hashlib
import json
import os
import sys

from sweepbench import SweepbenchError
from sweepbench.plan import SMOKE_DATA_DIR, SMOKE_RAW_DIR, is_smoke, plan
from sweepbench.provenance import code_version

try:
    PLAN = plan(config)
except SweepbenchError as err:
    print(f"sweepbench: {err}", file=sys.stderr)
    sys.exit(1)

RESULTS = config.get("results_dir", "results")
REPORT = config.get("report_dir", "report")
SMOKE = is_smoke(config)
DATA_DIR = SMOKE_DATA_DIR if SMOKE else "resources"  # where prepare_data writes <dataset>.pt
JOBS = PLAN["jobs"]
CODE_VERSION = code_version("training")  # a param of every training job: editing that code re-trains
TABLES_CODE, CHECK_CODE, REPORT_CODE = (code_version(g) for g in ("tables", "check", "report"))
from sweepbench.tables import TABLE_NAMES

TABLES = [f"{RESULTS}/tables/{name}.csv" for name in TABLE_NAMES]
# the report shows the verdict; smoke results are never compared with a baseline
CHECK = [f"{RESULTS}/check/summary.json"] if config.get("baseline") and not SMOKE else []


wildcard_constraints:
    job=r"[A-Za-z0-9_-]+/.+",
    dataset=r"mnist|fmnist",


def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


PLAN_DIGEST = digest(PLAN)


def job_digest(wildcards):
    """Changes exactly when the job's run specs change, so Snakemake re-trains only that job."""
    return digest(JOBS[wildcards.job]["runs"])


def job_data(wildcards):
    job = JOBS[wildcards.job]
    needs_file = job["dataset"] in ("mnist", "fmnist") and not job["runs"][0]["spec"]["synthetic"]
    return [f"{DATA_DIR}/{job['dataset']}.pt"] if needs_file else []


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
    """train-pack's flags: whether the job runs alone (run.json placement.exclusive) and whether
    it trains each cell's seeds as one batched model."""
    job = JOBS[wildcards.job]
    flags = ["--exclusive" if job["resources"]["exclusive"] else "--shared"]
    return " ".join(flags + (["--batch-seeds"] if job.get("batch_seeds") else []))


def job_threads(wildcards):
    """A study with `exclusive: true` measures throughput: its jobs take every core, so
    nothing else runs beside them on a workstation."""
    res = JOBS[wildcards.job]["resources"]
    return max(workflow.cores, res["threads"]) if res["exclusive"] else res["threads"]


def baseline_files(wildcards):
    """The baseline's files, so saving a new baseline re-runs the check (none: the check says so)."""
    folder = os.path.join("baselines", config.get("baseline", "default"))
    return [os.path.join(folder, f) for f in ("seeds.csv", "meta.json") if os.path.exists(os.path.join(folder, f))]
