"""The two peak-gene link scores of :mod:`scmvp.cre`, on metacell x feature matrices: the non-negative LASSO path
with cross-validated selection (``lasso``), and Spearman correlation against a per-gene null with Benjamini-Hochberg
(``correlation``). Pure functions of arrays; the method descriptions are in :mod:`scmvp.cre`'s docstring.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats


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
    """Offsets where each gene's run of pairs starts, then the end. The scores slice each gene's pairs by these
    offsets, so the pairs must be sorted by gene (`cre.candidate_pairs` sorts them); anything else raises."""
    gene_idx = np.asarray(gene_idx)
    if np.any(np.diff(gene_idx) < 0):
        raise ValueError("candidate pairs are not sorted by gene_index: each gene's pairs must be one run "
                         "(sort them as cre.candidate_pairs does)")
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
    bounds = gene_bounds(gene_idx)
    starts, ends = bounds[:-1], bounds[1:]
    genes = gene_idx[starts]
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
