"""Embed the preprocessed cells with one benchmark method; write the embedding and its time/memory.

params: method, seed, n_top_genes, n_pcs, n_lsi_components, mofa_factors, mofa_iterations,
scvi, multivi (the config's benchmark.scvi / benchmark.multivi), accelerator, batch_key (model.batch_key); for scmvp input embedding
(imputed.h5mu with obsm X_scmvp, or the latent.tsv of a benchmark seed's extra model) and params
model_benchmarks (the model rules' Snakemake benchmark files).
"""
import json
import logging
import os

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scmvp import baselines
from scmvp.batches import batch_labels, resolve_batch_key
from scmvp.errors import InputError
from scmvp.metrics import track_resources
from scmvp.rule import atomic_path, run

log = logging.getLogger("scmvp.embed")


def model_resources(benchmark_files):
    """Seconds (summed) and peak memory (max) of the model rules behind scMVP's latent (training + imputation,
    or the training of a benchmark seed's extra model), from their Snakemake benchmark files."""
    files = [path for path in benchmark_files if os.path.exists(path)]
    if not files:
        log.warning("no model benchmark files (%s): scmvp seconds/memory left empty", ", ".join(benchmark_files))
        return {"seconds": None, "peak_mem_mb": None}
    tables = [pd.read_csv(path, sep="\t") for path in files]
    return {"seconds": float(sum(t["s"].iloc[0] for t in tables)),
            "peak_mem_mb": float(max(pd.to_numeric(t["max_rss"], errors="coerce").iloc[0] for t in tables)),
            "from": files}


def scmvp_latent(path, barcodes):
    """scMVP's latent of the benchmark's cells: obsm X_scmvp of imputed.h5mu, or a seed's latent.tsv."""
    if str(path).endswith(".tsv"):
        cells, embedding = baselines.read_embedding(path)
        if not cells.equals(pd.Index(barcodes)):
            raise InputError(path, "its barcodes differ from the preprocessed cells")
        return embedding
    embedding = baselines.read_obsm(path, "X_scmvp", barcodes)
    if not np.isfinite(embedding).all():
        raise InputError(path, 'obsm["X_scmvp"] has NaN or infinite values')
    return embedding


def import_libraries(method):
    """Import a method's libraries before the clock starts: their import time is not the method's cost."""
    import muon  # noqa: F401
    import scanpy  # noqa: F401

    if method in ("scvi", "multivi"):
        import scvi  # noqa: F401
    if method == "mofa":
        import mofapy2  # noqa: F401


def main(smk):
    method = smk.params.method
    data = smk.input.data
    if method == "scmvp":
        barcodes, _ = baselines.read_cells(data)
        embedding = scmvp_latent(smk.input.embedding, barcodes)
        usage, extra = model_resources(list(smk.params.model_benchmarks)), {}
    else:
        import mudata as md

        try:
            mdata = md.read_h5mu(data)
        except OSError as err:
            raise InputError(data, f"not a readable h5mu file ({err})") from None
        baselines.check_paired_modalities(mdata, data, min_cells=10, purpose="to benchmark")
        barcodes = mdata.obs_names.astype(str)
        import_libraries(method)
        p = smk.params
        # several libraries: every baseline gets the batches the model gets (model.batch_key), its own way
        batch_key = resolve_batch_key(mdata, p.get("batch_key"), data)
        batches = batch_labels(mdata, batch_key, data) if batch_key else None
        with track_resources() as usage:
            embedding, extra = baselines.embed(
                method, mdata, seed=p.seed, n_top_genes=p.n_top_genes, n_pcs=p.n_pcs,
                n_lsi_components=p.n_lsi_components, mofa_factors=p.mofa_factors,
                mofa_iterations=p.mofa_iterations, scvi=dict(p.scvi), multivi=dict(p.multivi),
                threads=smk.threads, accelerator=p.accelerator, batches=batches)
    log.info("%s: embedding %s in %s s, peak %s MB", method, embedding.shape, usage["seconds"],
             usage["peak_mem_mb"])
    if "graph" in extra:
        with atomic_path(smk.output.graph) as tmp:
            sp.save_npz(tmp, sp.csr_matrix(extra.pop("graph")))
    baselines.write_embedding(embedding, barcodes, smk.output.embedding)
    with atomic_path(smk.output.resources) as tmp, open(tmp, "w") as handle:
        json.dump({"method": method, "seed": int(smk.params.seed) if "seed" in smk.params.keys() else None,
                   "n_cells": int(len(barcodes)), "n_dims": int(embedding.shape[1]),
                   **usage, **extra}, handle, indent=1)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
