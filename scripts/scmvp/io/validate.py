"""The `ingested.h5mu` contract, checked before anything is written (and on user-supplied .h5mu files)."""
from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from .files import check_counts


def validate_ingested(mdata, path) -> md.MuData:
    """Raise InputError(path, ...) unless ``mdata`` follows the ingested.h5mu contract; return it.

    Contract: modalities ``rna`` and ``atac`` with the same cells in the same order (and the global obs in
    that order); ``X`` raw counts (CSR, finite, non-negative, integer-valued); unique cell barcodes, gene
    names and peak names; ``atac.var`` with ``chrom`` (str), ``start`` and ``end`` (int) and names
    ``chrom:start-end``; ``obs["label"]``, when present, without missing values.
    """
    if not isinstance(mdata, md.MuData):
        raise InputError(path, f"expected a MuData object, got {type(mdata).__name__}")
    for name in ("rna", "atac"):
        if name not in mdata.mod:
            raise InputError(path, f"no {name!r} modality (modalities: {', '.join(mdata.mod) or 'none'})")
    rna, atac = mdata["rna"], mdata["atac"]
    for name, mod in (("rna", rna), ("atac", atac)):
        if mod.n_obs == 0:
            raise InputError(path, f"empty {name} modality: 0 cells")
        if mod.n_vars == 0:
            raise InputError(path, f"empty {name} modality: 0 features")
        if mod.X is None:
            raise InputError(path, f"{name}.X is missing: expected raw counts")
        if not sp.issparse(mod.X) or mod.X.format != "csr":
            raise InputError(path, f"{name}.X is {type(mod.X).__name__}: expected a CSR sparse matrix")
        check_counts(mod.X, path, what=f"{name}.X counts")
        if mod.obs_names.has_duplicates:
            raise InputError(path, f"duplicated barcodes in {name}: {mod.obs_names[mod.obs_names.duplicated()][0]!r}")
        if mod.var_names.has_duplicates:
            raise InputError(path, f"duplicated feature names in {name}: "
                                   f"{mod.var_names[mod.var_names.duplicated()][0]!r}")
    if not rna.obs_names.equals(atac.obs_names):
        raise InputError(path, f"rna and atac cells differ or are in a different order ({rna.n_obs} vs "
                               f"{atac.n_obs} cells, {int(rna.obs_names.isin(atac.obs_names).sum())} shared)")
    if not mdata.obs_names.equals(rna.obs_names):
        raise InputError(path, "the MuData's obs_names differ from its modalities' barcodes")
    missing = [c for c in ("chrom", "start", "end") if c not in atac.var.columns]
    if missing:
        raise InputError(path, f"atac.var lacks column(s) {', '.join(missing)}")
    for column in ("start", "end"):
        if not pd.api.types.is_integer_dtype(atac.var[column]):
            raise InputError(path, f"atac.var[{column!r}] is {atac.var[column].dtype}: expected integers")
    chrom = atac.var["chrom"]
    if chrom.isna().any() or not all(isinstance(c, str) for c in chrom.astype(object)):
        raise InputError(path, "atac.var['chrom'] must hold chromosome names (str)")
    expected = chrom.astype(str) + ":" + atac.var["start"].astype(str) + "-" + atac.var["end"].astype(str)
    mismatch = np.flatnonzero(expected.to_numpy() != atac.var_names.to_numpy())
    if mismatch.size:
        i = mismatch[0]
        raise InputError(path, f"atac var_names must be chrom:start-end of atac.var: {atac.var_names[i]!r} vs "
                               f"{expected.iloc[i]!r} ({mismatch.size} peaks)")
    if "label" in mdata.obs.columns and mdata.obs["label"].isna().any():
        raise InputError(path, f"obs['label'] is missing for {int(mdata.obs['label'].isna().sum())} cells")
    return mdata
