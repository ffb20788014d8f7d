"""Batches (libraries, samples) of a MuData: which obs column holds them and each cell's batch.

Shared by the batch-aware model and the baselines' batch handling; pandas/numpy only (no torch)."""
from __future__ import annotations

import numpy as np

from .errors import InputError

# model.batch_key = null: this obs column, when it has more than one value (the sample sheet's column)
DEFAULT_BATCH_COLUMN = "sample"


def _obs_tables(mdata):
    """The obs tables a batch column is looked up in, in order: the MuData's, rna's, atac's."""
    tables = [("obs", mdata.obs)]
    tables += [(f"{mod}.obs", mdata.mod[mod].obs) for mod in ("rna", "atac") if mod in mdata.mod]
    return tables


def obs_column(mdata, key):
    """Values (str) of obs column `key` per cell, from the first obs table holding it; None when none does."""
    for _, table in _obs_tables(mdata):
        if key in table.columns:
            values = table[key]
            if values.isna().any():
                return values.astype(object).where(values.notna(), None).to_numpy()
            return values.astype(str).to_numpy()
    return None


def obs_columns(mdata) -> list[str]:
    return sorted({str(c) for _, table in _obs_tables(mdata) for c in table.columns})


def resolve_batch_key(mdata, batch_key, path=None):
    """The obs column holding the batches, or None (no batches).

    `batch_key` null: `sample` when that column exists with more than one value, else None. A named column
    must exist (InputError naming the file and the columns there are)."""
    if batch_key is None:
        values = obs_column(mdata, DEFAULT_BATCH_COLUMN)
        if values is None or len(set(values)) < 2:
            return None
        return DEFAULT_BATCH_COLUMN
    if obs_column(mdata, batch_key) is None:
        raise InputError(path, f"model.batch_key '{batch_key}' is not a column of obs, rna.obs or atac.obs "
                               f"(columns: {', '.join(obs_columns(mdata)) or 'none'})")
    return batch_key


def batch_labels(mdata, batch_key, path=None):
    """Batch label (str) of every cell from obs column `batch_key`; InputError for a missing column or cells
    without a value."""
    values = obs_column(mdata, batch_key)
    if values is None:
        raise InputError(path, f"batch column '{batch_key}' is not a column of obs, rna.obs or atac.obs "
                               f"(columns: {', '.join(obs_columns(mdata)) or 'none'})")
    missing = np.array([v is None for v in values])
    if missing.any():
        raise InputError(path, f"{int(missing.sum())} cells have no value in the batch column '{batch_key}'")
    return np.asarray(values, dtype=str)
