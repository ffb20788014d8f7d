"""Cell and feature quality control of a paired MuData: metrics, data-driven thresholds, the QC tables.

Cells are flagged per modality by median absolute deviations (MADs), the approach of the scverse
best-practice book (Heumos et al., Nat Rev Genet 2023, "Quality Control" chapter): a cell is an outlier when
its log1p total counts or log1p detected features lie more than ``nmads`` MADs from the median (both
sides), or its mitochondrial fraction more than ``nmads_mito`` MADs above the median (where the data has
mitochondrial genes). The MAD is the unscaled one (``scipy.stats.median_abs_deviation``), as in the book.
Fixed thresholds (``min_genes_per_cell`` and friends) apply on top when set; a metric whose MAD is 0 (e.g.
no cell has a mitochondrial read) gets no MAD threshold. A cell must pass in both modalities.

Thresholds are computed once, on the cells that came in; removing rare features then changes the per-cell
numbers slightly, so the fixed thresholds and the at-least-one-feature floor are re-applied until nothing
changes. Every incoming cell gets a row in the per-cell table, with the reasons it was removed.

Several libraries (a sample sheet: ``obs["sample"]`` with more than one value) are QC'd per sample, as the book
and scrublet advise (``qc.per_sample``, default true): the MAD thresholds are computed over each sample's own
cells (the fixed ones are the same in every sample), each cell is held to its sample's bounds, and scrublet runs
per sample. A shallow library is then judged against its own depth instead of the deepest one's.
``qc.per_sample: false`` pools the cells (the thresholds table then has no ``sample`` column).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError

log = logging.getLogger("scmvp.qc")

MITO_PREFIXES = ("MT-", "mt-")
# (modality, obs column, column in the per-cell table, log-transformed for the MAD rule)
CELL_METRICS = [
    ("rna", "n_counts", "rna_n_counts", True),
    ("rna", "n_genes", "rna_n_genes", True),
    ("rna", "mito_fraction", "rna_mito_fraction", False),
    ("atac", "n_counts", "atac_n_counts", True),
    ("atac", "n_peaks", "atac_n_peaks", True),
]
# Metrics that enter when they were computed (fragments file, scrublet): column -> (log1p for the MAD rule,
# which side is bad, the config key of the fixed bound). TSS enrichment and nucleosome signal are ratios with
# a long right tail: their MADs are taken on log1p; FRiP is a fraction: linear, like the mito fraction.
OPTIONAL_METRICS = {
    "atac_tss_enrichment": (True, "low", "min_tss_enrichment"),
    "atac_nucleosome_signal": (True, "high", "max_nucleosome_signal"),
    "atac_frip": (False, "low", "min_frip"),
}
DOUBLET_COLUMNS = ["doublet_score", "predicted_doublet"]
# scrublet's kNN takes round(sqrt(cells) / 2) neighbours: below this it would score a handful of cells by 1-2
# neighbours (it does run on 3 cells); they get NaN scores instead, like a dataset scrublet cannot run on
MIN_SCRUBLET_CELLS = 30


@dataclass
class QCConfig:
    nmads: float | None = 5.0
    nmads_mito: float | None = 3.0
    min_genes_per_cell: int = 0
    min_peaks_per_cell: int = 0
    max_genes_per_cell: int | None = None
    min_cells_per_gene: int = 3
    min_cells_per_peak: int = 3
    max_mito_fraction: float = 0.2
    n_top_genes: int = 2000
    n_top_peaks: int = 20000
    n_lsi_components: int = 30
    n_pcs: int = 30
    nmads_fragments: float | None = 5.0
    min_tss_enrichment: float | None = None
    max_nucleosome_signal: float | None = None
    min_frip: float | None = None
    remove_doublets: bool = True
    doublet_threshold: float = 0.25
    expected_doublet_rate: float = 0.05
    doublet_block_cells: int | None = 20000
    per_sample: bool = True

    @classmethod
    def from_config(cls, qc: dict | None) -> "QCConfig":
        known = {k: v for k, v in (qc or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def describe(self) -> str:
        return (f"qc.nmads={self.nmads}, qc.nmads_mito={self.nmads_mito}, "
                f"qc.min_genes_per_cell={self.min_genes_per_cell}, qc.min_peaks_per_cell={self.min_peaks_per_cell}, "
                f"qc.max_genes_per_cell={self.max_genes_per_cell}, qc.max_mito_fraction={self.max_mito_fraction}, "
                f"qc.min_cells_per_gene={self.min_cells_per_gene}, qc.min_cells_per_peak={self.min_cells_per_peak}, "
                f"qc.nmads_fragments={self.nmads_fragments}, qc.min_tss_enrichment={self.min_tss_enrichment}, "
                f"qc.max_nucleosome_signal={self.max_nucleosome_signal}, qc.min_frip={self.min_frip}, "
                f"qc.remove_doublets={self.remove_doublets}, qc.doublet_threshold={self.doublet_threshold}, "
                f"qc.doublet_block_cells={self.doublet_block_cells}, "
                f"qc.per_sample={self.per_sample}")


def qc_metrics(rna, atac):
    """Per-cell and per-feature QC metrics, written into obs / var (counts in ``X``, CSR, no explicit zeros)."""
    for adata, detected_name in ((rna, "n_genes"), (atac, "n_peaks")):
        x = adata.X
        adata.obs["n_counts"] = np.asarray(x.sum(axis=1)).ravel().astype(np.float64)
        adata.obs[detected_name] = np.diff(x.indptr).astype(np.int64)
        adata.var["n_cells"] = np.bincount(x.indices, minlength=x.shape[1]).astype(np.int64)
    mito = rna.var_names.str.startswith(MITO_PREFIXES)
    rna.var["mito"] = mito
    mito_counts = np.asarray(rna.X[:, np.flatnonzero(mito)].sum(axis=1)).ravel() if mito.any() else 0.0
    rna.obs["mito_fraction"] = mito_counts / np.maximum(rna.obs["n_counts"].to_numpy(), 1.0)


def cell_samples(mdata) -> pd.Series | None:
    """Each cell's sample (``obs["sample"]`` of the MuData, else of ``rna``; str, indexed by cell name), or None
    when there is no such column or it holds one value (one library: QC as for any single dataset)."""
    for obs in (mdata.obs, mdata.mod["rna"].obs):
        if "sample" in obs.columns:
            samples = obs["sample"].astype(str)
            return samples.rename("sample") if samples.nunique() > 1 else None
    return None


def cell_table(rna, atac, extra: pd.DataFrame | None = None, samples: pd.Series | None = None) -> pd.DataFrame:
    """The per-cell metrics of both modalities (after :func:`qc_metrics`), one row per cell, plus the columns
    of ``extra`` (fragment metrics, doublet scores; indexed by barcode) where given; a first column ``sample``
    when ``samples`` (see :func:`cell_samples`) is given."""
    mods = {"rna": rna, "atac": atac}
    table = pd.DataFrame({column: mods[mod].obs[metric].to_numpy() for mod, metric, column, _ in CELL_METRICS},
                         index=pd.Index(rna.obs_names, name="barcode"))
    if samples is not None:
        table.insert(0, "sample", samples.reindex(table.index).to_numpy())
    if extra is not None and len(extra.columns):
        table = table.join(extra.reindex(table.index))
    return table


def doublet_scores(rna, qc: QCConfig, seed: int = 0, samples: pd.Series | None = None) -> pd.DataFrame:
    """Scrublet (``scanpy.pp.scrublet``) on the raw RNA counts: ``doublet_score``, ``predicted_doublet``.

    Seeded; the threshold is ``qc.doublet_threshold`` (scanpy's automatic one needs scikit-image). Cells that
    scrublet leaves out (< 3 genes) get a NaN score and are not called doublets; when scrublet cannot run at
    all (e.g. fewer than :data:`MIN_SCRUBLET_CELLS` cells), every score is NaN, with a warning. With
    ``samples`` (see :func:`cell_samples`) and ``qc.per_sample``, scrublet runs on each sample alone (same seed;
    scanpy's ``batch_key`` does the same), and a sample it cannot score gets NaN scores. A sample (or dataset)
    of more than ``qc.doublet_block_cells`` cells is scored in :func:`doublet_blocks`.
    """
    if samples is None or not qc.per_sample:
        groups = [(np.arange(rna.n_obs), "")]
    else:
        own = samples.reindex(rna.obs_names).to_numpy()
        groups = [(np.flatnonzero(own == sample), f"sample {sample}: ") for sample in pd.unique(own)]
    parts = []
    for positions, what in groups:
        if what:
            log.info("%sscrublet on %d cells", what, len(positions))
        blocks = doublet_blocks(len(positions), qc.doublet_block_cells, seed)
        if len(blocks) > 1:
            log.info("%sscrublet on %d random blocks of ~%d cells (qc.doublet_block_cells %d)", what, len(blocks),
                     len(blocks[0]), qc.doublet_block_cells)
        for i, cells in enumerate(blocks):
            where = f"{what}block {i + 1}/{len(blocks)}: " if len(blocks) > 1 else what
            parts.append(_scrublet(rna[positions[cells]], qc, seed, where))
    return pd.concat(parts).reindex(pd.Index(rna.obs_names, name="barcode"))


def doublet_blocks(n_cells: int, block_cells: int | None, seed: int = 0) -> list[np.ndarray]:
    """The cells (sorted positions) of each block scrublet scores alone: one block of every cell when
    ``block_cells`` is None or not exceeded, otherwise ceil(n / block_cells) random blocks of equal size.

    Why: scrublet z-scores its highly variable genes and holds them dense for the observed cells and twice as
    many simulated doublets; at 50,000 cells that was 11.8 GB in one piece (measured). Within a random block, doublets are
    simulated from, and compared with, a random subsample of the same cells, so the ratio of simulated doublets to
    observed cells around every cell -- the score -- estimates the same thing (with k = sqrt(block) / 2).
    """
    if block_cells is None or n_cells <= block_cells:
        return [np.arange(n_cells)]
    n_blocks = -(-n_cells // block_cells)
    order = np.random.default_rng(seed).permutation(n_cells)
    return [np.sort(part) for part in np.array_split(order, n_blocks)]


def _scrublet(rna, qc: QCConfig, seed: int = 0, what: str = "") -> pd.DataFrame:
    import re
    import warnings

    if rna.n_obs < MIN_SCRUBLET_CELLS:
        log.warning("%sscrublet needs at least %d cells, got %d: no doublet scores", what, MIN_SCRUBLET_CELLS,
                    rna.n_obs)
        return _no_doublet_scores(rna)

    import anndata as ad
    import scanpy as sc

    counts = ad.AnnData(rna.X.copy(), obs=pd.DataFrame(index=rna.obs_names.copy()),
                        var=pd.DataFrame(index=rna.var_names.copy()))
    n_comps = max(2, min(30, rna.n_obs - 1, rna.n_vars - 1))
    # exact neighbours at every size: at 50,000 cells scanpy's automatic choice (pynndescent) was the preprocess
    # rule's 14-minute phase, where its 18.7 GB peak came from (alone: 8.9 GB and rising after 5 min); the exact
    # search took 75 s, 11.8 GB, the same doublets (bench/RESULTS.md, "The scMVP path at 20,000 and 50,000 cells")
    for _ in range(2):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sc.pp.scrublet(counts, random_state=seed, threshold=qc.doublet_threshold, n_prin_comps=n_comps,
                               expected_doublet_rate=qc.expected_doublet_rate, verbose=False,
                               use_approx_neighbors=False)
            break
        except ValueError as err:
            # scrublet keeps only its highly variable genes: a small panel can leave fewer than n_comps
            fits = re.search(r"min\(n_samples, n_features\)=(\d+)", str(err))
            if not fits or int(fits.group(1)) <= 2:
                log.warning("%sscrublet failed (%s): no doublet scores", what, err)
                return _no_doublet_scores(rna)
            n_comps = int(fits.group(1)) - 1
    else:
        return _no_doublet_scores(rna)
    score = counts.obs["doublet_score"].astype(float).to_numpy()
    return pd.DataFrame({"doublet_score": score, "predicted_doublet": np.nan_to_num(score, nan=0.0)
                         > qc.doublet_threshold}, index=pd.Index(rna.obs_names, name="barcode"))


def _no_doublet_scores(rna):
    return pd.DataFrame({"doublet_score": np.nan, "predicted_doublet": False},
                        index=pd.Index(rna.obs_names, name="barcode"))


def thresholds_by_sample(table: pd.DataFrame, qc: QCConfig, has_mito: bool) -> pd.DataFrame:
    """:func:`mad_thresholds` of each sample's cells, with a leading ``sample`` column, when ``table`` has a
    ``sample`` column and ``qc.per_sample``; otherwise :func:`mad_thresholds` of all the cells."""
    if "sample" not in table.columns or not qc.per_sample:
        return mad_thresholds(table, qc, has_mito)
    parts = [mad_thresholds(part, qc, has_mito).assign(sample=str(sample))
             for sample, part in table.groupby("sample", sort=False, observed=True)]
    thresholds = pd.concat(parts, ignore_index=True)
    return thresholds[["sample", *thresholds.columns[:-1]]]


def mad_thresholds(table: pd.DataFrame, qc: QCConfig, has_mito: bool) -> pd.DataFrame:
    """Data-driven and fixed thresholds per metric: rows ``metric, low, high, rule`` (NaN = no bound).

    Bounds are on the metric's own scale (counts, not log counts), so they can be drawn and read directly.
    """
    from scipy.stats import median_abs_deviation

    fixed = _fixed_count_bounds(qc, has_mito)
    rows = []
    for _, _, column, logged in CELL_METRICS:
        values = table[column].to_numpy(dtype=np.float64)
        low = high = np.nan
        rule = []
        nmads = qc.nmads_mito if column == "rna_mito_fraction" else qc.nmads
        if nmads is not None and (column != "rna_mito_fraction" or has_mito):
            scaled = np.log1p(values) if logged else values
            median, mad = float(np.median(scaled)), float(median_abs_deviation(scaled))
            if mad > 0:
                high = median + nmads * mad
                if column != "rna_mito_fraction":  # mitochondrial fraction: only too high is bad
                    low = median - nmads * mad
                if logged:
                    low, high = np.expm1(low), np.expm1(high)
                rule.append(f"{nmads:g} MADs")
        fixed_low, fixed_high = fixed.get(column, (None, None))
        if fixed_low is not None:
            low = fixed_low if np.isnan(low) else max(low, fixed_low)
            rule.append("fixed minimum")
        if fixed_high is not None:
            high = fixed_high if np.isnan(high) else min(high, fixed_high)
            rule.append("fixed maximum")
        rows.append({"metric": column, "low": low, "high": high, "rule": " + ".join(rule) or "none"})
    for column, (logged, side, fixed_key) in OPTIONAL_METRICS.items():
        if column in table.columns:
            rows.append(_optional_threshold(table[column].to_numpy(dtype=np.float64), column, logged, side,
                                            qc.nmads_fragments, getattr(qc, fixed_key)))
    if "doublet_score" in table.columns:
        scored = bool(np.isfinite(table["doublet_score"].to_numpy(dtype=np.float64)).any())
        applied = qc.remove_doublets and scored
        rows.append({"metric": "doublet_score", "low": np.nan, "high": qc.doublet_threshold if applied else np.nan,
                     "rule": ("scrublet threshold (qc.doublet_threshold)" if applied else
                              "none (qc.remove_doublets: false)" if scored else "none (scrublet could not run)")})
    return pd.DataFrame(rows)


def _optional_threshold(values, column, logged, side, nmads, fixed):
    """One side's bound of a fragment metric: ``nmads`` MADs (on log1p where ``logged``) and a fixed bound."""
    from scipy.stats import median_abs_deviation

    bound, rule = np.nan, []
    finite = values[np.isfinite(values)]
    if nmads is not None and finite.size:
        scaled = np.log1p(finite) if logged else finite
        median, mad = float(np.median(scaled)), float(median_abs_deviation(scaled))
        if mad > 0:
            bound = median - nmads * mad if side == "low" else median + nmads * mad
            bound = float(np.expm1(bound)) if logged else bound
            rule.append(f"{nmads:g} MADs")
    if fixed is not None:
        bound = fixed if np.isnan(bound) else (max(bound, fixed) if side == "low" else min(bound, fixed))
        rule.append("fixed minimum" if side == "low" else "fixed maximum")
    low, high = (bound, np.nan) if side == "low" else (np.nan, bound)
    return {"metric": column, "low": low, "high": high, "rule": " + ".join(rule) or "none"}


def failing_reasons(table: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """Boolean frame (cells x reasons): ``{metric}_low`` / ``{metric}_high`` per bound that the cell breaks.

    Thresholds with a ``sample`` column (:func:`thresholds_by_sample`) hold each cell to its own sample's bounds.
    """
    reasons = {}
    for metric, rows in thresholds.groupby("metric", sort=False):
        values = table[metric].to_numpy(dtype=np.float64)
        for side in ("low", "high"):
            if "sample" in rows.columns:
                bound = rows.set_index("sample")[side].reindex(table["sample"].astype(str)).to_numpy(np.float64)
            else:
                bound = np.full(len(table), rows[side].iloc[0], dtype=np.float64)
            if np.isnan(bound).all():
                continue
            name = "predicted_doublet" if (metric, side) == ("doublet_score", "high") else f"{metric}_{side}"
            with np.errstate(invalid="ignore"):  # a NaN bound (none in that sample) breaks nothing
                reasons[name] = values < bound if side == "low" else values > bound
    # an empty cell would divide by zero in normalize_total / TF-IDF, whatever the config
    reasons["rna_empty"] = table["rna_n_genes"].to_numpy() < 1
    reasons["atac_empty"] = table["atac_n_peaks"].to_numpy() < 1
    return pd.DataFrame(reasons, index=table.index)


def filter_cells_and_features(mdata, qc: QCConfig, path=None, max_rounds: int = 10, extra=None):
    """Filter cells (both modalities must pass) and features in place until every threshold holds.

    ``extra``: more per-cell metrics (barcode index): the fragment metrics of :mod:`scmvp.qc_fragments`
    (``atac_tss_enrichment``, ``atac_nucleosome_signal``, ``atac_frip``) and :func:`doublet_scores`; their
    thresholds are set once, on the incoming cells (a NaN value breaks no bound). Several samples (see
    :func:`cell_samples`): the per-cell table gets a ``sample`` column and, with ``qc.per_sample``, the
    thresholds are per sample (:func:`thresholds_by_sample`).

    Returns ``(report, cells, thresholds)``: a dict of counts, the per-cell table of every incoming cell
    (metrics, ``passed``, ``reasons``) and the thresholds table.
    """
    import muon as mu

    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    n_in = mdata.n_obs
    report = {"cells_in": n_in, "genes_in": rna.n_vars, "peaks_in": atac.n_vars}
    qc_metrics(rna, atac)
    samples = cell_samples(mdata)
    cells = cell_table(rna, atac, extra, samples)
    has_mito = bool(rna.var["mito"].any())
    thresholds = thresholds_by_sample(cells, qc, has_mito)
    reasons = failing_reasons(cells, thresholds)
    removed = reasons.any(axis=1).to_numpy()
    if removed.all():
        raise _no_cells_left(path, n_in, reasons, qc)
    feature_rounds = 0
    for _ in range(max_rounds):
        keep = ~removed[cells.index.get_indexer(mdata.obs_names)]
        gene_keep = _feature_mask(rna, keep, qc.min_cells_per_gene)
        peak_keep = _feature_mask(atac, keep, qc.min_cells_per_peak)
        if keep.all() and gene_keep.all() and peak_keep.all():
            break
        if not gene_keep.any() or not peak_keep.any():
            what = "genes" if not gene_keep.any() else "peaks"
            raise InputError(path, f"no {what} left after QC; lower qc.min_cells_per_gene / "
                                   f"qc.min_cells_per_peak ({qc.describe()})")
        mu.pp.filter_obs(rna, keep)
        mu.pp.filter_obs(atac, keep)
        mu.pp.filter_var(rna, gene_keep)
        mu.pp.filter_var(atac, peak_keep)
        mdata.update()
        mu.pp.intersect_obs(mdata)
        rna, atac = mdata.mod["rna"], mdata.mod["atac"]
        qc_metrics(rna, atac)
        # fewer features: a kept cell may now break a fixed threshold (the MAD bounds stay as computed)
        now = cell_table(rna, atac, extra, samples)
        fixed_only = thresholds.assign(low=_fixed_bounds(thresholds, "low", qc), high=_fixed_bounds(
            thresholds, "high", qc, has_mito))
        late = failing_reasons(now, fixed_only).any(axis=1)
        late_cells = late.index[late.to_numpy()]
        if len(late_cells):
            feature_rounds += 1
            if "after_feature_filter" not in reasons:
                reasons["after_feature_filter"] = False
            reasons.loc[late_cells, "after_feature_filter"] = True
            removed = reasons.any(axis=1).to_numpy()
            if removed.all():
                raise _no_cells_left(path, n_in, reasons, qc)
    else:
        log.warning("QC filtering did not settle after %d rounds", max_rounds)
    cells["passed"] = ~reasons.any(axis=1)
    cells["reasons"] = [";".join(reasons.columns[row]) for row in reasons.to_numpy()]
    report.update(cells_out=mdata.n_obs, genes_out=mdata.mod["rna"].n_vars, peaks_out=mdata.mod["atac"].n_vars,
                  cells_failing={k: int(v) for k, v in reasons.sum().items() if v})
    return report, cells, thresholds


def _fixed_count_bounds(qc, has_mito):
    """The config's fixed (low, high) bounds of the count metrics, None where there is none."""
    return {
        "rna_n_genes": (qc.min_genes_per_cell or None, qc.max_genes_per_cell),
        "atac_n_peaks": (qc.min_peaks_per_cell or None, None),
        "rna_mito_fraction": (None, qc.max_mito_fraction if has_mito else None),
    }


def _fixed_bounds(thresholds, side, qc, has_mito=True):
    """One side of the fixed bounds, aligned with the thresholds' metrics (NaN = none)."""
    fixed = _fixed_count_bounds(qc, has_mito)
    index = 0 if side == "low" else 1
    return [np.nan if fixed.get(metric, (None, None))[index] is None else fixed[metric][index]
            for metric in thresholds["metric"]]


def _feature_mask(adata, keep_cells, min_cells):
    x = adata.X[np.flatnonzero(keep_cells)] if not keep_cells.all() else adata.X
    n_cells = np.bincount(x.indices, minlength=x.shape[1])
    return n_cells >= max(1, min_cells)


def _no_cells_left(path, n_in, reasons, qc):
    counts = ", ".join(f"{k}: {int(v)}" for k, v in reasons.sum().items() if v)
    return InputError(path, f"no cells left after QC ({n_in} cells came in; failing {counts}). "
                            f"Loosen the thresholds in the config: {qc.describe()}")


def summary_table(cells: pd.DataFrame, report: dict) -> pd.DataFrame:
    """One row per statistic: cells in/out, cells removed per reason, medians per metric before/after QC."""
    rows = [("cells_in", report["cells_in"]), ("cells_out", report["cells_out"]),
            ("genes_in", report["genes_in"]), ("genes_out", report["genes_out"]),
            ("peaks_in", report["peaks_in"]), ("peaks_out", report["peaks_out"])]
    reasons = cells["reasons"].str.split(";").explode()
    for reason, n in reasons[reasons != ""].value_counts().sort_index().items():
        rows.append((f"removed_{reason}", int(n)))
    kept = cells[cells["passed"]]
    if "predicted_doublet" in cells.columns:
        rows.append(("doublet_rate", doublet_rate(cells)))
    for column in metric_columns(cells):
        rows.append((f"median_{column}_in", float(cells[column].median())))
        rows.append((f"median_{column}_out", float(kept[column].median())))
    return pd.DataFrame(rows, columns=["statistic", "value"])


def metric_columns(cells: pd.DataFrame) -> list:
    """The QC metrics of a per-cell table: the count metrics, then the optional ones it has."""
    columns = [column for _, _, column, _ in CELL_METRICS]
    return columns + [c for c in [*OPTIONAL_METRICS, "doublet_score"] if c in cells.columns]


def doublet_rate(cells: pd.DataFrame) -> float:
    """Scrublet's doublet calls over the scored incoming cells, whether or not qc.remove_doublets removes them."""
    scored = np.isfinite(cells["doublet_score"].to_numpy(dtype=float))
    return float(cells["predicted_doublet"].to_numpy(dtype=bool)[scored].mean()) if scored.any() else np.nan
