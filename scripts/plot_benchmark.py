"""Figures of the clustering benchmark: the ARI/NMI bars (output `bars`) and the heatmap of the kNN recall per
label (output `recall`), or the UMAP grid (output `umap`).

input: scores (clustering.tsv) for `bars`, knn_recall (knn_recall.tsv) for `recall`; umap (umap.tsv) for `umap`;
params: dataset.
"""
import pandas as pd

from scmvp import plots
from scmvp.errors import InputError
from scmvp.rule import run


def main(smk):
    dataset = smk.params.dataset
    if "bars" in smk.output.keys():
        scores = pd.read_csv(smk.input.scores, sep="\t")
        if scores.empty:
            raise InputError(smk.input.scores, "no scores to plot")
        fig = plots.clustering_bars(scores, title=f"{dataset}: clustering vs true labels")
        plots.save(fig, smk.output.bars)
    if "recall" in smk.output.keys():
        recall = pd.read_csv(smk.input.knn_recall, sep="\t", dtype={"label": str})
        if recall.empty:
            raise InputError(smk.input.knn_recall, "no per-label recall to plot")
        fig = plots.knn_recall_heatmap(recall, title=f"{dataset}: kNN label transfer per label")
        plots.save(fig, smk.output.recall)
    if "umap" in smk.output.keys():
        coords = pd.read_csv(smk.input.umap, sep="\t", dtype={"label": str, "leiden": str})
        has_labels = coords["label"].notna().any()
        colour = "label" if has_labels else "leiden"
        fig = plots.embedding_grid(coords, colour=colour,
                                   title=f"{dataset}: UMAP per method, coloured by {'true label' if has_labels else 'Leiden cluster'}")
        plots.save(fig, smk.output.umap)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
