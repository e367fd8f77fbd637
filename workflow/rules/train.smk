# One job per pack of cells (sweepbench.plan: a cell's seeds, or more with `pack_by`), trained
# in one process by `sweepbench train-pack`; each run folder is written atomically and
# Snakemake marks a killed job incomplete and re-runs it. A job re-trains when its run specs or
# the training code change (params). Its spec file, results/specs/<job>.json, is written when
# the workflow starts (onstart: never in a dry run; only changed files), not by a job per spec:
# that cost a process per job, and one job writing them all would, upstream of every training
# job, make Snakemake re-train all of them (or, with ancient(), none) on any config change.


onstart:
    write_job_specs(PLAN, f"{RESULTS}/specs")


rule train:
    input:
        data=job_data,
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
        digest=job_digest,  # changes exactly when this job's run specs change ...
        code=CODE_VERSION,  # ... or the training code does: then the job re-trains
        threads=job_torch_threads,
        spec=lambda w: f"{RESULTS}/specs/{w.job}.json",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{job}}.tsv"
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "sweepbench train-pack --runs-file {params.spec:q} --out {output:q} --threads {params.threads}"
        " --gpu-slots {resources.gpu_slots} {params.flags} > {log:q} 2>&1"
