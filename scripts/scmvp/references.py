"""Readers of the reference files users bring: interval files (BED3+, narrowPeak, broadPeak), bulk RNA
tables, reference DE gene lists and reference pseudotimes.

Every reader takes a path, returns a small pandas structure and raises :class:`InputError` (file +
problem) for anything the user can fix.
"""
from __future__ import annotations

import gzip
import os
import re

import numpy as np
import pandas as pd

from .errors import InputError, require_file

BED_COLUMNS = ["chrom", "start", "end", "name", "score", "strand",
               "thick_start", "thick_end", "item_rgb", "block_count", "block_sizes", "block_starts"]
NARROWPEAK_COLUMNS = ["chrom", "start", "end", "name", "score", "strand",
                      "signal_value", "p_value", "q_value", "peak"]
BROADPEAK_COLUMNS = NARROWPEAK_COLUMNS[:9]
HEADER_PREFIXES = ("#", "track", "browser")


# ---------------------------------------------------------------------------------------------------------
# Chromosome names
# ---------------------------------------------------------------------------------------------------------

def canonical_chrom(name: str) -> str:
    """Build-independent key of a chromosome name: ``chr1``/``1`` -> ``1``, ``chrM``/``MT`` -> ``M``."""
    key = str(name)
    if key[:3].lower() == "chr":
        key = key[3:]
    return "M" if key.upper() in ("M", "MT") else key


def normalize_chrom_names(names, like) -> np.ndarray:
    """Rename chromosomes in ``names`` to the spelling used in ``like`` (``chr1`` vs ``1``, ``chrM`` vs ``MT``).

    Names without a counterpart in ``like`` are returned unchanged.
    """
    spelling = {}
    for name in pd.unique(pd.Series(like, dtype=str)):
        spelling.setdefault(canonical_chrom(name), name)
    names = pd.Series(names, dtype=str)
    unique = pd.unique(names)
    renamed = {name: spelling.get(canonical_chrom(name), name) for name in unique}
    return names.map(renamed).to_numpy()


# ---------------------------------------------------------------------------------------------------------
# Interval files
# ---------------------------------------------------------------------------------------------------------

def _is_gzipped(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _compression(path):
    return "gzip" if _is_gzipped(path) else None


def _open_text(path):
    return gzip.open(path, "rt") if _is_gzipped(path) else open(path, "rt")


def _leading_header_lines(path) -> int:
    """Number of `#`/track/browser lines (or a column-name line) at the top of an interval file."""
    count = 0
    with _open_text(path) as handle:
        for line in handle:
            if line.startswith(HEADER_PREFIXES) or not line.strip():
                count += 1
                continue
            fields = re.split(r"\s+", line.strip())
            looks_like_names = len(fields) >= 3 and not _is_int(fields[1]) and not _is_int(fields[2]) \
                and fields[1].lower() in ("start", "chromstart", "chrom_start")
            return count + int(looks_like_names)
    return count


def _is_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text) is not None


def _interval_kind(path) -> str:
    name = os.path.basename(os.fspath(path)).lower()
    name = name[:-3] if name.endswith(".gz") else name
    if name.endswith(".narrowpeak"):
        return "narrowPeak"
    if name.endswith(".broadpeak"):
        return "broadPeak"
    return "bed"


