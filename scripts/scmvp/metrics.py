"""Metrics of the benchmark: ARI/NMI, KMeans, Leiden with a resolution search, the cluster-free kNN
label-transfer accuracy, the mean/sd over seeds of the clustering table, resources.

Every function is pure and seeded: the same inputs and seed give the same clusters on CPU.
"""
from __future__ import annotations

import contextlib
import logging
import resource
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

log = logging.getLogger(__name__)


def clustering_scores(labels, clusters) -> dict:
    """ARI and NMI (arithmetic normalisation) of ``clusters`` against the true ``labels``."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels)
    clusters = np.asarray(clusters)
    if labels.shape != clusters.shape:
        raise ValueError(f"labels ({labels.shape}) and clusters ({clusters.shape}) differ in length")
    return {
        "ari": float(adjusted_rand_score(labels, clusters)),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
    }


def kmeans(embedding, n_clusters: int, seed: int = 0) -> np.ndarray:
    """KMeans (10 restarts) on the embedding; cluster ids 0..n_clusters-1."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed)
    return model.fit_predict(np.asarray(embedding, dtype=np.float64))


def knn_graph(embedding, n_neighbors: int = 15, seed: int = 0):
    """Symmetric UMAP-style kNN connectivities of an embedding (scanpy), as a CSR matrix."""
    import anndata as ad
    import scanpy as sc

    adata = ad.AnnData(obsm={"X_emb": np.asarray(embedding, dtype=np.float32)},
                       obs=pd.DataFrame(index=[str(i) for i in range(len(embedding))]))
    sc.pp.neighbors(adata, n_neighbors=min(n_neighbors, adata.n_obs - 1), use_rep="X_emb",
                    random_state=seed)
    return sp.csr_matrix(adata.obsp["connectivities"])


def umap_of_graph(connectivities, seed: int = 0) -> np.ndarray:
    """2-D UMAP layout of a kNN/WNN graph (scanpy's implementation, seeded)."""
    import anndata as ad
    import scanpy as sc

    n = connectivities.shape[0]
    adata = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(n)]))
    adata.obsp["connectivities"] = sp.csr_matrix(connectivities)
    adata.obsp["distances"] = sp.csr_matrix(connectivities.shape)
    adata.uns["neighbors"] = {"connectivities_key": "connectivities", "distances_key": "distances",
                              "params": {"method": "umap", "n_neighbors": 15}}
    sc.tl.umap(adata, random_state=seed)
    return np.asarray(adata.obsm["X_umap"])


def leiden(connectivities, resolution: float, seed: int = 0) -> np.ndarray:
    """Leiden clustering (RB configuration model) of a weighted undirected graph."""
    import igraph
    import leidenalg

    graph = sp.triu(sp.csr_matrix(connectivities), k=1).tocoo()
    g = igraph.Graph(n=connectivities.shape[0], edges=list(zip(graph.row.tolist(), graph.col.tolist())),
                     directed=False)
    g.es["weight"] = graph.data.tolist()
    partition = leidenalg.find_partition(
        g, leidenalg.RBConfigurationVertexPartition, weights="weight",
        resolution_parameter=resolution, n_iterations=-1, seed=seed)
    return np.asarray(partition.membership)


def leiden_with_n_clusters(connectivities, n_clusters: int, seed: int = 0, max_steps: int = 30):
    """Leiden at the resolution (found by bisection) that gives ``n_clusters`` clusters.

    The number of clusters grows with the resolution, though not strictly; when no resolution gives
    exactly ``n_clusters`` the closest clustering found is returned.
    Returns ``(clusters, resolution, n_clusters_reached)``.
    """
    cache = {}

    def clusters_at(resolution):
        if resolution not in cache:
            membership = leiden(connectivities, resolution, seed)
            cache[resolution] = (membership, len(np.unique(membership)))
        return cache[resolution]

    def best():
        resolution = min(cache, key=lambda r: (abs(cache[r][1] - n_clusters), r))
        return cache[resolution][0], resolution, cache[resolution][1]

    low, high = 0.0, 1.0
    while clusters_at(high)[1] < n_clusters and high < 1e3:
        low, high = high, high * 2
    for _ in range(max_steps):
        if clusters_at(high)[1] == n_clusters:
            break
        middle = (low + high) / 2
        reached = clusters_at(middle)[1]
        if reached == n_clusters:
            break
        if reached < n_clusters:
            low = middle
        else:
            high = middle
    clusters, resolution, reached = best()
    log.info("Leiden: resolution %.4g gives %d clusters (target %d)", resolution, reached, n_clusters)
    return clusters, resolution, reached


