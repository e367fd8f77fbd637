# One job per pack of cells (sweepbench.plan: a cell's seeds, or more with `pack_by`), trained
# in one process by `sweepbench train-pack`; each run folder is written atomically and
# Snakemake marks a killed job incomplete and re-runs it.


rule job_spec:
    input:
        job_cycle_source,  # batch_cycle_from: the runs bmin/bmax is read from (sweepbench.batch_range)
    output:
        f"{RESULTS}/specs/{{job}}.json",
    params:
        specs=job_digest,  # changes exactly when this job's run specs change ...
        code=CODE_VERSION,  # ... or the training code does; the new file then re-trains the job
    log:
        f"{RESULTS}/logs/job_spec/{{job}}.log",
    conda:
        "../envs/sweepbench.yaml"
    script:
        "../scripts/write_job_spec.py"


rule train:
    input:
        data=job_data,
        spec=f"{RESULTS}/specs/{{job}}.json",
    output:
        directory(f"{RESULTS}/runs/{{job}}"),
    log:
        f"{RESULTS}/logs/train/{{job}}.log",
    threads: job_threads
    resources:
        mem_mb=job_resource("mem_mb"),
        runtime=job_resource("runtime"),
        gpu=job_resource("gpu"),
        gpu_slots=job_gpu_slots,
    params:
        flags=job_flags,
    benchmark:
        f"{RESULTS}/benchmarks/train/{{job}}.tsv"
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "sweepbench train-pack --runs-file {input.spec:q} --out {output:q} --threads {threads}"
        " --gpu-slots {resources.gpu_slots} {params.flags} > {log:q} 2>&1"
