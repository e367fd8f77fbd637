# Compare the tables with baselines/<baseline>/ when the config names a baseline. The rule never
# fails the workflow (--no-fail): the verdict goes to results/check/ and the report.
# `make check` / `sweepbench check --baseline NAME` exit 1 on a regression.


rule check:
    input:
        runs=f"{RESULTS}/tables/runs.csv",
        plan=f"{RESULTS}/plan.json",
        baseline=baseline_files,
    output:
        f"{RESULTS}/check/check.csv",
        f"{RESULTS}/check/summary.json",
    localrule: True
    params:
        code=CHECK_CODE,  # editing that code re-runs this step
        baseline=config.get("baseline", "default"),
        tables=lambda w, input: os.path.dirname(input.runs),
        out=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{RESULTS}/logs/check.log",
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "sweepbench check --baseline {params.baseline:q} --tables {params.tables:q} --plan {input.plan:q} "
        "--out {params.out:q} --no-fail > {log:q} 2>&1"
