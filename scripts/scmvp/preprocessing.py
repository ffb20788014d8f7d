"""Quality control and normalisation of a paired MuData (the `preprocess` stage).

Input: the ``ingested.h5mu`` contract (mods ``rna`` and ``atac``, raw integer counts in ``X``).
Output (:func:`preprocess`):

* cells that pass QC in BOTH modalities (data-driven MAD outliers and fixed thresholds, see :mod:`scmvp.qc`),
  genes and peaks seen in enough cells;
* ``rna.layers["counts"]``, ``atac.layers["counts"]``: the raw counts (CSR);
* ``rna.X``: log-normalised (scanpy ``normalize_total`` + ``log1p``); ``rna.var["highly_variable"]``
  (scanpy, ``flavor="seurat_v3"`` on the counts); ``rna.obsm["X_pca"]`` (on the highly variable genes);
* ``atac.X`` and ``atac.layers["tfidf"]``: TF-IDF (muon); ``atac.obsm["X_lsi"]`` (muon LSI);
  ``atac.var["highly_accessible"]``: the peaks open in the most cells;
* QC metrics: ``rna.obs`` ``n_counts``, ``n_genes``, ``mito_fraction``; ``atac.obs`` ``n_counts``,
  ``n_peaks``; ``.var["n_cells"]`` in both; the per-cell table (with TSS enrichment, nucleosome signal, FRiP
  where a fragments file is given, scrublet's doublet score) is returned, not stored.

All QC-passing genes and peaks are kept (the flags only mark them): the model decides what it uses.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import warnings

import numpy as np
import scipy.sparse as sp

from .errors import InputError
from .qc import QCConfig, filter_cells_and_features, qc_metrics  # noqa: F401 - QCConfig, qc_metrics re-exported

log = logging.getLogger("scmvp.preprocessing")

def _csr(x):
    return x.tocsr() if sp.issparse(x) else sp.csr_matrix(x)


def check_counts(adata, modality: str, path=None):
    """Raise InputError unless ``adata.X`` holds finite, non-negative, integer-valued counts."""
    x = adata.X
    values = x.data if sp.issparse(x) else np.asarray(x)
    if values.size == 0:
        return
    if np.issubdtype(values.dtype, np.floating):
        n_nan = int(np.isnan(values).sum())
        if n_nan:
            raise InputError(path, f"modality {modality}: the counts contain {n_nan} NaN value(s); "
                                   "give raw counts without missing values")
        if not np.isfinite(values).all():
            raise InputError(path, f"modality {modality}: the counts contain infinite values")
        if not np.all(values == np.round(values)):
            raise InputError(path, f"modality {modality}: the counts are not integers (normalised data?); "
                                   "give raw counts")
    if (values < 0).any():
        raise InputError(path, f"modality {modality}: the counts contain negative values; give raw counts")


def normalise_rna(rna, qc: QCConfig, seed: int = 0):
    """counts layer, seurat_v3 HVGs on counts, normalize_total + log1p, PCA on the HVGs (in place)."""
    import scanpy as sc

    rna.layers["counts"] = rna.X.copy()
    n_top = min(qc.n_top_genes, rna.n_vars)
    try:
        sc.pp.highly_variable_genes(rna, flavor="seurat_v3", n_top_genes=n_top, layer="counts")
    except ValueError as err:  # loess can fail on very small or degenerate data
        log.warning("seurat_v3 highly variable genes failed (%s); ranking genes by normalised dispersion", err)
        _hvg_by_dispersion(rna, n_top)
    sc.pp.normalize_total(rna, target_sum=1e4)
    sc.pp.log1p(rna)
    n_hvg = int(rna.var["highly_variable"].sum())
    n_comps = max(1, min(qc.n_pcs, rna.n_obs - 1, n_hvg - 1))
    sc.tl.pca(rna, n_comps=n_comps, mask_var="highly_variable", random_state=seed, svd_solver="arpack")


def _hvg_by_dispersion(rna, n_top):
    x = rna.layers["counts"]
    mean = np.asarray(x.mean(axis=0)).ravel()
    sq = np.asarray(x.multiply(x).mean(axis=0)).ravel()
    dispersion = (sq - mean ** 2) / np.maximum(mean, 1e-12)
    order = np.argsort(-dispersion, kind="stable")
    flag = np.zeros(rna.n_vars, bool)
    flag[order[:n_top]] = True
    rna.var["highly_variable"] = flag
    rna.var["highly_variable_rank"] = np.argsort(order).astype(float)


def normalise_atac(atac, qc: QCConfig, seed: int = 0):
    """counts layer, TF-IDF and LSI through muon, most-accessible peaks flagged (in place)."""
    import muon as mu

    atac.layers["counts"] = atac.X.copy()
    atac.X = atac.X.astype(np.float32)
    mu.atac.pp.tfidf(atac, log_tf=True, log_idf=True, scale_factor=1e4)
    atac.X = _csr(atac.X)
    atac.layers["tfidf"] = atac.X.copy()
    seeded_lsi(atac, max(1, min(qc.n_lsi_components, atac.n_obs - 1, atac.n_vars - 1)), seed)
    n_cells = atac.var["n_cells"].to_numpy()
    order = np.argsort(-n_cells, kind="stable")
    flag = np.zeros(atac.n_vars, bool)
    flag[order[: min(qc.n_top_peaks, atac.n_vars)]] = True
    atac.var["highly_accessible"] = flag


def seeded_lsi(atac, n_comps: int, seed: int = 0):
    """LSI of ``atac.X`` through muon (``mu.atac.tl.lsi``), seeded and with a fixed sign convention (in place)."""
    import muon as mu

    with _seeded_svds(seed):
        mu.atac.tl.lsi(atac, n_comps=n_comps)
    _orient_lsi(atac)


@contextlib.contextmanager
def _seeded_svds(seed: int):
    """Seed the ARPACK start vector of muon's LSI.

    ``mu.atac.tl.lsi`` calls scipy's ``svds`` without a seed, which starts from a fresh random vector on
    every call: signs and the last digits then change from run to run.
    """
    import muon._atac.tools as atac_tools

    original = getattr(atac_tools, "svds", None)
    if original is None:  # muon changed its internals: run unseeded rather than fail
        log.warning("could not seed muon's LSI; its numbers may differ slightly between runs")
        yield
        return
    atac_tools.svds = functools.partial(original, rng=seed)
    try:
        yield
    finally:
        atac_tools.svds = original


def _orient_lsi(atac):
    """Sign convention: each component's largest loading is positive (SVD signs are arbitrary)."""
    loadings = atac.varm["LSI"]
    signs = np.sign(loadings[np.argmax(np.abs(loadings), axis=0), np.arange(loadings.shape[1])])
    signs[signs == 0] = 1
    atac.varm["LSI"] = loadings * signs
    atac.obsm["X_lsi"] = atac.obsm["X_lsi"] * signs


