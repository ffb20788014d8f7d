"""Cis-regulatory element (CRE) prediction: peak-gene links (their scores: :mod:`scmvp.cre_scores`; their
evaluation: :mod:`scmvp.cre_evaluation`).

Links (as in the scMVP paper, on raw and on imputed data):

1. Cells are grouped into metacells by k-means on the joint embedding; counts (or imputed values) are
   summed per metacell by a sparse metacell x cell matrix product (the imputed layer is streamed in row
   chunks), normalised by the metacell totals and log1p-transformed. Metacell x feature matrices are small.
2. Every gene (present in the RNA data and the annotation) is paired with the peaks whose centre lies
   within +-``window`` of one of its TSSs; ``distance`` = peak centre - TSS, strand-aware (positive =
   downstream), from the nearest TSS of the gene.
3. ``lasso``: the gene's standardised expression is regressed on its candidates' standardised
   accessibility with a non-negative LASSO path (LARS). ``score`` = the penalty at which the peak enters
   the path (0..1; the first entrant's score is its correlation with the gene); ``selected`` = non-zero
   coefficient at the penalty chosen by 5-fold cross-validation over metacells with the one-standard-error
   rule; the held-out metacells are always scored against the observed (raw) expression, also when the
   model is fitted on imputed data (see :func:`lasso_scores`).
4. ``correlation`` (the co-accessibility role Cicero plays in the paper): ``score`` = Spearman r across
   metacells (ranks keep outlying metacells from producing false links); null (config ``correlation_null``) = r of the gene with random background peaks on other
   chromosomes (``background``, default, Signac-style: trans peaks carry the cell-type covariation and
   the smoothing of imputed data but no cis regulation) or r of the gene's permuted metacell profile with
   its candidates (``permutation``; on imputed data it calls most pairs linked);
   ``n_permutations`` draws, summarised per gene as the mean and sd of Fisher's z; one-sided p from the
   Student-t predictive distribution (mean and sd are estimates);
   Benjamini-Hochberg over all pairs; ``selected`` = q <= fdr and r > 0. A single-chromosome dataset
   falls back to the permutation null.
"""
from __future__ import annotations

import logging

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .cre_scores import correlation_scores, lasso_scores
from .errors import InputError
from .intervals import build_mismatch_message, distance_to_nearest_point, reconcile_chromosomes

log = logging.getLogger(__name__)

LINK_COLUMNS = ["peak", "gene", "distance", "method", "input", "score", "selected"]
EMBEDDING_KEYS = ("X_scmvp",)
# Cap on the float32 values read per chunk of an imputed layer (~80 MB).
CHUNK_VALUES = 20_000_000


