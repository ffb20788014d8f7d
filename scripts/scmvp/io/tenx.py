"""10x Genomics Multiome (Cell Ranger ARC): `filtered_feature_bc_matrix.h5` or `filtered_feature_bc_matrix/`.

One matrix holds both modalities (CSC, features x barcodes); features are split by ``feature_type``
(``Gene Expression`` / ``Peaks``). Both share the column barcodes, so pairing is by construction. The genes'
``interval`` is kept in ``rna.var["interval"]`` (the TSSs of the fragment QC, see :mod:`scmvp.qc_fragments`);
``atac_fragments.tsv.gz`` and ``per_barcode_metrics.csv`` of the same ``outs/`` are read by rule preprocess.
"""
from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from .assemble import make_atac, make_rna
from .files import check_counts, check_unique, find_file, read_triplet, require_path, to_counts_csr

log = logging.getLogger("scmvp.io")

GENE_EXPRESSION = "Gene Expression"
PEAKS = "Peaks"
H5_NAME = "filtered_feature_bc_matrix.h5"
FOLDER_NAME = "filtered_feature_bc_matrix"


def read_10x_multiome(path):
    """``path``: the .h5, the ``filtered_feature_bc_matrix/`` folder, or an ``outs/`` folder (or its parent)."""
    require_path(path, "10x Multiome input")
    source = locate(path)
    if os.path.isdir(source):
        return read_folder(source)
    return read_h5(source)


def locate(path):
    if os.path.isfile(path):
        return path
    if find_file(path, ["matrix.mtx", "matrix.mtx.gz"], "matrix", required=False):
        return path
    for candidate in (os.path.join(path, H5_NAME), os.path.join(path, FOLDER_NAME),
                      os.path.join(path, "outs", H5_NAME), os.path.join(path, "outs", FOLDER_NAME)):
        if os.path.exists(candidate):
            return candidate
    raise InputError(path, f"no {H5_NAME} or {FOLDER_NAME}/ found (give the .h5, the folder, or Cell Ranger "
                           f"ARC's outs/ folder)")


def _strings(dataset) -> np.ndarray:
    values = dataset[()]
    values = np.atleast_1d(values)
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def read_h5(path):
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError:
        is_h5 = False
    if not is_h5:
        raise InputError(path, f"not an HDF5 file (expected Cell Ranger ARC's {H5_NAME})")
    try:
        with h5py.File(path, "r") as handle:
            if "matrix" not in handle:
                raise InputError(path, "no 'matrix' group: not a Cell Ranger feature-barcode matrix .h5 "
                                       "(Cell Ranger >= 3 / ARC layout)")
            group = handle["matrix"]
            needed = ["barcodes", "data", "indices", "indptr", "shape", "features"]
            missing = [k for k in needed if k not in group]
            if not missing:
                missing = [f"features/{k}" for k in ("id", "name", "feature_type") if k not in group["features"]]
            if missing:
                raise InputError(path, f"matrix group lacks {', '.join(missing)}")
            barcodes = _strings(group["barcodes"])
            data, indices, indptr = group["data"][()], group["indices"][()], group["indptr"][()]
            shape = tuple(int(x) for x in group["shape"][()])
            features = pd.DataFrame({key: _strings(group["features"][key]) for key in ("id", "name", "feature_type")})
            if "interval" in group["features"]:
                features["interval"] = _strings(group["features"]["interval"])
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise InputError(path, f"cannot read the 10x matrix ({type(err).__name__}: {err})") from None
    if len(shape) != 2 or shape != (len(features), len(barcodes)):
        raise InputError(path, f"matrix/shape is {list(shape)} but there are {len(features)} features and "
                               f"{len(barcodes)} barcodes")
    if len(indptr) != shape[1] + 1 or len(data) != len(indices) or (len(indptr) and indptr[-1] != len(data)):
        raise InputError(path, f"inconsistent CSC arrays: {len(indptr)} indptr for {shape[1]} barcodes, "
                               f"{len(data)} data, {len(indices)} indices")
    if len(indices) and (indices.min() < 0 or indices.max() >= shape[0]):
        raise InputError(path, f"matrix/indices out of range for {shape[0]} features")
    check_counts(data, path)
    matrix = sp.csc_matrix((data, indices, indptr), shape=shape)
    return _split(to_counts_csr(matrix.T), features, barcodes, path, peak_name_column="interval")


def read_folder(folder):
    matrix_path = find_file(folder, ["matrix.mtx.gz", "matrix.mtx"], "matrix")
    features_path = find_file(folder, ["features.tsv.gz", "features.tsv"], "features file")
    barcodes_path = find_file(folder, ["barcodes.tsv.gz", "barcodes.tsv"], "barcodes file")
    matrix, table, barcodes = read_triplet(matrix_path, features_path, barcodes_path, "10x")
    if table.shape[1] < 3:
        raise InputError(features_path, f"features file has {table.shape[1]} column(s); Cell Ranger ARC writes "
                                        f"id, name, feature_type, chrom, start, end")
    features = pd.DataFrame({"id": table[0], "name": table[1], "feature_type": table[2]})
    if table.shape[1] >= 6:
        located = table[3].notna() & table[4].notna() & table[5].notna()
        features["interval"] = np.where(located, table[3] + ":" + table[4] + "-" + table[5], None)
    return _split(matrix, features, barcodes, features_path, peak_name_column="interval")


def _split(matrix, features, barcodes, path, peak_name_column):
    """Cells x features matrix + feature table -> (rna, atac) AnnData."""
    check_unique(barcodes, path)
    kinds = features["feature_type"].to_numpy()
    genes, peaks = kinds == GENE_EXPRESSION, kinds == PEAKS
    if not genes.any():
        raise InputError(path, f"no '{GENE_EXPRESSION}' features (feature types: {', '.join(sorted(set(kinds)))})")
    if not peaks.any():
        raise InputError(path, f"no '{PEAKS}' features (feature types: {', '.join(sorted(set(kinds)))}): "
                               f"not a Multiome (ARC) matrix")
    other = ~(genes | peaks)
    if other.any():
        log.info("%s: ignoring %d features of other types (%s)", path, int(other.sum()),
                 ", ".join(sorted(set(kinds[other]))))
    gene_table = features[genes]
    rna = make_rna(matrix[:, np.flatnonzero(genes)], gene_table["name"], barcodes, path, gene_ids=gene_table["id"])
    if peak_name_column in gene_table.columns:
        # the genes' coordinates (chrom:start-end): the TSSs of the fragment QC without a genes reference
        rna.var["interval"] = gene_table[peak_name_column].fillna("NA").astype(str).to_numpy()
    peak_table = features[peaks]
    names = peak_table["id"]
    if peak_name_column in peak_table.columns:
        interval = peak_table[peak_name_column]
        usable = interval.notna() & ~interval.isin(["NA", ""])
        names = interval.where(usable, peak_table["id"])
    atac = make_atac(matrix[:, np.flatnonzero(peaks)], names.to_numpy(), barcodes, path)
    return rna, atac, path, path
