"""Rule validation_bulk_atac: per cell, peaks called open in raw (count > 0) and imputed (top fraction)
ATAC, and how many of them overlap the bulk ATAC/DNase peaks (bedtools intersect)."""
import logging

import numpy as np
import pandas as pd

from scmvp.errors import InputError
from scmvp.references import read_bed
from scmvp.rule import atomic_path, run, write_tsv
from scmvp.validation import (H5muLayers, atac_table, bulk_supported_peaks, chunk_rows_for, raw_called_peaks,
                              top_called_peaks)
from scmvp.validation_plots import plot_bulk_atac

log = logging.getLogger("scmvp.validate_bulk_atac")


def main(smk):
    with H5muLayers(smk.input.imputed) as data:
        data.require_layer("atac", "imputed")
        peaks = data.var("atac")
        missing = [c for c in ("chrom", "start", "end") if c not in peaks.columns]
        if missing:
            raise InputError(smk.input.imputed, f"atac.var lacks {', '.join(missing)}")
        bulk = read_bed(smk.input.bulk, "bulk ATAC BED")
        supported = bulk_supported_peaks(peaks, bulk, smk.input.bulk, smk.params.genome)
        log.info("%d of %d peaks overlap the bulk ATAC BED (%d intervals)", supported.sum(), len(supported), len(bulk))
        barcodes = data.barcodes()
        labels = data.labels()
        labels = np.full(len(barcodes), None, dtype=object) if labels is None else labels.to_numpy()
        tables = [atac_table(barcodes, labels, "raw", *raw_called_peaks(data.counts("atac"), supported))]
        n_called, n_supported = [], []
        for _, _, block in data.iter_rows("atac", "imputed", chunk_rows_for(len(supported))):
            called, hit = top_called_peaks(block, supported, smk.params.top_fraction)
            n_called.append(called)
            n_supported.append(hit)
        tables.append(atac_table(barcodes, labels, "scmvp", np.concatenate(n_called), np.concatenate(n_supported)))
    table = pd.concat(tables, ignore_index=True)
    for name, group in table.groupby("input"):
        log.info("%s: median called %.0f, median supported %.0f, median precision %.4f", name,
                 group["n_called"].median(), group["n_supported"].median(), group["precision"].median())
    write_tsv(table, smk.output.table)
    with atomic_path(smk.output.plot) as tmp:
        plot_bulk_atac(table, tmp)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
