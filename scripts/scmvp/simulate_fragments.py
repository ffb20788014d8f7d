"""Cell Ranger ARC's ``atac_fragments.tsv.gz`` (+ ``.tbi``) and ``per_barcode_metrics.csv`` for the simulated example.

Cheap by design: fragments are written from the cells' simulated ATAC counts, not simulated genome-wide.

* One fragment per two counts (rounded up) of the cells x peaks matrix, inside its peak (the simulator's
  counts are cut sites, one or two per fragment); in a promoter peak its midpoint lies
  near the gene's TSS (normal, sd 80 bp), elsewhere anywhere in the peak. So real cells pile fragments up at
  TSSs and their TSS enrichment is well above 1.
* Fragment lengths follow a nucleosomal pattern: nucleosome-free (< 147 bp), mono- (147-293 bp) and
  di-nucleosomal (294-500 bp) fragments, 55/33/12% in peaks and 30/45/25% in the background.
* Background fragments anywhere on the genome, so that about 30% of a cell's fragments lie outside peaks
  (FRiP ~0.7); ``LOW_QUALITY_SHARE`` of the cells are low quality: most of their fragments are background
  (FRiP ~0.25, lower TSS enrichment, higher nucleosome signal), as a facility's QC would see.
* Barcodes that are not cells (``is_cell`` 0 in the metrics) with a few background fragments each.
* Columns chrom, start, end, barcode, read count (reads per fragment, >= 1); sorted by chromosome (the
  genome's order) and start; bgzip-compressed and tabix-indexed with pysam, ``#`` header lines like ARC's.

``per_barcode_metrics.csv`` lists every barcode with ARC's column names (``barcode``, ``is_cell``,
``gex_umis_count``, ``gex_genes_count``, ``atac_raw_reads``, ``atac_fragments``, ``atac_peak_region_fragments``,
``atac_peak_region_cutsites`` ...), the fragment numbers counted from the written fragments.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .simulate import unique_barcodes

LOW_QUALITY_SHARE = 0.02
NON_CELL_SHARE = 0.25
PEAK_LENGTH_MIX = (0.55, 0.33, 0.12)
BACKGROUND_LENGTH_MIX = (0.30, 0.45, 0.25)
TSS_SD = 80


def _lengths(rng, n, mix):
    """Fragment lengths: nucleosome-free, mono- and di-nucleosomal components."""
    kind = rng.choice(3, size=n, p=mix)
    nfr = np.clip(rng.normal(80, 25, n), 30, 146)
    mono = np.clip(rng.normal(200, 25, n), 147, 293)
    di = np.clip(rng.normal(380, 35, n), 294, 500)
    return np.choose(kind, [nfr, mono, di]).astype(np.int64)


def _background(rng, n, chrom_sizes, dtypes):
    """``n`` fragments uniform over the genome: (chrom index, start, end)."""
    lengths = np.array(list(chrom_sizes.values()), dtype=float)
    chrom = rng.choice(len(lengths), size=n, p=lengths / lengths.sum())
    size = _lengths(rng, n, BACKGROUND_LENGTH_MIX)
    start = (rng.random(n) * (lengths[chrom] - 600)).astype(np.int64)
    return chrom.astype(dtypes["chrom"]), start.astype(dtypes["position"]), (start + size).astype(dtypes["position"])


def _in_peak(chrom, start, end, peaks, chrom_names):
    """Whether each fragment overlaps a peak (peaks sorted and disjoint per chromosome)."""
    hit = np.zeros(len(chrom), dtype=bool)
    for c, name in enumerate(chrom_names):
        on = peaks["chrom"].to_numpy() == name
        sel = np.flatnonzero(chrom == c)
        if not on.any() or not len(sel):
            continue
        p_start, p_end = peaks["start"].to_numpy()[on], peaks["end"].to_numpy()[on]
        j = np.searchsorted(p_start, end[sel], side="left") - 1  # last peak starting before the fragment ends
        ok = j >= 0
        hit[sel[ok]] = p_end[j[ok]] > start[sel[ok]]
    return hit


def _peak_fragments(rng, atac, peaks, genes, code, dtypes):
    """(cell, chrom code, start, end) of the fragments in peaks: one per two cut sites, rounded up; promoter
    fragments centred near the gene's TSS. Its temporaries are freed on return."""
    coo = atac.tocoo()
    counts = (coo.data.astype(np.int64) + 1) // 2
    cell = np.repeat(coo.row.astype(dtypes["owner"]), counts)
    peak = np.repeat(coo.col.astype(np.int64), counts)
    del coo, counts
    p_start, p_end = peaks["start"].to_numpy(np.int64)[peak], peaks["end"].to_numpy(np.int64)[peak]
    size = _lengths(rng, len(peak), PEAK_LENGTH_MIX)
    mid = p_start + (rng.random(len(peak)) * (p_end - p_start)).astype(np.int64)
    promoter = peaks["kind"].to_numpy()[peak] == "promoter"
    tss = genes["tss"].to_numpy(np.int64)[np.maximum(peaks["origin_gene"].to_numpy()[peak], 0)]
    near_tss = np.rint(rng.normal(tss, TSS_SD)).astype(np.int64)
    del tss
    mid = np.where(promoter, np.clip(near_tss, p_start, p_end - 1), mid)
    del near_tss, promoter, p_start, p_end
    f_chrom = peaks["chrom"].map(code).to_numpy(dtypes["chrom"])[peak]
    del peak
    f_start = np.maximum(0, mid - size // 2)
    return cell, f_chrom, f_start.astype(dtypes["position"]), (f_start + size).astype(dtypes["position"])


def _compact_dtypes(n_barcodes: int, chrom_sizes) -> dict:
    """The smallest integer types of the per-fragment columns (tens of millions of rows at 10k cells: int32
    positions and barcode codes and an int8 chromosome code take 13 bytes a fragment instead of 32)."""
    return {"owner": np.min_scalar_type(-n_barcodes), "chrom": np.min_scalar_type(-len(chrom_sizes)),
            "position": np.min_scalar_type(-(max(chrom_sizes.values()) + 1000))}


def simulate_fragments(barcodes, atac, rna, peaks, genes, chrom_sizes, seed: int):
    """Fragments (DataFrame chrom, start, end, barcode, count; sorted) and the per-barcode metrics table of the
    cells ``barcodes`` with cut-site counts ``atac`` (cells x ``peaks``) and RNA counts ``rna`` (for the UMI
    column); ``genes`` gives the TSS of each promoter peak's gene."""
    rng = np.random.default_rng([seed, 7])
    chrom_names = list(chrom_sizes)
    code = {c: i for i, c in enumerate(chrom_names)}
    n_cells = len(barcodes)
    n_non_cells = int(round(NON_CELL_SHARE * n_cells))
    dtypes = _compact_dtypes(n_cells + n_non_cells, chrom_sizes)

    cell, f_chrom, f_start, f_end = _peak_fragments(rng, atac, peaks, genes, code, dtypes)

    # background: ~30% of a cell's fragments (most of them in low-quality cells)
    in_peaks = np.bincount(cell, minlength=n_cells)
    frip = np.clip(rng.normal(0.7, 0.05, n_cells), 0.5, 0.9)
    low = rng.random(n_cells) < LOW_QUALITY_SHARE
    frip[low] = np.clip(rng.normal(0.25, 0.05, int(low.sum())), 0.1, 0.4)
    n_bg = rng.poisson(in_peaks * (1 - frip) / frip)
    bg_cell = np.repeat(np.arange(n_cells, dtype=dtypes["owner"]), n_bg)
    bg_chrom, bg_start, bg_end = _background(rng, len(bg_cell), chrom_sizes, dtypes)

    # barcodes that are not cells
    non_cells = _other_barcodes(rng, n_non_cells, set(barcodes))
    n_nc = rng.poisson(15, len(non_cells)) + 1
    nc_cell = np.repeat(np.arange(n_cells, n_cells + len(non_cells), dtype=dtypes["owner"]), n_nc)
    nc_chrom, nc_start, nc_end = _background(rng, len(nc_cell), chrom_sizes, dtypes)

    all_barcodes = np.concatenate([barcodes, non_cells])
    # memory: every per-fragment array is dropped as soon as it is merged (tens of millions of fragments at
    # 10k cells), and the table keeps chromosome and barcode as codes (categoricals), not Python strings
    owner = np.concatenate([cell, bg_cell, nc_cell])
    del cell, bg_cell, nc_cell
    chrom = np.concatenate([f_chrom, bg_chrom, nc_chrom])
    del f_chrom, bg_chrom, nc_chrom
    start = np.concatenate([f_start, bg_start, nc_start])
    del f_start, bg_start, nc_start
    end = np.concatenate([f_end, bg_end, nc_end])
    del f_end, bg_end, nc_end
    reads = rng.geometric(0.5, len(owner)).astype(np.int16)    # P(more than 60 reads) < 1e-18
    order = np.lexsort((owner, end, start, chrom))
    owner, chrom, start, end, reads = owner[order], chrom[order], start[order], end[order], reads[order]
    del order
    fragments = pd.DataFrame({"chrom": pd.Categorical.from_codes(chrom, chrom_names), "start": start, "end": end,
                              "barcode": pd.Categorical.from_codes(owner, all_barcodes), "count": reads})

    peak_hit = _in_peak(chrom, start, end, peaks, chrom_names)
    n_all = len(all_barcodes)
    total = np.bincount(owner, minlength=n_all)
    metrics = pd.DataFrame({
        "barcode": all_barcodes,
        "gex_barcode": all_barcodes,
        "atac_barcode": all_barcodes,
        "is_cell": (np.arange(n_all) < n_cells).astype(int),
        "excluded_reason": 0,
        "gex_umis_count": np.r_[np.asarray(rna.sum(axis=1)).ravel(), np.zeros(len(non_cells))].astype(np.int64),
        "gex_genes_count": np.r_[np.diff(rna.tocsr().indptr), np.zeros(len(non_cells))].astype(np.int64),
        "atac_raw_reads": np.bincount(owner, weights=reads, minlength=n_all).astype(np.int64),
        "atac_fragments": total,
        "atac_peak_region_fragments": np.bincount(owner[peak_hit], minlength=n_all),
        "atac_peak_region_cutsites": np.r_[np.asarray(atac.sum(axis=1)).ravel(),
                                           np.zeros(len(non_cells))].astype(np.int64),
    }).sort_values("barcode", kind="stable").reset_index(drop=True)
    return fragments, metrics


def _other_barcodes(rng, n, taken):
    return np.array(unique_barcodes(rng, n, taken, oversample=1, extra=4), dtype=object)


WRITE_ROWS = 1_000_000


def write_fragments(fragments: pd.DataFrame, path, index_path, atomic, genome="synthetic"):
    """bgzip + tabix (pysam) ``fragments`` to ``path`` and ``index_path``, both atomically."""
    import pysam

    with atomic(path) as gz_tmp, atomic(index_path) as tbi_tmp:
        plain = gz_tmp + ".txt"
        try:
            with open(plain, "w") as handle:
                handle.write(f"# id=scmvp_simulated\n# reference_genome={genome}\n")
                for first in range(0, len(fragments), WRITE_ROWS):     # bounded text buffers
                    fragments.iloc[first: first + WRITE_ROWS].to_csv(handle, sep="\t", header=False, index=False)
            pysam.tabix_compress(plain, gz_tmp, force=True)
        finally:
            if os.path.exists(plain):
                os.remove(plain)
        pysam.tabix_index(gz_tmp, preset="bed", force=True, index=tbi_tmp)
