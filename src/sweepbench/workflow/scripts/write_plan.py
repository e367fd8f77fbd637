# Adapter: the config -> results/plan.json (sweepbench.plan.planner.write_plan: checked, each run spec once, atomic).
from sweepbench.plan.planner import plan, write_plan

write_plan(plan(snakemake.config), snakemake.output[0])
