"""The methods scMVP is compared with: each returns a cells x dims embedding of the same cells.

Inputs follow the ``preprocessed.h5mu`` contract (mods ``rna`` and ``atac`` with raw counts in
``layers["counts"]``, else in ``X``). Nothing here modifies its input; every method is seeded. Each method is
set up as its authors document it (the source is cited where the choice is made); one depth rule serves every
method that needs one (depth_components). The scvi-tools methods (scVI, MultiVI) are in scvi_baselines.
"""
from __future__ import annotations

import logging
import os
import tempfile

import numpy as np
import scipy.sparse as sp

from . import scvi_baselines
from .harmony import harmonize
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


def depth_correlations(embedding, depth) -> np.ndarray:
    """Spearman correlation of each component of ``embedding`` with log sequencing depth."""
    from scipy.stats import spearmanr

    log_depth = np.log1p(np.asarray(depth, dtype=np.float64).ravel())
    return np.array([spearmanr(embedding[:, i], log_depth).statistic for i in range(embedding.shape[1])])


def depth_components(embedding, depths, cutoff: float = DEPTH_CORRELATION_CUTOFF) -> np.ndarray:
    """Boolean per component: its |Spearman rho| with the log of any of ``depths`` (one array per modality)
    exceeds ``cutoff``. The depth rule of the PCA/LSI baselines (RNA PCA, ATAC LSI, WNN's two inputs; MOFA+
    has depth regressed out before fitting instead, as its docs say, see mofa_with_info): Signac drops the LSI components that follow depth (``DepthCor``; its tutorial
    https://stuartlab.org/signac/articles/pbmc_vignette drops the first, |r| ~ 0.9), and the same cutoff is
    applied to every component of each of them, so that none keeps a depth axis another drops."""
    embedding = np.asarray(embedding, dtype=np.float64)
    flagged = np.zeros(embedding.shape[1], dtype=bool)
    for depth in depths:
        flagged |= np.abs(np.nan_to_num(depth_correlations(embedding, depth))) > cutoff
    return flagged


def drop_depth_components(embedding, depths, n_keep: int, cutoff: float = DEPTH_CORRELATION_CUTOFF):
    """``embedding`` without its depth components (see depth_components), cut to ``n_keep`` columns.

    Returns ``(kept, info)``: info holds ``depth_components_dropped`` (how many) and
    ``depth_dropped_indices`` (0-based, of the input's columns)."""
    embedding = np.asarray(embedding, dtype=np.float64)
    flagged = depth_components(embedding, depths, cutoff)
    if flagged.all():  # never return an empty embedding: keep the least depth-like component
        rho = np.max([np.abs(depth_correlations(embedding, d)) for d in depths], axis=0)
        flagged[np.argmin(rho)] = False
    kept = embedding[:, ~flagged][:, :n_keep]
    return kept, {"depth_components_dropped": int(flagged.sum()),
                  "depth_dropped_indices": [int(i) for i in np.flatnonzero(flagged)]}


def drop_depth_component(lsi, depth, cutoff: float = DEPTH_CORRELATION_CUTOFF):
    """Drop the first LSI component when it mostly encodes depth (|Spearman rho| > cutoff).

    Returns ``(embedding, rho_first)``. Kept for callers of the first-component rule; the baselines use
    drop_depth_components, which tests every component.
    """
    rho_first = float(depth_correlations(lsi[:, :1], depth)[0])
    if abs(rho_first) > cutoff:
        return np.asarray(lsi)[:, 1:], rho_first
    return np.asarray(lsi), rho_first


def total_counts(adata) -> np.ndarray:
    """Per-cell total of the raw counts (``layers["counts"]`` when present)."""
    return np.asarray(counts_of(adata).X.sum(axis=1), dtype=np.float64).ravel()


# Extra components computed so that dropping the depth ones still leaves the requested number.
EXTRA_COMPONENTS = 3


