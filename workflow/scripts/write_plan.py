# Adapter: the config -> results/plan.json (sweepbench.plan), written atomically.
import json, os
from sweepbench.plan import plan

tmp = snakemake.output[0] + ".tmp"
with open(tmp, "w") as f:
    json.dump(plan(snakemake.config), f, indent=1)
os.replace(tmp, snakemake.output[0])
