"""Cis-regulatory element (CRE) prediction: peak-gene links (their evaluation: :mod:`scmvp.cre_evaluation`).

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
import math

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

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


# --------------------------------------------------------------------------------------------- methods
def standardize(matrix: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm (so dot products are Pearson r); constant columns -> 0."""
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    norm = np.sqrt((centred.astype(np.float64) ** 2).sum(axis=0, keepdims=True))
    norm[norm == 0] = np.inf
    return (centred / norm).astype(np.float32)


def pair_correlations(z_expr, z_acc, gene_idx, peak_idx, block=50_000) -> np.ndarray:
    out = np.empty(len(gene_idx), dtype=np.float64)
    for start in range(0, len(gene_idx), block):
        g, p = gene_idx[start:start + block], peak_idx[start:start + block]
        out[start:start + block] = np.einsum("ij,ij->j", z_expr[:, g], z_acc[:, p], dtype=np.float64)
    return out


def _coefs_at(alphas_path, coefs_path, alphas):
    """Coefficients of a LARS path interpolated at the penalties ``alphas`` (path alphas are decreasing)."""
    out = np.empty((coefs_path.shape[0], len(alphas)))
    x = alphas_path[::-1]
    for j in range(coefs_path.shape[0]):
        out[j] = np.interp(alphas, x, coefs_path[j, ::-1])
    out[:, alphas > alphas_path[0]] = 0.0
    return out


def lasso_scores(expr: np.ndarray, acc: np.ndarray, pairs: pd.DataFrame, n_folds: int = 5, seed: int = 0,
                 cv_expr: np.ndarray | None = None, n_jobs: int = 1):
    """Non-negative LASSO per gene: (entry penalty score, selected at the 1-SE cross-validated penalty).

    The penalty is chosen by ``n_folds``-fold cross-validation over metacells with the one-standard-error
    rule (the sparsest model within one SE of the best), which keeps noise-fitting peaks out.
    ``cv_expr``: the expression the held-out metacells are scored against (default ``expr``). For imputed
    data pass the observed (raw) metacell expression: imputed values are smooth functions of the latent, so
    scored against themselves every extra candidate "predicts" them and the model grows to most of the
    window (tiny simulator: 4,776 links, distal H3K27ac OR 0.91); scored against what was measured, the
    model keeps the peaks that predict real expression (168 links, precision 0.46 vs raw 0.33, OR 3.1).
    ``n_jobs`` > 1: the genes are split into contiguous blocks fitted in that many worker processes (LARS is
    Python-bound, threads would share one core); every gene's fit is independent, so the result is the same.
    """
    n = expr.shape[0]
    z_expr = standardize(expr).astype(np.float64) * math.sqrt(n)
    # standardised like expr: the held-out error compares profiles across metacells, not scales
    z_cv = z_expr if cv_expr is None else standardize(cv_expr).astype(np.float64) * math.sqrt(n)
    z_acc = standardize(acc)
    gene_idx = pairs["gene_index"].to_numpy()
    peak_idx = pairs["peak_index"].to_numpy()
    folds = np.random.default_rng(seed).permutation(n) % n_folds
    blocks = _gene_blocks(gene_bounds(gene_idx), n_jobs)
    args = (z_expr, z_cv, z_acc, gene_idx, peak_idx, folds, n_folds)
    if len(blocks) == 1:
        parts = [_lasso_block(*args, blocks[0])]
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=n_jobs)(delayed(_lasso_block)(*args, block) for block in blocks)
    return np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])


def gene_bounds(gene_idx: np.ndarray) -> np.ndarray:
    """Offsets where each gene's run of pairs starts, then the end (pairs are sorted by gene)."""
    return np.flatnonzero(np.diff(np.r_[-1, gene_idx, -2]))