def rna_pca_with_info(rna, n_top_genes: int = 2000, n_pcs: int = 30, seed: int = 0):
    """Scanpy's standard RNA route (normalise to 1e4, log1p, HVG (seurat), scale (max 10), PCA; the scanpy
    clustering tutorial, https://scanpy.readthedocs.io/en/stable/tutorials/basics/clustering.html), then the
    principal components that follow RNA depth dropped (drop_depth_components). Normalising to 1e4 does not
    remove depth from log-scaled HVGs: on sci-CAR A549 PC1 follows RNA depth (rho -0.98).

    Returns ``(embedding, info)``."""
    import scanpy as sc

    depth = total_counts(rna)
    adata = _log_normalised(rna, n_top_genes)
    sc.pp.scale(adata, max_value=10)
    n_comps = min(n_pcs + EXTRA_COMPONENTS, adata.n_vars - 1, adata.n_obs - 1)
    sc.pp.pca(adata, n_comps=n_comps, random_state=seed, svd_solver="arpack")
    embedding, info = drop_depth_components(_fix_signs(adata.obsm["X_pca"]), [depth], n_pcs)
    log.info("RNA PCA: %d of %d components follow RNA depth, dropped (%s)", info["depth_components_dropped"],
             n_comps, info["depth_dropped_indices"])
    return embedding, info


def rna_pca(rna, n_top_genes: int = 2000, n_pcs: int = 30, seed: int = 0) -> np.ndarray:
    """The RNA PCA embedding of rna_pca_with_info (depth components dropped)."""
    return rna_pca_with_info(rna, n_top_genes, n_pcs, seed)[0]


def atac_lsi_with_info(atac, n_components: int = 30, seed: int = 0):
    """TF-IDF and LSI through muon (seeded, see preprocessing.seeded_lsi), then the components that follow
    ATAC depth dropped (drop_depth_components; Signac's/ArchR's practice for the first LSI component).

    Returns ``(embedding, info)``; info also holds ``depth_spearman_first_component``."""
    import muon as mu

    _seed_everything(seed)
    adata = counts_of(atac)
    depth = np.asarray(adata.X.sum(axis=1)).ravel()
    mu.atac.pp.tfidf(adata, log_tf=True, log_idf=True)
    # extra components so that dropping the depth ones still leaves n_components
    n_comps = min(n_components + EXTRA_COMPONENTS, adata.n_vars - 1, adata.n_obs - 1)
    seeded_lsi(adata, n_comps, seed)
    lsi = np.asarray(adata.obsm["X_lsi"], dtype=np.float64)
    rho = float(depth_correlations(lsi[:, :1], depth)[0])
    embedding, info = drop_depth_components(lsi, [depth], n_components)
    log.info("LSI: first component vs log depth rho=%.3f; %d of %d components follow depth, dropped (%s)", rho,
             info["depth_components_dropped"], n_comps, info["depth_dropped_indices"])
    return embedding, {"depth_spearman_first_component": rho, **info}


def atac_lsi(atac, n_components: int = 30, seed: int = 0):
    """The ATAC LSI embedding of atac_lsi_with_info. Returns ``(embedding, rho_first)``."""
    embedding, info = atac_lsi_with_info(atac, n_components, seed)
    return embedding, info["depth_spearman_first_component"]


def graph_embedding(connectivities, n_components: int, seed: int = 0) -> np.ndarray:
    """A diffusion map of a weighted graph (Coifman & Lafon, Appl. Comput. Harmon. Anal. 2006; what
    ``scanpy.tl.diffmap`` computes on a kNN graph): the top ``n_components`` eigenvectors psi of the normalised
    graph D^-1/2 W D^-1/2 (in D^-1/2 coordinates), each scaled by its eigenvalue (diffusion time 1), so that
    the graph's coarse structure weighs most and its noisy fine-scale eigenvectors little. The first
    eigenvector is kept (constant on a connected graph; on a graph with several components it is part of what
    separates them, as in sklearn's SpectralClustering). Plain Laplacian eigenmaps without the eigenvalue
    scaling cluster worse (KMeans ARI 0.77 vs 1.0 on the 4-type synthetic data of test_benchmark)."""
    from scipy.sparse.linalg import eigsh

    graph = sp.csr_matrix(connectivities, dtype=np.float64)
    graph = (graph + graph.T) / 2
    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = 1 / np.sqrt(np.maximum(degree, 1e-12))
    normalised = sp.diags(scale) @ graph @ sp.diags(scale)
    k = min(n_components, graph.shape[0] - 2)
    start = np.random.default_rng(seed).uniform(-1, 1, graph.shape[0])
    values, vectors = eigsh(normalised, k=k, which="LA", v0=start)
    order = np.argsort(-values)
    embedding = vectors[:, order] * scale[:, None] * values[order]
    return _fix_signs(embedding)


