"""SHARE-seq, GEO GSE140203: dense RNA table, MatrixMarket ATAC (peaks x cells) + peaks BED + barcodes.

The RNA header spells barcodes with commas (``R1.01,R2.01,R3.06,P1.55``); with ``,`` turned into ``.``
they equal the ATAC barcodes, which is how cells are paired. The optional cell-type table
(``atac.bc, rna.bc, celltype``) is attached to the cells by ``rna.bc``, so ``label_column: celltype``
labels cells without a separate labels file.
"""
from __future__ import annotations

import fnmatch
import os

from ..errors import InputError
from .assemble import make_atac, make_rna
from .files import check_shape, find_file, read_dense_counts, read_mtx, read_names, read_table, require_path


def read_share(path):
    """``path``: the folder holding one SHARE-seq sample's GEO files."""
    require_path(path, "SHARE-seq folder")
    if not os.path.isdir(path):
        raise InputError(path, "expected the folder holding the GSE140203 files of one sample")
    rna_path = find_file(path, ["*.rna.counts.txt.gz", "*.rna.counts.txt"], "SHARE-seq RNA table (*.rna.counts.txt.gz)")
    atac_candidates = [n for n in sorted(os.listdir(path)) if fnmatch.fnmatch(n, "*.counts.txt*")
                       and not fnmatch.fnmatch(n, "*.rna.counts.txt*")]
    if len(atac_candidates) != 1:
        problem = "no" if not atac_candidates else f"several ({', '.join(atac_candidates)})"
        raise InputError(path, f"{problem} SHARE-seq ATAC counts (*.counts.txt.gz, MatrixMarket); keep one sample "
                               f"per folder")
    atac_path = os.path.join(path, atac_candidates[0])
    peaks_path = find_file(path, ["*.peaks.bed.gz", "*.peaks.bed"], "SHARE-seq peaks (*.peaks.bed.gz)")
    barcodes_path = find_file(path, ["*.barcodes.txt.gz", "*.barcodes.txt"], "SHARE-seq ATAC barcodes")
    celltype_path = find_file(path, ["*celltype*.txt.gz", "*celltype*.txt"], "cell-type table", required=False)

    genes, rna_cells, rna_counts = read_dense_counts(rna_path)
    rna_cells = [c.replace(",", ".") for c in rna_cells]
    obs = None
    if celltype_path:
        obs = _cell_types(celltype_path, rna_cells)
    rna = make_rna(rna_counts.T.tocsr(), genes, rna_cells, rna_path, obs=obs)

    barcodes = [b.replace(",", ".") for b in read_names(barcodes_path, "ATAC barcodes file")]
    peaks = read_table(peaks_path, what="peaks BED", empty="is empty: 0 features")
    if peaks.shape[1] < 3:
        raise InputError(peaks_path, f"peaks BED has {peaks.shape[1]} column(s), expected chrom, start, end")
    atac_counts = check_shape(read_mtx(atac_path), len(peaks), len(barcodes), atac_path, peaks_path, barcodes_path)
    names = (peaks[0] + ":" + peaks[1] + "-" + peaks[2]).to_numpy()
    atac = make_atac(atac_counts, names, barcodes, peaks_path)
    return rna, atac, rna_path, barcodes_path


def _cell_types(path, rna_cells):
    table = read_table(path, header=0, what="cell-type table")
    if "rna.bc" not in table.columns:
        raise InputError(path, f"cell-type table has no 'rna.bc' column (columns: {', '.join(table.columns)})")
    table = table.dropna(subset=["rna.bc"]).drop_duplicates("rna.bc").set_index("rna.bc")
    return table.reindex(rna_cells).reset_index(drop=True)
