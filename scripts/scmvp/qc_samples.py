"""The per-sample QC table (``qc/samples.tsv``): one row per library of a sample sheet.

Built from the per-cell table of :func:`scmvp.qc.filter_cells_and_features` (metrics, ``passed``, ``reasons``,
and ``sample`` when the dataset has several samples); a dataset without samples gets one row, named by the
caller (the dataset). Imports point one way: this module reads :mod:`scmvp.qc`, never the reverse.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .qc import doublet_rate, metric_columns


def sample_table(cells: pd.DataFrame, name: str = "all") -> pd.DataFrame:
    """One row per sample (sheet order): ``sample, cells_in, cells_out, fraction_removed``, ``removed_<reason>``
    per reason any cell fails (0 where none of the sample's), ``doublet_rate`` (scrublet's calls over the
    sample's scored incoming cells, whether or not they are removed) and ``median_<metric>_in`` / ``_out``.

    ``cells`` without a ``sample`` column counts as one sample called ``name``.
    """
    samples = cells["sample"].astype(str) if "sample" in cells.columns else pd.Series(name, index=cells.index)
    reasons = cells["reasons"].fillna("").astype(str).str.split(";").explode()
    reasons = reasons[reasons != ""]
    names = sorted(reasons.unique())
    metrics = metric_columns(cells)
    rows = []
    for sample in pd.unique(samples.to_numpy()):
        own = (samples == sample).to_numpy()
        part = cells[own]
        passed = part["passed"].to_numpy(dtype=bool)
        row = {"sample": sample, "cells_in": int(own.sum()), "cells_out": int(passed.sum()),
               "fraction_removed": float(1 - passed.mean())}
        counts = reasons[reasons.index.isin(part.index)].value_counts()
        row.update({f"removed_{reason}": int(counts.get(reason, 0)) for reason in names})
        if "predicted_doublet" in part.columns:
            row["doublet_rate"] = doublet_rate(part)
        for column in metrics:
            values = part[column].to_numpy(dtype=float)
            row[f"median_{column}_in"] = float(np.nanmedian(values)) if np.isfinite(values).any() else np.nan
            kept = values[passed]
            row[f"median_{column}_out"] = float(np.nanmedian(kept)) if np.isfinite(kept).any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
