"""From two per-modality AnnData to the `ingested.h5mu` MuData: pairing by barcode, labels, annotations."""
from __future__ import annotations

import logging
import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

from ..errors import InputError
from .files import check_not_empty, check_unique, read_table
from .peaks import parse_peak_names

log = logging.getLogger("scmvp.io")


def make_rna(matrix, symbols, barcodes, path, gene_ids=None, obs=None) -> ad.AnnData:
    """RNA AnnData (cells x genes); gene symbols made unique, ids kept in ``var["gene_id"]``."""
    check_not_empty(matrix.shape[0], matrix.shape[1], path, "RNA")
    var = pd.DataFrame(index=pd.Index(np.asarray(symbols, dtype=object).astype(str)))
    if gene_ids is not None:
        var["gene_id"] = np.asarray(gene_ids, dtype=object).astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Variable names are not unique": made unique below
        rna = ad.AnnData(matrix, obs=_obs(barcodes, obs), var=var)
        n_dup = int(rna.var_names.duplicated().sum())
        if n_dup:
            rna.var_names_make_unique()
    if n_dup:
        log.info("%s: %d duplicated gene names made unique (suffix -1, -2, ...)", path, n_dup)
    return rna


def make_atac(matrix, peak_names, barcodes, path, obs=None) -> ad.AnnData:
    """ATAC AnnData (cells x peaks) with ``var`` chrom, start, end and names ``chrom:start-end``."""
    check_not_empty(matrix.shape[0], matrix.shape[1], path, "ATAC")
    var = parse_peak_names(peak_names, path)
    return ad.AnnData(matrix, obs=_obs(barcodes, obs), var=var)


def _obs(barcodes, obs):
    index = pd.Index(np.asarray(barcodes, dtype=object).astype(str))
    if obs is None:
        return pd.DataFrame(index=index)
    obs = obs.copy()
    obs.index = index
    return obs


def pair(rna: ad.AnnData, atac: ad.AnnData, rna_path, atac_path) -> tuple[ad.AnnData, ad.AnnData]:
    """Keep the cells present in both modalities, in the RNA order."""
    check_unique(rna.obs_names, rna_path)
    check_unique(atac.obs_names, atac_path)
    common = rna.obs_names[rna.obs_names.isin(atac.obs_names)]
    if len(common) == 0:
        raise InputError(f"{rna_path} and {atac_path}",
                         f"RNA and ATAC have no barcode in common (RNA e.g. {rna.obs_names[0]!r}, ATAC e.g. "
                         f"{atac.obs_names[0]!r})")
    if len(common) < rna.n_obs or len(common) < atac.n_obs:
        log.warning("%d cells are in both modalities; dropped %d RNA-only and %d ATAC-only cells", len(common),
                    rna.n_obs - len(common), atac.n_obs - len(common))
    return rna[common].copy(), atac[common].copy()


def to_mudata(rna: ad.AnnData, atac: ad.AnnData) -> md.MuData:
    """MuData whose global ``obs`` holds each modality's cell annotations prefixed ``rna_`` / ``atac_``."""
    obs = pd.DataFrame(index=rna.obs_names.copy())
    for name, mod in (("rna", rna), ("atac", atac)):
        for column in mod.obs.columns:
            obs[f"{name}_{column}"] = mod.obs[column].to_numpy()
    return _build(rna, atac, obs)


