"""Size thresholds: every path that builds a neighbour graph, clusters, draws a UMAP or computes pseudotime,
run on more than 10,000 cells (few features, so it stays cheap).

Libraries switch algorithms past a size: scanpy's neighbours go from brute force to pynndescent above 4,096
cells, and with pynndescent 0.7.0 that path failed (`'csr_array' object has no attribute 'getnnz'`) while
every test on 3,000 cells passed. These tests fail when such a switch breaks again.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import snakemake
from scmvp import baselines, metrics
from scmvp.pseudotime import diffusion_pseudotime, pseudotime_agreement

N_CELLS = 12_000
N_TYPES = 5


@pytest.fixture(scope="module")
def blobs():
    """N_TYPES well separated Gaussian blobs in 10 dimensions, unequal sizes."""
    rng = np.random.default_rng(0)
    sizes = rng.multinomial(N_CELLS, [0.4, 0.25, 0.15, 0.12, 0.08])
    labels = np.repeat(np.arange(N_TYPES), sizes)
    centres = rng.normal(0, 6, (N_TYPES, 10))
    return centres[labels] + rng.normal(size=(N_CELLS, 10)), labels


def test_knn_graph_leiden_kmeans_umap_above_the_threshold(blobs):
    embedding, labels = blobs
    graph = metrics.knn_graph(embedding, n_neighbors=15, seed=0)
    assert graph.shape == (N_CELLS, N_CELLS) and sp.issparse(graph)
    assert abs(graph - graph.T).max() < 1e-6  # symmetric connectivities
    assert np.diff(graph.indptr).min() >= 1
    scores = {row["clustering"]: row for row in metrics.score_clusterings(embedding, graph, labels, seed=0)}
    assert scores["kmeans"]["ari"] > 0.95 and scores["leiden"]["ari"] > 0.95
    assert scores["leiden"]["n_clusters"] == N_TYPES
    umap = metrics.umap_of_graph(graph, seed=0)
    assert umap.shape == (N_CELLS, 2) and np.isfinite(umap).all()
    # the blobs stay apart in the layout: each cell's nearest UMAP neighbours share its label
    from sklearn.neighbors import KNeighborsClassifier

    assert KNeighborsClassifier(5).fit(umap[::2], labels[::2]).score(umap[1::2], labels[1::2]) > 0.95


def test_model_component_count_above_the_threshold(blobs):
    from scmvp.model.trainer import leiden_cluster_count

    embedding, _ = blobs
    assert N_TYPES <= leiden_cluster_count(embedding, seed=0) <= 3 * N_TYPES


def test_diffusion_pseudotime_above_the_threshold():
    """A noisy curve in 5 dimensions: DPT from its start recovers the position along it."""
    rng = np.random.default_rng(1)
    t = np.sort(rng.random(N_CELLS))
    curve = np.c_[np.cos(2 * t), np.sin(2 * t), t, t ** 2, np.zeros_like(t)] * 10
    embedding = curve + rng.normal(scale=0.3, size=curve.shape)
    pseudotime, root = diffusion_pseudotime(embedding, t < 0.1, seed=0, n_dcs=2)
    assert t[root] < 0.1 and np.isfinite(pseudotime).all()
    assert pseudotime_agreement(pseudotime, t)[0] > 0.9


def test_wnn_above_the_threshold():
    from test_benchmark import N_TYPES as WNN_TYPES, synthetic_mudata

    mdata = synthetic_mudata(n_cells=N_CELLS, n_genes=60, n_peaks=400, seed=2)
    embedding, graph, weights = baselines.wnn(mdata, n_top_genes=60, n_pcs=8, n_lsi_components=8, seed=0)
    assert embedding.shape == (N_CELLS, 8) and graph.shape == (N_CELLS, N_CELLS)
    assert np.all((weights >= 0) & (weights <= 1))
    clusters, _, reached = metrics.leiden_with_n_clusters(graph, WNN_TYPES, seed=0)
    assert reached == WNN_TYPES
    assert metrics.clustering_scores(mdata.obs["label"].to_numpy(), clusters)["ari"] > 0.8


# The benchmark stage as a real workflow run on 10,000 simulated cells (few genes and peaks, one short epoch).
LARGE_CONFIG = {
    "datasets": {
        "large": {
            "technology": "simulated",
            "genome": "synthetic",
            "simulate": {"n_cells": 10_000, "n_genes": 150, "n_peaks": 1_500, "n_types": 6, "seed": 4},
        }
    },
    "qc": {"min_cells_per_gene": 1, "min_cells_per_peak": 1, "n_top_genes": 150, "n_lsi_components": 10,
           "n_pcs": 10},
    "model": {"n_latent": 8, "n_hidden": 32, "n_components": 6, "n_epochs": 2, "warmup_epochs": 1,
              "kl_warmup_epochs": 1, "cycle_start_epoch": 1, "batch_size": 256, "n_tokens": 8,
              "top_genes_attended": 32, "n_transformer_layers": 1, "attention_dim": 16, "device": "cpu",
              "seed": 0},
    # WNN at this size is test_wnn_above_the_threshold (muon compiles its numba code in every new process)
    "benchmark": {"methods": ["scmvp", "rna_pca", "atac_lsi"]},
}


def test_benchmark_stage_on_10k_simulated_cells(tmp_path):
    results = tmp_path / "results" / "large"
    targets = [results / "benchmark" / "clustering.tsv", results / "benchmark" / "umap.png",
               results / "qc" / "qc.png"]
    snakemake(tmp_path, LARGE_CONFIG, targets=[str(t) for t in targets])
    scores = pd.read_csv(targets[0], sep="\t")
    assert set(scores["method"]) == {"scmvp", "rna_pca", "atac_lsi"}
    assert set(scores["clustering"]) == {"kmeans", "leiden"}
    assert scores["ari"].between(-1, 1).all() and (scores["n_clusters"] >= 2).all()
    # the simulator's types are well separated in RNA: PCA of it finds them at this size too
    rna = scores.set_index(["method", "clustering"]).loc[("rna_pca", "kmeans")]
    assert rna["ari"] > 0.5
    umap = pd.read_csv(results / "benchmark" / "umap.tsv", sep="\t")
    assert umap.groupby("method").size().min() >= 9_000  # QC keeps most of the 10,000 cells
    summary = pd.read_csv(results / "qc" / "summary.tsv", sep="\t").set_index("statistic")["value"]
    assert summary["cells_in"] == 10_000 and summary["cells_out"] >= 9_000
