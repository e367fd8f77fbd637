# One job per pack of cells (sweepbench.plan: a cell's seeds, or more with `pack_by`), trained
# in one process by `sweepbench train-pack`; each run folder is written atomically and
# Snakemake marks a killed job incomplete and re-runs it.


rule train:
    input:
        data=job_data,
        plan=ancient(f"{RESULTS}/plan.json"),  # read for the job's specs; its timestamp triggers nothing
    output:
        directory(f"{RESULTS}/runs/{{job}}"),
    log:
        f"{RESULTS}/logs/train/{{job}}.log",
    params:
        specs=job_digest,
        code=CODE_VERSION,
    threads: job_threads
    resources:
        mem_mb=job_resource("mem_mb"),
        runtime=job_resource("runtime"),
        gpu=job_resource("gpu"),
    shell:
        "sweepbench train-pack --plan {input.plan:q} --job {wildcards.job:q} --out {output:q} --threads {threads} "
        "> {log:q} 2>&1"