def neighbours_umap_leiden(embedding, n_neighbors: int = 15, resolution: float = 1.0, seed: int = 0):
    """kNN graph, UMAP and Leiden clusters of an embedding, as scanpy writes them (``sc.pp.neighbors``,
    ``sc.tl.umap``, ``sc.tl.leiden`` with the igraph flavour scanpy recommends), on an AnnData of the embedding.

    Returns that AnnData: ``obsp`` distances/connectivities, ``obsm["X_umap"]``, ``obs["leiden"]``, ``uns``.
    """
    import anndata as ad
    import scanpy as sc

    embedding = np.asarray(embedding, dtype=np.float32)
    adata = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(len(embedding))]),
                       obsm={"X_emb": embedding})
    sc.pp.neighbors(adata, n_neighbors=min(n_neighbors, adata.n_obs - 1), use_rep="X_emb", random_state=seed)
    sc.tl.umap(adata, random_state=seed)
    sc.tl.leiden(adata, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2,
                 directed=False)
    return adata


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


@contextlib.contextmanager
def track_resources():
    """Measure wall seconds and peak resident memory (MB) of the enclosed block.

    Yields a dict filled with ``seconds`` and ``peak_mem_mb`` on exit. The peak counter is reset at
    the start where the kernel allows it; elsewhere it is the process peak so far.
    """
    usage = {}
    _reset_peak_rss()
    start = time.perf_counter()
    try:
        yield usage
    finally:
        usage["seconds"] = time.perf_counter() - start
        usage["peak_mem_mb"] = _peak_rss_mb()


def score_clusterings(embedding, graph, labels, seed: int = 0) -> list:
    """KMeans on ``embedding`` and Leiden on ``graph``, both at the number of true labels, scored.

    ``labels`` holds None for unlabelled cells: they are clustered but not scored. Returns one dict per
    clustering with ``clustering, ari, nmi, n_clusters``.
    """
    labels = np.asarray(labels, dtype=object)
    labelled = np.array([label is not None for label in labels])
    true = labels[labelled].astype(str)
    n_labels = len(np.unique(true))
    if n_labels < 2:
        raise ValueError("fewer than two distinct labels: nothing to score against")
    clusterings = {
        "kmeans": kmeans(embedding, n_labels, seed=seed),
        "leiden": leiden_with_n_clusters(graph, n_labels, seed=seed)[0],
    }
    return [{"clustering": name, **clustering_scores(true, clusters[labelled]),
             "n_clusters": int(len(np.unique(clusters)))}
            for name, clusters in clusterings.items()]


def knn_label_transfer(embedding, labels, n_neighbors: int = 15, n_folds: int = 5, seed: int = 0) -> dict:
    """Cluster-free score of an embedding: kNN label-transfer accuracy, stratified ``n_folds``-fold.

    Each fold's cells get the majority label of their ``n_neighbors`` nearest (Euclidean) cells among the
    other folds' cells (scikit-learn's KNeighborsClassifier, uniform votes); folds are drawn by
    StratifiedKFold shuffled with ``seed``. Cells whose label is None are left out (neither reference nor
    query). Returns ``knn_accuracy``, the fraction of cells whose held-out prediction equals their label
    (pooled over the folds, i.e. the mean of the fold accuracies weighted by fold size), and
    ``knn_balanced_accuracy``, the mean over labels of each label's recall (so rare labels count as much as
    common ones). A label with fewer cells than ``n_folds`` is kept: it is missing from some folds'
    training cells, which can only lower its recall (scikit-learn warns about it; the warning is silenced).
    """
    return knn_label_scores(embedding, labels, n_neighbors, n_folds, seed)[0]


def knn_label_recall(embedding, labels, n_neighbors: int = 15, n_folds: int = 5, seed: int = 0) -> pd.Series:
    """Per-label recall of the kNN label transfer of :func:`knn_label_transfer` (same folds, same votes):
    the fraction of each label's cells whose held-out prediction is that label, indexed by label (sorted);
    their mean is ``knn_balanced_accuracy``. Shows which labels an embedding loses (rare ones, or those told
    apart by one modality only)."""
    table = knn_label_scores(embedding, labels, n_neighbors, n_folds, seed)[1]
    return pd.Series(table["knn_recall"].to_numpy(), index=table["label"].to_numpy(), name="knn_recall")


def knn_label_scores(embedding, labels, n_neighbors: int = 15, n_folds: int = 5, seed: int = 0):
    """:func:`knn_label_transfer`'s dict and a per-label table (``label``, ``n_cells``, ``knn_recall``, sorted by
    label) from one cross-validation."""
    from sklearn.metrics import balanced_accuracy_score

    y, predicted = _knn_cv_predictions(embedding, labels, n_neighbors, n_folds, seed)
    names, counts = np.unique(y, return_counts=True)
    per_label = pd.DataFrame({"label": names, "n_cells": counts,
                              "knn_recall": [float(np.mean(predicted[y == name] == name)) for name in names]})
    return ({"knn_accuracy": float(np.mean(predicted == y)),
             "knn_balanced_accuracy": float(balanced_accuracy_score(y, predicted))}, per_label)