def wnn_with_info(mdata, n_top_genes: int = 2000, n_pcs: int = 30, n_lsi_components: int = 30,
                  n_neighbors: int = 20, seed: int = 0, batches=None):
    """Weighted nearest neighbours (muon's ``mu.pp.neighbors``, Hao et al. 2021) on the RNA PCA and the ATAC
    LSI above, both without their depth components (Seurat's WNN vignette,
    https://satijalab.org/seurat/articles/weighted_nearest_neighbor_analysis, uses LSI components 2:50 for
    this reason).

    With ``batches`` (one label per cell) both inputs are corrected by Harmony before the graph is built.

    Returns ``(embedding, connectivities, modality_weights, info)``: a diffusion map (spectral embedding) of
    the WNN graph with ``n_pcs`` dimensions (graph_embedding: the same size as the other methods', for KMeans;
    Leiden runs on the graph itself), the WNN connectivities (CSR), the per-cell RNA weight, and the depth
    components dropped from each input.
    """
    import anndata as ad
    import mudata as md
    import muon as mu
    import scanpy as sc

    _seed_everything(seed)
    rna_embedding, rna_info = rna_pca_with_info(mdata.mod["rna"], n_top_genes, n_pcs, seed)
    atac_embedding, atac_info = atac_lsi_with_info(mdata.mod["atac"], n_lsi_components, seed)
    if batches is not None:  # several libraries: Harmony on each input, then the WNN graph (harmony.py)
        rna_embedding, atac_embedding = (harmonize(e, batches, seed) for e in (rna_embedding, atac_embedding))
    rna = ad.AnnData(obs=mdata.obs[[]].copy(), obsm={"X_pca": rna_embedding})
    atac = ad.AnnData(obs=mdata.obs[[]].copy(), obsm={"X_lsi": atac_embedding})
    n_neighbors = min(n_neighbors, mdata.n_obs - 1)
    sc.pp.neighbors(rna, use_rep="X_pca", n_neighbors=n_neighbors, random_state=seed)
    sc.pp.neighbors(atac, use_rep="X_lsi", n_neighbors=n_neighbors, random_state=seed)
    joint = md.MuData({"rna": rna, "atac": atac})
    mu.pp.neighbors(joint, key_added="wnn", n_multineighbors=min(200, mdata.n_obs - 1),
                    n_bandwidth_neighbors=min(20, n_neighbors), random_state=seed)
    graph = sp.csr_matrix(joint.obsp["wnn_connectivities"])
    embedding = graph_embedding(graph, n_pcs, seed)
    info = {"rna_depth_components_dropped": rna_info["depth_components_dropped"],
            "atac_depth_components_dropped": atac_info["depth_components_dropped"],
            "embedding": f"diffusion map of the WNN graph, {embedding.shape[1]} dims"}
    return embedding, graph, joint.obs["rna:mod_weight"].to_numpy(dtype=np.float64), info


def wnn(mdata, n_top_genes: int = 2000, n_pcs: int = 30, n_lsi_components: int = 30,
        n_neighbors: int = 20, seed: int = 0):
    """``(embedding, connectivities, modality_weights)`` of wnn_with_info."""
    return wnn_with_info(mdata, n_top_genes, n_pcs, n_lsi_components, n_neighbors, seed)[:3]


def regress_out(matrix, covariate) -> np.ndarray:
    """Residuals of a least-squares fit of every column of ``matrix`` on [1, covariate] (dense float32)."""
    x = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    x = x.astype(np.float64)
    design = np.column_stack([np.ones(x.shape[0]), np.asarray(covariate, dtype=np.float64)])
    beta, *_ = np.linalg.lstsq(design, x, rcond=None)
    return (x - design[:, 1:] @ beta[1:]).astype(np.float32)


def _mofa_view(adata, n_top: int, log_depth):
    """One MOFA+ view as muon's multiome tutorial prepares it (pbmc10k chapters 1-3,
    https://github.com/scverse/muon-tutorials/tree/master/single-cell-rna-atac/pbmc10k): counts normalised
    to 1e4 and log1p, the ``n_top`` most variable features (scanpy's dispersion-based
    ``highly_variable_genes``; muon picks its peaks with the same function, by thresholds tuned to PBMC
    depth, and here by number so that the count does not depend on depth), then log depth regressed out
    (MOFA+'s advice, see mofa_with_info) and each feature scaled (max 10)."""
    view = _log_normalised(adata, n_top)
    x = regress_out(view.X, log_depth)
    sd = x.std(axis=0, ddof=1)
    sd[sd == 0] = 1
    view.X = np.clip((x - x.mean(axis=0)) / sd, -10, 10).astype(np.float32)
    view.var["highly_variable"] = True
    return view


