"""Paired-seq, GEO GSE130399: per-modality folders `*_RNA/` and `*_DNA/` of uncompressed 10x-v2 triplets."""
from __future__ import annotations

import os

from ..errors import InputError
from .assemble import make_atac, make_rna
from .files import find_file, read_triplet, require_path

# The tarballs' layout under their top folder is not documented: look a few levels down.
MAX_DEPTH = 3


def _modality_folders(root, suffix):
    """Folders named ``*<suffix>`` (case-insensitive) at most MAX_DEPTH levels below ``root``."""
    found, level = [], [root]
    for _ in range(MAX_DEPTH):
        children = [os.path.join(d, n) for d in level for n in sorted(os.listdir(d))
                    if os.path.isdir(os.path.join(d, n))]
        found.extend(c for c in children if os.path.basename(c).upper().endswith(suffix))
        level = children
    return found


def _one_folder(root, suffix):
    folders = _modality_folders(root, suffix)
    if not folders:
        raise InputError(root, f"no *{suffix}/ folder found (Paired-seq ships e.g. Cell_Mix_RNA/ and Cell_Mix_DNA/)")
    if len(folders) > 1:
        raise InputError(root, f"several *{suffix}/ folders ({', '.join(folders)}); keep one sample per folder")
    return folders[0]


def _triplet(folder, modality):
    matrix = find_file(folder, ["matrix.mtx", "matrix.mtx.gz"], f"{modality} matrix.mtx")
    features = find_file(folder, ["genes.tsv", "genes.tsv.gz", "features.tsv", "features.tsv.gz"],
                         f"{modality} genes.tsv")
    barcodes = find_file(folder, ["barcodes.tsv", "barcodes.tsv.gz"], f"{modality} barcodes.tsv")
    counts, table, cells = read_triplet(matrix, features, barcodes, modality)
    return counts, table, cells, features, barcodes


def read_pairedseq(path):
    """``path``: the folder holding one sample's ``*_RNA/`` and ``*_DNA/`` folders (the extracted tarball)."""
    require_path(path, "Paired-seq folder")
    if not os.path.isdir(path):
        raise InputError(path, "expected the extracted GSE130399 folder holding *_RNA/ and *_DNA/")
    rna_counts, genes, rna_cells, genes_path, rna_barcodes = _triplet(_one_folder(path, "_RNA"), "RNA")
    atac_counts, bins, atac_cells, bins_path, atac_barcodes = _triplet(_one_folder(path, "_DNA"), "DNA")
    if genes.shape[1] >= 2:
        rna = make_rna(rna_counts, genes[1], rna_cells, genes_path, gene_ids=genes[0])
    else:
        rna = make_rna(rna_counts, genes[0], rna_cells, genes_path)
    atac = make_atac(atac_counts, bins[0], atac_cells, bins_path)
    return rna, atac, rna_barcodes, atac_barcodes
