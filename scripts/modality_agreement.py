"""Rule `modality_agreement`: the RNA-ATAC neighbourhood agreement of preprocessed.h5mu (scmvp.modality_agreement),
over all cells and, for a sample sheet, per sample -> qc/modality_agreement.tsv; a group near chance is logged
as a warning (its RNA and ATAC barcodes may not be paired).

params: n_neighbors, n_top_genes, n_pcs, n_lsi_components, seed.
"""
import logging

from scmvp import baselines
from scmvp.errors import require_file
from scmvp.io.h5mu_parts import read_h5mu_layer
from scmvp.modality_agreement import agreement_table
from scmvp.rule import run, write_tsv

log = logging.getLogger("scmvp.modality_agreement")


def main(smk):
    path = require_file(smk.input.data, "preprocessed MuData")
    mdata = read_h5mu_layer(path, "counts")
    baselines.check_paired_modalities(mdata, path, min_cells=20, purpose="for a neighbour overlap")
    p = smk.params
    rna = baselines.rna_pca(mdata.mod["rna"], n_top_genes=p.n_top_genes, n_pcs=p.n_pcs, seed=p.seed)
    atac, _ = baselines.atac_lsi(mdata.mod["atac"], n_components=p.n_lsi_components, seed=p.seed)
    samples = mdata.obs["sample"].to_numpy() if "sample" in mdata.obs.columns else None
    table = agreement_table(rna, atac, samples, k=p.n_neighbors, seed=p.seed)
    for row in table.itertuples():
        message = (f"{row.group}: {row.cells} cells, RNA-ATAC {row.k}-NN Jaccard {row.jaccard:.4f} = "
                   f"{row.ratio_to_chance:.2f} x chance (shuffled pairings up to {row.shuffled_ratio_max:.2f})")
        if row.near_chance:
            log.warning("%s: near chance -- are this group's RNA and ATAC barcodes of the same cells? (a 10x "
                        "Multiome ATAC barcode not translated to its gene-expression barcode, or a sample sheet "
                        "row pairing two libraries, gives this)", message)
        else:
            log.info("%s", message)
    write_tsv(table, smk.output.table, float_format="%.5g")


run(main, snakemake)  # noqa: F821 - injected by Snakemake
