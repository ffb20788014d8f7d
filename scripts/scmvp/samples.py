"""Many libraries, one dataset: the sample sheet and the join of its samples into one ingested MuData.

A dataset entry of the config may give ``samples: path/to/samples.tsv`` instead of ``technology``/``path``. The
sheet is a tab-separated table with a header:

* ``sample`` (required): the library's name; unique; letters, digits, ``_ . -`` (never :data:`SEPARATOR`).
* ``technology`` (required): one of the ingest readers' technologies (:data:`scmvp.io.TECHNOLOGIES`).
* ``path`` (required): the library's file or folder in that technology's layout (Cell Ranger ARC: ``outs/``...).
* ``labels``, ``label_column`` (optional): as for a single dataset, per sample (barcodes as in the sample's
  own files, without the sample prefix).
* any other column is a covariate (``donor``, ``condition``, ``time``...), copied to every cell of the sample.

Relative paths are read relative to the folder holding the sheet. :func:`read_sample_sheet` checks the sheet
(one line naming the file per problem) and validates it with ``config/schemas/samples.schema.yaml`` through
``snakemake.utils.validate``.

:func:`ingest_samples` reads each sample with its technology's reader (:func:`scmvp.io.read_dataset`), makes the
barcodes unique as ``{sample}#{barcode}`` (ArchR's convention: unambiguous, since no 10x, SNARE, SHARE, sci-CAR
or Paired-seq barcode holds a ``#``), matches genes across samples (intersection, by gene id when every sample
has ids, else by name), merges the samples' peaks onto one peak set and joins the samples into one MuData
following the ``ingested.h5mu`` contract, with ``obs["sample"]`` (categorical, sheet order), ``obs["barcode"]``
(the sample's own barcode), the covariates and ``obs["label"]`` on the MuData's obs and on each modality's obs.
Other cell annotations a reader returns (sci-CAR's cell tables, ...) are not carried over.

Peaks: every sample's peaks (each Cell Ranger ARC run calls its own) are pooled and merged with ``bedtools
merge`` (overlapping and book-ended intervals become one); ``bedtools intersect`` maps each sample peak to the
merged peak that contains it, and a cell's counts in the merged peak are the sum of its counts in the sample
peaks mapped there (a sparse product with the 0/1 mapping matrix; never a dense cells x peaks array).
"""
from __future__ import annotations

import logging
import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import InputError
from .io import read_dataset, validate_ingested
from .io.assemble import _build
# the sheet itself: scmvp.sample_sheet (pandas only, read at parse time); re-exported here
from .sample_sheet import (OPTIONAL_COLUMNS, REQUIRED_COLUMNS, SEPARATOR, _missing,  # noqa: F401
                           covariate_columns, read_sample_sheet, sheet_has_labels, sheet_records,
                           split_cell_names)

log = logging.getLogger("scmvp.samples")


# --------------------------------------------------------------------------------------------- barcodes
def cell_names(sample: str, barcodes) -> pd.Index:
    """``{sample}#{barcode}``: the joined dataset's cell names."""
    return pd.Index([f"{sample}{SEPARATOR}{b}" for b in barcodes])