def _gene_blocks(bounds: np.ndarray, n_jobs: int, blocks_per_job: int = 8,
                 min_block_genes: int = 50) -> list[np.ndarray]:
    """``bounds`` (pair offsets where each gene starts, then the end) cut into contiguous gene blocks of about
    equal pair counts: one block when sequential or too few genes to pay for starting workers, else
    several per job so that no worker waits on the last."""
    n_genes = len(bounds) - 1
    n_blocks = 1 if n_jobs <= 1 else min(n_genes // min_block_genes, n_jobs * blocks_per_job)
    if n_blocks <= 1:
        return [bounds]
    cuts = np.searchsorted(bounds, np.linspace(0, bounds[-1], n_blocks + 1)[1:-1])
    cuts = np.unique(np.r_[0, cuts, n_genes])
    return [bounds[a:b + 1] for a, b in zip(cuts[:-1], cuts[1:])]


def _lasso_block(z_expr, z_cv, z_acc, gene_idx, peak_idx, folds, n_folds, bounds):
    """Scores and selections of the pairs bounds[0]..bounds[-1] (whole genes), fitted gene by gene."""
    import warnings

    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import lars_path
    from threadpoolctl import threadpool_limits

    offset = bounds[0]
    score = np.zeros(bounds[-1] - offset)
    selected = np.zeros(bounds[-1] - offset, dtype=bool)
    n = z_expr.shape[0]
    # per-call argument validation costs more than these small LARS fits themselves; collinear
    # candidates (neighbouring peaks) make LARS warn about degenerate steps, which it handles. One BLAS thread:
    # the matrices are tiny, and a worker inherits the rule's OMP/OPENBLAS_NUM_THREADS (Snakemake sets them to
    # the rule's threads): two workers x two spinning BLAS threads took twice the CPU for no gain (442 s wall).
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True), warnings.catch_warnings(), \
            threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for a, b in zip(bounds[:-1], bounds[1:]):
            y, y_cv = z_expr[:, gene_idx[a]], z_cv[:, gene_idx[a]]
            if not np.any(y):
                continue
            X = z_acc[:, peak_idx[a:b]].astype(np.float64) * math.sqrt(n)
            usable = np.flatnonzero(np.any(X != 0, axis=0))
            if usable.size == 0:
                continue
            Xu = X[:, usable]
            alphas, _, coefs = lars_path(Xu, y, method="lasso", positive=True)
            nonzero = coefs > 0
            entered = nonzero.any(axis=1)
            first = np.argmax(nonzero, axis=1)
            at = a - offset + usable
            score[at] = np.where(entered, alphas[np.maximum(first - 1, 0)], 0.0)
            top = max(alphas[0], 1e-6)
            grid = np.unique(np.r_[alphas, np.geomspace(top, top * 1e-3, 30)])[::-1]
            errors = np.empty((n_folds, len(grid)))
            for k in range(n_folds):
                train, test = folds != k, folds == k
                xm, ym = Xu[train].mean(axis=0), y[train].mean()
                fa, _, fc = lars_path(Xu[train] - xm, y[train] - ym, method="lasso", positive=True)
                beta = _coefs_at(fa, fc, grid)
                pred = ym + (Xu[test] - xm) @ beta
                errors[k] = ((y_cv[test][:, None] - pred) ** 2).mean(axis=0)
            mean, se = errors.mean(axis=0), errors.std(axis=0, ddof=1) / math.sqrt(n_folds)
            best = int(np.argmin(mean))
            chosen = grid[np.flatnonzero(mean <= mean[best] + se[best])[0]]  # grid is decreasing: sparsest first
            selected[at] = _coefs_at(alphas, coefs, np.array([chosen]))[:, 0] > 0
    return score, selected


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def correlation_scores(expr, acc, pairs, peaks_chrom, n_background: int, fdr: float, seed: int,
                       null: str = "background"):
    """Spearman r per pair (across metacells), tested against a per-gene null; selected = BH q <= fdr, r > 0.

    ``null="permutation"``: r of the gene's permuted metacell profile with its own candidate peaks
    (``n_background`` permutations). ``null="background"``: r of the gene with ``n_background`` random
    peaks on other chromosomes (Signac-style; stricter: trans peaks share the cell-type covariation).
    Either null is summarised per gene by the mean and sd of Fisher's z; p is the one-sided Student-t
    predictive tail (df = draws - 1).
    """
    rng = np.random.default_rng(seed)
    n = expr.shape[0]
    # ranks: a few outlying metacells of sparse counts otherwise give heavy-tailed r and false links
    z_expr = standardize(stats.rankdata(expr, axis=0).astype(np.float32))
    z_acc = standardize(stats.rankdata(acc, axis=0).astype(np.float32))
    gene_idx = pairs["gene_index"].to_numpy()
    peak_idx = pairs["peak_index"].to_numpy()
    r = pair_correlations(z_expr, z_acc, gene_idx, peak_idx)
    genes, starts = np.unique(gene_idx, return_index=True)
    ends = np.r_[starts[1:], len(gene_idx)]
    peaks_chrom = np.asarray(peaks_chrom).astype(str)
    chroms = np.unique(peaks_chrom)
    null_mean = np.zeros(len(genes))
    null_sd = np.ones(len(genes))
    if null == "background" and len(chroms) > 1:
        active = np.flatnonzero(np.any(z_acc != 0, axis=0))
        by_chrom = {c: active[peaks_chrom[active] != c] for c in chroms}
        bg_peak = np.concatenate([rng.choice(by_chrom[peaks_chrom[peak_idx[a]]], n_background) for a in starts])
        r_null = pair_correlations(z_expr, z_acc, np.repeat(genes, n_background), bg_peak)
        z_null = np.arctanh(np.clip(r_null, -0.999999, 0.999999)).reshape(len(genes), n_background)
        null_mean, null_sd = z_null.mean(axis=1), z_null.std(axis=1, ddof=1)
    elif null in ("permutation", "background"):
        for i, (g, a, b) in enumerate(zip(genes, starts, ends)):
            y_perm = z_expr[np.argsort(rng.random((n_background, n)), axis=1), g]  # permutations x metacells
            z_null = np.arctanh(np.clip(y_perm @ z_acc[:, peak_idx[a:b]], -0.999999, 0.999999))
            null_mean[i], null_sd[i] = z_null.mean(), z_null.std(ddof=1)
    else:
        raise ValueError(f"unknown correlation null {null!r}")
    # floor: a degenerate null (constant peaks) must not make every pair significant
    null_sd = np.maximum(null_sd, 0.25 / math.sqrt(max(n - 3, 1)))
    position = np.searchsorted(genes, gene_idx)
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    # the null mean and sd are estimated from n_background draws: Student-t predictive tail, not normal
    t = (z - null_mean[position]) / (null_sd[position] * math.sqrt(1 + 1 / n_background))
    p = stats.t.sf(t, df=max(n_background - 1, 1))
    q = benjamini_hochberg(p)
    return r, (q <= fdr) & (r > 0)


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
