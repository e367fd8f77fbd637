# Expand the config into cells (sweepbench.plan) before any job starts; a bad config stops here.
import json
import sys

from sweepbench import SweepbenchError
from sweepbench.plan import image_datasets, plan
from sweepbench.provenance import code_version

try:
    PLAN = plan(config)
except SweepbenchError as err:
    print(f"sweepbench: {err}", file=sys.stderr)
    sys.exit(1)

RESULTS = config.get("results_dir", "results")
CELLS = PLAN["cells"]
CODE_VERSION = code_version()  # a param of every training job: editing the package re-trains
TABLES = [f"{RESULTS}/tables/runs.csv"]


wildcard_constraints:
    cell=r"[A-Za-z0-9_-]+/.+",
    dataset=r"mnist|fmnist",


def cell_runs(wildcards):
    return json.dumps([{"seed": r["seed"], "spec": r["spec"]} for r in CELLS[wildcards.cell]["runs"]])


def cell_data(wildcards):
    cell = CELLS[wildcards.cell]
    needs_file = cell["dataset"] in image_datasets(PLAN) and not cell["runs"][0]["spec"]["synthetic"]
    return [f"resources/{cell['dataset']}.pt"] if needs_file else []


def cell_resource(key):
    return lambda wildcards: CELLS[wildcards.cell]["resources"][key]