def read_bed(path, what: str = "BED file") -> pd.DataFrame:
    """Read a BED3+ / narrowPeak / broadPeak file (plain or gzip) into a DataFrame.

    Columns: ``chrom`` (str), ``start``, ``end`` (int64, 0-based half-open) and the format's further
    columns (``name``, ``score``, ``strand``, ... ; narrowPeak/broadPeak: ``signal_value``, ``p_value``,
    ``q_value`` and narrowPeak ``peak``). `#`, ``track`` and ``browser`` lines are skipped.
    """
    require_file(path, what)
    skip = _leading_header_lines(path)
    try:
        table = pd.read_csv(path, sep="\t", header=None, dtype=str, skiprows=skip, compression=_compression(path),
                            skip_blank_lines=True, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(path, f"{what} holds no intervals") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(path, f"{what} is not a tab-separated BED file ({err})") from None
    if table.shape[1] < 3:  # some tools write space-separated BED
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, skiprows=skip, compression=_compression(path))
    table = table[~table[0].str.startswith(HEADER_PREFIXES)]
    if table.empty:
        raise InputError(path, f"{what} holds no intervals")
    if table.shape[1] < 3:
        raise InputError(path, f"{what} needs at least 3 columns (chrom, start, end), found {table.shape[1]}")

    kind = _interval_kind(path)
    names = {"narrowPeak": NARROWPEAK_COLUMNS, "broadPeak": BROADPEAK_COLUMNS}.get(kind, BED_COLUMNS)
    table.columns = [names[i] if i < len(names) else f"column_{i + 1}" for i in range(table.shape[1])]
    table = table.reset_index(drop=True)
    for column in ("start", "end"):
        table[column] = _integer_column(table[column], path, what, column, first_line=skip + 1)
    bad = table["end"] < table["start"]
    if (table["start"] < 0).any() or bad.any():
        row = int(np.flatnonzero(bad | (table["start"] < 0))[0])
        raise InputError(path, f"{what}: line {skip + row + 1} has start {table.at[row, 'start']} > end "
                               f"{table.at[row, 'end']} or a negative start")
    numeric = {"score", "signal_value", "p_value", "q_value", "peak"}
    for column in numeric.intersection(table.columns):
        converted = pd.to_numeric(table[column], errors="coerce")
        if converted.notna().all() or kind != "bed":
            table[column] = converted
    return table


