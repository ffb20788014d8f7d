"""Score every method's embedding, for every seed, against the true labels: KMeans and Leiden at the true number
of labels (ARI, NMI) and the cluster-free kNN label-transfer accuracy; then the mean and sd over seeds.

input: data (preprocessed.h5mu, for the cells and labels), embeddings and resources (json) per method and seed,
wnn_graphs (one per seed, when wnn is benchmarked); params: methods and seeds (of each embedding, in order),
graph_seeds (of each wnn graph), seed (of the scoring), n_neighbors, knn_folds;
output: scores (clustering.tsv, one row per method x clustering x seed), summary (summary.tsv, one row per method),
knn_recall (knn_recall.tsv, one row per method x seed x label: which labels each embedding loses).
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
COLUMNS = metrics.SCORE_COLUMNS


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
    p = smk.params
    wnn_graphs = dict(zip(p.graph_seeds, smk.input.get("wnn_graphs", [])))
    rows, recalls = [], []
    for method, run_seed, embedding_path, resources_path in zip(p.methods, p.seeds, smk.input.embeddings,
                                                                smk.input.resources):
        cells, embedding = baselines.read_embedding(embedding_path)
        if not cells.equals(pd.Index(barcodes)):
            raise InputError(embedding_path, "its barcodes differ from the preprocessed cells")
        graph = method_graph(method, embedding, wnn_graphs.get(run_seed), p.n_neighbors, p.seed)
        with open(resources_path) as handle:
            usage = json.load(handle)
        # the scoring's own randomness (KMeans restarts, Leiden, the folds) is the same for every run: the spread
        # over seeds is the method's
        transfer, per_label = metrics.knn_label_scores(embedding, labels, n_neighbors=p.n_neighbors,
                                                       n_folds=p.knn_folds, seed=p.seed)
        recalls.append(per_label.assign(method=method, seed=run_seed))
        for row in metrics.score_clusterings(embedding, graph, labels, seed=p.seed):
            rows.append({"method": method, **row, "seconds": usage.get("seconds"),
                         "peak_mem_mb": usage.get("peak_mem_mb"), "seed": run_seed, **transfer})
        log.info("%s seed %s: kNN accuracy %.3f (balanced %.3f)", method, run_seed, transfer["knn_accuracy"],
                 transfer["knn_balanced_accuracy"])
    table = pd.DataFrame(rows, columns=COLUMNS)
    log.info("clustering scores:\n%s", table.to_string(index=False))
    summary = metrics.summarise_seeds(table)
    log.info("mean and sd over seeds:\n%s", summary.to_string(index=False))
    write_tsv(table, smk.output.scores, float_format="%.4f")
    write_tsv(summary, smk.output.summary, float_format="%.4f")
    recall = pd.concat(recalls, ignore_index=True)[["method", "seed", "label", "n_cells", "knn_recall"]]
    write_tsv(recall, smk.output.knn_recall, float_format="%.4f")


run(main, snakemake)  # noqa: F821 - injected by Snakemake
