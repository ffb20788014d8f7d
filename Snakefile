# scMVP pipeline: paired scRNA-seq + scATAC-seq, from the files labs receive to a joint embedding,
# imputed modalities and the paper's evaluations. See README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


# The example config is the default; a --configfile given on the command line replaces it (instead of being
# merged into it, which would add the example dataset to every user's run).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"



validate(config, "config/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/ingest.smk"
include: "rules/preprocess.smk"
include: "rules/model.smk"
include: "rules/benchmark.smk"
include: "rules/validation.smk"
include: "rules/cre.smk"
include: "rules/report.smk"
include: "rules/download.smk"


rule all:
    default_target: True
    input:
        all_targets(),
