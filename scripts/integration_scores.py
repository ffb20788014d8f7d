"""Integration metrics of every benchmark embedding of a multi-library dataset (scmvp.integration).

input: data (preprocessed.h5mu: cells, obs[batch_key], labels when present), embeddings (one per method and
seed); params: methods, seeds (of each embedding), batch_key, seed (the scoring's); output: scores
(integration.tsv, one row per method and seed).
"""
import pandas as pd

from scmvp import baselines
from scmvp.errors import InputError
from scmvp.integration import integration_table, read_batches
from scmvp.rule import run, write_tsv


def main(smk):
    cells, batches, labels = read_batches(smk.input.data, smk.params.batch_key)
    if labels is not None and any(label is None for label in labels):
        labels = None  # biology conservation needs every cell labelled
    tables = []
    for method, method_seed, path in zip(smk.params.methods, smk.params.seeds, smk.input.embeddings):
        barcodes, embedding = baselines.read_embedding(path)
        if not barcodes.equals(pd.Index(cells)):
            raise InputError(path, "its barcodes differ from the preprocessed cells")
        table = integration_table({method: embedding}, batches, labels, seed=smk.params.seed)
        table.insert(1, "seed", method_seed)
        tables.append(table)
    write_tsv(pd.concat(tables, ignore_index=True), smk.output.scores, float_format="%.4f")


run(main, snakemake)  # noqa: F821 - injected by Snakemake