def mofa_with_info(mdata, n_factors: int = 15, n_top_genes: int = 2000, n_top_peaks: int = 5000,
                   n_iterations: int = 1000, seed: int = 0, groups=None):
    """MOFA+ (mofapy2 through ``mu.tl.mofa``) on two Gaussian views: the most variable genes and the most
    variable peaks, each log-normalised with log depth regressed out and scaled (_mofa_view).

    Depth: the MOFA+ FAQ (https://biofam.github.io/MOFA2/faq.html, "Should I remove undesired sources of
    variability before fitting the model?") and MOFA's ``regressCovariates``
    (https://rdrr.io/bioc/MOFA/man/regressCovariates.html) say to regress strong technical
    factors out *before* fitting, because the model otherwise spends factors on them and misses smaller
    sources of variation; so each view's own log depth is regressed out of it. Without that, on sci-CAR A549
    factor 1 follows RNA depth (rho 0.97) and factor 3 ATAC depth (rho 0.99); with it, no factor has
    |rho| > DEPTH_CORRELATION_CUTOFF there. Factors are *not* dropped afterwards as well: total ATAC counts
    also carry biology (how many peaks a cell type opens), and on the 6-type simulation (400 cells) dropping
    the factors still correlated with depth after the regression lowered KMeans ARI from 0.72 to 0.57
    (without the regression, dropping them instead gave 0.23). The factors' depth correlations are reported
    (``depth_factors_above_cutoff``, ``max_abs_depth_rho``) so that a remaining depth axis is visible.

    With ``groups`` (one batch label per cell) MOFA+ fits its multi-group model (``groups_label``; MOFA+'s
    documented way to model samples/batches, Argelaguet et al., Genome Biology 2020), so that factors are
    shared across the batches and their per-group means are not factors.

    Returns ``(factors, info)``: cells x (n_factors or fewer: factors MOFA switched off are left out).
    """
    import mudata as md
    import muon as mu

    _seed_everything(seed)
    depths = [total_counts(mdata.mod["rna"]), total_counts(mdata.mod["atac"])]
    rna = _mofa_view(mdata.mod["rna"], n_top_genes, np.log1p(depths[0]))
    atac = _mofa_view(mdata.mod["atac"], n_top_peaks, np.log1p(depths[1]))
    joint = md.MuData({"rna": rna, "atac": atac})
    group_args = {}
    if groups is not None:
        joint.obs["batch"] = np.asarray(groups).astype(str)
        group_args = {"groups_label": "batch"}
    with tempfile.TemporaryDirectory() as tmp:
        mu.tl.mofa(joint, n_factors=n_factors, n_iterations=n_iterations, seed=seed, **group_args,
                   outfile=os.path.join(tmp, "mofa.hdf5"), use_float32=True, quiet=True,
                   convergence_mode="fast")
    factors = np.asarray(joint.obsm["X_mofa"], dtype=np.float64)
    active = factors.std(axis=0) > 0  # factors MOFA switched off come back as zeros: no information, no rho
    factors = factors[:, active] if active.any() else factors
    rho = np.max([np.abs(np.nan_to_num(depth_correlations(factors, d))) for d in depths], axis=0)
    info = {"n_genes": int(rna.n_vars), "n_peaks": int(atac.n_vars), "depth_regressed_out": True,
            "inactive_factors_dropped": int((~active).sum()) if active.any() else 0,
            "depth_components_dropped": 0,
            "depth_factors_above_cutoff": int((rho > DEPTH_CORRELATION_CUTOFF).sum()),
            "max_abs_depth_rho": round(float(rho.max()), 4)}
    log.info("MOFA+: %d genes, %d peaks, log depth regressed out of each view; %d factors, %d with |rho| > %s "
             "vs RNA or ATAC depth (max %.2f; kept)", rna.n_vars, atac.n_vars, factors.shape[1],
             info["depth_factors_above_cutoff"], DEPTH_CORRELATION_CUTOFF, info["max_abs_depth_rho"])
    return factors, info


def mofa(mdata, n_factors: int = 15, n_top_genes: int = 2000, n_top_peaks: int = 5000,
         n_iterations: int = 1000, seed: int = 0) -> np.ndarray:
    """The factors of mofa_with_info."""
    return mofa_with_info(mdata, n_factors, n_top_genes, n_top_peaks, n_iterations, seed)[0]


