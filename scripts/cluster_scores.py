"""Score every method's embedding against the true labels: KMeans and Leiden at the true number of labels.

input: data (preprocessed.h5mu, for the cells and labels), embeddings, resources (json per method),
wnn_graph (when wnn is benchmarked); params: methods, seed, n_neighbors; output: scores (clustering.tsv).
"""
import json
import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scmvp import baselines, metrics
from scmvp.errors import InputError
from scmvp.rule import run, write_tsv

log = logging.getLogger("scmvp.cluster_scores")
COLUMNS = ["method", "clustering", "ari", "nmi", "n_clusters", "seconds", "peak_mem_mb"]


def method_graph(method, embedding, graph_path, n_neighbors, seed):
    """The graph Leiden runs on: the WNN graph for wnn, the kNN graph of the embedding otherwise."""
    if method == "wnn":
        return sp.load_npz(graph_path)
    return metrics.knn_graph(embedding, n_neighbors=n_neighbors, seed=seed)


def main(smk):
    barcodes, labels = baselines.read_cells(smk.input.data)
    if labels is None or all(label is None for label in labels):
        raise InputError(smk.input.data, 'has no obs["label"]: clustering scores need the true labels')
    labels = np.asarray(labels, dtype=object)
    if len(set(labels[[label is not None for label in labels]])) < 2:
        raise InputError(smk.input.data, "fewer than two distinct labels: nothing to score against")
    rows = []
    for method, embedding_path, resources_path in zip(smk.params.methods, smk.input.embeddings,
                                                      smk.input.resources):
        cells, embedding = baselines.read_embedding(embedding_path)
        if not cells.equals(pd.Index(barcodes)):
            raise InputError(embedding_path, "its barcodes differ from the preprocessed cells")
        graph = method_graph(method, embedding, smk.input.get("wnn_graph"), smk.params.n_neighbors,
                             smk.params.seed)
        with open(resources_path) as handle:
            usage = json.load(handle)
        for row in metrics.score_clusterings(embedding, graph, labels, seed=smk.params.seed):
            rows.append({"method": method, **row, "seconds": usage.get("seconds"),
                         "peak_mem_mb": usage.get("peak_mem_mb")})
    table = pd.DataFrame(rows, columns=COLUMNS)
    log.info("clustering scores:\n%s", table.to_string(index=False))
    write_tsv(table, smk.output.scores, float_format="%.4f")


run(main, snakemake)  # noqa: F821 - injected by Snakemake
