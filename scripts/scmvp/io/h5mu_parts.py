"""Read part of a .h5mu: the cell and feature tables and one layer per modality, leaving the rest on disk.

The model rules (train, impute) need the raw counts only; `preprocessed.h5mu` also holds the normalised RNA,
the ATAC TF-IDF twice (``X`` and ``layers["tfidf"]``), PCA / LSI and the neighbour graphs. At 50,000 cells x
100,000 peaks each ATAC matrix is ~1.6 GB in memory, so reading the whole file cost the rule two of them.
"""
from __future__ import annotations

import anndata as ad
import h5py
import mudata as md
from anndata.io import read_elem

from ..errors import InputError


def read_h5mu_layer(path, layer: str = "counts") -> md.MuData:
    """The MuData at ``path`` with every modality's obs and var, ``layers[layer]`` (where it has one) and the
    global obs; ``X``, the other layers, obsm / obsp / uns are not read."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise InputError(path, f"cannot be opened as an HDF5 (.h5mu) file ({err})") from None
    with h5:
        if "mod" not in h5:
            raise InputError(path, "not a MuData file (no /mod group)")
        order = [str(n) for n in h5["mod"].attrs.get("mod-order", list(h5["mod"].keys()))]
        mods = {}
        for name in order:
            group = h5["mod"][name]
            layers = group.get("layers")
            mods[name] = ad.AnnData(obs=read_elem(group["obs"]), var=read_elem(group["var"]),
                                    layers={layer: read_elem(layers[layer])}
                                    if layers is not None and layer in layers else None)
        global_obs = read_elem(h5["obs"]) if "obs" in h5 else None
    mdata = md.MuData(mods)
    if global_obs is not None:
        # the file's own global columns (sample, covariates, labels); "mod:column" ones are rebuilt by MuData
        for column in global_obs.columns:
            if column not in mdata.obs.columns:
                mdata.obs[column] = global_obs[column].reindex(mdata.obs_names).to_numpy()
    return mdata