# ------------------------------------------------------------------------------------------------ peaks
def merge_peaks(peak_tables: list[pd.DataFrame], names=None):
    """Merge the samples' peaks (tables with chrom, start, end) into one peak set with bedtools.

    Returns ``(merged, mappings)``: ``merged`` a table chrom, start, end indexed ``chrom:start-end``, ordered
    by chromosome (in the order the samples first name them) and start; ``mappings[i]`` the CSR 0/1 matrix
    (sample i's peaks x merged peaks) sending each sample peak to the merged peak that contains it.
    """
    import pybedtools

    names = list(names) if names is not None else [str(i) for i in range(len(peak_tables))]
    pooled = pd.concat([
        pd.DataFrame({"chrom": t["chrom"].astype(str).to_numpy(), "start": t["start"].to_numpy(np.int64),
                      "end": t["end"].to_numpy(np.int64), "name": [f"{i}:{j}" for j in range(len(t))]})
        for i, t in enumerate(peak_tables)], ignore_index=True)
    chrom_order = {c: k for k, c in enumerate(pd.unique(pooled["chrom"]))}
    # bedtools needs end > start; a zero-length peak is widened to 1 bp for the overlap test only
    pooled["end"] = np.maximum(pooled["end"], pooled["start"] + 1)
    try:
        bed = pybedtools.BedTool.from_dataframe(pooled).sort()
        merged_bed = bed.merge()
        merged = pd.read_csv(merged_bed.fn, sep="\t", header=None, names=["chrom", "start", "end"],
                             dtype={"chrom": str, "start": np.int64, "end": np.int64})
        hits = pd.read_csv(bed.intersect(merged_bed, wa=True, wb=True).fn, sep="\t", header=None,
                           names=["chrom", "start", "end", "name", "m_chrom", "m_start", "m_end"],
                           dtype={"chrom": str, "name": str, "m_chrom": str})
    finally:
        pybedtools.cleanup()
    merged["order"] = merged["chrom"].map(chrom_order)
    merged = merged.sort_values(["order", "start"], kind="stable").drop(columns="order").reset_index(drop=True)
    merged.index = pd.Index(merged["chrom"] + ":" + merged["start"].astype(str) + "-" + merged["end"].astype(str))
    position = pd.Series(np.arange(len(merged)), index=merged.index)
    hits["merged"] = position.reindex(hits["m_chrom"] + ":" + hits["m_start"].astype(str) + "-"
                                      + hits["m_end"].astype(str)).to_numpy()
    owner = hits["name"].str.split(":", n=1, expand=True)
    hits["sample"], hits["peak"] = owner[0].astype(int), owner[1].astype(int)
    if hits.duplicated(["sample", "peak"]).any() or len(hits) != len(pooled):
        raise RuntimeError(f"bedtools mapped {len(hits)} sample peaks onto merged peaks, expected {len(pooled)} "
                           f"(one each)")
    mappings = []
    for i, table in enumerate(peak_tables):
        own = hits[hits["sample"] == i]
        mappings.append(sp.csr_matrix((np.ones(len(own), np.float32), (own["peak"].to_numpy(),
                                                                       own["merged"].to_numpy())),
                                      shape=(len(table), len(merged))))
    for name, table, mapping in zip(names, peak_tables, mappings):
        absent = int((np.asarray(mapping.sum(axis=0)).ravel() == 0).sum())
        log.info("sample %s: %d peaks in -> %d merged peaks hold them; %d merged peaks have no peak of this "
                 "sample (its cells count 0 there)", name, len(table), len(np.unique(mapping.indices)), absent)
    log.info("peaks: %d in over %d samples -> %d merged peaks (bedtools merge)", len(pooled), len(peak_tables),
             len(merged))
    return merged[["chrom", "start", "end"]], mappings


# ------------------------------------------------------------------------------------------------ genes
def match_genes(rnas: list[ad.AnnData], names) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """The genes measured in every sample (intersection), in the first sample's order.

    Matched on ``var["gene_id"]`` when every sample has gene ids, else on the gene names. Returns the joined
    ``var`` (names and columns of the first sample) and, per sample, the column indices of those genes.
    Intersection, not union: a gene missing from one sample's features was not measured there (another
    annotation), and zeros filled in for it would be a fake, sample-specific difference.
    """
    by_id = all("gene_id" in r.var.columns for r in rnas)
    keys = [pd.Index(r.var["gene_id"].astype(str)) if by_id else pd.Index(r.var_names) for r in rnas]
    for name, key in zip(names, keys):
        if key.has_duplicates:
            raise InputError(name, f"gene {'id' if by_id else 'name'} {key[key.duplicated()][0]!r} appears twice")
    common = keys[0]
    for key in keys[1:]:
        common = common[common.isin(key)]
    if len(common) == 0:
        raise InputError(", ".join(names), f"the samples share no gene {'id' if by_id else 'name'} (e.g. "
                                           f"{keys[0][0]!r} vs {keys[-1][0]!r})")
    for name, key in zip(names, keys):
        if len(key) > len(common):
            log.warning("sample %s: %d of %d genes are not in every sample and are dropped", name,
                        len(key) - len(common), len(key))
    log.info("genes: %d shared by all %d samples (matched by %s)", len(common), len(rnas),
             "gene id" if by_id else "gene name")
    indices = [key.get_indexer(common) for key in keys]
    var = rnas[0].var.iloc[indices[0]].copy()
    return var, indices


