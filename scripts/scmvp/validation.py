"""Validation of the imputed modalities and of the joint embedding (paper sections 3.1 and 3.3).

- bulk RNA: per-cell Pearson/Spearman correlation of raw, scMVP-imputed and scVI-imputed expression with
  the bulk profile of the cell's label; pseudo-bulk (mean over a label's cells) against bulk.
- bulk ATAC: peaks called open per cell (raw: count > 0; imputed: the top fraction of peaks) and how
  many of them a bulk ATAC/DNase peak set supports.
- DEG: wilcoxon marker genes per label on raw vs imputed expression, overlap with a reference list.
- trajectory: diffusion pseudotime on the embeddings, in :mod:`scmvp.pseudotime`.

Imputed layers are read from ``imputed.h5mu`` in chunks of cells (:class:`H5muLayers`), so no dense
cells x features matrix is held in memory at once.
"""
from __future__ import annotations

import logging
import re
import tempfile

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata, spearmanr

from .errors import InputError, require_file
from .references import normalize_chrom_names

log = logging.getLogger(__name__)

TARGET_SUM = 1e4
INPUTS_RNA = ("raw", "scmvp", "scvi")
# Below these, the peaks and the bulk BED are taken to be on different genome builds.
MIN_SHARED_CHROM_PEAK_FRACTION = 0.01
MIN_OVERLAP_FRACTION = 0.01
MIN_ENRICHMENT_OVER_CHANCE = 2.0  # observed overlap / overlap of peaks shifted by CHANCE_SHIFT
CHANCE_SHIFT = 100_000


# ---------------------------------------------------------------------------------------------------------
# Reading imputed.h5mu piecewise
# ---------------------------------------------------------------------------------------------------------