def embed(method, mdata, *, seed: int = 0, n_top_genes: int = 2000, n_pcs: int = 30, n_lsi_components: int = 30,
          mofa_factors: int = 15, mofa_iterations: int = 1000, scvi: dict | None = None,
          multivi: dict | None = None, threads: int = 1, accelerator: str = "cpu", batches=None):
    """One baseline's embedding of the paired cells of ``mdata``: (cells x dims, extras). ``scvi`` and
    ``multivi`` are the config's ``benchmark.scvi`` / ``benchmark.multivi`` (max_epochs null = the library's
    default). Extras (written to the method's json): the depth components each method dropped, for atac_lsi
    the depth correlation of its first component, for wnn its graph and mean RNA weight, for multivi the
    features kept.

    ``batches`` (a batch label per cell, or None): each method gets the batches in its own documented way --
    Harmony on the components of RNA PCA and ATAC LSI and on both WNN inputs (harmony.py), the batch covariate
    of scVI/MultiVI (``batch_key``), MOFA+'s groups."""
    n_batches = len(np.unique(np.asarray(batches).astype(str))) if batches is not None else 0
    if n_batches < 2:
        batches = None
    batch_info = {"batches": n_batches} if batches is not None else {}
    if method in ("rna_pca", "atac_lsi"):
        embedding, info = (rna_pca_with_info(mdata.mod["rna"], n_top_genes, n_pcs, seed) if method == "rna_pca"
                           else atac_lsi_with_info(mdata.mod["atac"], n_lsi_components, seed))
        if batches is not None:
            embedding, info = harmonize(embedding, batches, seed), {**info, "harmony": True}
        return embedding, {**info, **batch_info}
    if method == "wnn":
        embedding, graph, weights, info = wnn_with_info(mdata, n_top_genes, n_pcs, n_lsi_components, seed=seed,
                                                        batches=batches)
        return embedding, {"graph": graph, "mean_rna_weight": float(np.mean(weights)), **info, **batch_info}
    if method == "mofa":
        embedding, info = mofa_with_info(mdata, mofa_factors, n_top_genes, n_iterations=mofa_iterations, seed=seed,
                                         groups=batches)
    elif method == "scvi":
        embedding, info = scvi_baselines.scvi_rna_with_info(mdata.mod["rna"], seed=seed, threads=threads,
                                                            accelerator=accelerator, batches=batches, **(scvi or {}))
    elif method == "multivi":
        embedding, info = scvi_baselines.multivi_with_info(mdata, seed=seed, threads=threads, accelerator=accelerator,
                                                           batches=batches, **(multivi or {}))
    else:
        raise ValueError(f"unknown method {method}")
    return embedding, {**info, **batch_info}


def read_obs(path, *columns):
    """The MuData obs table of an h5mu, without loading X; each of ``columns`` that obs lacks is taken from
    rna.obs (aligned by cell) if rna.obs has it."""
    import h5py
    from anndata.io import read_elem

    from .errors import InputError

    try:
        with h5py.File(path, "r") as handle:
            obs = read_elem(handle["obs"])
            missing = [c for c in columns if c not in obs.columns]
            if missing and "mod/rna/obs" in handle:
                rna_obs = read_elem(handle["mod/rna/obs"])
                for column in missing:
                    if column in rna_obs.columns:
                        obs[column] = rna_obs[column].reindex(obs.index)
    except (OSError, KeyError) as err:
        raise InputError(path, f"not a readable h5mu file with an obs table ({err})") from None
    return obs


def obs_labels(obs):
    """obs["label"] with None where unlabelled, or None when there is no label column."""
    if "label" not in obs.columns:
        return None
    labels = obs["label"].astype(object)
    return labels.where(labels.notna(), None).to_numpy()


def check_paired_modalities(mdata, path, min_cells: int, purpose: str):
    """InputError unless ``mdata`` has modalities ``rna`` and ``atac`` of its own cells and at least ``min_cells``
    cells (``purpose`` completes "too few ...")."""
    from .errors import InputError

    for mod in ("rna", "atac"):
        if mod not in mdata.mod:
            raise InputError(path, f"has no '{mod}' modality (found {list(mdata.mod)})")
        if mdata.mod[mod].n_obs != mdata.n_obs:
            raise InputError(path, f"modality '{mod}' has {mdata.mod[mod].n_obs} cells, the MuData {mdata.n_obs}")
    if mdata.n_obs < min_cells:
        raise InputError(path, f"only {mdata.n_obs} cells: too few {purpose}")


def read_cells(path):
    """Barcodes and labels (None where unlabelled, or no labels at all) of an h5mu, without loading X."""
    obs = read_obs(path, "label")
    return obs.index.astype(str), obs_labels(obs)


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

