# Adapter: one job's run specs (sweepbench.plan) -> results/specs/<job>.json, written atomically.
# Rewritten only when the job's specs or the training code change, which re-trains that job.
import json, os
from sweepbench.plan import plan

runs = plan(snakemake.config)["jobs"][snakemake.wildcards.job]["runs"]
tmp = snakemake.output[0] + ".tmp"
with open(tmp, "w") as f:
    json.dump(runs, f, indent=1)
os.replace(tmp, snakemake.output[0])