class H5muLayers:
    """Read-only access to the parts of an ``.h5mu`` file the validation needs, without loading it whole."""

    def __init__(self, path):
        self.path = require_file(path, "MuData file")
        try:
            self.file = h5py.File(path, "r")
        except OSError as err:
            raise InputError(path, f"not a readable .h5mu file ({err})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def close(self):
        self.file.close()

    def _group(self, key, what):
        if key not in self.file:
            raise InputError(self.path, f"lacks {what}")
        return self.file[key]

    def _read(self, key, what):
        from anndata.io import read_elem

        return read_elem(self._group(key, what))

    def has(self, mod, layer) -> bool:
        return f"mod/{mod}/layers/{layer}" in self.file

    def obs(self, mod=None) -> pd.DataFrame:
        return self._read("obs" if mod is None else f"mod/{mod}/obs", f"{mod or 'global'} obs")

    def var(self, mod) -> pd.DataFrame:
        return self._read(f"mod/{mod}/var", f"modality {mod!r}")

    def obsm(self, key) -> np.ndarray:
        return np.asarray(self._read(f"obsm/{key}", f'obsm["{key}"]'))

    def barcodes(self) -> pd.Index:
        return self.obs().index.astype(str)

    def labels(self) -> pd.Series | None:
        """``obs["label"]`` (global, then the rna modality's); None when absent."""
        barcodes = self.barcodes()
        for mod, column in ((None, "label"), (None, "rna:label"), ("rna", "label")):
            frame = self.obs(mod)
            if column in frame.columns:
                values = frame[column]
                values = pd.Series(values.to_numpy(), index=barcodes)
                return values.astype(object).where(values.notna(), None)
        return None

    def require_layer(self, mod, layer):
        """InputError naming the file unless ``mod.layers[layer]`` exists."""
        if not self.has(mod, layer):
            raise InputError(self.path, f'lacks {mod}.layers["{layer}"]')

    def required_labels(self, purpose: str) -> pd.Series:
        """``labels()``, or an InputError saying that ``purpose`` needs cell labels."""
        labels = self.labels()
        if labels is None:
            raise InputError(self.path, f'has no obs["label"]: {purpose} needs cell labels')
        return labels

    def _matrix_element(self, mod, layer):
        key = f"mod/{mod}/X" if layer is None else f"mod/{mod}/layers/{layer}"
        what = f'{mod}.X' if layer is None else f'{mod}.layers["{layer}"]'
        return self._group(key, what), what

    def counts(self, mod) -> sp.csr_matrix:
        """Raw counts of a modality (``layers["counts"]``, else X) as CSR float32."""
        from anndata.io import read_elem

        element, _ = self._matrix_element(mod, "counts" if self.has(mod, "counts") else None)
        return sp.csr_matrix(read_elem(element), dtype=np.float32)

    def iter_rows(self, mod, layer, chunk_size):
        """Yield ``(start, stop, dense float32 block)`` of a layer, ``chunk_size`` cells at a time."""
        from anndata.io import sparse_dataset

        element, what = self._matrix_element(mod, layer)
        if isinstance(element, h5py.Dataset):
            matrix, n_obs = element, element.shape[0]
        else:
            matrix = sparse_dataset(element)
            n_obs = matrix.shape[0]
        for start in range(0, n_obs, chunk_size):
            stop = min(start + chunk_size, n_obs)
            block = matrix[start:stop]
            block = block.toarray() if sp.issparse(block) else np.asarray(block)
            yield start, stop, block.astype(np.float32, copy=False)


def chunk_rows_for(n_columns: int, budget_values: int = 25_000_000) -> int:
    """Cells per chunk so that a dense chunk holds at most ``budget_values`` numbers (~100 MB float32)."""
    return int(max(1, min(4096, budget_values // max(1, n_columns))))


def iter_csr_rows(matrix, chunk_size):
    """The same ``(start, stop, dense block)`` chunks as :meth:`H5muLayers.iter_rows`, from an in-memory matrix."""
    for start in range(0, matrix.shape[0], chunk_size):
        stop = min(start + chunk_size, matrix.shape[0])
        block = matrix[start:stop]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        yield start, stop, block.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------------------
# Bulk RNA
# ---------------------------------------------------------------------------------------------------------

def normalize_rows(block, target_sum: float = TARGET_SUM) -> np.ndarray:
    """Scale each row to sum to ``target_sum`` (rows of zeros stay zero); negative and NaN values count as 0."""
    block = np.clip(np.nan_to_num(np.asarray(block, dtype=np.float64), nan=0.0), 0, None)
    totals = block.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1
    return block / totals * target_sum


def strip_version(gene_id: str) -> str:
    """``ENSG00000141510.17`` -> ``ENSG00000141510``; other names unchanged."""
    return re.sub(r"^(ENS[A-Z]*\d+)\.\d+$", r"\1", str(gene_id))


def match_genes(var: pd.DataFrame, bulk_genes, path=None) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the data's genes shared with the bulk table and the matching bulk gene names.

    Genes are matched by name (var_names) or, when that finds more, by ``var["gene_ids"]``/``["gene_id"]``; Ensembl
    versions (``.12``) are ignored. Raises InputError when nothing is shared.
    """
    bulk_genes = pd.Index(bulk_genes).astype(str)
    bulk_lookup = pd.Series(bulk_genes.to_numpy(), index=bulk_genes.map(strip_version))
    bulk_lookup = bulk_lookup[~bulk_lookup.index.duplicated()]
    candidates = [var.index.astype(str)]
    for column in ("gene_ids", "gene_id"):
        if column in var.columns:
            candidates.append(pd.Index(var[column].astype(str)))
    best_positions, best_names = np.array([], dtype=np.int64), np.array([], dtype=object)
    for names in candidates:
        keys = names.map(strip_version)
        present = keys.isin(bulk_lookup.index) & ~keys.duplicated()
        if present.sum() > len(best_positions):
            best_positions = np.flatnonzero(present)
            best_names = bulk_lookup.loc[keys[present]].to_numpy()
    if len(best_positions) == 0:
        raise InputError(path, "the bulk RNA table shares no gene with the data "
                               f"(bulk genes e.g. {', '.join(bulk_genes[:3])}; data genes e.g. "
                               f"{', '.join(var.index.astype(str)[:3])})")
    return best_positions, best_names


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (a * b).sum(axis=1) / denominator
    result[denominator == 0] = np.nan
    return result


def rowwise_correlations(profiles: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson and Spearman correlation of each row of ``profiles`` with the same row of ``references``."""
    profiles = np.asarray(profiles, dtype=np.float64)
    references = np.asarray(references, dtype=np.float64)
    pearson = _rowwise_pearson(profiles, references)
    spearman = _rowwise_pearson(rankdata(profiles, axis=1), rankdata(references, axis=1))
    return pearson, spearman


def bulk_rna_correlations(chunks, barcodes, labels, gene_positions, bulk_log: pd.DataFrame, input_name: str):
    """Per-cell correlations with the bulk profile of the cell's label, plus the label pseudo-bulks.

    ``chunks`` yields ``(start, stop, block)`` of expression over ALL genes (counts or imputed values);
    each row is scaled to 1e4, restricted to ``gene_positions`` and log1p-transformed. ``bulk_log`` is
    log1p(bulk), shared genes (in ``gene_positions`` order) x labels. Cells whose label has no bulk
    column are skipped. Returns ``(per_cell DataFrame, pseudobulk DataFrame)``.
    """
    labels = pd.Series(labels).astype(object).to_numpy()
    barcodes = np.asarray(barcodes, dtype=object)
    sums = {label: np.zeros(len(gene_positions)) for label in bulk_log.columns}
    counts = dict.fromkeys(bulk_log.columns, 0)
    rows = []
    for start, stop, block in chunks:
        chunk_labels = labels[start:stop]
        keep = np.flatnonzero(pd.Series(chunk_labels).isin(bulk_log.columns).to_numpy())
        if len(keep) == 0:
            continue
        normalized = normalize_rows(block[keep])[:, gene_positions]
        kept_labels = chunk_labels[keep]
        for label in pd.unique(kept_labels):
            members = kept_labels == label
            sums[label] += normalized[members].sum(axis=0)
            counts[label] += int(members.sum())
        references = bulk_log[kept_labels].to_numpy().T
        pearson, spearman = rowwise_correlations(np.log1p(normalized), references)
        rows.append(pd.DataFrame({"barcode": barcodes[start:stop][keep], "label": kept_labels,
                                  "input": input_name, "pearson": pearson, "spearman": spearman}))
    per_cell = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["barcode", "label", "input", "pearson", "spearman"])
    pseudo_rows = []
    for label, n_cells in counts.items():
        if n_cells == 0:
            continue
        profile = np.log1p(sums[label] / n_cells)
        reference = bulk_log[label].to_numpy()
        pseudo_rows.append({"label": label, "input": input_name, "n_cells": n_cells,
                            "pearson": float(_rowwise_pearson(profile[None], reference[None])[0]),
                            "spearman": float(spearmanr(profile, reference).statistic)})
    return per_cell, pd.DataFrame(pseudo_rows, columns=["label", "input", "n_cells", "pearson", "spearman"])


def bulk_by_label(bulk: pd.DataFrame, bulk_genes, label_columns: dict) -> pd.DataFrame:
    """log1p of the bulk table, restricted to ``bulk_genes`` (in order), one column per label."""
    return pd.DataFrame({label: np.log1p(bulk.loc[bulk_genes, column].to_numpy(dtype=np.float64))
                         for label, column in label_columns.items()})


def scvi_normalized_chunks(counts: sp.csr_matrix, n_epochs: int | None, seed: int, chunk_size: int,
                           n_latent: int = 10, threads: int = 1, accelerator: str = "auto"):
    """Train scVI (scvi-tools) on the RNA counts, then yield its normalised expression in cell chunks.
    ``n_epochs`` None: scvi-tools' own default (see scvi_baselines)."""
    import anndata as ad
    import scvi
    import torch

    scvi.settings.seed = seed
    scvi.settings.dl_num_workers = 0
    torch.set_num_threads(max(1, threads))
    adata = ad.AnnData(X=sp.csr_matrix(counts, dtype=np.float32))
    scvi.model.SCVI.setup_anndata(adata)
    model = scvi.model.SCVI(adata, n_latent=n_latent)
    epochs = {} if n_epochs is None else {"max_epochs": int(n_epochs)}
    model.train(accelerator=accelerator, enable_progress_bar=False, **epochs)
    for start in range(0, adata.n_obs, chunk_size):
        stop = min(start + chunk_size, adata.n_obs)
        block = model.get_normalized_expression(indices=np.arange(start, stop), library_size=TARGET_SUM,
                                                return_numpy=True)
        yield start, stop, np.asarray(block, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------
# Bulk ATAC
# ---------------------------------------------------------------------------------------------------------

def _overlapping(frame: pd.DataFrame, bulk: pd.DataFrame) -> np.ndarray:
    """Boolean per row of ``frame`` (chrom, start, end): overlaps >= 1 bp of ``bulk`` (bedtools intersect -u)."""
    import pybedtools

    frame = pd.DataFrame({"chrom": frame["chrom"].to_numpy(), "start": np.maximum(frame["start"].to_numpy(), 0),
                          "end": frame["end"].to_numpy(), "index": np.arange(len(frame))})
    # bedtools needs end > start: a zero-length interval is widened to its first base
    frame["end"] = np.maximum(frame["end"], frame["start"] + 1)
    previous_tempdir = pybedtools.helpers.get_tempdir()
    with tempfile.TemporaryDirectory(prefix="scmvp_bedtools_") as tempdir:
        pybedtools.helpers.set_tempdir(tempdir)
        try:
            hits = pybedtools.BedTool.from_dataframe(frame).intersect(pybedtools.BedTool.from_dataframe(bulk), u=True)
            indices = [int(interval.fields[3]) for interval in hits]
        finally:
            pybedtools.helpers.set_tempdir(previous_tempdir)
    overlapping = np.zeros(len(frame), dtype=bool)
    overlapping[indices] = True
    return overlapping


def bulk_supported_peaks(peaks: pd.DataFrame, bulk: pd.DataFrame, bulk_path=None, genome: str | None = None):
    """Boolean per peak: does it overlap (>= 1 bp) an interval of the bulk BED? Computed with bedtools.

    Chromosome names are reconciled first (``chr1`` vs ``1``). Raises InputError when the peaks and the
    BED share (almost) no chromosome, or when the peaks overlap the BED no more than peaks shifted by
    ``CHANCE_SHIFT`` bp do (the chance level): the genome builds likely differ.
    """
    peaks = pd.DataFrame({"chrom": peaks["chrom"].astype(str).to_numpy(),
                          "start": peaks["start"].to_numpy(np.int64), "end": peaks["end"].to_numpy(np.int64)})
    bulk = bulk[["chrom", "start", "end"]].copy()
    bulk["chrom"] = normalize_chrom_names(bulk["chrom"].astype(str), like=peaks["chrom"])
    bulk = bulk[bulk["chrom"].isin(set(peaks["chrom"]))]  # also keeps bedtools quiet about other contigs
    bulk["end"] = np.maximum(bulk["end"].to_numpy(np.int64), bulk["start"].to_numpy(np.int64) + 1)
    build_hint = f" (config genome: {genome})" if genome else ""
    on_shared = peaks["chrom"].isin(set(bulk["chrom"])).to_numpy()
    if on_shared.mean() < MIN_SHARED_CHROM_PEAK_FRACTION:
        raise InputError(bulk_path, "the bulk ATAC BED shares almost no chromosome name with the peaks (peaks e.g. "
                                    f"{', '.join(pd.unique(peaks['chrom'])[:4])}): the genome builds likely differ"
                                    f"{build_hint}")
    supported = _overlapping(peaks, bulk)
    observed = supported[on_shared].mean()
    chance = np.mean([_overlapping(peaks[on_shared].assign(start=lambda f, d=d: f["start"] + d,
                                                           end=lambda f, d=d: f["end"] + d), bulk).mean()
                      for d in (-CHANCE_SHIFT, CHANCE_SHIFT)])
    log.info("bulk ATAC: %.2f%% of the peaks on shared chromosomes overlap the BED; %.2f%% when shifted by %d bp",
             100 * observed, 100 * chance, CHANCE_SHIFT)
    if observed < MIN_OVERLAP_FRACTION or observed < MIN_ENRICHMENT_OVER_CHANCE * chance:
        raise InputError(bulk_path, f"only {supported.sum()} of {on_shared.sum()} peaks ({100 * observed:.1f}%) on "
                                    "shared chromosomes overlap the bulk ATAC BED, about what peaks shifted by "
                                    f"{CHANCE_SHIFT // 1000} kb get by chance ({100 * chance:.1f}%): the genome builds "
                                    f"likely differ{build_hint}")
    return supported


def raw_called_peaks(counts: sp.spmatrix, supported: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: peaks with a count > 0, and how many of them are bulk-supported."""
    counts = sp.csr_matrix(counts, copy=True)
    counts.eliminate_zeros()
    called = np.diff(counts.indptr)
    binary = counts.copy()
    binary.data = np.ones_like(binary.data)
    n_supported = np.asarray(binary @ supported.astype(np.float64)).ravel()
    return called.astype(np.int64), n_supported.astype(np.int64)


def top_called_peaks(block: np.ndarray, supported: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a dense block: the top ``fraction`` of peaks by value are called; how many are supported.

    At least one peak is called per cell; ties at the threshold are broken by peak order.
    """
    n_peaks = block.shape[1]
    k = int(min(n_peaks, max(1, round(fraction * n_peaks))))
    top = np.argpartition(-block, k - 1, axis=1)[:, :k]
    n_supported = supported[top].sum(axis=1)
    return np.full(block.shape[0], k, dtype=np.int64), n_supported.astype(np.int64)


def atac_table(barcodes, labels, input_name, n_called, n_supported) -> pd.DataFrame:
    n_called = np.asarray(n_called)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_called > 0, np.asarray(n_supported) / np.maximum(n_called, 1), np.nan)
    return pd.DataFrame({"barcode": np.asarray(barcodes), "label": np.asarray(labels, dtype=object),
                         "input": input_name, "n_called": n_called, "n_supported": np.asarray(n_supported),
                         "precision": precision})


# ---------------------------------------------------------------------------------------------------------
# Differentially expressed genes
# ---------------------------------------------------------------------------------------------------------

def log_normalized(matrix) -> np.ndarray | sp.csr_matrix:
    """Rows scaled to 1e4 then log1p (sparse stays sparse)."""
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        totals = np.asarray(matrix.sum(axis=1)).ravel()
        totals[totals == 0] = 1
        scaled = sp.diags(TARGET_SUM / totals) @ matrix
        scaled.data = np.log1p(scaled.data)
        return sp.csr_matrix(scaled)
    return np.log1p(normalize_rows(matrix))


def top_de_genes(expression, genes, labels, n_genes: int, min_cells: int = 3) -> pd.DataFrame:
    """Wilcoxon DE genes of each label vs the rest (scanpy ``rank_genes_groups``), the top ``n_genes`` by
    absolute score (up- or down-regulated).

    ``expression`` is log-normalised (cells x genes). Labels with fewer than ``min_cells`` cells are
    skipped. Returns label, rank (1 = best), gene, score, logfoldchange.
    """
    import anndata as ad
    import scanpy as sc

    labels = pd.Series(labels, dtype=object)
    sizes = labels.value_counts()
    groups = sorted(str(label) for label in sizes.index[sizes >= min_cells])
    if len(groups) < 2:
        raise ValueError("DE needs at least two labels with enough cells")
    keep = labels.astype(str).isin(groups).to_numpy() & labels.notna().to_numpy()
    adata = ad.AnnData(X=expression[keep] if not sp.issparse(expression) else sp.csr_matrix(expression)[keep],
                       var=pd.DataFrame(index=pd.Index(genes, dtype=str)))
    adata.var_names_make_unique()
    adata.obs["label"] = pd.Categorical(labels[keep].astype(str).to_numpy(), categories=groups)
    adata.uns["log1p"] = {"base": None}
    n_top = min(n_genes, adata.n_vars)
    sc.tl.rank_genes_groups(adata, "label", method="wilcoxon", n_genes=adata.n_vars, tie_correct=True,
                            rankby_abs=True)
    result = adata.uns["rank_genes_groups"]
    rows = []
    for group in groups:
        table = pd.DataFrame({"label": group, "gene": np.asarray(result["names"][group], dtype=str),
                              "score": np.asarray(result["scores"][group], dtype=np.float64),
                              "logfoldchange": np.asarray(result["logfoldchanges"][group], dtype=np.float64)})
        # by |score| (a reference DE list holds genes going down as well as up), ties by |log fold change|:
        # on imputed data many genes separate the groups perfectly, their rank-sum scores are all the same
        # maximum, and scanpy's order among them is arbitrary (example, imputed: top-100 precision 0.41 -> 0.75)
        order = np.lexsort((-table["logfoldchange"].abs().to_numpy(),
                            -np.round(table["score"].abs().to_numpy(), 6)))
        table = table.iloc[order[:n_top]].reset_index(drop=True)
        table.insert(1, "rank", np.arange(1, n_top + 1))
        rows.append(table)
    return pd.concat(rows, ignore_index=True)


def de_overlap(top: pd.DataFrame, reference: pd.DataFrame | None, raw_top: pd.DataFrame | None = None):
    """Per label and input: overlap of the top genes with the reference list (precision, recall) and,
    when ``raw_top`` is given, the Jaccard index with the raw data's top genes.

    ``top`` has columns input, label, gene. Labels absent from the reference get NaN precision/recall.
    """
    reference_sets = {} if reference is None else reference.groupby("label")["gene"].agg(set).to_dict()
    raw_sets = {} if raw_top is None else raw_top.groupby("label")["gene"].agg(set).to_dict()
    rows = []
    for (input_name, label), group in top.groupby(["input", "label"], sort=True):
        genes = set(group["gene"])
        ref = reference_sets.get(label)
        n_overlap = len(genes & ref) if ref is not None else np.nan
        raw = raw_sets.get(label)
        rows.append({"label": label, "input": input_name, "n_top": len(genes),
                     "n_reference": len(ref) if ref is not None else 0,
                     "n_overlap": n_overlap,
                     "precision": n_overlap / len(genes) if ref is not None and genes else np.nan,
                     "recall": n_overlap / len(ref) if ref else np.nan,
                     "jaccard_with_raw": len(genes & raw) / len(genes | raw) if raw is not None else np.nan})
    return pd.DataFrame(rows, columns=["label", "input", "n_top", "n_reference", "n_overlap", "precision",
                                       "recall", "jaccard_with_raw"])
