# Tables (+ the regression check when the config names a baseline) -> report/index.html and report/report.pdf.


report: "../report/workflow.rst"  # `snakemake --report report.zip`: Snakemake's report of this workflow


rule report:
    input:
        TABLES,
        CHECK,
        plan=f"{RESULTS}/plan.json",
    output:
        html=report(REPORT_HTML, caption="../report/html_report.rst", category="Report",
                    labels={"file": "sweepbench report (HTML)"}),
        pdf=report(REPORT_PDF, caption="../report/pdf_report.rst", category="Report",
                   labels={"file": "sweepbench report (PDF)"}),
        figures=report(directory(f"{REPORT}/figures"), patterns=["{study}/{figure}.svg"],
                       caption="../report/figure.rst", category="Figures", subcategory="{study}",
                       labels={"study": "{study}", "figure": "{figure}"}),
    localrule: True
    threads: 4  # processes drawing the studies' figures; Snakemake gives it at most the cores it has
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
        "--check-dir={params.check_dir:q} --out {params.out:q} --figures-dir {output.figures:q} --workers {threads} > {log:q} 2>&1"
