"""Figure of the integration metrics: batch mixing vs biology conservation per method.

input: scores (integration.tsv); params: dataset; output: figure.
"""
import pandas as pd

from scmvp import plots
from scmvp.errors import InputError
from scmvp.rule import run


def main(smk):
    scores = pd.read_csv(smk.input.scores, sep="\t")
    if scores.empty:
        raise InputError(smk.input.scores, "no scores to plot")
    fig = plots.integration_panels(scores, title=f"{smk.params.dataset}: library mixing and biology conservation")
    plots.save(fig, smk.output.figure)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