def _build(rna: ad.AnnData, atac: ad.AnnData, obs: pd.DataFrame) -> md.MuData:
    """MuData with exactly ``obs`` as global obs (MuData would otherwise copy ``rna:``/``atac:`` columns)."""
    mod_obs = {"rna": rna.obs.copy(), "atac": atac.obs.copy()}
    rna.obs = pd.DataFrame(index=rna.obs_names)
    atac.obs = pd.DataFrame(index=atac.obs_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mudata's notice about its future update() default
        mdata = md.MuData({"rna": rna, "atac": atac})
    for name, frame in mod_obs.items():
        for column in frame.columns:
            mdata[name].obs[column] = frame[column].to_numpy()
    for column in obs.columns:
        mdata.obs[column] = obs[column].to_numpy()
    return mdata


def read_labels(path, label_column=None) -> pd.DataFrame:
    """The labels tsv (header; first column the barcode) as a str table; checks ``label_column`` exists."""
    table = read_table(path, header=0, what="labels file")
    if label_column is not None and label_column not in table.columns:
        raise InputError(path, f"labels file has no column {label_column!r} (columns: "
                               f"{', '.join(map(str, table.columns))})")
    if label_column is None and table.shape[1] < 2:
        raise InputError(path, f"labels file needs a header and two tab-separated columns (barcode, label); "
                               f"found only {table.columns[0]!r}")
    return table


def labels_from_table(table: pd.DataFrame, cells: pd.Index, label_column, path) -> pd.Series:
    """Barcode -> label from a labels table.

    The barcode column is the first one; when it matches no cell, another column that does (e.g. the
    ``rna.bc`` column of the SHARE-seq cell-type file, whose first column holds ATAC barcodes) is used.
    """
    if table.columns[0] in cells:
        log.warning("%s: the header's first field %r is a cell barcode; the labels file needs a header line "
                    "(barcode, label), so that cell is not labelled", path, table.columns[0])
    label_column = label_column if label_column is not None else table.columns[1]
    candidates = [c for c in table.columns if c != label_column]
    matches = {c: int(pd.Index(table[c].dropna()).isin(cells).sum()) for c in candidates}
    barcode_column = candidates[0]
    if matches[barcode_column] == 0 and max(matches.values()) > 0:
        barcode_column = max(matches, key=matches.get)
        log.info("%s: matching cells on column %r (the first column matches none)", path, barcode_column)
    if matches[barcode_column] == 0:
        raise InputError(path, f"no barcode of the labels file matches the dataset's cells (labels e.g. "
                               f"{table[candidates[0]].iloc[0]!r}, cells e.g. {cells[0]!r})")
    labels = table[[barcode_column, label_column]].dropna()
    labels = labels.drop_duplicates()
    if labels[barcode_column].duplicated().any():
        dup = labels.loc[labels[barcode_column].duplicated(), barcode_column].iloc[0]
        raise InputError(path, f"barcode {dup!r} has several different labels")
    return pd.Series(labels[label_column].to_numpy(), index=pd.Index(labels[barcode_column].to_numpy()))


def attach_labels(mdata: md.MuData, labels: pd.Series, path) -> md.MuData:
    """Set ``obs["label"]`` (str); cells without a label are dropped with a warning."""
    has_label = mdata.obs_names.isin(labels.index)
    if not has_label.any():
        raise InputError(path, f"no labelled barcode matches the dataset's cells (labels e.g. "
                               f"{labels.index[0]!r}, cells e.g. {mdata.obs_names[0]!r})")
    if not has_label.all():
        log.warning("%d of %d cells have no label in %s and are dropped", int((~has_label).sum()), mdata.n_obs,
                    path)
        mdata = subset_cells(mdata, mdata.obs_names[has_label])
    values = labels.reindex(mdata.obs_names).astype(str).to_numpy()
    mdata.obs["label"] = values
    for mod in mdata.mod.values():
        mod.obs["label"] = values
    log.info("labels: %s", ", ".join(f"{k} {v}" for k, v in pd.Series(values).value_counts().sort_index().items()))
    return mdata


def subset_cells(mdata: md.MuData, cells) -> md.MuData:
    return _build(mdata["rna"][cells].copy(), mdata["atac"][cells].copy(), mdata.obs.loc[cells].copy())


def cell_annotation(mdata: md.MuData, column: str):
    """A cell annotation named ``column`` in the global obs (as given, or prefixed rna_/atac_), or None."""
    for name in (column, f"rna_{column}", f"atac_{column}"):
        if name in mdata.obs.columns:
            return mdata.obs[name]
    return None
