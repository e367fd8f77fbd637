# Compare the tables with baselines/<baseline>/ when the config names a baseline. The rule never
# fails the workflow (--no-fail): the verdict goes to results/check/ and the report.
# `make check` / `sweepbench check --baseline NAME` exit 1 on a regression.


rule check:
    input:
        runs=f"{RESULTS}/tables/runs.csv",
        plan=f"{RESULTS}/plan.json",
    output:
        f"{RESULTS}/check/check.csv",
        f"{RESULTS}/check/summary.json",
    params:
        baseline=config.get("baseline", "default"),
    log:
        f"{RESULTS}/logs/check.log",
    shell:
        "sweepbench check --baseline {params.baseline:q} --tables {RESULTS}/tables --plan {input.plan:q} "
        "--out {RESULTS}/check --no-fail > {log:q} 2>&1"
