# Adapter: one job's run specs (sweepbench.plan) -> results/specs/<job>.json, written atomically.
# Rewritten only when the job's specs or the training code change, which re-trains that job.
import json, os
from sweepbench import batch_range
from sweepbench.plan import plan

runs_dir = os.path.join(snakemake.config.get("results_dir", "results"), "runs")
runs = batch_range.apply(plan(snakemake.config), snakemake.wildcards.job, runs_dir)  # batch_cycle_from
tmp = snakemake.output[0] + ".tmp"
with open(tmp, "w") as f:
    json.dump(runs, f, indent=1)
os.replace(tmp, snakemake.output[0])
