# Every run record -> tables under results/tables/ (sweepbench.tables).


rule write_plan:
    output:
        f"{RESULTS}/plan.json",
    params:
        plan=PLAN_DIGEST,
    script:
        "../scripts/write_plan.py"


rule aggregate:
    input:
        plan=f"{RESULTS}/plan.json",
        jobs=expand(f"{RESULTS}/runs/{{job}}", job=JOBS),
    output:
        TABLES,
    log:
        f"{RESULTS}/logs/aggregate.log",
    shell:
        "sweepbench aggregate --plan {input.plan:q} --runs-dir {RESULTS}/runs --out {RESULTS}/tables > {log:q} 2>&1"
