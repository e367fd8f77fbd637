# One job per cell: its seeds train in one process (`sweepbench train-pack`), each run
# folder written atomically; Snakemake marks a killed job incomplete and re-runs it.


rule train:
    input:
        cell_data,
    output:
        directory(f"{RESULTS}/runs/{{cell}}"),
    log:
        f"{RESULTS}/logs/train/{{cell}}.log",
    params:
        runs=cell_runs,
        code=CODE_VERSION,
    threads: cell_resource("threads")
    resources:
        mem_mb=cell_resource("mem_mb"),
        runtime=cell_resource("runtime"),
        gpu=cell_resource("gpu"),
    shell:
        "sweepbench train-pack --runs {params.runs:q} --out {output:q} --threads {threads} > {log:q} 2>&1"
