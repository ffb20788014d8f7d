"""Integration metrics of an embedding of several libraries: batch mixing and biology conservation.

Computed with scib-metrics (Luecken et al., Nature Methods 2022; https://scib-metrics.readthedocs.io), the
maintained implementation of the scIB benchmark, on one shared kNN graph per embedding:

* batch mixing: iLISI (graph iLISI, scaled to [0, 1]: 1 = every neighbourhood mixes the libraries as much as
  the whole dataset), kBET acceptance rate and the batch silhouette (per label, 1 = mixed);
* biology conservation: cLISI (scaled, 1 = neighbourhoods hold one label), label silhouette (rescaled to
  [0, 1]) and graph connectivity (per label, the share of its cells in the largest connected component).

scib-metrics' Benchmarker builds the graph with 90 neighbours (LISI uses perplexity k / 3 = 30, the
scIB default) and kBET with 50 of them; the same numbers are used here.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .errors import InputError

log = logging.getLogger(__name__)

LISI_NEIGHBOURS = 90
KBET_NEIGHBOURS = 50
BATCH_COLUMNS = ["ilisi", "kbet", "silhouette_batch"]
BIO_COLUMNS = ["clisi", "silhouette_label", "graph_connectivity"]


def _neighbours(embedding, n_neighbors, seed):
    from scib_metrics.nearest_neighbors import pynndescent

    return pynndescent(np.ascontiguousarray(embedding, dtype=np.float32), n_neighbors=n_neighbors,
                       random_state=seed)


def _subset(neighbours, k):
    from scib_metrics.nearest_neighbors import NeighborsResults

    return NeighborsResults(indices=neighbours.indices[:, :k], distances=neighbours.distances[:, :k])


def integration_scores(embedding, batches, labels=None, seed: int = 0, path=None) -> dict:
    """Batch-mixing and (with labels) biology-conservation scores of one embedding (cells x dims)."""
    import scib_metrics as sm

    embedding = np.asarray(embedding, dtype=np.float64)
    batches = np.asarray(batches).astype(str)
    if embedding.ndim != 2 or len(embedding) != len(batches):
        raise InputError(path, f"embedding of shape {embedding.shape} does not match {len(batches)} batch labels")
    if not np.isfinite(embedding).all():
        raise InputError(path, "embedding has NaN or infinite values")
    n_batches = len(np.unique(batches))
    if n_batches < 2:
        raise InputError(path, "integration metrics need at least two batches (samples); found one")
    n_cells = len(embedding)
    k = min(LISI_NEIGHBOURS, n_cells - 1)
    neighbours = _neighbours(embedding, k, seed)
    scores = {"n_cells": n_cells, "n_batches": n_batches,
              "ilisi": float(sm.ilisi_knn(neighbours, batches)),
              "kbet": float(sm.kbet(_subset(neighbours, min(KBET_NEIGHBOURS, k)), batches)[0])}
    if labels is None:
        scores.update(silhouette_batch=np.nan, clisi=np.nan, silhouette_label=np.nan, graph_connectivity=np.nan)
        return scores
    labels = np.asarray(labels).astype(str)
    if len(labels) != n_cells:
        raise InputError(path, f"{len(labels)} labels for {n_cells} cells")
    scores.update(
        silhouette_batch=float(sm.silhouette_batch(embedding, labels, batches)),
        clisi=float(sm.clisi_knn(neighbours, labels)),
        silhouette_label=float(sm.silhouette_label(embedding, labels)),
        graph_connectivity=float(sm.graph_connectivity(_subset(neighbours, min(15, k)), labels)),
    )
    return scores


def integration_table(embeddings: dict, batches, labels=None, seed: int = 0) -> pd.DataFrame:
    """One row per method: ``embeddings`` maps method -> (cells x dims) on the same cells in the same order.

    ``batch_score`` and ``bio_score`` are the means of the batch-mixing and biology-conservation columns
    (scIB aggregates them 40:60 into an overall score; both halves are kept apart here)."""
    rows = []
    for method, embedding in embeddings.items():
        scores = integration_scores(embedding, batches, labels, seed=seed, path=method)
        log.info("%s: %s", method, {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()})
        rows.append({"method": method, **scores})
    table = pd.DataFrame(rows)
    table["batch_score"] = table[BATCH_COLUMNS].mean(axis=1, skipna=True)
    table["bio_score"] = table[BIO_COLUMNS].mean(axis=1, skipna=False)
    return table


def read_batches(path, batch_key):
    """Barcodes, batches (obs[batch_key] as str) and labels (None where unlabelled, or None) of an h5mu, from
    one read of its obs (MuData obs, else the RNA modality's), without loading X."""
    from .baselines import obs_labels, read_obs

    obs = read_obs(path, batch_key, "label")
    if batch_key not in obs.columns:
        raise InputError(path, f'has no obs["{batch_key}"] (columns: {", ".join(map(str, obs.columns))})')
    return obs.index.astype(str), obs[batch_key].astype(str).to_numpy(), obs_labels(obs)
