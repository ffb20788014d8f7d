"""Readers of paired scRNA + scATAC data in each technology's published layout -> the ingested MuData.

``read_dataset(technology, path, labels=None, label_column=None)`` returns a MuData following the
``ingested.h5mu`` contract (see :func:`validate_ingested`): modalities ``rna`` and ``atac`` with the same
cells in the same order, raw counts as CSR float32, gene symbols as RNA var names (ids in
``var["gene_id"]``), peaks named ``chrom:start-end`` with ``chrom/start/end`` columns, and ``obs["label"]``
when labels are given. Every problem with the input raises :class:`scmvp.errors.InputError` naming the
file and the problem.
"""
from __future__ import annotations

import logging

from ..errors import InputError
from .assemble import (attach_labels, cell_annotation, labels_from_table, pair, read_labels, to_mudata)
from .h5mu import read_h5mu_input
from .mtx import read_mtx_folders
from .pairedseq import read_pairedseq
from .peaks import parse_peak_names
from .scicar import read_scicar
from .share import read_share
from .snare import read_snare
from .tenx import read_10x_multiome
from .validate import validate_ingested

log = logging.getLogger("scmvp.io")

READERS = {
    "10x_multiome": read_10x_multiome,
    "snare": read_snare,
    "scicar": read_scicar,
    "pairedseq": read_pairedseq,
    "share": read_share,
    "mtx": read_mtx_folders,
}
TECHNOLOGIES = (*READERS, "h5mu")

__all__ = ["read_dataset", "validate_ingested", "parse_peak_names", "read_labels", "TECHNOLOGIES"]


def read_dataset(technology: str, path, labels=None, label_column=None):
    """Read ``path`` (a file or folder in ``technology``'s layout) into the ingested MuData.

    Labels: from the tsv ``labels`` (first column the barcode; label in ``label_column``, by default the
    second column); without a file, from the cell annotation named ``label_column`` when the technology
    ships one (sci-CAR cell tables, the SHARE-seq cell-type table), or from ``obs["label"]`` of an .h5mu.
    Cells without a label are dropped (with a warning).
    """
    if technology not in TECHNOLOGIES:
        raise InputError(path, f"unknown technology {technology!r} (known: {', '.join(TECHNOLOGIES)})")
    label_table = read_labels(labels, label_column) if labels is not None else None  # fail before the big reads
    if technology == "h5mu":
        rna, atac, rna_source, atac_source, stored_labels = read_h5mu_input(path)
    else:
        rna, atac, rna_source, atac_source = READERS[technology](path)
        stored_labels = None
    rna, atac = pair(rna, atac, rna_source, atac_source)
    mdata = to_mudata(rna, atac)
    log.info("%s (%s): %d paired cells, %d genes, %d peaks", path, technology, mdata.n_obs, rna.n_vars, atac.n_vars)
    if label_table is not None:
        mdata = attach_labels(mdata, labels_from_table(label_table, mdata.obs_names, label_column, labels), labels)
    elif label_column is not None:
        annotation = cell_annotation(mdata, label_column)
        if annotation is None:
            raise InputError(path, f"label_column {label_column!r} is set without a labels file, and the dataset has "
                                   f"no such cell annotation (annotations: "
                                   f"{', '.join(mdata.obs.columns) or 'none'})")
        mdata = attach_labels(mdata, annotation.dropna().astype(str), path)
    elif stored_labels is not None and len(stored_labels):
        mdata = attach_labels(mdata, stored_labels, path)
    return validate_ingested(mdata, path)
