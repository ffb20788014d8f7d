"""Rule validation_bulk_rna: per-cell and pseudo-bulk correlation of raw, scMVP- and scVI-imputed RNA
with the bulk RNA profile of each cell's label."""
import logging

import pandas as pd

from scmvp.references import bulk_columns_for_labels, read_bulk_rna
from scmvp.rule import atomic_path, run, write_tsv
from scmvp.validation import (H5muLayers, bulk_by_label, bulk_rna_correlations, chunk_rows_for, iter_csr_rows,
                              match_genes, scvi_normalized_chunks)
from scmvp.validation_plots import plot_bulk_rna

log = logging.getLogger("scmvp.validate_bulk_rna")


def main(smk):
    bulk_path = smk.input.bulk
    with H5muLayers(smk.input.imputed) as data:
        labels = data.required_labels("the bulk RNA validation")
        data.require_layer("rna", "imputed")
        barcodes = data.barcodes()
        bulk = read_bulk_rna(bulk_path)
        label_columns = bulk_columns_for_labels(bulk, labels.dropna(), smk.params.label_map, bulk_path)
        var = data.var("rna")
        positions, bulk_genes = match_genes(var, bulk.index, bulk_path)
        log.info("%d of %d genes shared with the bulk table; labels with a bulk sample: %s",
                 len(positions), var.shape[0], label_columns)
        bulk_log = bulk_by_label(bulk, bulk_genes, label_columns)
        chunk = chunk_rows_for(var.shape[0])
        counts = data.counts("rna")
        sources = {
            "raw": iter_csr_rows(counts, chunk),
            "scmvp": data.iter_rows("rna", "imputed", chunk),
            "scvi": scvi_normalized_chunks(counts, n_epochs=smk.params.scvi_max_epochs, seed=smk.params.seed,
                                           chunk_size=chunk, threads=smk.threads,
                                           accelerator=smk.params.accelerator),
        }
        per_cell, pseudobulk = [], []
        for name, chunks in sources.items():
            cells, pseudo = bulk_rna_correlations(chunks, barcodes, labels.to_numpy(), positions, bulk_log, name)
            log.info("%s: median per-cell Pearson %.4f, Spearman %.4f over %d cells", name,
                     cells["pearson"].median(), cells["spearman"].median(), len(cells))
            per_cell.append(cells)
            pseudobulk.append(pseudo)
    per_cell = pd.concat(per_cell, ignore_index=True)
    write_tsv(per_cell, smk.output.table)
    write_tsv(pd.concat(pseudobulk, ignore_index=True), smk.output.pseudobulk)
    with atomic_path(smk.output.plot) as tmp:
        plot_bulk_rna(per_cell, tmp)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
