"""The generic layout: a folder with `rna/` and `atac/`, each an mtx triplet (features x cells)."""
from __future__ import annotations

import os

from ..errors import InputError
from .assemble import make_atac, make_rna
from .files import find_file, read_triplet, require_path


def _triplet(folder, modality):
    require_path(folder, f"{modality} folder")
    matrix = find_file(folder, ["matrix.mtx.gz", "matrix.mtx"], f"{modality} matrix.mtx[.gz]")
    features = find_file(folder, ["features.tsv.gz", "features.tsv"], f"{modality} features.tsv[.gz]")
    barcodes = find_file(folder, ["barcodes.tsv.gz", "barcodes.tsv"], f"{modality} barcodes.tsv[.gz]")
    counts, table, cells = read_triplet(matrix, features, barcodes, modality)
    return counts, table, cells, features, barcodes


def _looks_like_gene_ids(values) -> bool:
    return bool(len(values)) and values.str.match(r"^ENS[A-Z]*G\d+").mean() > 0.9


def read_mtx_folders(path):
    """``path``: a folder with ``rna/`` and ``atac/`` subfolders.

    The features' first column is the name. For RNA, a 10x-style table (Ensembl id, symbol, ...) is
    recognised: the symbol becomes the name and the id goes to ``var["gene_id"]``.
    """
    require_path(path, "mtx folder")
    if not os.path.isdir(path):
        raise InputError(path, "expected a folder with rna/ and atac/ subfolders")
    rna_counts, genes, rna_cells, genes_path, rna_barcodes = _triplet(os.path.join(path, "rna"), "RNA")
    atac_counts, peaks, atac_cells, peaks_path, atac_barcodes = _triplet(os.path.join(path, "atac"), "ATAC")
    if genes.shape[1] >= 2 and _looks_like_gene_ids(genes[0].astype(str)):
        rna = make_rna(rna_counts, genes[1], rna_cells, genes_path, gene_ids=genes[0])
    else:
        rna = make_rna(rna_counts, genes[0], rna_cells, genes_path)
    atac = make_atac(atac_counts, peaks[0], atac_cells, peaks_path)
    return rna, atac, rna_barcodes, atac_barcodes
