# One job per dataset: torchvision's files -> <data dir>/<dataset>.pt (training never imports
# torchvision). With smoke=true the raw files are tiny generated IDX files.


rule prepare_data:
    output:
        f"{DATA_DIR}/{{dataset}}.pt",
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}.log",
    params:
        raw_dir=SMOKE_RAW_DIR if SMOKE else config.get("raw_dir", "data"),
        tiny="--tiny" if SMOKE else "",
    resources:
        mem_mb=4000,
        runtime=30,
        **config_slurm_resources(),
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "sweepbench prepare --dataset {wildcards.dataset} --raw-dir {params.raw_dir:q} {params.tiny} --out {output:q} "
        "> {log:q} 2>&1"
