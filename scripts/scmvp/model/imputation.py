"""Write `imputed.h5mu`: the preprocessed MuData plus the scMVP embedding, clusters and imputed layers.

The imputed layers are dense (cells x genes, cells x peaks, float32) HDF5 datasets filled chunk by chunk
(`impute_chunk_size` cells at a time) straight into the output file, so at most one chunk of imputed values
is in memory; the file is a regular AnnData/MuData encoding ("array" datasets) that mudata reads back.
A model trained with batches imputes each cell in its own batch, or every cell in `reference_batch`
(`model.impute_reference_batch`); ``uns["scmvp"]`` records which (batch_key, batches, imputed_in).
"""
from __future__ import annotations

import logging

import h5py
import numpy as np
import pandas as pd

from ..errors import InputError
from ..rule import atomic_path, nullable_strings_writable

log = logging.getLogger("scmvp.model")
ARRAY_ATTRS = {"encoding-type": "array", "encoding-version": "0.2.0"}


def _dense_dataset(group, name, shape, chunk_rows, dtype="float32"):
    if name in group:
        del group[name]
    rows = max(1, min(chunk_rows, shape[0]))
    cols = max(1, min(shape[1], max(1, (1 << 20) // rows)))        # ~4 MB HDF5 chunks
    ds = group.create_dataset(name, shape=shape, dtype=dtype, chunks=(rows, cols))
    for key, value in ARRAY_ATTRS.items():
        ds.attrs[key] = value
    return ds


IMPUTE_DTYPES = ("float32", "float16")


def write_imputed(model, mdata, path, chunk_size=None, annotate=None, reference_batch=None, dtype="float32",
                  source=None):
    """Add X_scmvp / scmvp_cluster to `mdata`, write it to `path` with the imputed layers, atomically.

    ``annotate(mdata)``, when given, runs once X_scmvp is set and before the file is written (the rule adds the
    latent's UMAP and Leiden clusters there). ``reference_batch``: decode every cell in this batch (None: in
    its own). ``dtype``: storage type of the imputed layers (float32 or float16; computed in float32).
    ``source``: the .h5mu ``mdata`` was read from in part (:func:`scmvp.io.h5mu_parts.read_h5mu_layer`); the
    output is then a copy of that file with ``mdata``'s global obs columns, obsm, obsp and uns added, so the
    matrices that were not read are never in memory.
    """
    if dtype not in IMPUTE_DTYPES:
        raise ValueError(f"imputed layers are stored as one of {IMPUTE_DTYPES}, not {dtype!r}")
    chunk_size = chunk_size or model.config["impute_chunk_size"]
    if reference_batch is not None:                # an unknown batch fails before anything is computed
        try:
            model.batch_code(reference_batch)
        except InputError as err:
            raise InputError(None, f"model.impute_reference_batch: {err.problem}") from None
    latent = model.get_latent(chunk_size=chunk_size)
    clusters = model.get_clusters(latent)
    mdata.obsm["X_scmvp"] = latent.astype(np.float32)
    mdata.obs["scmvp_cluster"] = pd.Categorical([str(c) for c in clusters],
                                                categories=[str(c) for c in np.unique(clusters)])
    if model.batch_categories is not None:
        mdata.uns["scmvp"] = {"batch_key": str(model.batch_key), "batches": list(model.batch_categories),
                              "imputed_in": "own batch" if reference_batch is None else str(reference_batch)}
    if annotate is not None:
        annotate(mdata)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    for mod in (rna, atac):
        mod.layers.pop("imputed", None)
    gene_columns = np.arange(rna.n_vars)
    if model.gene_names is not None and model.gene_names != list(map(str, rna.var_names)):
        gene_columns = pd.Index(rna.var_names.astype(str)).get_indexer(model.gene_names)
    with atomic_path(path) as tmp, nullable_strings_writable():
        if source is None:
            mdata.write(tmp)
        else:
            _copy_with_annotations(source, mdata, tmp)
        with h5py.File(tmp, "a") as h5:
            rna_ds = _dense_dataset(h5["mod/rna/layers"], "imputed", (rna.n_obs, rna.n_vars), chunk_size, dtype)
            atac_ds = _dense_dataset(h5["mod/atac/layers"], "imputed", (atac.n_obs, atac.n_vars), chunk_size,
                                     dtype)
            full_genes = len(gene_columns) == rna.n_vars and np.array_equal(gene_columns, np.arange(rna.n_vars))
            for idx, rna_imp, atac_imp in model.impute_chunks(chunk_size, reference_batch=reference_batch):
                rows = slice(int(idx[0]), int(idx[-1]) + 1)
                if full_genes:
                    rna_ds[rows] = rna_imp.astype(dtype, copy=False)
                else:                           # genes the model did not see (HVG-only model): NaN
                    block = np.full((len(idx), rna.n_vars), np.nan, dtype)
                    block[:, gene_columns] = rna_imp
                    rna_ds[rows] = block
                atac_ds[rows] = atac_imp.astype(dtype, copy=False)
    log.info("wrote %s: %d cells, latent %d, %d clusters", path, latent.shape[0], latent.shape[1],
             len(np.unique(clusters)))


def _copy_with_annotations(source, mdata, path):
    """``source`` copied to ``path``, plus the global obs columns of ``mdata`` that ``source`` lacks and every
    global obsm / obsp / uns entry of ``mdata`` (replacing those of the same name)."""
    import shutil

    from anndata.io import read_elem, write_elem

    shutil.copyfile(source, path)
    with h5py.File(path, "a") as h5:
        obs = read_elem(h5["obs"])
        added = [c for c in mdata.obs.columns if c not in obs.columns]
        if added:
            obs = obs.join(mdata.obs[added])
            del h5["obs"]
            write_elem(h5, "obs", obs)
        for slot in ("obsm", "obsp", "uns"):
            entries = getattr(mdata, slot)
            if not len(entries):
                continue
            group = h5.require_group(slot)
            for key in entries.keys():
                if key in group:
                    del group[key]
                write_elem(group, key, entries[key])
