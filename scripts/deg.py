"""Rule validation_deg: wilcoxon marker genes per label on raw vs scMVP-imputed RNA, and their overlap
with the reference DE gene list (when configured) and with each other."""
import logging

import numpy as np
import pandas as pd

from scmvp.errors import InputError
from scmvp.references import read_de_genes
from scmvp.rule import atomic_path, run, write_tsv
from scmvp.validation import H5muLayers, chunk_rows_for, de_overlap, log_normalized, top_de_genes
from scmvp.validation_plots import plot_deg

log = logging.getLogger("scmvp.deg")


def reference_genes(path, genes, labels):
    """The reference list restricted to the data's genes and labels; InputError when nothing is left."""
    reference = read_de_genes(path)
    shared_labels = set(reference["label"]) & set(map(str, labels))
    if not shared_labels:
        raise InputError(path, f"no label of the reference DE list is a cell label (reference: "
                               f"{', '.join(sorted(set(reference['label']))[:10])})")
    in_data = reference["gene"].isin(set(genes))
    if not in_data.any():
        raise InputError(path, "the reference DE list shares no gene with the data")
    log.info("reference DE list: %d of %d genes are in the data", in_data.sum(), len(reference))
    return reference[in_data & reference["label"].isin(shared_labels)]


def main(smk):
    with H5muLayers(smk.input.imputed) as data:
        labels = data.required_labels("the DEG validation")
        data.require_layer("rna", "imputed")
        genes = data.var("rna").index.astype(str)
        raw = log_normalized(data.counts("rna"))
        imputed = np.vstack([log_normalized(block) for _, _, block in
                             data.iter_rows("rna", "imputed", chunk_rows_for(len(genes)))]).astype(np.float32)
    labels = labels.to_numpy()
    n_genes = smk.params.n_de_genes
    top = pd.concat([top_de_genes(raw, genes, labels, n_genes).assign(input="raw"),
                     top_de_genes(imputed, genes, labels, n_genes).assign(input="scmvp")], ignore_index=True)
    reference = reference_genes(smk.input.de_genes, genes, pd.unique(labels[pd.notna(labels)])) \
        if smk.input.get("de_genes") else None
    overlap = de_overlap(top, reference, raw_top=top[top["input"] == "raw"])
    for name, group in overlap.groupby("input"):
        log.info("%s: mean precision %.3f, mean recall %.3f", name, group["precision"].mean(), group["recall"].mean())
    write_tsv(overlap, smk.output.table)
    write_tsv(top[["label", "input", "rank", "gene", "score", "logfoldchange"]], smk.output.genes)
    with atomic_path(smk.output.plot) as tmp:
        plot_deg(overlap, tmp)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
