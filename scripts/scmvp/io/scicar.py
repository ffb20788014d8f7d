"""sci-CAR, GEO GSE117089: per-modality cell / feature CSV tables and MatrixMarket counts (features x cells).

RNA and ATAC cells are paired on identical ``sample`` strings; the cell tables' other columns are kept
(global obs ``rna_<column>`` / ``atac_<column>``), so e.g. ``label_column: treatment_time`` labels cells
without a separate labels file.
"""
from __future__ import annotations

import os

import pandas as pd

from ..errors import InputError
from .assemble import make_atac, make_rna
from .files import check_shape, check_unique, find_file, read_mtx, read_table, require_path


def _patterns(stem):
    return [f"{stem}.txt.gz", f"{stem}.txt"]


def _cell_table(path, modality):
    table = read_table(path, sep=",", header=0, what=f"{modality} cell table", empty="is empty: 0 cells")
    id_column = "sample" if "sample" in table.columns else table.columns[0]
    if table[id_column].isna().any():
        raise InputError(path, f"{modality} cell table has cells without a {id_column!r}")
    check_unique(table[id_column], path, what=f"cell ids ({id_column!r})")
    return table[id_column].tolist(), table.drop(columns=[id_column]).reset_index(drop=True)


def _column(table, names, fallback):
    for name in names:
        if name in table.columns:
            return table[name]
    return table[fallback]


def read_scicar(path):
    """``path``: the folder holding one sample's six GEO files (``.txt`` or ``.txt.gz``)."""
    require_path(path, "sci-CAR folder")
    if not os.path.isdir(path):
        raise InputError(path, "expected the folder holding the GSE117089 files of one sample")
    rna_cells_path = find_file(path, _patterns("*RNA*_cell"), "sci-CAR RNA cell table (*_RNA_*_cell.txt)")
    genes_path = find_file(path, _patterns("*_gene"), "sci-CAR gene table (*_gene.txt)")
    rna_counts_path = find_file(path, _patterns("*_gene_count"), "sci-CAR gene counts (*_gene_count.txt)")
    atac_cells_path = find_file(path, _patterns("*ATAC*_cell"), "sci-CAR ATAC cell table (*_ATAC_*_cell.txt)")
    peaks_path = find_file(path, _patterns("*_peak"), "sci-CAR peak table (*_peak.txt)")
    atac_counts_path = find_file(path, _patterns("*_peak_count"), "sci-CAR peak counts (*_peak_count.txt)")

    rna_cells, rna_obs = _cell_table(rna_cells_path, "RNA")
    genes = read_table(genes_path, sep=",", header=0, what="gene table", empty="is empty: 0 features")
    rna_counts = check_shape(read_mtx(rna_counts_path), len(genes), len(rna_cells), rna_counts_path, genes_path,
                             rna_cells_path)
    gene_ids = _column(genes, ["gene_id"], genes.columns[0])
    symbols = _column(genes, ["gene_short_name", "gene_name", "symbol"], gene_ids.name)
    rna = make_rna(rna_counts, symbols.fillna(gene_ids), rna_cells, rna_counts_path, gene_ids=gene_ids,
                   obs=rna_obs)

    atac_cells, atac_obs = _cell_table(atac_cells_path, "ATAC")
    peaks = read_table(peaks_path, sep=",", header=0, what="peak table", empty="is empty: 0 features")
    atac_counts = check_shape(read_mtx(atac_counts_path), len(peaks), len(atac_cells), atac_counts_path,
                              peaks_path, atac_cells_path)
    if "peak" in peaks.columns:
        names = peaks["peak"]
    elif {"chr", "start", "end"} <= set(peaks.columns):
        names = peaks["chr"] + "-" + peaks["start"] + "-" + peaks["end"]
    else:
        names = peaks[peaks.columns[0]]
    atac = make_atac(atac_counts, pd.Series(names).to_numpy(), atac_cells, peaks_path, obs=atac_obs)
    return rna, atac, rna_cells_path, atac_cells_path
