"""Rule cre_link_accuracy: precision/recall of predicted links vs reference links -> cre/link_accuracy.tsv."""
import pandas as pd

from scmvp.cre_evaluation import link_accuracy
from scmvp.errors import InputError, require_file
from scmvp.rule import run, write_tsv


def main(smk):
    links = pd.read_csv(smk.input.links, sep="\t")
    require_file(smk.input.truth, "reference links")
    truth = pd.read_csv(smk.input.truth, sep="\t", dtype=str)
    missing = {"peak", "gene"} - set(truth.columns)
    if missing:
        raise InputError(smk.input.truth, f"reference links lack column(s) {sorted(missing)} "
                                          f"(found: {', '.join(truth.columns)})")
    write_tsv(link_accuracy(links, truth), smk.output.accuracy)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