def preprocess(mdata, qc: QCConfig | dict | None = None, seed: int = 0, path=None, fragments=None,
               barcode_metrics=None, genes=None, sample_files=None):
    """QC-filter and normalise ``mdata`` (MuData with ``rna`` and ``atac``) in place; returns a QC report.

    The report holds counts (``cells_in``, ``cells_out``, ...), ``cell_table`` (every incoming cell's metrics,
    ``passed``, ``reasons``) and ``thresholds`` (see :func:`scmvp.qc.filter_cells_and_features`).
    ``fragments`` (Cell Ranger ARC's tabix-indexed ``atac_fragments.tsv.gz``), ``barcode_metrics``
    (``per_barcode_metrics.csv``) and ``genes`` (a genes reference for the TSSs) add the fragment metrics of
    :mod:`scmvp.qc_fragments`; scrublet's doublet scores are computed for every dataset. A sample sheet gives
    its libraries' ARC files as ``sample_files`` (sample -> ``{"fragments": ..., "barcode_metrics": ...}``):
    each sample's cells get their metrics from their own files (:func:`scmvp.qc_fragments.sample_fragment_metrics`).
    Several samples are QC'd per sample (``qc.per_sample``, see :mod:`scmvp.qc`).
    """
    with warnings.catch_warnings():
        # mudata announces a future change of .update() on every call; it does not concern what we pull
        warnings.filterwarnings("ignore", message=r"From 0\.4 \.update\(\)", category=FutureWarning)
        return _preprocess(mdata, qc, seed, path, fragments, barcode_metrics, genes, sample_files)


def cell_quality(mdata, qc: QCConfig, seed: int = 0, fragments=None, barcode_metrics=None, genes=None,
                 sample_files=None):
    """The per-cell metrics beyond counts: fragment metrics (with a fragments file, or per sample with
    ``sample_files``) and scrublet's scores (per sample where there are several and ``qc.per_sample``)."""
    import pandas as pd

    from .qc import cell_samples, doublet_scores
    from .qc_fragments import fragment_metrics, read_barcode_metrics, sample_fragment_metrics

    parts = []
    if sample_files:
        parts.append(sample_fragment_metrics(mdata, sample_files, genes=genes, seed=seed))
    elif fragments is not None:
        parts.append(fragment_metrics(mdata, fragments, barcode_metrics=barcode_metrics, genes=genes, seed=seed))
    elif barcode_metrics is not None:  # FRiP only
        parts.append(read_barcode_metrics(barcode_metrics, mdata.mod["atac"].obs_names)[["atac_frip"]])
    parts.append(doublet_scores(mdata.mod["rna"], qc, seed, samples=cell_samples(mdata)))
    return pd.concat(parts, axis=1)


def _preprocess(mdata, qc, seed, path, fragments=None, barcode_metrics=None, genes=None, sample_files=None):
    qc = qc if isinstance(qc, QCConfig) else QCConfig.from_config(qc)
    for name in ("rna", "atac"):
        if name not in mdata.mod:
            raise InputError(path, f"modality {name!r} is missing (found: {', '.join(mdata.mod)})")
        adata = mdata.mod[name]
        adata.X = _csr(adata.X)
        adata.X.eliminate_zeros()
        check_counts(adata, name, path)
    if mdata.mod["rna"].n_obs != mdata.mod["atac"].n_obs or not np.array_equal(
            mdata.mod["rna"].obs_names, mdata.mod["atac"].obs_names):
        import muon as mu

        mu.pp.intersect_obs(mdata)
    extra = cell_quality(mdata, qc, seed, fragments, barcode_metrics, genes, sample_files)
    report, cells, thresholds = filter_cells_and_features(mdata, qc, path, extra=extra)
    log.info("QC: %s", report)
    log.info("QC thresholds:\n%s", thresholds.to_string(index=False))
    report.update(cell_table=cells, thresholds=thresholds)
    normalise_rna(mdata.mod["rna"], qc, seed)
    normalise_atac(mdata.mod["atac"], qc, seed)
    mdata.update()
    mdata.uns["qc"] = {k: (v if v is not None else "none") for k, v in qc.__dict__.items()}
    return report
