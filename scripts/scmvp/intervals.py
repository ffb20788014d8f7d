"""Genomic intervals for the CRE stage: peak names, chromosome-name reconciliation, distances.

BED/narrowPeak reading and chromosome spelling come from :mod:`scmvp.references`.

Chromosome names are compared in a canonical form (``chr`` prefix dropped, ``M``/``MT`` unified), so a
reference written ``1, 2, MT`` matches peaks named ``chr1, chr2, chrM``. When the two share almost no
chromosome, or (after reconciling) the intervals almost never overlap, the genome builds likely differ
and an InputError says so.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import InputError
from .io import peaks as io_peaks
from .references import normalize_chrom_names, read_bed  # noqa: F401 (read_bed re-exported)

# A reference must name at least this fraction of the peaks' chromosomes (weighted by peak count).
MIN_SHARED_CHROM_FRACTION = 0.05


def parse_peak_names(names, path=None) -> pd.DataFrame:
    """chrom, start, end of peak names in any common spelling (the ingest reader's parser, see io.peaks)."""
    return io_peaks.parse_peak_names(names, path)


def reconcile_chromosomes(ref_chroms, peak_chroms, path, what: str, genome: str | None = None) -> pd.Series:
    """Map a reference's chromosome names onto the peaks' naming (``1`` -> ``chr1`` and back).

    Returns the reference names translated (names without a peak counterpart are kept as they are).
    Raises InputError when the reference covers less than MIN_SHARED_CHROM_FRACTION of the peaks'
    chromosomes (weighted by number of peaks): the genome builds or naming schemes likely differ.
    """
    ref_chroms = pd.Series(ref_chroms, dtype=str)
    peak_chroms = pd.Series(peak_chroms, dtype=str)
    translated = pd.Series(normalize_chrom_names(ref_chroms, peak_chroms), index=ref_chroms.index)
    shared = set(translated.unique())
    covered = peak_chroms.isin(shared).mean() if len(peak_chroms) else 0.0
    if covered < MIN_SHARED_CHROM_FRACTION:
        raise InputError(path, build_mismatch_message(
            what, genome,
            f"it shares almost no chromosome names with the peaks (peaks: "
            f"{_examples(peak_chroms)}; {what}: {_examples(ref_chroms)})"))
    return translated


def build_mismatch_message(what: str, genome: str | None, detail: str) -> str:
    said = f"config `genome` of this dataset says '{genome}'" if genome else "check config `genome` of this dataset"
    return (f"{what} and the ATAC peaks look like different genome builds: {detail}. Give a {what} "
            f"for the same build as the peaks ({said}).")


def _examples(chroms, n=4) -> str:
    values = list(pd.unique(pd.Series(chroms, dtype=str)))[:n]
    return ", ".join(values) if values else "none"


def distance_to_nearest_point(intervals: pd.DataFrame, points: pd.DataFrame, column: str = "tss") -> np.ndarray:
    """Distance of each half-open interval (chrom, start, end) to the nearest point on its chromosome.

    0 when a point lies inside the interval; inf when the chromosome has no point.
    """
    chrom = intervals["chrom"].astype(str).to_numpy()
    starts = intervals["start"].to_numpy(dtype=np.int64)
    ends = intervals["end"].to_numpy(dtype=np.int64)
    result = np.full(len(intervals), np.inf)
    for name, group in points.groupby("chrom", sort=False):
        mask = chrom == name
        if not mask.any():
            continue
        pos = np.sort(group[column].to_numpy(dtype=np.int64))
        s, e = starts[mask], ends[mask]
        # nearest point >= start: inside when < end, else to the right
        right = np.searchsorted(pos, s, side="left")
        dist = np.full(len(s), np.inf)
        has_right = right < len(pos)
        right_pos = pos[np.clip(right, None, len(pos) - 1)]
        dist[has_right] = np.maximum(right_pos[has_right] - (e[has_right] - 1), 0)
        has_left = right > 0
        left_pos = pos[np.clip(right - 1, 0, None)]
        dist[has_left] = np.minimum(dist[has_left], s[has_left] - left_pos[has_left])
        result[mask] = dist
    return result
