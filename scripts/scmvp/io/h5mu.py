"""`technology: h5mu`: a MuData file that already follows the ingested.h5mu contract (data from anywhere)."""
from __future__ import annotations

import os

import h5py
import mudata as md
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from .files import check_counts, require_path, to_counts_csr
from .peaks import parse_peak_names


def read_h5mu_input(path):
    """The ``rna`` and ``atac`` AnnData of a .h5mu, plus its labels (obs["label"]) when present.

    Light normalisation only: a dense or CSC ``X`` becomes CSR, gene names are made unique later,
    peaks without ``chrom/start/end`` get them from their names. Everything else must already hold.
    """
    require_path(path, ".h5mu file")
    if os.path.isdir(path) or not h5py.is_hdf5(path):
        raise InputError(path, "not an .h5mu (HDF5) file")
    try:
        mdata = md.read_h5mu(path)
    except Exception as err:  # noqa: BLE001 - any failure here means the file is not a readable MuData
        raise InputError(path, f"cannot be read as MuData ({type(err).__name__}: {err})") from None
    for name in ("rna", "atac"):
        if name not in mdata.mod:
            raise InputError(path, f"no {name!r} modality (modalities: {', '.join(mdata.mod) or 'none'})")
    labels = None
    for frame in (mdata.obs, mdata["rna"].obs, mdata["atac"].obs):
        if "label" in frame.columns:
            labels = frame["label"].dropna().astype(str)
            break
    rna, atac = mdata["rna"].copy(), mdata["atac"].copy()
    # The file's own cell annotations travel with the RNA cells (global obs rna_<column>), so that
    # `label_column` can name one of them.
    for column in mdata.obs.columns:
        if ":" not in column and column != "label" and column not in rna.obs.columns:
            rna.obs[column] = mdata.obs[column].reindex(rna.obs_names).to_numpy()
    for name, mod in (("rna", rna), ("atac", atac)):
        if mod.X is None:
            raise InputError(path, f"{name}.X is missing: expected raw counts")
        check_counts(mod.X, path, what=f"{name}.X counts")
        if not sp.issparse(mod.X) or mod.X.format != "csr" or mod.X.dtype.kind == "f" and mod.X.dtype.itemsize != 4:
            mod.X = to_counts_csr(mod.X)
        mod.obs = mod.obs.drop(columns=[c for c in mod.obs.columns if c == "label"])
    if not {"chrom", "start", "end"} <= set(atac.var.columns):
        var = parse_peak_names(atac.var_names, path)
        atac.var_names = var.index
        for column in ("chrom", "start", "end"):
            atac.var[column] = var[column].to_numpy()
    else:
        atac.var["chrom"] = atac.var["chrom"].astype(str)
        atac.var["start"] = pd.to_numeric(atac.var["start"]).astype("int64")
        atac.var["end"] = pd.to_numeric(atac.var["end"]).astype("int64")
    if rna.var_names.has_duplicates:
        rna.var_names_make_unique()
    return rna, atac, path, path, labels
