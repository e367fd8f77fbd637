# One job per pack of cells (sweepbench.plan.planner: a cell's seeds, or more with `pack_by`), trained
# in one process by `sweepbench train-pack` (sweepbench.train.job). Each run folder is written
# atomically; the job's output is a manifest written only when every run has a complete record,
# and a re-run keeps the complete records of the same spec and code, so a resume after a crash
# or a kill trains only the missing runs. A job re-runs when its run specs or the training code
# change (params). Its spec file, results/specs/<job>.json, is written when the workflow starts
# (onstart: never in a dry run; only changed files), not by a job per spec: that cost a process
# per job, and one job writing them all would, upstream of every training job, make Snakemake
# re-train all of them (or, with ancient(), none) on any config change.
from sweepbench import slurm


onstart:
    if not plan_is_written(PLAN, f"{RESULTS}/plan.json"):  # before any job (write_plan, a job, may come after
        write_plan(PLAN, f"{RESULTS}/plan.json")           # training ones): `sweepbench status` reads it
    write_job_specs(PLAN, f"{RESULTS}/specs")
    if submits_to_slurm():  # a cancelled job is reported, not waited for forever (sweepbench.slurm)
        slurm.put_sacct_shim_on_path()


# A failed SLURM job: what to do next (a timeout: raise the study's runtime), after Snakemake's error.
onerror:
    slurm.print_failure_hints(log)


# Before the first training job of a user's own workload, model or data: load the data and run the
# model once (sweepbench probe); a mismatch stops the workflow there with one line, exit code 2.
rule probe:
    output:
        f"{RESULTS}/probes/{{job}}.json",
    params:
        spec=lambda w: f"{RESULTS}/specs/{w.job}.json",
        user=job_user_inputs,  # re-probe when the workload file or the data change
        code=CODE_VERSION,
    log:
        f"{RESULTS}/logs/probe/{{job}}.log",
    localrule: True
    conda:
        "../envs/sweepbench.yaml"
    shell:  # the probe's one line also goes to the console: it is the user's to read
        "sweepbench probe --runs-file {params.spec:q} --out {output:q} > {log:q} 2>&1 || (cat {log:q} >&2; exit 2)"


rule train:
    input:
        data=job_data,
        probe=job_probe,
        cycle=job_cycle_source,  # batch_cycle_from only: the cycle comes from another study's records
    output:
        f"{RESULTS}/manifests/{{job}}.json",
    log:
        f"{RESULTS}/logs/train/{{job}}.log",
    threads: job_threads
    resources:
        mem_mb=job_resource("mem_mb"),
        runtime=job_resource("runtime"),
        gpu=job_gpu,
        gpu_slots=job_gpu_slots,
        cpus_per_task=job_cpus,
        tasks=job_tasks,  # a cluster job of several tasks (None otherwise): sbatch --ntasks, and ...
        mpi=job_mpi,  # ... the plugin's MPI job, whose tasks `launch` starts with srun
        **train_slurm_resources(),
    params:
        flags=job_flags,
        runs_dir=job_runs_dir,
        digest=job_digest,  # changes exactly when this job's run specs change ...
        code=CODE_VERSION,  # ... or the training code does: then the job re-runs
        user=job_user_inputs,  # ... or the user's workload file or local data do
        threads=job_torch_threads,
        spec=lambda w: f"{RESULTS}/specs/{w.job}.json",
        cycle=job_cycle_flags,
        launch=job_launch,
        tasks=job_task_flags,
    benchmark:
        f"{RESULTS}/benchmarks/train/{{job}}.tsv"
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "{params.launch}sweepbench train-pack --runs-file {params.spec:q} --out {params.runs_dir:q}"
        " --manifest {output:q} --threads {params.threads} {params.cycle} {params.tasks}"
        " --gpu-slots {resources.gpu_slots} {params.flags} > {log:q} 2>&1"
