# Adapter: the expanded plan (params) -> results/plan.json, written atomically.
import json, os

tmp = snakemake.output[0] + ".tmp"
with open(tmp, "w") as f:
    json.dump(snakemake.params.plan, f, indent=1)
os.replace(tmp, snakemake.output[0])
