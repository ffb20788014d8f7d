"""The methods scMVP is compared with: each returns a cells x dims embedding of the same cells.

Inputs follow the ``preprocessed.h5mu`` contract (mods ``rna`` and ``atac`` with raw counts in
``layers["counts"]``, else in ``X``). Nothing here modifies its input; every method is seeded.
"""
from __future__ import annotations

import logging
import os
import tempfile

import numpy as np
import scipy.sparse as sp

from .preprocessing import seeded_lsi

log = logging.getLogger(__name__)

METHODS = ["scmvp", "rna_pca", "atac_lsi", "wnn", "mofa", "multivi", "scvi"]
# |Spearman rho| between an LSI component and log sequencing depth above which it is dropped.
DEPTH_CORRELATION_CUTOFF = 0.5


def counts_of(adata):
    """A copy of ``adata`` whose X holds the raw counts (``layers["counts"]`` when present), CSR float32."""
    import anndata as ad

    matrix = adata.layers["counts"] if "counts" in adata.layers else adata.X
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    return ad.AnnData(X=matrix, obs=adata.obs[[]].copy(), var=adata.var[[]].copy())


def _seed_everything(seed: int):
    np.random.seed(seed)


def _log_normalised(rna, n_top_genes: int):
    import scanpy as sc

    adata = counts_of(rna)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    n_top = min(n_top_genes, adata.n_vars)
    if n_top < adata.n_vars:
        sc.pp.highly_variable_genes(adata, n_top_genes=n_top, flavor="seurat")
        adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    return adata


def _fix_signs(embedding):
    """Make each component's largest-magnitude entry positive: SVD signs are otherwise arbitrary."""
    embedding = np.array(embedding, dtype=np.float64)
    rows = np.abs(embedding).argmax(axis=0)
    signs = np.sign(embedding[rows, np.arange(embedding.shape[1])])
    signs[signs == 0] = 1
    return embedding * signs


def rna_pca(rna, n_top_genes: int = 2000, n_pcs: int = 30, seed: int = 0) -> np.ndarray:
    """Scanpy's standard RNA route: normalise to 1e4, log1p, HVG (seurat), scale (max 10), PCA."""
    import scanpy as sc

    adata = _log_normalised(rna, n_top_genes)
    sc.pp.scale(adata, max_value=10)
    n_pcs = min(n_pcs, adata.n_vars - 1, adata.n_obs - 1)
    sc.pp.pca(adata, n_comps=n_pcs, random_state=seed, svd_solver="arpack")
    return _fix_signs(adata.obsm["X_pca"])


def depth_correlations(lsi, depth) -> np.ndarray:
    """Spearman correlation of each LSI component with log sequencing depth."""
    from scipy.stats import spearmanr

    log_depth = np.log1p(np.asarray(depth, dtype=np.float64).ravel())
    return np.array([spearmanr(lsi[:, i], log_depth).statistic for i in range(lsi.shape[1])])


def drop_depth_component(lsi, depth, cutoff: float = DEPTH_CORRELATION_CUTOFF):
    """Drop the first LSI component when it mostly encodes depth (|Spearman rho| > cutoff).

    Returns ``(embedding, rho_first)``; only the first component is ever dropped (the cisTopic/Signac
    convention), so the embedding keeps the order of the rest.
    """
    rho_first = float(depth_correlations(lsi[:, :1], depth)[0])
    if abs(rho_first) > cutoff:
        return np.asarray(lsi)[:, 1:], rho_first
    return np.asarray(lsi), rho_first


def atac_lsi(atac, n_components: int = 30, seed: int = 0):
    """TF-IDF and LSI through muon (seeded, see preprocessing.seeded_lsi), then the depth component dropped
    (see drop_depth_component).

    Returns ``(embedding, rho_first)``.
    """
    import muon as mu

    _seed_everything(seed)
    adata = counts_of(atac)
    depth = np.asarray(adata.X.sum(axis=1)).ravel()
    mu.atac.pp.tfidf(adata, log_tf=True, log_idf=True)
    # one extra component so that dropping the depth component still leaves n_components
    n_comps = min(n_components + 1, adata.n_vars - 1, adata.n_obs - 1)
    seeded_lsi(adata, n_comps, seed)
    lsi = np.asarray(adata.obsm["X_lsi"], dtype=np.float64)
    embedding, rho = drop_depth_component(lsi, depth)
    embedding = embedding[:, :n_components]
    log.info("LSI: first component vs log depth rho=%.3f -> %s", rho,
             "dropped" if abs(rho) > DEPTH_CORRELATION_CUTOFF else "kept")
    return embedding, rho


