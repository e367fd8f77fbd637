# Tables (+ the regression check when the config names a baseline) -> report/index.html and report/report.pdf.


rule report:
    input:
        TABLES,
        CHECK,
        plan=f"{RESULTS}/plan.json",
    output:
        html=f"{REPORT}/index.html",
        pdf=f"{REPORT}/report.pdf",
    params:
        code=REPORT_CODE,  # editing that code re-runs this step
        tables=lambda w, input: os.path.dirname(input[0]),
        runs_dir=lambda w, input: os.path.join(os.path.dirname(input.plan), "runs"),
        check_dir=lambda w, input: os.path.join(os.path.dirname(input.plan), "check") if CHECK else "",
        out=lambda w, output: os.path.dirname(output.html),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "sweepbench report --plan {input.plan:q} --tables {params.tables:q} --runs-dir {params.runs_dir:q} "
        "--check-dir={params.check_dir:q} --out {params.out:q} > {log:q} 2>&1"
