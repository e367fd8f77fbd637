# One job per pack of cells (sweepbench.plan: a cell's seeds, or more with `pack_by`), trained
# in one process by `sweepbench train-pack`; each run folder is written atomically and
# Snakemake marks a killed job incomplete and re-runs it. The job's spec file comes from
# write_plan (one local job for all jobs); it is ancient() so rewriting it re-trains nothing:
# a job re-trains when its run specs or the training code change (params).


rule train:
    input:
        data=job_data,
        spec=ancient(f"{RESULTS}/specs/{{job}}.json"),
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
        cpus_per_task=job_cpus,
        **train_slurm_resources(),
    params:
        flags=job_flags,
        specs=job_digest,  # changes exactly when this job's run specs change ...
        code=CODE_VERSION,  # ... or the training code does: then the job re-trains
        threads=job_torch_threads,
    benchmark:
        f"{RESULTS}/benchmarks/train/{{job}}.tsv"
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "sweepbench train-pack --runs-file {input.spec:q} --out {output:q} --threads {params.threads}"
        " --gpu-slots {resources.gpu_slots} {params.flags} > {log:q} 2>&1"
