"""Low-level readers shared by the technology readers: text/gzip detection, file discovery in a folder,
MatrixMarket and dense count tables, and the checks every count matrix gets.

Every problem is raised as :class:`InputError` naming the file, so a user sees which file to fix.
"""
from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import logging
import os
import zlib

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from ..errors import InputError

log = logging.getLogger("scmvp.io")

GZIP_MAGIC = b"\x1f\x8b"
# Rows of a dense count table converted to sparse at a time (SHARE-seq RNA tables are genes x 30k+ cells).
DENSE_CHUNK_ROWS = 500


def require_path(path, what: str):
    if path is None or not os.path.exists(path):
        raise InputError(path, f"{what} does not exist")
    return os.fspath(path)


def is_gzip(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_binary(path):
    """The file's bytes, decompressed when it is gzip (detected by content, not by the name)."""
    require_path(path, "file")
    if os.path.isdir(path):
        raise InputError(path, "is a folder, expected a file")
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def open_text(path):
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", newline="")


def _read_errors():
    return (UnicodeDecodeError, EOFError, OSError, zlib.error, pd.errors.ParserError, ValueError)


def read_table(path, sep="\t", header=None, what="table", empty="is empty") -> pd.DataFrame:
    """A small delimited text table, every column as str."""
    try:
        with open_text(path) as handle:
            # tsv fields are never quoted in these formats; CSV tables (sci-CAR) may be
            quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
            table = pd.read_csv(handle, sep=sep, header=header, dtype=str, quoting=quoting)
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError(path, f"{what} {empty}") from None
    except _read_errors() as err:
        raise InputError(path, f"cannot be read as a {'tab' if sep == chr(9) else 'comma'}-separated {what} "
                               f"({type(err).__name__}: {err})") from None
    if table.shape[0] == 0:
        raise InputError(path, f"{what} {empty}")
    return table


def read_names(path, what: str, column: int = 0) -> list:
    """One column of a headerless tsv (barcodes, features) as a list of str."""
    empty = "is empty: 0 cells" if "barcode" in what else "is empty: 0 features"
    table = read_table(path, what=what, empty=empty)
    if table.shape[1] <= column:
        raise InputError(path, f"{what} has {table.shape[1]} column(s), expected at least {column + 1}")
    names = table[column]
    if names.isna().any():
        raise InputError(path, f"{what} has empty names (line {int(np.flatnonzero(names.isna())[0]) + 1})")
    return names.tolist()


def find_file(folder, patterns, what: str, required: bool = True):
    """The single file (or folder) in ``folder`` whose name matches one of ``patterns`` (fnmatch)."""
    names = sorted(os.listdir(folder))
    hits = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
    if not hits:
        if required:
            raise InputError(folder, f"no {what} found (expected a name like {' or '.join(patterns)})")
        return None
    if len(hits) > 1:
        raise InputError(folder, f"several files could be the {what} ({', '.join(hits)}); keep one dataset "
                                 f"per folder")
    return os.path.join(folder, hits[0])


def check_counts(matrix, path, what: str = "counts"):
    """Raise unless ``matrix`` holds finite, non-negative, integer-valued numbers."""
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise InputError(path, f"{what} are not numbers (dtype {values.dtype})")
    if np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.bool_):
        if values.size and values.min() < 0:
            raise InputError(path, f"negative {what} (min {values.min()}): expected raw counts")
        return
    if not np.all(np.isfinite(values)):
        kind = "NaN" if np.isnan(values).any() else "infinite"
        raise InputError(path, f"{kind} values in {what} ({int((~np.isfinite(values)).sum())} entries)")
    if values.size and values.min() < 0:
        raise InputError(path, f"negative {what} (min {values.min():g}): expected raw counts")
    fractional = values != np.round(values)
    if fractional.any():
        raise InputError(path, f"non-integer {what} (e.g. {values[fractional][0]:g}; {int(fractional.sum())} "
                               f"entries): expected raw counts, not normalised values")


