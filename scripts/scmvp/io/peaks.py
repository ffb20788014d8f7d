"""Peak names in every spelling the published datasets use -> chrom, start, end."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import InputError

# Greedy chrom: the LAST two separators split off start and end, so contigs with dots, dashes or
# underscores (GL000194.1-1-100, hs37d5-35430920-35431120, chr1_KI270706v1_random:10-20) keep their name.
PEAK_NAME = re.compile(r"^(?P<chrom>.+)[:_-](?P<start>\d+)[_-](?P<end>\d+)$")


def parse_peak_names(names, path) -> pd.DataFrame:
    """``chr1:100-200``, ``chr1-100-200``, ``chr1_100_200``, ``1-100-200`` -> DataFrame(chrom, start, end).

    The index is the canonical name ``chrom:start-end``. Names that do not parse, or whose end lies before
    the start, raise InputError naming ``path`` and the first bad names.
    """
    names = pd.Index(np.asarray(names, dtype=object)).astype(str).str.strip()
    parts = names.str.extract(PEAK_NAME)
    bad = parts["chrom"].isna().to_numpy()
    if bad.any():
        examples = ", ".join(repr(n) for n in names[bad][:5])
        raise InputError(path, f"{int(bad.sum())} peak name(s) not in chrom:start-end form "
                               f"(also accepted: chrom-start-end, chrom_start_end), e.g. {examples}")
    start = parts["start"].astype(np.int64).to_numpy()
    end = parts["end"].astype(np.int64).to_numpy()
    reversed_ = end < start
    if reversed_.any():
        examples = ", ".join(repr(n) for n in names[reversed_][:5])
        raise InputError(path, f"{int(reversed_.sum())} peak(s) end before they start, e.g. {examples}")
    chrom = parts["chrom"].astype(str).to_numpy()
    canonical = pd.Index([f"{c}:{s}-{e}" for c, s, e in zip(chrom, start, end)])
    table = pd.DataFrame({"chrom": chrom, "start": start, "end": end}, index=canonical)
    if canonical.has_duplicates:
        dup = canonical[canonical.duplicated()].unique()
        raise InputError(path, f"duplicated peaks: {', '.join(map(repr, dup[:5]))} ({len(dup)} in total)")
    return table
