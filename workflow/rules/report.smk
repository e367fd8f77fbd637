# Tables (+ the regression check when present) -> report/index.html and report/report.pdf.


rule report:
    input:
        TABLES,
        CHECK,
        plan=f"{RESULTS}/plan.json",
    output:
        html=f"{REPORT}/index.html",
        pdf=f"{REPORT}/report.pdf",
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        "sweepbench report --plan {input.plan:q} --tables {RESULTS}/tables --runs-dir {RESULTS}/runs "
        "--check-dir {RESULTS}/check --out {REPORT} > {log:q} 2>&1"
