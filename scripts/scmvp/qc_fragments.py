"""Per-cell ATAC quality from Cell Ranger ARC's fragments file and per-barcode metrics, through muon.

Computed for every incoming cell, before filtering (:mod:`scmvp.qc` then thresholds them):

* ``atac_tss_enrichment``: ``mu.atac.tl.tss_enrichment`` (ENCODE-style: mean fragment coverage within
  ±500 bp of the TSS over the mean of the 100-bp flanks at ±1 kb; up to ``n_tss`` TSSs, sampled with the
  seed). TSSs come from ``references.genes`` when the dataset has it (strand-aware, :func:`scmvp.genes.read_genes`),
  otherwise from the ``interval`` of the Gene Expression features that the 10x reader keeps in
  ``rna.var["interval"]`` (Start = TSS, as muon's ``get_gene_annotation_from_rna`` does).
* ``atac_nucleosome_signal``: ``mu.atac.tl.nucleosome_signal`` (fragments of 147-293 bp over fragments
  shorter than 147 bp, per cell; muon reads the fragments file from its start, at most 10,000 fragments
  per cell in total, capped here at the file's size).
* ``atac_frip``: fraction of the cell's fragments in peaks. From ``per_barcode_metrics.csv``
  (``atac_peak_region_fragments / atac_fragments``) when given; otherwise fragments overlapping the
  matrix's peaks counted by ``mu.atac.tl.count_fragments_features`` (unique fragments, a fragment touching
  two peaks counts twice, as muon counts per peak) over all the cell's fragments in the file.

muon finds the fragments through ``atac.uns["files"]["fragments"]``; the path comes from the rule's input
(the ``atac_fragments.tsv.gz`` next to the matrix in Cell Ranger ARC's ``outs/``), is recorded there and
stays in ``preprocessed.h5mu``.
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import logging
import os

import numpy as np
import pandas as pd

from .errors import InputError

log = logging.getLogger("scmvp.qc")

FRAGMENT_COLUMNS = ["atac_tss_enrichment", "atac_nucleosome_signal", "atac_frip"]
FRAGMENTS_NAME = "atac_fragments.tsv.gz"
BARCODE_METRICS_NAME = "per_barcode_metrics.csv"
NUCLEOSOME_FRAGMENTS_PER_CELL = 10_000  # muon's default budget


def find_arc_file(path, name):
    """``name`` in a Cell Ranger ARC ``outs/`` folder given as ``path`` (the folder, its parent, or a file in
    it such as the matrix .h5 or the ``filtered_feature_bc_matrix/`` folder), or None."""
    if path is None:
        return None
    path = os.path.abspath(str(path))
    folders = [path, os.path.join(path, "outs")] if os.path.isdir(path) else []
    folders.append(os.path.dirname(path))
    for folder in folders:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def read_barcode_metrics(path, barcodes) -> pd.DataFrame:
    """``per_barcode_metrics.csv`` rows of ``barcodes``: ``atac_frip`` (+ the raw ARC columns it came from)."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read as CSV: {err}") from None
    needed = ["barcode", "atac_fragments", "atac_peak_region_fragments"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise InputError(path, f"per-barcode metrics lack the column(s) {', '.join(missing)} (Cell Ranger ARC "
                               f"writes barcode, is_cell, atac_fragments, atac_peak_region_fragments, ...)")
    table = table.drop_duplicates("barcode").set_index("barcode")
    found = pd.Index(barcodes).isin(table.index)
    if not found.any():
        raise InputError(path, f"no barcode matches the dataset's cells (file e.g. {table.index[0]!r}, cells e.g. "
                               f"{barcodes[0]!r})")
    if not found.all():
        log.warning("%s: %d of %d cells are not listed; their FRiP is NaN", path, int((~found).sum()), len(found))
    table = table.reindex(barcodes)
    total = table["atac_fragments"].to_numpy(dtype=float)
    frip = np.divide(table["atac_peak_region_fragments"].to_numpy(dtype=float), total,
                     out=np.full(len(total), np.nan), where=total > 0)
    return pd.DataFrame({"atac_frip": frip, "atac_fragments": total}, index=pd.Index(barcodes, name="barcode"))


def gene_tss(rna=None, genes_path=None) -> pd.DataFrame | None:
    """TSSs as muon wants them (``Chromosome, Start, End``; Start = the TSS): from the genes reference when
    given, else from ``rna.var["interval"]`` (10x feature intervals); None when neither exists."""
    if genes_path is not None:
        from .genes import read_genes

        genes = read_genes(genes_path)
        return pd.DataFrame({"Chromosome": genes["chrom"].astype(str).to_numpy(),
                             "Start": genes["tss"].to_numpy(np.int64), "End": genes["tss"].to_numpy(np.int64) + 1,
                             "gene_name": genes["gene"].astype(str).to_numpy()})
    if rna is None or "interval" not in rna.var.columns:
        return None
    interval = rna.var["interval"].astype(str)
    parts = interval.str.replace(":", "-", n=1).str.rsplit("-", n=2, expand=True)
    if parts.shape[1] != 3:
        return None
    start = pd.to_numeric(parts[1], errors="coerce")
    end = pd.to_numeric(parts[2], errors="coerce")
    ok = start.notna().to_numpy() & end.notna().to_numpy()
    if not ok.any():
        return None
    return pd.DataFrame({"Chromosome": parts[0].to_numpy()[ok], "Start": start.to_numpy()[ok].astype(np.int64),
                         "End": end.to_numpy()[ok].astype(np.int64), "gene_name": rna.var_names.to_numpy()[ok]})


def count_fragments(path, limit=None) -> int:
    """Fragments (non-comment lines) in a gzipped fragments file, counting stops at ``limit``."""
    n, comments = 0, 0
    with gzip.open(path, "rb") as handle:
        for line in handle:
            if line.startswith(b"#"):
                comments += 1
                continue
            n += 1
            if limit is not None and n >= limit:
                break
    return n


def fragments_per_cell(path, barcodes) -> np.ndarray:
    """All fragments of each cell in the file (the FRiP denominator without per_barcode_metrics.csv)."""
    import pysam

    index = {b: i for i, b in enumerate(barcodes)}
    totals = np.zeros(len(barcodes), dtype=np.int64)
    with pysam.TabixFile(str(path), parser=pysam.asTuple()) as tbx:
        for contig in tbx.contigs:
            for fields in tbx.fetch(contig):
                i = index.get(fields[3])
                if i is not None:
                    totals[i] += 1
    return totals


@contextlib.contextmanager
def _quiet_muon():
    """muon draws a tqdm progress bar per call; keep the rule logs readable."""
    import muon._atac.tools as atac_tools

    original = getattr(atac_tools, "tqdm", None)
    if original is not None:
        atac_tools.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            atac_tools.tqdm = original


def fragment_metrics(mdata, fragments, barcode_metrics=None, genes=None, seed: int = 0,
                     n_tss: int = 2000) -> pd.DataFrame:
    """Per-cell TSS enrichment, nucleosome signal and FRiP of ``mdata``'s cells (index = obs_names).

    ``fragments``: tabix-indexed ``atac_fragments.tsv.gz``; ``barcode_metrics``: ``per_barcode_metrics.csv``
    or None; ``genes``: a genes reference (GTF/GFF3/BED) or None (then ``rna.var["interval"]``).
    """
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    fragments = str(fragments)
    table = _fragment_metrics(atac.obs_names, rna, atac.var, fragments, barcode_metrics, genes, seed, n_tss)
    atac.uns.setdefault("files", {})
    atac.uns["files"] = {**dict(atac.uns["files"]), "fragments": fragments}
    return table


def sample_fragment_metrics(mdata, files: dict, genes=None, seed: int = 0, n_tss: int = 2000) -> pd.DataFrame:
    """The fragment metrics of a sample sheet's cells, each sample's from its own Cell Ranger ARC files.

    ``files``: sample -> ``{"fragments": path, "barcode_metrics": path}`` (either may be missing: no fragments
    file gives FRiP only, from the metrics). Cells are named ``{sample}#{barcode}``; the barcode part is looked
    up in the sample's files, the results come back under the full names. Cells of samples without files get
    NaN (they break no fragment bound). The paths are recorded in ``atac.uns["files"]["fragments_{sample}"]``.
    """
    from .sample_sheet import split_cell_names

    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    names = atac.obs_names
    parts = split_cell_names(names)
    own_sample, barcodes = parts["sample"].to_numpy(dtype=object), pd.Index(parts["barcode"])
    tables = []
    for sample, paths in files.items():
        cells = np.flatnonzero(own_sample == sample)
        if not len(cells):
            log.warning("sample %s has fragment files but no cells", sample)
            continue
        fragments, metrics = paths.get("fragments"), paths.get("barcode_metrics")
        if fragments is not None:
            table = _fragment_metrics(barcodes[cells], rna, atac.var, str(fragments), metrics, genes, seed, n_tss)
            atac.uns["files"] = {**dict(atac.uns.get("files", {})), f"fragments_{sample}": str(fragments)}
        elif metrics is not None:
            table = read_barcode_metrics(metrics, barcodes[cells])[["atac_frip"]]
        else:
            continue
        tables.append(table.set_axis(names[cells]))
    joined = pd.concat(tables) if tables else pd.DataFrame(index=pd.Index([], name="barcode"))
    return joined.reindex(pd.Index(names, name="barcode"))


def _fragment_metrics(barcodes, rna, peaks, fragments, barcode_metrics, genes, seed, n_tss) -> pd.DataFrame:
    """The three metrics of the cells ``barcodes`` (as named in ``fragments``) through muon."""
    import muon as mu

    if not os.path.isfile(fragments + ".tbi"):
        raise InputError(fragments, "no tabix index next to it (.tbi); index it with `tabix -p bed`")
    table = pd.DataFrame(index=pd.Index(barcodes, name="barcode"))
    # a bare AnnData with the cells: muon writes its columns into obs, not into ours
    probe = _probe(barcodes, fragments)
    with _quiet_muon():
        tss = gene_tss(rna, genes)
        if tss is None:
            log.warning("%s: no gene coordinates (no references.genes, no rna.var['interval']): no TSS enrichment",
                        fragments)
            table["atac_tss_enrichment"] = np.nan
        else:
            mu.atac.tl.tss_enrichment(probe, features=tss, n_tss=n_tss, random_state=seed, return_tss=False)
            table["atac_tss_enrichment"] = probe.obs["tss_score"].to_numpy(dtype=float)
        budget = NUCLEOSOME_FRAGMENTS_PER_CELL * len(barcodes)
        n = count_fragments(fragments, limit=budget)
        mu.atac.tl.nucleosome_signal(probe, n=n)
        table["atac_nucleosome_signal"] = probe.obs["nucleosome_signal"].to_numpy(dtype=float)
        if barcode_metrics is not None:
            table["atac_frip"] = read_barcode_metrics(barcode_metrics, barcodes)["atac_frip"].to_numpy()
            source = os.path.basename(str(barcode_metrics))
        else:
            table["atac_frip"] = frip_from_fragments(probe, peaks)
            source = "fragments overlapping the peaks (muon count_fragments_features)"
    log.info("fragment QC of %d cells from %s (FRiP from %s): median TSS enrichment %.3g, nucleosome signal "
             "%.3g, FRiP %.3g", len(barcodes), fragments, source, *table.median().to_numpy())
    return table


def frip_from_fragments(probe, peaks: pd.DataFrame) -> np.ndarray:
    """Fragments overlapping the peaks (muon, unique fragments) over all the cell's fragments."""
    import warnings

    import muon as mu

    features = pd.DataFrame({"Chromosome": peaks["chrom"].astype(str).to_numpy(),
                             "Start": peaks["start"].to_numpy(np.int64), "End": peaks["end"].to_numpy(np.int64)},
                            index=peaks.index.astype(str))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # muon's notice about count_reads' future default
        counts = mu.atac.tl.count_fragments_features(probe, features=features, extend_upstream=0,
                                                     extend_downstream=0, count_reads=False)
    in_peaks = np.asarray(counts.X.sum(axis=1)).ravel().astype(float)
    total = fragments_per_cell(probe.uns["files"]["fragments"], probe.obs_names).astype(float)
    return np.divide(in_peaks, total, out=np.full(len(total), np.nan), where=total > 0)


def _probe(barcodes, fragments):
    import anndata as ad

    probe = ad.AnnData(obs=pd.DataFrame(index=pd.Index(barcodes).astype(str).copy()))
    probe.uns["files"] = {"fragments": fragments}
    return probe
