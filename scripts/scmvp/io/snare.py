"""SNARE-seq, GEO GSE126074: the cell-line mixture's dense tables or the brain samples' mtx triplets.

RNA and chromatin hold the same barcodes in a different order: cells are paired by barcode string.
"""
from __future__ import annotations

import os

from ..errors import InputError
from .assemble import make_atac, make_rna
from .files import find_file, read_dense_counts, read_triplet, require_path

# `_cDNA.counts.tsv` is a misspelling found in one copy of the scMVP loader; accepted as well.
DENSE_RNA = ["*_cDNA_counts.tsv.gz", "*_cDNA_counts.tsv", "*_cDNA.counts.tsv.gz", "*_cDNA.counts.tsv"]
DENSE_ATAC = ["*_chromatin_counts.tsv.gz", "*_chromatin_counts.tsv", "*_chromatin.counts.tsv.gz",
              "*_chromatin.counts.tsv"]


def _triplet_patterns(prefix, suffix):
    return [f"*_{prefix}.{suffix}.gz", f"*_{prefix}.{suffix}"]


def read_snare(path):
    """``path``: the folder holding the GEO files of one SNARE-seq sample."""
    require_path(path, "SNARE-seq folder")
    if not os.path.isdir(path):
        raise InputError(path, "expected the folder holding the GSE126074 files of one sample")
    dense_rna = find_file(path, DENSE_RNA, "SNARE-seq cDNA count table", required=False)
    if dense_rna:
        dense_atac = find_file(path, DENSE_ATAC, "SNARE-seq chromatin count table")
        genes, rna_cells, rna_counts = read_dense_counts(dense_rna)
        peaks, atac_cells, atac_counts = read_dense_counts(dense_atac)
        rna = make_rna(rna_counts.T.tocsr(), genes, rna_cells, dense_rna)
        atac = make_atac(atac_counts.T.tocsr(), peaks, atac_cells, dense_atac)
        return rna, atac, dense_rna, dense_atac
    rna_mtx = find_file(path, _triplet_patterns("cDNA", "counts.mtx"), "SNARE-seq cDNA counts (*_cDNA_counts.tsv.gz "
                                                                       "or *_cDNA.counts.mtx.gz)")
    rna_genes = find_file(path, _triplet_patterns("cDNA", "genes.tsv"), "SNARE-seq cDNA genes file")
    rna_barcodes = find_file(path, _triplet_patterns("cDNA", "barcodes.tsv"), "SNARE-seq cDNA barcodes file")
    atac_mtx = find_file(path, _triplet_patterns("chromatin", "counts.mtx"), "SNARE-seq chromatin counts")
    atac_peaks = find_file(path, _triplet_patterns("chromatin", "peaks.tsv"), "SNARE-seq chromatin peaks file")
    atac_barcodes = find_file(path, _triplet_patterns("chromatin", "barcodes.tsv"), "SNARE-seq chromatin barcodes file")
    rna_counts, genes, rna_cells = read_triplet(rna_mtx, rna_genes, rna_barcodes, "RNA")
    atac_counts, peaks, atac_cells = read_triplet(atac_mtx, atac_peaks, atac_barcodes, "ATAC")
    rna = make_rna(rna_counts, genes[0], rna_cells, rna_mtx)
    atac = make_atac(atac_counts, peaks[0], atac_cells, atac_peaks)
    return rna, atac, rna_barcodes, atac_barcodes
