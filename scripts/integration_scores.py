"""Integration metrics of every benchmark embedding of a multi-library dataset (scmvp.integration).

input: data (preprocessed.h5mu: cells, obs[batch_key], labels when present), embeddings; params: methods,
batch_key, seed; output: scores (integration.tsv).
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
    embeddings = {}
    for method, path in zip(smk.params.methods, smk.input.embeddings):
        barcodes, embedding = baselines.read_embedding(path)
        if not barcodes.equals(pd.Index(cells)):
            raise InputError(path, "its barcodes differ from the preprocessed cells")
        embeddings[method] = embedding
    table = integration_table(embeddings, batches, labels, seed=smk.params.seed)
    write_tsv(table, smk.output.scores, float_format="%.4f")


run(main, snakemake)  # noqa: F821 - injected by Snakemake