def wnn(mdata, n_top_genes: int = 2000, n_pcs: int = 30, n_lsi_components: int = 30,
        n_neighbors: int = 20, seed: int = 0):
    """Weighted nearest neighbours (muon) on RNA PCA + ATAC LSI.

    Returns ``(umap, connectivities, modality_weights)``: the 2-D UMAP of the WNN graph (``mu.tl.umap``),
    the WNN connectivities (CSR), and the per-cell RNA weight.
    """
    import anndata as ad
    import mudata as md
    import muon as mu
    import scanpy as sc

    _seed_everything(seed)
    rna = ad.AnnData(obs=mdata.obs[[]].copy(),
                     obsm={"X_pca": rna_pca(mdata.mod["rna"], n_top_genes, n_pcs, seed)})
    atac = ad.AnnData(obs=mdata.obs[[]].copy(),
                      obsm={"X_lsi": atac_lsi(mdata.mod["atac"], n_lsi_components, seed)[0]})
    n_neighbors = min(n_neighbors, mdata.n_obs - 1)
    sc.pp.neighbors(rna, use_rep="X_pca", n_neighbors=n_neighbors, random_state=seed)
    sc.pp.neighbors(atac, use_rep="X_lsi", n_neighbors=n_neighbors, random_state=seed)
    joint = md.MuData({"rna": rna, "atac": atac})
    mu.pp.neighbors(joint, key_added="wnn", n_multineighbors=min(200, mdata.n_obs - 1),
                    n_bandwidth_neighbors=min(20, n_neighbors), random_state=seed)
    mu.tl.umap(joint, neighbors_key="wnn", random_state=seed)
    return (np.asarray(joint.obsm["X_umap"]), sp.csr_matrix(joint.obsp["wnn_connectivities"]),
            joint.obs["rna:mod_weight"].to_numpy(dtype=np.float64))


def mofa(mdata, n_factors: int = 15, n_top_genes: int = 2000, n_top_peaks: int = 5000,
         n_iterations: int = 1000, seed: int = 0) -> np.ndarray:
    """MOFA+ (mofapy2 through ``mu.tl.mofa``): Gaussian views of log-normalised HVGs and TF-IDF of the
    most frequently accessible peaks. Returns the factors (cells x n_factors, or fewer when MOFA drops
    inactive factors).
    """
    import mudata as md
    import muon as mu

    _seed_everything(seed)
    rna = _log_normalised(mdata.mod["rna"], n_top_genes)
    rna.var["highly_variable"] = True
    atac = counts_of(mdata.mod["atac"])
    n_cells_open = np.asarray((atac.X > 0).sum(axis=0)).ravel()
    keep = np.sort(np.argsort(-n_cells_open, kind="stable")[: min(n_top_peaks, atac.n_vars)])
    atac = atac[:, keep].copy()
    mu.atac.pp.tfidf(atac, log_tf=True, log_idf=True)
    atac.var["highly_variable"] = True
    joint = md.MuData({"rna": rna, "atac": atac})
    with tempfile.TemporaryDirectory() as tmp:
        mu.tl.mofa(joint, n_factors=n_factors, n_iterations=n_iterations, seed=seed,
                   outfile=os.path.join(tmp, "mofa.hdf5"), use_float32=True, quiet=True,
                   convergence_mode="fast")
    return np.asarray(joint.obsm["X_mofa"], dtype=np.float64)


def _scvi_settings(seed: int, threads: int):
    import scvi
    import torch

    scvi.settings.seed = seed
    scvi.settings.dl_num_workers = 0
    torch.set_num_threads(max(1, threads))


def scvi_rna(rna, n_epochs: int = 200, n_latent: int = 10, seed: int = 0, threads: int = 1,
             accelerator: str = "cpu") -> np.ndarray:
    """scVI on RNA counts alone (scvi-tools); the latent means."""
    import scvi

    _scvi_settings(seed, threads)
    adata = counts_of(rna)
    scvi.model.SCVI.setup_anndata(adata)
    model = scvi.model.SCVI(adata, n_latent=n_latent)
    model.train(max_epochs=n_epochs, accelerator=accelerator, enable_progress_bar=False)
    return np.asarray(model.get_latent_representation(), dtype=np.float64)


