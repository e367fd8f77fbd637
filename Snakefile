# sweepbench: studies in config/ fan out training runs; tables, report and check follow.
# Logic lives in src/sweepbench; these files only wire it. See README.md.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless the command line brought its own studies (--configfile FILE):
# Snakemake would otherwise merge the two configs' studies.
if "studies" not in config:

    configfile: "config/config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/check.smk"


rule all:
    input:
        TABLES,
        f"{REPORT}/index.html",
        f"{REPORT}/report.pdf",
