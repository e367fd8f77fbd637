# One job per prepared dataset (sweepbench.data.registry): its raw files, found offline along
# the registry's search path (data/<folder>/raw/, then system folders such as Debian's
# /usr/share/datasets/fashion-mnist/), -> <data dir>/<dataset>.pt plus a sidecar naming the raw
# files and their sha256. With smoke=true the raw files are tiny generated ones.


rule prepare_data:
    output:
        tensors=f"{DATA_DIR}/{{dataset}}.pt",
        sources=f"{DATA_DIR}/{{dataset}}.pt.sources.json",
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
        "sweepbench prepare --dataset {wildcards.dataset} --raw-dir {params.raw_dir:q} {params.tiny} "
        "--out {output.tensors:q} > {log:q} 2>&1"