def _knn_cv_predictions(embedding, labels, n_neighbors, n_folds, seed):
    """(labels, held-out kNN predictions) of the labelled cells, as strings."""
    import warnings

    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier

    embedding = np.asarray(embedding, dtype=np.float64)
    labels = np.asarray(labels, dtype=object)
    if embedding.ndim != 2 or len(embedding) != len(labels):
        raise ValueError(f"embedding ({embedding.shape}) and labels ({labels.shape}) differ in cells")
    labelled = np.array([label is not None for label in labels], dtype=bool)
    x, y = embedding[labelled], labels[labelled].astype(str)
    names, counts = np.unique(y, return_counts=True)
    if len(names) < 2:
        raise ValueError("fewer than two distinct labels: nothing to transfer")
    # StratifiedKFold needs at least n_splits cells in the largest label
    n_splits = min(int(n_folds), int(counts.max()))
    if n_splits < 2:
        raise ValueError("every label has a single cell: no cross-validation possible")
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    predicted = np.empty(len(y), dtype=object)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splits = list(folds.split(x, y))
    for train, test in splits:
        classifier = KNeighborsClassifier(n_neighbors=min(int(n_neighbors), len(train)))
        classifier.fit(x[train], y[train])
        predicted[test] = classifier.predict(x[test])
    return y, predicted.astype(str)


# Columns of clustering.tsv (benchmark_scores): the DESIGN.md contract first, then the per-seed columns.
SCORE_COLUMNS = ["method", "clustering", "ari", "nmi", "n_clusters", "seconds", "peak_mem_mb", "seed",
                 "knn_accuracy", "knn_balanced_accuracy"]


def summarise_seeds(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds, per method, of the clustering table's scores (one row per method, in the
    order the methods first appear).

    ``scores`` has the clustering.tsv columns (one row per method x clustering x seed). Columns of the result:
    ``method``, ``n_seeds``, ``seeds`` (comma-separated), then ``{clustering}_{ari|nmi}_{mean|sd}`` for each
    clustering (kmeans, leiden), ``knn_accuracy_{mean|sd}``, ``knn_balanced_accuracy_{mean|sd}`` (one value per
    method and seed), ``seconds_mean`` and ``peak_mem_mb_max``. The sd is the sample standard deviation
    (ddof 1) over seeds: NaN with a single seed.
    """
    missing = {"method", "clustering", "seed", "ari", "nmi"} - set(scores.columns)
    if missing:
        raise ValueError(f"scores lack the column(s) {sorted(missing)}")
    if scores.duplicated(["method", "clustering", "seed"]).any():
        raise ValueError("scores have more than one row for a method, clustering and seed")
    methods = list(dict.fromkeys(scores["method"]))
    clusterings = list(dict.fromkeys(scores["clustering"]))

    def mean_sd(values, name):
        values = pd.to_numeric(values, errors="coerce").dropna()
        if len(values) < 2:
            sd = float("nan")
        elif values.nunique() == 1:
            sd = 0.0  # exactly: the float sum of equal values can leave ~1e-16
        else:
            sd = float(values.std(ddof=1))
        return {f"{name}_mean": float(values.mean()) if len(values) else float("nan"), f"{name}_sd": sd}

    rows = []
    for method in methods:
        part = scores[scores["method"] == method]
        per_seed = part.drop_duplicates("seed")  # one row per seed for the per-embedding columns
        seeds = sorted(int(s) for s in per_seed["seed"])
        row = {"method": method, "n_seeds": len(seeds), "seeds": ",".join(map(str, seeds))}
        for clustering in clusterings:
            rows_of = part[part["clustering"] == clustering]
            for metric in ("ari", "nmi"):
                row.update(mean_sd(rows_of[metric], f"{clustering}_{metric}"))
        for metric in ("knn_accuracy", "knn_balanced_accuracy"):
            if metric in part:
                row.update(mean_sd(per_seed[metric], metric))
        if "seconds" in part:
            row["seconds_mean"] = float(pd.to_numeric(per_seed["seconds"], errors="coerce").mean())
        if "peak_mem_mb" in part:
            row["peak_mem_mb_max"] = float(pd.to_numeric(per_seed["peak_mem_mb"], errors="coerce").max())
        rows.append(row)
    return pd.DataFrame(rows)
