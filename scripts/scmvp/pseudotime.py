"""Trajectory validation (paper section 3.3): diffusion pseudotime on the joint embedding vs RNA-only and
ATAC-only embeddings, and its Spearman correlation with a reference pseudotime."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .errors import InputError


def diffusion_pseudotime(embedding: np.ndarray, is_root_label: np.ndarray, n_neighbors: int = 15,
                         seed: int = 0, n_dcs: int = 10) -> tuple[np.ndarray, int]:
    """Scanpy diffusion pseudotime on ``embedding`` rooted in the root-label cell that is most extreme on
    the first (non-trivial) diffusion component, on the side away from the other cells.

    ``n_dcs``: diffusion components DPT sums over (each weighted by lambda / (1 - lambda)). On an embedding
    made of tight, evenly spaced groups (a GMM-prior latent along a trajectory) the spectrum is flat
    (lambda_2..5 >= 0.997 on the example's scMVP latent) and the higher components swamp the first one.

    Returns ``(pseudotime, root index)``; cells unreachable from the root get NaN.
    """
    import anndata as ad
    import scanpy as sc

    embedding = np.asarray(embedding, dtype=np.float64)
    is_root_label = np.asarray(is_root_label, dtype=bool)
    if not is_root_label.any():
        raise ValueError("no cell carries the root label")
    adata = ad.AnnData(X=np.zeros((embedding.shape[0], 1), dtype=np.float32))
    adata.obsm["X_embedding"] = embedding
    sc.pp.neighbors(adata, n_neighbors=min(n_neighbors, embedding.shape[0] - 1), use_rep="X_embedding",
                    random_state=seed)
    n_comps = int(min(max(15, n_dcs), embedding.shape[0] - 2))
    sc.tl.diffmap(adata, n_comps=n_comps, random_state=seed)
    first = adata.obsm["X_diffmap"][:, 1]
    others = first[~is_root_label]
    root_side_low = others.size == 0 or first[is_root_label].mean() <= others.mean()
    candidates = np.flatnonzero(is_root_label)
    root = int(candidates[np.argmin(first[candidates])] if root_side_low else candidates[np.argmax(first[candidates])])
    adata.uns["iroot"] = root
    sc.tl.dpt(adata, n_dcs=min(n_dcs, n_comps))
    pseudotime = adata.obs["dpt_pseudotime"].to_numpy(dtype=np.float64)
    pseudotime[~np.isfinite(pseudotime)] = np.nan
    return pseudotime, root


def pseudotime_agreement(pseudotime: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    """Spearman correlation of a pseudotime with the reference over cells where both are finite."""
    pseudotime = np.asarray(pseudotime, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    finite = np.isfinite(pseudotime) & np.isfinite(truth)
    if finite.sum() < 3:
        return float("nan"), int(finite.sum())
    return float(spearmanr(pseudotime[finite], truth[finite]).statistic), int(finite.sum())


def trajectory_cells(labels, trajectory_labels, path=None) -> np.ndarray:
    """Boolean mask of the cells whose label is one of the trajectory's labels."""
    labels = pd.Series(labels, dtype=object).astype(str)
    missing = [label for label in trajectory_labels if not (labels == str(label)).any()]
    if missing:
        raise InputError(path, f"trajectory labels absent from the cell labels: {', '.join(map(str, missing))}")
    return labels.isin([str(label) for label in trajectory_labels]).to_numpy()

