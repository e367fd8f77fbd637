# Adapter: the config -> results/plan.json and one spec file per train job (results/specs/<job>.json,
# that job's run specs), all written atomically in one local job (sweepbench.plan.write_plan_files).
from sweepbench.plan import plan, write_plan_files

write_plan_files(plan(snakemake.config), snakemake.output.plan, snakemake.output.specs)
