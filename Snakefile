# sweepbench from a clone: `snakemake` here (and `make report`) runs the workflow that ships in the
# package (src/sweepbench/workflow/, what `sweepbench run` runs from any folder), with this clone's
# config/config.yaml as the default config. See README.md.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless the command line brought its own studies (--configfile FILE):
# Snakemake would otherwise merge the two configs' studies.
if "studies" not in config:

    configfile: "config/config.yaml"


# The workflow of the sweepbench that the rules' `sweepbench` commands run (the editable install
# of this clone after `make setup`), so rules and code always come from one installation. What
# `include:` runs, but keeping the included file's target (its `rule all`) as the default one: an
# `include:` never sets it (Snakemake's modules include their Snakefile this way).
from sweepbench.cli import SNAKEFILE

workflow.include(SNAKEFILE, overwrite_default_target=True)
