"""2-D UMAP and a Leiden clustering per method, for the UMAP grid (also for datasets without labels).

input: data (preprocessed.h5mu), embeddings, wnn_graph (when wnn is benchmarked);
params: methods, seed, n_neighbors, leiden_resolution; output: umap (tsv).
"""
import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scmvp import baselines, metrics
from scmvp.errors import InputError
from scmvp.rule import run, write_tsv

log = logging.getLogger("scmvp.benchmark_umap")


def main(smk):
    barcodes, labels = baselines.read_cells(smk.input.data)
    frames = []
    for method, path in zip(smk.params.methods, smk.input.embeddings):
        cells, embedding = baselines.read_embedding(path)
        if not cells.equals(pd.Index(barcodes)):
            raise InputError(path, "its barcodes differ from the preprocessed cells")
        if method == "wnn":  # WNN's graph is its own (its embedding is a diffusion map of that graph)
            graph = sp.load_npz(smk.input.wnn_graph)
        else:
            graph = metrics.knn_graph(embedding, n_neighbors=smk.params.n_neighbors, seed=smk.params.seed)
        umap = metrics.umap_of_graph(graph, seed=smk.params.seed)
        clusters = metrics.leiden(graph, smk.params.leiden_resolution, seed=smk.params.seed)
        log.info("%s: %d Leiden clusters at resolution %s", method, len(np.unique(clusters)),
                 smk.params.leiden_resolution)
        frames.append(pd.DataFrame({
            "barcode": barcodes, "method": method, "umap_1": umap[:, 0], "umap_2": umap[:, 1],
            "label": labels if labels is not None else None, "leiden": clusters.astype(str)}))
    write_tsv(pd.concat(frames, ignore_index=True), smk.output.umap, float_format="%.5g")


run(main, snakemake)  # noqa: F821 - injected by Snakemake
