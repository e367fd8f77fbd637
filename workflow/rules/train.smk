# One job per pack of cells (sweepbench.plan: a cell's seeds, or more with `pack_by`), trained
# in one process by `sweepbench train-pack` (sweepbench.pack). Each run folder is written
# atomically; the job's output is a manifest written only when every run has a complete record,
# and a re-run keeps the complete records of the same spec and code, so a resume after a crash
# or a kill trains only the missing runs.


rule job_spec:
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
        f"{RESULTS}/manifests/{{job}}.json",
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
        runs_dir=job_runs_dir,
    benchmark:
        f"{RESULTS}/benchmarks/train/{{job}}.tsv"
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "sweepbench train-pack --runs-file {input.spec:q} --out {params.runs_dir:q} --manifest {output:q} --threads {threads}"
        " --gpu-slots {resources.gpu_slots} {params.flags} > {log:q} 2>&1"