# --------------------------------------------------------------------------------------------- reading
class LinkingData:
    """What the linking needs from imputed.h5mu, read without a dense cells x peaks matrix."""

    def __init__(self, path, embedding_key=None, chunk_values: int = CHUNK_VALUES):
        self.path = str(path)
        self.chunk_values = int(chunk_values)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise InputError(path, f"cannot open as HDF5/h5mu ({err})") from None
        f = self._file
        for mod in ("rna", "atac"):
            if f"mod/{mod}" not in f:
                raise InputError(path, f"has no '{mod}' modality (expected a MuData with rna and atac)")
        self.rna_obs = self._index("mod/rna/obs")
        self.atac_obs = self._index("mod/atac/obs")
        self.genes = self._index("mod/rna/var")
        self.gene_table = self._frame("mod/rna/var")
        atac_var = self._frame("mod/atac/var")
        missing = {"chrom", "start", "end"} - set(atac_var.columns)
        if missing:
            raise InputError(path, f"atac.var lacks column(s) {sorted(missing)}")
        self.peaks = pd.DataFrame({"chrom": atac_var["chrom"].astype(str).to_numpy(),
                                   "start": atac_var["start"].astype(np.int64).to_numpy(),
                                   "end": atac_var["end"].astype(np.int64).to_numpy()},
                                  index=pd.Index(atac_var.index.astype(str)))
        self.embedding, self.embedding_obs = self._embedding(embedding_key)

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_elem(self, key):
        from anndata.io import read_elem
        return read_elem(self._file[key])

    def _frame(self, key) -> pd.DataFrame:
        return self._read_elem(key)

    def _index(self, key) -> pd.Index:
        return pd.Index(self._frame(key).index.astype(str))

    def _embedding(self, key):
        keys = (key,) if key else EMBEDDING_KEYS
        for candidate in keys:
            for where, obs in (("obsm", None), ("mod/rna/obsm", self.rna_obs), ("mod/atac/obsm", self.atac_obs)):
                if f"{where}/{candidate}" in self._file:
                    emb = np.asarray(self._read_elem(f"{where}/{candidate}"), dtype=np.float64)
                    return emb, (obs if obs is not None else self._index("obs"))
        available = sorted(self._file["obsm"].keys()) if "obsm" in self._file else []
        raise InputError(self.path, f"no joint embedding obsm[{keys[0]!r}] to build metacells from "
                                    f"(available: {available or 'none'})")

    def layer_chunks(self, mod, layer):
        """Yield (row_start, row_stop, block) of a layer, dense or sparse, ~``chunk_values`` values at a time."""
        key = f"mod/{mod}/layers/{layer}"
        if key not in self._file:
            raise InputError(self.path, f"{mod}.layers[{layer!r}] is missing")
        node = self._file[key]
        if isinstance(node, h5py.Dataset):
            n_rows, n_cols = node.shape
            step = max(1, self.chunk_values // max(n_cols, 1))
            for start in range(0, n_rows, step):
                stop = min(n_rows, start + step)
                yield start, stop, np.asarray(node[start:stop], dtype=np.float32)
            return
        encoding = node.attrs.get("encoding-type", "")
        if isinstance(encoding, bytes):
            encoding = encoding.decode()
        if encoding != "csr_matrix":
            matrix = sp.csr_matrix(self._read_elem(key))
            yield 0, matrix.shape[0], matrix
            return
        n_rows, n_cols = (int(v) for v in node.attrs["shape"])
        indptr = node["indptr"][:]
        target = max(self.chunk_values // 4, 1)
        start = 0
        while start < n_rows:
            stop = int(np.searchsorted(indptr, indptr[start] + target, side="right"))
            stop = min(max(stop, start + 1), n_rows)
            lo, hi = int(indptr[start]), int(indptr[stop])
            block = sp.csr_matrix((node["data"][lo:hi], node["indices"][lo:hi], indptr[start:stop + 1] - lo),
                                  shape=(stop - start, n_cols))
            yield start, stop, block
            start = stop


# ------------------------------------------------------------------------------------------- metacells
def metacell_labels(embedding: np.ndarray, n_metacells: int, seed: int) -> np.ndarray:
    """k-means metacells on the joint embedding (at most one metacell per 2 cells)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n_cells = embedding.shape[0]
    k = int(max(2, min(n_metacells, n_cells // 2)))
    if n_cells > 50_000:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=3)
    labels = model.fit_predict(embedding)
    _, labels = np.unique(labels, return_inverse=True)  # drop empty clusters
    return labels


def membership(labels: np.ndarray, n_groups: int | None = None) -> sp.csr_matrix:
    """Sparse metacell x cell indicator matrix."""
    n_groups = int(labels.max()) + 1 if n_groups is None else n_groups
    n = len(labels)
    return sp.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(n_groups, n))


def aggregate_chunks(assign: sp.csr_matrix, chunks) -> np.ndarray:
    """Metacell sums of a matrix given as row chunks (assign: metacell x cell, rows in chunk order)."""
    total = None
    for start, stop, block in chunks:
        part = assign[:, start:stop] @ block
        part = part.toarray() if sp.issparse(part) else np.asarray(part)
        total = part.astype(np.float64) if total is None else total + part
    return total


def normalize_metacells(sums: np.ndarray) -> np.ndarray:
    """Scale each metacell to the median total, then log1p (float32)."""
    totals = sums.sum(axis=1, keepdims=True)
    totals[totals <= 0] = 1.0
    scale = float(np.median(totals))
    return np.log1p(sums / totals * scale).astype(np.float32)


def metacell_matrices(data: LinkingData, layer: str, labels: np.ndarray):
    """Normalised metacell x gene and metacell x peak matrices of one layer (``counts`` or ``imputed``)."""
    by_cell = pd.Series(labels, index=data.embedding_obs)
    out = []
    for mod, obs in (("rna", data.rna_obs), ("atac", data.atac_obs)):
        missing = ~obs.isin(by_cell.index)
        if missing.any():
            raise InputError(data.path, f"{missing.sum()} {mod} cells have no embedding row")
        assign = membership(by_cell.loc[obs].to_numpy(), int(labels.max()) + 1)
        out.append(normalize_metacells(aggregate_chunks(assign, data.layer_chunks(mod, layer))))
    return out[0], out[1]


# ---------------------------------------------------------------------------------- genes and candidates
def match_genes(annotation: pd.DataFrame, data_genes: pd.Index, gene_table: pd.DataFrame | None, path):
    """Annotation rows whose gene is in the RNA data, with ``gene_index`` into the RNA features.

    Matches RNA var names, or the var column (gene_ids/gene_name/...) that matches most annotation names.
    """
    names = set(annotation["gene"])
    options = {"var_names": pd.Index(data_genes).astype(str)}
    if gene_table is not None:
        for column in ("gene_ids", "gene_id", "gene_name", "gene_symbols", "symbol", "name"):
            if column in gene_table.columns:
                options[column] = pd.Index(gene_table[column].astype(str))
    best = max(options, key=lambda k: len(names.intersection(options[k])))
    keys = options[best]
    hits = len(names.intersection(keys))
    if hits == 0 or hits < 0.05 * len(keys):
        raise InputError(path, f"gene annotation names match only {hits} of {len(keys)} RNA genes "
                               f"(e.g. annotation {list(annotation['gene'][:3])}, data {list(keys[:3])}): "
                               "use an annotation with the same gene identifiers")
    position = pd.Series(np.arange(len(keys)), index=keys)
    position = position[~position.index.duplicated()]
    matched = annotation[annotation["gene"].isin(position.index)].copy()
    matched["gene_index"] = position.loc[matched["gene"]].to_numpy()
    matched["gene"] = pd.Index(data_genes).astype(str)[matched["gene_index"].to_numpy()]
    return matched.reset_index(drop=True)


def reconcile_genes(genes: pd.DataFrame, peaks: pd.DataFrame, path, genome=None) -> pd.DataFrame:
    genes = genes.copy()
    genes["chrom"] = reconcile_chromosomes(genes["chrom"], peaks["chrom"], path, "gene annotation", genome).to_numpy()
    return genes


def classify_peaks(peaks: pd.DataFrame, genes: pd.DataFrame, promoter_distance: int) -> np.ndarray:
    """'promoter' when a peak lies within ``promoter_distance`` bp of any TSS, else 'distal'."""
    dist = distance_to_nearest_point(peaks, genes, "tss")
    return np.where(dist <= promoter_distance, "promoter", "distal")


def candidate_pairs(peaks: pd.DataFrame, genes: pd.DataFrame, window: int) -> pd.DataFrame:
    """(gene_index, peak_index, distance) for peak centres within +-window of a TSS of the gene.

    ``genes`` needs chrom, tss, strand, gene_index; several TSSs per gene keep the nearest distance.
    """
    centre = ((peaks["start"].to_numpy() + peaks["end"].to_numpy()) // 2).astype(np.int64)
    chrom = peaks["chrom"].astype(str).to_numpy()
    parts = []
    for name, group in genes.groupby("chrom", sort=False):
        idx = np.flatnonzero(chrom == name)
        if idx.size == 0:
            continue
        order = np.argsort(centre[idx], kind="stable")
        sorted_idx, sorted_pos = idx[order], centre[idx][order]
        tss = group["tss"].to_numpy(dtype=np.int64)
        lo = np.searchsorted(sorted_pos, tss - window, side="left")
        hi = np.searchsorted(sorted_pos, tss + window, side="right")
        counts = hi - lo
        if counts.sum() == 0:
            continue
        row = np.repeat(np.arange(len(group)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        peak_pos = np.repeat(lo, counts) + offsets
        signed = sorted_pos[peak_pos] - tss[row]
        signed = np.where(group["strand"].to_numpy()[row] == "-", -signed, signed)
        parts.append(pd.DataFrame({"gene_index": group["gene_index"].to_numpy()[row],
                                   "peak_index": sorted_idx[peak_pos], "distance": signed}))
    if not parts:
        return pd.DataFrame({"gene_index": [], "peak_index": [], "distance": []}, dtype=np.int64)
    pairs = pd.concat(parts, ignore_index=True)
    pairs["abs"] = pairs["distance"].abs()
    pairs = (pairs.sort_values(["gene_index", "peak_index", "abs"])
             .drop_duplicates(["gene_index", "peak_index"]).drop(columns="abs"))
    return pairs.reset_index(drop=True)


# ----------------------------------------------------------------------------------------------- links
def most_variable_gene_pairs(pairs: pd.DataFrame, expr: np.ndarray, max_genes: int | None) -> pd.DataFrame:
    """The pairs of the ``max_genes`` genes with the highest metacell variance (all pairs without a cap)."""
    genes = np.unique(pairs["gene_index"])
    if max_genes is None or len(genes) <= max_genes:
        return pairs
    variance = pd.Series(expr[:, genes].var(axis=0), index=genes)
    keep = variance.sort_values(ascending=False, kind="stable").index[:max_genes]
    return pairs[pairs["gene_index"].isin(keep)].reset_index(drop=True)


def predict_links(data: LinkingData, annotation: pd.DataFrame, *, window: int, methods, n_metacells: int,
                  n_permutations: int, fdr: float, max_genes: int | None, seed: int,
                  correlation_null: str = "background", genes_path=None, genome=None,
                  n_jobs: int = 1) -> pd.DataFrame:
    """Links of every annotated RNA gene to its candidate peaks, per method and input (raw/imputed);
    ``n_jobs``: worker processes of the LASSO fits."""
    genes = reconcile_genes(annotation, data.peaks, genes_path, genome)
    genes = match_genes(genes, data.genes, data.gene_table, genes_path)
    pairs = candidate_pairs(data.peaks, genes, window)
    n_genes = genes["gene_index"].nunique()
    if len(pairs) == 0 or pairs["gene_index"].nunique() < max(1, 0.01 * n_genes):
        raise InputError(genes_path, build_mismatch_message(
            "gene annotation", genome,
            f"after reconciling chromosome names only {pairs['gene_index'].nunique()} of {n_genes} genes "
            f"have a peak within {window} bp of their TSS"))
    labels = metacell_labels(data.embedding, n_metacells, seed)
    use = raw_expr = None
    frames = []
    for input_name, layer in (("raw", "counts"), ("imputed", "imputed")):
        expr, acc = metacell_matrices(data, layer, labels)
        if use is None:  # genes picked on raw data (max_genes) are tested on every input
            use = most_variable_gene_pairs(pairs, expr, max_genes)
            raw_expr = expr
        log.info("%s: %d metacells, %d genes x %d candidate pairs", input_name, labels.max() + 1,
                 use["gene_index"].nunique(), len(use))
        for method in methods:
            if method == "lasso":
                # the same metacells on both inputs: held-out imputed fits are scored against observed expression
                score, selected = lasso_scores(expr, acc, use, seed=seed, cv_expr=raw_expr, n_jobs=n_jobs)
            elif method == "correlation":
                score, selected = correlation_scores(expr, acc, use, data.peaks["chrom"].to_numpy(),
                                                     n_permutations, fdr, seed, null=correlation_null)
            else:
                raise ValueError(f"unknown link method {method!r}")
            frames.append(pd.DataFrame({
                "peak": data.peaks.index.to_numpy()[use["peak_index"].to_numpy()],
                "gene": data.genes.to_numpy()[use["gene_index"].to_numpy()],
                "distance": use["distance"].to_numpy(dtype=np.int64),
                "method": method, "input": input_name,
                "score": np.round(score, 6), "selected": selected}))
            log.info("%s/%s: %d of %d pairs selected", input_name, method, int(selected.sum()), len(use))
    return pd.concat(frames, ignore_index=True)[LINK_COLUMNS]
