# One job per dataset: torchvision's files -> resources/<dataset>.pt (training never imports torchvision).


rule prepare_data:
    output:
        "resources/{dataset}.pt",
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}.log",
    params:
        raw_dir=config.get("raw_dir", "data"),
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/sweepbench.yaml"
    shell:
        "sweepbench prepare --dataset {wildcards.dataset} --raw-dir {params.raw_dir} --out {output} > {log} 2>&1"
