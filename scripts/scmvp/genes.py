"""Gene annotation readers: GTF, GFF3 or a TSS BED -> one table of transcription start sites.

Every reader returns a DataFrame with the columns ``chrom, tss, strand, gene`` (``tss`` 0-based). A gene
may have several rows when the annotation lists several TSSs (a TSS BED often does); identical rows are
dropped.

- GTF / GFF3: rows whose feature (3rd column) is ``gene`` (files without gene rows fall back to
  ``transcript``/``mRNA``); the name is ``gene_name`` (GTF) / ``Name`` (GFF3), else ``gene_id`` / ``ID``.
  TSS = start on ``+``, end on ``-`` (1-based inclusive coordinates converted to 0-based).
- BED (``chrom, start, end, name[, score, strand]``): when the 5th column holds signed integers with
  negatives it is read as HOMER's/celloracle's ``distance_to_TSS`` (the region centre relative to the TSS,
  strand-aware; e.g. tss_hg19.bed), so TSS = centre - distance on ``+`` and centre + distance on ``-``.
  Otherwise each row is a gene body (TSS = start on ``+``, end - 1 on ``-``; the centre without a strand).
"""
from __future__ import annotations

import gzip
import io
import os
import re

import numpy as np
import pandas as pd

from .errors import InputError, require_file

GENE_COLUMNS = ["chrom", "tss", "strand", "gene"]
_GTF_ATTR = re.compile(r'(\S+)\s+"([^"]*)"')


def _open_text(path):
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _data_lines(path):
    with _open_text(path) as handle:
        for line in handle:
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            yield line.rstrip("\n\r").split("\t")


def detect_format(path) -> str:
    """'gtf', 'gff3' or 'bed', from the name and, when unclear, the first data line."""
    name = os.path.basename(os.fspath(path)).lower()
    for suffix in (".gz",):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".gtf"):
        return "gtf"
    if name.endswith((".gff3", ".gff")):
        return "gff3"
    if name.endswith(".bed"):
        return "bed"
    for fields in _data_lines(path):
        if len(fields) >= 9 and fields[3].isdigit() and fields[4].isdigit():
            return "gtf" if '"' in fields[8] else "gff3"
        return "bed"
    raise InputError(path, "gene annotation has no data lines")


def read_genes(path) -> pd.DataFrame:
    """Read a GTF, GFF3 or TSS/gene BED into ``chrom, tss, strand, gene``."""
    require_file(path, "gene annotation")
    fmt = detect_format(path)
    genes = _read_gff(path, fmt) if fmt in ("gtf", "gff3") else _read_bed_genes(path)
    if genes.empty:
        raise InputError(path, f"no genes found (read as {fmt.upper()})")
    genes = genes[genes["gene"].astype(str).str.strip() != ""]  # unnamed rows cannot be linked
    genes = genes.drop_duplicates().sort_values(["chrom", "tss", "gene"]).reset_index(drop=True)
    genes["tss"] = genes["tss"].astype(np.int64)
    return genes[GENE_COLUMNS]


def _gff_attributes(text: str, fmt: str) -> dict:
    if fmt == "gtf":
        return dict(_GTF_ATTR.findall(text))
    attrs = {}
    for item in text.strip().strip(";").split(";"):
        if "=" in item:
            key, value = item.split("=", 1)
            attrs[key.strip()] = value.strip()
    return attrs


def _read_gff(path, fmt: str) -> pd.DataFrame:
    rows = {"gene": [], "transcript": []}
    for lineno, fields in enumerate(_data_lines(path), start=1):
        if len(fields) < 9:
            raise InputError(path, f"{fmt.upper()} data line {lineno} has {len(fields)} columns, expected 9")
        feature = fields[2]
        kind = "gene" if feature == "gene" else "transcript" if feature in ("transcript", "mRNA") else None
        if kind is None:
            continue
        try:
            start, end = int(fields[3]), int(fields[4])
        except ValueError:
            raise InputError(path, f"{fmt.upper()} data line {lineno}: start/end are not integers") from None
        attrs = _gff_attributes(fields[8], fmt)
        if fmt == "gtf":
            name = attrs.get("gene_name") or attrs.get("gene_id")
        else:
            name = attrs.get("gene_name") or attrs.get("Name") or attrs.get("gene_id") or attrs.get("ID")
        if not name:
            continue
        strand = fields[6] if fields[6] in ("+", "-") else "+"
        tss = start - 1 if strand == "+" else end - 1
        rows[kind].append((fields[0], tss, strand, name))
    chosen = rows["gene"] or rows["transcript"]
    return pd.DataFrame(chosen, columns=GENE_COLUMNS)


def _read_bed_genes(path) -> pd.DataFrame:
    records = list(_data_lines(path))
    if not records:
        raise InputError(path, "gene BED has no data lines")
    width = min(len(r) for r in records)
    if width < 3:
        raise InputError(path, "gene BED needs at least chrom, start, end columns")
    ncol = min(width, 6)
    table = pd.DataFrame([r[:ncol] for r in records])
    try:
        start = table[1].astype(np.int64).to_numpy()
        end = table[2].astype(np.int64).to_numpy()
    except ValueError:
        raise InputError(path, "gene BED: columns 2 and 3 (start, end) must be integers") from None
    names = table[3].astype(str) if ncol >= 4 else table[0] + ":" + table[1].astype(str)
    strand = table[5].astype(str) if ncol >= 6 else pd.Series(["."] * len(table))
    stranded = strand.isin(["+", "-"]).to_numpy()
    minus = (strand == "-").to_numpy()
    distance = pd.to_numeric(table[4], errors="coerce") if ncol >= 5 else None
    centre = (start + end) // 2
    if distance is not None and distance.notna().all() and (distance < 0).any():
        offset = distance.to_numpy(dtype=np.int64)
        tss = np.where(minus, centre + offset, centre - offset)
    else:
        tss = np.where(stranded, np.where(minus, end - 1, start), centre)
    return pd.DataFrame({"chrom": table[0].astype(str), "tss": tss,
                         "strand": np.where(stranded, strand, "+"), "gene": names.to_numpy()})
