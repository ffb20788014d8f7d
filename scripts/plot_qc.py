"""Rule `plot_qc`: the QC figure (per-metric distributions of every incoming cell, thresholds drawn)."""
import pandas as pd

from scmvp import plots
from scmvp.rule import run


def main(smk):
    cells = pd.read_csv(smk.input.cells, sep="\t")
    thresholds = pd.read_csv(smk.input.thresholds, sep="\t")
    plots.save(plots.qc_distributions(cells, thresholds, title=f"QC of {smk.params.dataset}"), smk.output.figure)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
