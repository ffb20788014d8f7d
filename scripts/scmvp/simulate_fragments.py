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


def _background(rng, n, chrom_size, dtypes):
    """``n`` fragments uniform over one chromosome of ``chrom_size`` bp: (start, end)."""
    size = _lengths(rng, n, BACKGROUND_LENGTH_MIX)
    start = (rng.random(n) * (chrom_size - 600)).astype(np.int64)
    return start.astype(dtypes["position"]), (start + size).astype(dtypes["position"])


def _in_peak(start, end, peaks):
    """Whether each fragment overlaps one of ``peaks`` (all on the fragments' chromosome, sorted, disjoint)."""
    p_start, p_end = peaks["start"].to_numpy(), peaks["end"].to_numpy()
    j = np.searchsorted(p_start, end, side="left") - 1     # last peak starting before the fragment ends
    hit = np.zeros(len(start), dtype=bool)
    ok = j >= 0
    hit[ok] = p_end[j[ok]] > start[ok]
    return hit


def _peak_fragments(rng, counts, peaks, genes, dtypes):
    """(cell, start, end) of the fragments in ``peaks`` (all on one chromosome) from their cut-site ``counts``
    (cells x those peaks): one per two cut sites, rounded up; promoter fragments centred near the gene's TSS."""
    coo = _half_up(counts).tocoo()
    cell = np.repeat(coo.row.astype(dtypes["owner"]), coo.data)
    peak = np.repeat(coo.col.astype(np.int64), coo.data)
    del coo
    p_start, p_end = peaks["start"].to_numpy(np.int64)[peak], peaks["end"].to_numpy(np.int64)[peak]
    size = _lengths(rng, len(peak), PEAK_LENGTH_MIX)
    mid = p_start + (rng.random(len(peak)) * (p_end - p_start)).astype(np.int64)
    promoter = peaks["kind"].to_numpy()[peak] == "promoter"
    tss = genes["tss"].to_numpy(np.int64)[np.maximum(peaks["origin_gene"].to_numpy()[peak], 0)]
    del peak
    near_tss = np.rint(rng.normal(tss, TSS_SD)).astype(np.int64)
    del tss
    mid = np.where(promoter, np.clip(near_tss, p_start, p_end - 1), mid)
    del near_tss, promoter, p_start, p_end
    f_start = np.maximum(0, mid - size // 2)
    return cell, f_start.astype(dtypes["position"]), (f_start + size).astype(dtypes["position"])


def _compact_dtypes(n_barcodes: int, chrom_sizes) -> dict:
    """The smallest integer types of the per-fragment columns (tens of millions of rows at 10k cells: int32
    positions and barcode codes take 10 bytes a fragment instead of 24)."""
    return {"owner": np.min_scalar_type(-n_barcodes),
            "position": np.min_scalar_type(-(max(chrom_sizes.values()) + 1000))}


class SimulatedFragments:
    """The fragments of the cells ``barcodes`` with cut-site counts ``atac`` (cells x ``peaks``; RNA counts
    ``rna`` for the UMI columns; ``genes`` gives the TSS of each promoter peak's gene) and the per-barcode metrics.

    Drawn one chromosome at a time (:meth:`chunks`, in the genome's order, each sorted by start): memory is
    bounded by the largest chromosome's fragments, not the whole file's (~236M fragments at 50k cells x 100k
    peaks). :meth:`metrics` is complete once every chunk has been drawn. Same arguments -> same fragments.
    """

    def __init__(self, barcodes, atac, rna, peaks, genes, chrom_sizes, seed: int):
        self.rng = np.random.default_rng([seed, 7])
        self.atac, self.rna, self.peaks, self.genes = atac.tocsr(), rna, peaks, genes
        self.chrom_names = list(chrom_sizes)
        self.chrom_sizes = chrom_sizes
        n_cells = self.n_cells = len(barcodes)
        rng = self.rng
        non_cells = _other_barcodes(rng, int(round(NON_CELL_SHARE * n_cells)), set(barcodes))
        self.barcodes = np.concatenate([barcodes, non_cells])
        self.dtypes = _compact_dtypes(len(self.barcodes), chrom_sizes)
        # background: ~30% of a cell's fragments (most of them in low-quality cells), spread over the genome by
        # chromosome length; barcodes that are not cells get a few background fragments each
        in_peaks = np.asarray(_half_up(self.atac).sum(axis=1)).ravel()
        frip = np.clip(rng.normal(0.7, 0.05, n_cells), 0.5, 0.9)
        low = rng.random(n_cells) < LOW_QUALITY_SHARE
        frip[low] = np.clip(rng.normal(0.25, 0.05, int(low.sum())), 0.1, 0.4)
        n_background = np.r_[rng.poisson(in_peaks * (1 - frip) / frip), rng.poisson(15, len(non_cells)) + 1]
        lengths = np.array(list(chrom_sizes.values()), dtype=float)
        self.background = rng.multinomial(n_background, lengths / lengths.sum())     # barcodes x chromosomes
        n_all = len(self.barcodes)
        self.total = np.zeros(n_all, dtype=np.int64)
        self.in_peak = np.zeros(n_all, dtype=np.int64)
        self.reads = np.zeros(n_all, dtype=np.int64)
        self.drawn = 0

    def chunks(self):
        """One DataFrame (chrom, start, end, barcode, count; sorted by start) per chromosome."""
        rng, dtypes, peaks = self.rng, self.dtypes, self.peaks
        peak_chrom = peaks["chrom"].to_numpy()
        for c, name in enumerate(self.chrom_names):
            on = np.flatnonzero(peak_chrom == name)
            here = peaks.iloc[on]
            cell, f_start, f_end = _peak_fragments(rng, self.atac[:, on], here, self.genes, dtypes)
            n_bg = self.background[:, c]
            bg_owner = np.repeat(np.arange(len(n_bg), dtype=dtypes["owner"]), n_bg)
            bg_start, bg_end = _background(rng, len(bg_owner), self.chrom_sizes[name], dtypes)
            owner = np.concatenate([cell, bg_owner])
            del cell, bg_owner
            start = np.concatenate([f_start, bg_start])
            del f_start, bg_start
            end = np.concatenate([f_end, bg_end])
            del f_end, bg_end
            reads = rng.geometric(0.5, len(owner)).astype(np.int16)    # P(more than 60 reads) < 1e-18
            order = np.lexsort((owner, end, start))
            owner, start, end, reads = owner[order], start[order], end[order], reads[order]
            del order
            self.total += np.bincount(owner, minlength=len(self.total))
            self.reads += np.bincount(owner, weights=reads, minlength=len(self.reads)).astype(np.int64)
            hit = _in_peak(start, end, here)
            self.in_peak += np.bincount(owner[hit], minlength=len(self.in_peak))
            del hit
            self.drawn += 1
            yield pd.DataFrame({"chrom": pd.Categorical.from_codes(np.full(len(owner), c, dtype=np.int8),
                                                                   self.chrom_names),
                                "start": start, "end": end,
                                "barcode": pd.Categorical.from_codes(owner, self.barcodes), "count": reads})

    def metrics(self) -> pd.DataFrame:
        """ARC's per_barcode_metrics.csv columns, counted from the drawn fragments."""
        if self.drawn != len(self.chrom_names):
            raise RuntimeError("the per-barcode metrics need every chromosome's fragments drawn first")
        n_all, n_cells = len(self.barcodes), self.n_cells
        n_other = n_all - n_cells
        return pd.DataFrame({
            "barcode": self.barcodes,
            "gex_barcode": self.barcodes,
            "atac_barcode": self.barcodes,
            "is_cell": (np.arange(n_all) < n_cells).astype(int),
            "excluded_reason": 0,
            "gex_umis_count": np.r_[np.asarray(self.rna.sum(axis=1)).ravel(), np.zeros(n_other)].astype(np.int64),
            "gex_genes_count": np.r_[np.diff(self.rna.tocsr().indptr), np.zeros(n_other)].astype(np.int64),
            "atac_raw_reads": self.reads,
            "atac_fragments": self.total,
            "atac_peak_region_fragments": self.in_peak,
            "atac_peak_region_cutsites": np.r_[np.asarray(self.atac.sum(axis=1)).ravel(),
                                               np.zeros(n_other)].astype(np.int64),
        }).sort_values("barcode", kind="stable").reset_index(drop=True)


def _half_up(counts):
    """Fragments per (cell, peak) of CSR cut-site ``counts``: one per two cut sites, rounded up. Shares the
    sparsity structure of ``counts`` and keeps integer data in its own type (at 50k cells x 100k peaks a full
    copy in int64 was ~3.6 GB on top of the simulated data)."""
    import scipy.sparse as sp

    data = counts.data if counts.data.dtype.kind in "iu" else counts.data.astype(np.int64)
    return sp.csr_matrix(((data + 1) // 2, counts.indices, counts.indptr), shape=counts.shape)


def _other_barcodes(rng, n, taken):
    return np.array(unique_barcodes(rng, n, taken, oversample=1, extra=4), dtype=object)


WRITE_ROWS = 1_000_000


def write_fragments(chunks, path, index_path, atomic, genome="synthetic"):
    """bgzip + tabix (pysam) the fragment DataFrames ``chunks`` (in file order) to ``path`` and ``index_path``,
    both atomically."""
    import pysam

    with atomic(path) as gz_tmp, atomic(index_path) as tbi_tmp:
        plain = gz_tmp + ".txt"
        try:
            with open(plain, "w") as handle:
                handle.write(f"# id=scmvp_simulated\n# reference_genome={genome}\n")
                for fragments in chunks:
                    for first in range(0, len(fragments), WRITE_ROWS):     # bounded text buffers
                        fragments.iloc[first: first + WRITE_ROWS].to_csv(handle, sep="\t", header=False,
                                                                          index=False)
            pysam.tabix_compress(plain, gz_tmp, force=True)
        finally:
            if os.path.exists(plain):
                os.remove(plain)
        pysam.tabix_index(gz_tmp, preset="bed", force=True, index=tbi_tmp)


def write_simulated_fragments(barcodes, atac, rna, peaks, genes, chrom_sizes, seed: int, path, index_path, atomic,
                              genome="synthetic") -> pd.DataFrame:
    """Draw the fragments (:class:`SimulatedFragments`), write them to ``path`` (+ ``index_path``; ``path``
    None: drawn for the metrics only) and return the per-barcode metrics."""
    fragments = SimulatedFragments(barcodes, atac, rna, peaks, genes, chrom_sizes, seed)
    if path:
        write_fragments(fragments.chunks(), path, index_path, atomic, genome)
    else:
        for _ in fragments.chunks():
            pass
    return fragments.metrics()
