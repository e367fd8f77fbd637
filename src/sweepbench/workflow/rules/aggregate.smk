# Every run record -> tables under results/tables/ (sweepbench.aggregate.tables).


rule write_plan:
    output:
        f"{RESULTS}/plan.json",
    params:
        plan=PLAN_DIGEST,
    localrule: True
    log:
        f"{RESULTS}/logs/write_plan.log",
    conda:
        "../envs/sweepbench.yaml"
    script:
        "../scripts/write_plan.py"


rule aggregate:
    input:
        plan=f"{RESULTS}/plan.json",
        jobs=expand(f"{RESULTS}/manifests/{{job}}.json", job=JOBS),
    output:
        [report(t, caption="../report/table.rst", category="Tables", labels={"table": os.path.basename(t)})
         for t in TABLES],
    localrule: True
    params:
        code=TABLES_CODE,  # editing that code re-runs this step
        runs_dir=lambda w, input: os.path.join(os.path.dirname(input.plan), "runs"),
        tables=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{RESULTS}/logs/aggregate.log",
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "sweepbench aggregate --plan {input.plan:q} --runs-dir {params.runs_dir:q} --out {params.tables:q} > {log:q} 2>&1"
