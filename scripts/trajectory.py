"""Rule validation_trajectory: diffusion pseudotime on the scMVP joint embedding vs RNA-only (PCA) and
ATAC-only (LSI) embeddings, each compared with the reference pseudotime (Spearman)."""
import logging

import anndata as ad
import numpy as np
import pandas as pd

from scmvp.baselines import atac_lsi, rna_pca
from scmvp.errors import InputError
from scmvp.pseudotime import diffusion_pseudotime, pseudotime_agreement, trajectory_cells
from scmvp.references import read_pseudotime
from scmvp.rule import atomic_path, run, write_tsv
from scmvp.validation import H5muLayers
from scmvp.validation_plots import plot_trajectory

log = logging.getLogger("scmvp.trajectory")


def embeddings(data, params):
    """name -> cells x dims: the joint scMVP embedding and the single-modality baselines."""
    rna = ad.AnnData(X=data.counts("rna"), var=pd.DataFrame(index=data.var("rna").index))
    atac = ad.AnnData(X=data.counts("atac"), var=pd.DataFrame(index=data.var("atac").index))
    return {
        "scmvp": data.obsm("X_scmvp"),
        "rna_pca": rna_pca(rna, n_top_genes=params.n_top_genes, n_pcs=params.n_pcs, seed=params.seed),
        "atac_lsi": atac_lsi(atac, n_components=params.n_lsi_components, seed=params.seed)[0],
    }


def main(smk):
    params = smk.params
    with H5muLayers(smk.input.imputed) as data:
        labels = data.required_labels("the trajectory")
        barcodes = data.barcodes()
        in_trajectory = trajectory_cells(labels.to_numpy(), params.trajectory["labels"], smk.input.imputed)
        spaces = embeddings(data, params)
    truth = read_pseudotime(smk.input.pseudotime)
    reference = truth.reindex(barcodes[in_trajectory]).to_numpy()
    if np.isfinite(reference).sum() < 3:
        raise InputError(smk.input.pseudotime, "shares (almost) no barcode with the trajectory's cells")
    is_root = labels.to_numpy()[in_trajectory].astype(str) == str(params.trajectory["root_label"])
    cells = pd.DataFrame({"barcode": barcodes[in_trajectory], "label": labels.to_numpy()[in_trajectory],
                          "reference_pseudotime": reference})
    rows = []
    for name, embedding in spaces.items():
        pseudotime, root = diffusion_pseudotime(embedding[in_trajectory], is_root, seed=params.seed,
                                                n_dcs=params.n_dcs)
        spearman, n_cells = pseudotime_agreement(pseudotime, reference)
        log.info("%s: Spearman with the reference pseudotime %.4f over %d cells (root %s)", name, spearman,
                 n_cells, cells["barcode"].iloc[root])
        cells[f"dpt_{name}"] = pseudotime
        rows.append({"embedding": name, "spearman": spearman, "n_cells": n_cells,
                     "root_barcode": cells["barcode"].iloc[root]})
    summary = pd.DataFrame(rows)
    write_tsv(summary, smk.output.table)
    write_tsv(cells, smk.output.cells)
    with atomic_path(smk.output.plot) as tmp:
        plot_trajectory(summary, cells, tmp)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