def _integer_column(values: pd.Series, path, what, column, first_line) -> pd.Series:
    numbers = pd.to_numeric(values.str.strip(), errors="coerce")
    bad = numbers.isna() | (numbers % 1 != 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(path, f"{what}: {column} on line {first_line + row} is not an integer: "
                               f"{values.iloc[row]!r}")
    return numbers.astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------

def _read_table(path, what, **kwargs) -> pd.DataFrame:
    require_file(path, what)
    try:
        return pd.read_csv(path, sep="," if path_is_csv(path) else "\t", compression=_compression(path), **kwargs)
    except pd.errors.EmptyDataError:
        raise InputError(path, f"{what} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(path, f"{what} is not a readable tab-separated table ({err})") from None


def path_is_csv(path) -> bool:
    name = os.fspath(path).lower()
    return name.endswith(".csv") or name.endswith(".csv.gz")


def _first_line_fields(path) -> list[str]:
    with _open_text(path) as handle:
        for line in handle:
            if line.strip():
                return line.rstrip("\n\r").split("," if path_is_csv(path) else "\t")
    return []


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_bulk_rna(path, what: str = "bulk RNA table") -> pd.DataFrame:
    """Read a bulk expression table: first column the gene, one numeric column per sample.

    With a header, the samples are named by it (names matching the cell labels, or mapped by
    ``bulk_label_map``). A headerless gene<TAB>value table (ENCODE ``gene TPM`` style) holds one sample,
    named ``bulk``. Returns genes x samples (float), genes unique (duplicates summed), NaN rows dropped.
    """
    require_file(path, what)
    first = _first_line_fields(path)
    if not first:
        raise InputError(path, f"{what} is empty")
    headerless = len(first) >= 2 and all(_is_number(field) for field in first[1:])
    table = _read_table(path, what, header=None if headerless else 0, dtype=str, keep_default_na=False,
                        na_values=["", "NA", "NaN", "nan"])
    if table.shape[1] < 2:
        raise InputError(path, f"{what} needs a gene column and at least one sample column")
    if headerless:
        table.columns = ["gene"] + (["bulk"] if table.shape[1] == 2 else
                                    [f"sample_{i}" for i in range(1, table.shape[1])])
    genes = table.iloc[:, 0].astype(str).str.strip()
    if genes.map(_is_number).mean() > 0.5:
        raise InputError(path, f"{what}: the first column must hold gene names, but it holds numbers "
                               f"(e.g. {genes.iloc[0]!r})")
    values = table.iloc[:, 1:].apply(pd.to_numeric, errors="coerce")
    numeric = [c for c in values.columns if values[c].notna().mean() > 0.5]
    if not numeric:
        raise InputError(path, f"{what} has no numeric sample column")
    values = values[numeric]
    values.columns = [str(c).strip() for c in numeric]
    values.index = genes.to_numpy()
    values = values[values.notna().all(axis=1)]
    if values.empty:
        raise InputError(path, f"{what} has no gene with values in every sample")
    if (values.to_numpy() < 0).any():
        raise InputError(path, f"{what} has negative values; expected counts, TPM or FPKM")
    return values.groupby(level=0, sort=False).sum().astype(float)


def bulk_columns_for_labels(bulk: pd.DataFrame, labels, label_map: dict | None, path) -> dict:
    """Label -> bulk column for every label with a bulk sample (``label_map`` first, then equal names).

    Raises InputError for map entries naming unknown labels or missing columns, and when no label has
    a sample.
    """
    labels = [str(label) for label in pd.unique(pd.Series(labels).dropna().astype(str))]
    label_map = {str(k): str(v) for k, v in (label_map or {}).items()}
    unknown = sorted(set(label_map) - set(labels))
    if unknown:
        raise InputError(path, f"bulk_label_map names labels absent from the cell labels: {', '.join(unknown)} "
                               f"(labels are: {', '.join(sorted(labels))})")
    missing = sorted({column for column in label_map.values() if column not in bulk.columns})
    if missing:
        raise InputError(path, f"bulk_label_map names columns absent from the bulk table: {', '.join(missing)} "
                               f"(columns are: {', '.join(map(str, bulk.columns))})")
    columns = {}
    for label in labels:
        column = label_map.get(label, label)
        if column in bulk.columns:
            columns[label] = column
    if not columns:
        raise InputError(path, f"no column of the bulk table matches a cell label (columns: "
                               f"{', '.join(map(str, bulk.columns[:10]))}; labels: {', '.join(sorted(labels)[:10])}); "
                               "name the columns by label or set bulk_label_map")
    return columns


def _require_columns(table: pd.DataFrame, columns, path, what):
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(path, f"{what} lacks column(s) {', '.join(missing)} "
                               f"(found: {', '.join(map(str, table.columns))})")


def read_de_genes(path, what: str = "reference DE gene list") -> pd.DataFrame:
    """Read a reference DE gene list: tsv with a header holding columns ``label`` and ``gene``."""
    table = _read_table(path, what, dtype=str, keep_default_na=False)
    _require_columns(table, ["label", "gene"], path, what)
    table = table[["label", "gene"]].apply(lambda col: col.str.strip())
    table = table[(table["label"] != "") & (table["gene"] != "")].drop_duplicates()
    if table.empty:
        raise InputError(path, f"{what} lists no genes")
    return table.reset_index(drop=True)


def read_pseudotime(path, what: str = "reference pseudotime") -> pd.Series:
    """Read a reference pseudotime: tsv with columns ``barcode`` and ``pseudotime``; returns barcode -> float."""
    table = _read_table(path, what, dtype={"barcode": str})
    _require_columns(table, ["barcode", "pseudotime"], path, what)
    values = pd.to_numeric(table["pseudotime"], errors="coerce")
    if table["barcode"].duplicated().any():
        raise InputError(path, f"{what} lists barcode {table['barcode'][table['barcode'].duplicated()].iloc[0]!r} twice")
    series = pd.Series(values.to_numpy(), index=table["barcode"].astype(str).to_numpy(), name="pseudotime")
    series = series.dropna()
    if series.empty:
        raise InputError(path, f"{what} has no numeric pseudotime")
    return series