# ------------------------------------------------------------------------------------------------- join
def ingest_samples(table: pd.DataFrame, source="sample sheet") -> md.MuData:
    """Read every sample of ``table`` (see :func:`read_sample_sheet`) and join them into one ingested MuData."""
    table = table.reset_index(drop=True)
    covariates = covariate_columns(table)
    names = [str(s) for s in table["sample"]]
    mdatas = []
    for row in table.to_dict("records"):
        labels = None if _missing(row.get("labels")) else row["labels"]
        label_column = None if _missing(row.get("label_column")) else row["label_column"]
        mdata = read_dataset(row["technology"], row["path"], labels=labels, label_column=label_column)
        log.info("sample %s (%s, %s): %d cells, %d genes, %d peaks", row["sample"], row["technology"], row["path"],
                 mdata.n_obs, mdata["rna"].n_vars, mdata["atac"].n_vars)
        mdatas.append(mdata)
    labelled = ["label" in m.obs.columns for m in mdatas]
    if any(labelled) and not all(labelled):
        raise InputError(source, f"samples {', '.join(n for n, has in zip(names, labelled) if has)} have labels, "
                                 f"{', '.join(n for n, has in zip(names, labelled) if not has)} not: give labels "
                                 f"(a labels file or label_column) for every sample or for none")
    var, gene_indices = match_genes([m["rna"] for m in mdatas], names)
    merged, mappings = merge_peaks([m["atac"].var for m in mdatas], names)

    rna_x, atac_x, obs_parts = [], [], []
    for name, row, mdata, genes, mapping in zip(names, table.to_dict("records"), mdatas, gene_indices, mappings):
        rna_x.append(sp.csr_matrix(mdata["rna"].X)[:, genes])
        atac_x.append((sp.csr_matrix(mdata["atac"].X) @ mapping).tocsr())  # counts summed per merged peak
        obs = pd.DataFrame(index=cell_names(name, mdata.obs_names))
        obs["barcode"] = mdata.obs_names.to_numpy()
        obs["sample"] = name
        for column in covariates:
            obs[column] = row[column]
        if "label" in mdata.obs.columns:
            obs["label"] = mdata.obs["label"].astype(str).to_numpy()
        obs_parts.append(obs)
    obs = pd.concat(obs_parts)
    obs["sample"] = pd.Categorical(obs["sample"], categories=names)
    for column in covariates:
        if obs[column].dtype == object:
            obs[column] = obs[column].astype(str).where(obs[column].notna(), "NA")
    rna = ad.AnnData(sp.vstack(rna_x, format="csr"), obs=pd.DataFrame(index=obs.index), var=var)
    atac = ad.AnnData(sp.vstack(atac_x, format="csr").astype(np.float32), obs=pd.DataFrame(index=obs.index),
                      var=merged)
    atac.X.sort_indices()
    for mod in (rna, atac):
        for column in obs.columns:
            mod.obs[column] = obs[column].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        joined = _build(rna, atac, obs)
    for frame in (joined.obs, joined["rna"].obs, joined["atac"].obs):
        frame["sample"] = obs["sample"].to_numpy()  # categorical, categories in sheet order
    log.info("joined %d samples: %d cells (%s), %d genes, %d merged peaks", len(names), joined.n_obs,
             ", ".join(f"{k} {v}" for k, v in joined.obs["sample"].value_counts(sort=False).items()),
             joined["rna"].n_vars, joined["atac"].n_vars)
    return validate_ingested(joined, source)
