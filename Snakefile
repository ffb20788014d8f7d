# scMVP pipeline: paired scRNA-seq + scATAC-seq, from the files labs receive to a joint embedding,
# imputed modalities and the paper's evaluations. See README.md.
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


# The example config is the default; a --configfile given on the command line replaces it (instead of being
# merged into it, which would add the example dataset to every user's run).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"



# The package behind the rule scripts (scripts/scmvp), importable here too.
sys.path.insert(0, os.path.join(workflow.basedir, "scripts"))
from scmvp.config_check import ConfigError, check_config

# A config that breaks the schema stops with one short line per problem (the key, the dataset, the allowed
# keys, a suggestion) instead of validate()'s dump of the schema; validate() then fills in the defaults.
# sys.exit, not WorkflowError: Snakemake prints the message alone (no header and traceback line).
try:
    check_config(config, os.path.join(workflow.basedir, "config/schemas/config.schema.yaml"))
except ConfigError as err:
    sys.exit(str(err))
validate(config, "config/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/ingest.smk"
include: "rules/samples.smk"
include: "rules/preprocess.smk"
include: "rules/agreement.smk"
include: "rules/model.smk"
include: "rules/benchmark.smk"
include: "rules/integration.smk"
include: "rules/validation.smk"
include: "rules/cre.smk"
include: "rules/report.smk"
include: "rules/download.smk"


rule all:
    default_target: True
    input:
        all_targets(),