def multivi(mdata, n_epochs: int = 200, n_latent: int | None = None, seed: int = 0, threads: int = 1,
            accelerator: str = "cpu") -> np.ndarray:
    """MultiVI (scvi-tools) on RNA counts + binarised ATAC of the same cells; the latent means."""
    import mudata as md
    import scvi

    _scvi_settings(seed, threads)
    rna = counts_of(mdata.mod["rna"])
    atac = counts_of(mdata.mod["atac"])
    atac.X.data[:] = 1.0  # MultiVI models accessibility as Bernoulli
    joint = md.MuData({"rna": rna, "atac": atac})
    scvi.model.MULTIVI.setup_mudata(joint, modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = scvi.model.MULTIVI(joint, n_latent=n_latent)
    model.train(max_epochs=n_epochs, accelerator=accelerator, enable_progress_bar=False)
    return np.asarray(model.get_latent_representation(), dtype=np.float64)


def embed(method, mdata, *, seed: int = 0, n_top_genes: int = 2000, n_pcs: int = 30, n_lsi_components: int = 30,
          mofa_factors: int = 15, mofa_iterations: int = 1000, scvi_epochs: int = 200, threads: int = 1,
          accelerator: str = "cpu"):
    """One baseline's embedding of the paired cells of ``mdata``: (cells x dims, extras). Extras: for
    atac_lsi the depth correlation of its first component, for wnn its graph and mean RNA weight."""
    if method == "rna_pca":
        return rna_pca(mdata.mod["rna"], n_top_genes, n_pcs, seed), {}
    if method == "atac_lsi":
        embedding, rho = atac_lsi(mdata.mod["atac"], n_lsi_components, seed)
        return embedding, {"depth_spearman_first_component": rho}
    if method == "wnn":
        umap, graph, weights = wnn(mdata, n_top_genes, n_pcs, n_lsi_components, seed=seed)
        return umap, {"graph": graph, "mean_rna_weight": float(np.mean(weights))}
    if method == "mofa":
        return mofa(mdata, mofa_factors, n_top_genes, n_iterations=mofa_iterations, seed=seed), {}
    if method == "scvi":
        return scvi_rna(mdata.mod["rna"], scvi_epochs, seed=seed, threads=threads, accelerator=accelerator), {}
    if method == "multivi":
        return multivi(mdata, scvi_epochs, seed=seed, threads=threads, accelerator=accelerator), {}
    raise ValueError(f"unknown method {method}")


def read_cells(path):
    """Barcodes and labels (None where unlabelled, or no labels at all) of an h5mu, without loading X."""
    import h5py
    from anndata.io import read_elem

    from .errors import InputError

    try:
        with h5py.File(path, "r") as handle:
            obs = read_elem(handle["obs"])
            if "label" not in obs.columns and "mod/rna/obs" in handle:
                rna_obs = read_elem(handle["mod/rna/obs"])
                if "label" in rna_obs.columns:
                    obs["label"] = rna_obs["label"].reindex(obs.index)
    except (OSError, KeyError) as err:
        raise InputError(path, f"not a readable h5mu file with an obs table ({err})") from None
    if "label" not in obs.columns:
        return obs.index.astype(str), None
    labels = obs["label"].astype(object)
    return obs.index.astype(str), labels.where(labels.notna(), None).to_numpy()


def read_obsm(path, key, barcodes=None) -> np.ndarray:
    """``obsm[key]`` of an h5mu/h5ad (rows in the order of ``barcodes`` when given), without loading X."""
    import h5py
    import pandas as pd
    from anndata.io import read_elem

    from .errors import InputError

    try:
        with h5py.File(path, "r") as handle:
            if f"obsm/{key}" not in handle:
                raise InputError(path, f'has no obsm["{key}"]')
            matrix = np.asarray(read_elem(handle[f"obsm/{key}"]))
            index = read_elem(handle["obs"]).index.astype(str)
    except OSError as err:
        raise InputError(path, f"not a readable h5mu file ({err})") from None
    if barcodes is None:
        return matrix
    position = pd.Series(np.arange(len(index)), index=index)
    missing = pd.Index(barcodes).difference(index)
    if len(missing):
        raise InputError(path, f"lacks {len(missing)} of the benchmark's cells, e.g. {missing[0]}")
    return matrix[position.loc[list(barcodes)].to_numpy()]


def write_embedding(embedding, barcodes, path):
    """Barcode-indexed TSV: column ``barcode`` then ``dim_1..dim_n``."""
    import pandas as pd

    from .rule import write_tsv

    frame = pd.DataFrame(np.asarray(embedding), columns=[f"dim_{i + 1}" for i in range(embedding.shape[1])])
    frame.insert(0, "barcode", list(barcodes))
    write_tsv(frame, path, float_format="%.6g")


def read_embedding(path):
    """The TSV written by write_embedding -> ``(barcodes, matrix)``."""
    import pandas as pd

    from .errors import InputError

    frame = pd.read_csv(path, sep="\t", index_col=0)
    if frame.shape[1] == 0 or frame.index.name != "barcode":
        raise InputError(path, "expected a tsv with a 'barcode' column and at least one dim_* column")
    matrix = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(matrix).all():
        raise InputError(path, "the embedding has NaN or infinite values")
    return frame.index.astype(str), matrix