def to_counts_csr(matrix) -> sp.csr_matrix:
    """CSR float32 with duplicates summed and explicit zeros removed."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def read_mtx(path) -> sp.csr_matrix:
    """A MatrixMarket file (gzip or not), checked for count values; features x cells as stored."""
    try:
        with open_binary(path) as handle:
            first = handle.readline(200)
    except (EOFError, OSError, zlib.error) as err:
        raise InputError(path, f"cannot be read ({type(err).__name__}: {err})") from None
    if not first.lower().startswith(b"%%matrixmarket"):
        raise InputError(path, "not a MatrixMarket file (first line does not start with %%MatrixMarket)")
    try:
        with open_binary(path) as handle:
            matrix = scipy.io.mmread(handle)
    except Exception as err:  # noqa: BLE001 - any parser failure means a malformed file
        raise InputError(path, f"malformed MatrixMarket file ({type(err).__name__}: {err})") from None
    matrix = sp.coo_matrix(matrix)
    check_counts(matrix, path)
    return to_counts_csr(matrix)


def read_dense_counts(path, sep="\t"):
    """A dense features x cells count table -> (feature names, cell barcodes, CSR features x cells).

    Accepts both header shapes seen in GEO tables: only the barcodes (R ``write.table``: one field fewer
    than the data rows) or a corner field first (e.g. ``gene``). Read in row chunks, so a genes x 30k-cell
    table never sits in memory as a dense array.
    """
    try:
        with open_text(path) as handle:
            header = handle.readline().rstrip("\r\n").split(sep)
            first_row = handle.readline().rstrip("\r\n").split(sep)
    except (UnicodeDecodeError, EOFError, OSError, zlib.error) as err:
        raise InputError(path, f"not a text count table ({type(err).__name__}: {err})") from None
    if header == [""] or first_row == [""]:
        raise InputError(path, "empty count table (no header or no data rows)")
    if len(first_row) == len(header) + 1:
        barcodes = header
    elif len(first_row) == len(header):
        barcodes = header[1:]
    else:
        sep_name = "tab" if sep == "\t" else repr(sep)
        raise InputError(path, f"header has {len(header)} {sep_name}-separated fields but the first data row "
                               f"has {len(first_row)}: not a features x cells count table")
    if not barcodes:
        raise InputError(path, "count table has no cell columns")
    features, blocks = [], []
    try:
        with open_text(path) as handle:
            reader = pd.read_csv(handle, sep=sep, header=None, skiprows=1, index_col=0,
                                 chunksize=DENSE_CHUNK_ROWS, quoting=csv.QUOTE_NONE, low_memory=False)
            for chunk in reader:
                if chunk.shape[1] != len(barcodes):
                    raise InputError(path, f"rows have {chunk.shape[1]} values but the header names "
                                           f"{len(barcodes)} cells")
                non_numeric = [c for c in chunk.columns if not pd.api.types.is_numeric_dtype(chunk[c])]
                if non_numeric:
                    column = chunk[non_numeric[0]]
                    bad = column[pd.to_numeric(column, errors="coerce").isna() & column.notna()]
                    raise InputError(path, f"non-numeric count {bad.iloc[0]!r} in row {bad.index[0]!r}, "
                                           f"column {barcodes[non_numeric[0] - 1]!r}")
                missing = chunk.isna().any(axis=1)
                if missing.any():
                    row = chunk.index[missing.to_numpy()][0]
                    raise InputError(path, f"missing or NaN counts in row {row!r} (a short row, an empty field or "
                                           f"NaN; {int(chunk.isna().to_numpy().sum())} entries in this block)")
                values = chunk.to_numpy()
                check_counts(values, path)
                features.extend(chunk.index.astype(str))
                blocks.append(sp.csr_matrix(values.astype(np.float32)))
    except InputError:
        raise
    except _read_errors() as err:
        raise InputError(path, f"malformed count table ({type(err).__name__}: {err})") from None
    return features, list(map(str, barcodes)), to_counts_csr(sp.vstack(blocks))


def check_shape(matrix, n_features, n_cells, matrix_path, features_path, barcodes_path):
    """Return ``matrix`` as cells x features, given it is stored features x cells.

    A matrix written cells x features (as some tools do) is accepted when the orientation is unambiguous.
    """
    if matrix.shape == (n_features, n_cells):
        return matrix.T.tocsr()
    if matrix.shape == (n_cells, n_features) and n_cells != n_features:
        log.warning("%s is cells x features (%d x %d); reading it transposed", matrix_path, *matrix.shape)
        return matrix.tocsr()
    raise InputError(matrix_path, f"matrix is {matrix.shape[0]} x {matrix.shape[1]} but {features_path} lists "
                                  f"{n_features} features and {barcodes_path} {n_cells} barcodes "
                                  f"(expected features x cells)")


def check_unique(names, path, what: str = "barcodes"):
    index = pd.Index(names)
    if index.has_duplicates:
        dup = index[index.duplicated()].unique()
        raise InputError(path, f"duplicated {what}: {', '.join(map(repr, dup[:5]))} ({len(dup)} in total)")


def check_not_empty(n_cells, n_features, path, modality: str):
    if n_cells == 0:
        raise InputError(path, f"empty {modality} matrix: 0 cells")
    if n_features == 0:
        raise InputError(path, f"empty {modality} matrix: 0 features")


def read_triplet(matrix_path, features_path, barcodes_path, modality: str):
    """An mtx triplet (features x cells) -> (CSR cells x features, features table, barcodes)."""
    for path, what in ((matrix_path, "matrix"), (features_path, "features file"), (barcodes_path, "barcodes file")):
        require_path(path, f"{modality} {what}")
    barcodes = read_names(barcodes_path, f"{modality} barcodes file")
    check_unique(barcodes, barcodes_path)
    features = read_table(features_path, what=f"{modality} features file", empty="is empty: 0 features")
    matrix = read_mtx(matrix_path)
    matrix = check_shape(matrix, features.shape[0], len(barcodes), matrix_path, features_path, barcodes_path)
    check_not_empty(*matrix.shape, matrix_path, modality)
    return matrix, features, barcodes
