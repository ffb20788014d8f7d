"""The baselines' batch handling: Harmony on RNA PCA / ATAC LSI / WNN inputs removes a library effect."""
from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from test_model_batch import BATCHES, batch_knn_accuracy, kmeans_ari, library_effect

from scmvp.baselines import embed


@pytest.fixture(scope="module")
def libraries():
    sim, rna, atac, batch, _, types = library_effect()
    obs = pd.DataFrame(index=sim.barcodes)
    mdata = md.MuData({"rna": ad.AnnData(rna.tocsr().astype(np.float32), obs=obs.copy()),
                       "atac": ad.AnnData(atac.tocsr().astype(np.float32), obs=obs.copy(),
                                          var=sim.peaks.set_index("peak")[["chrom", "start", "end"]])})
    return mdata, BATCHES[batch], types


# WNN takes the same Harmony path on both inputs (baselines.wnn_with_info); measured below, not run in the suite
# (65 s): bench/bench_batch_model.py --baselines wnn measures it on three simulated libraries
@pytest.mark.parametrize("method", ["rna_pca"])
def test_harmony_mixes_the_libraries_and_keeps_the_types(libraries, method):
    """Measured (seed 0, 2026-12-02): library kNN accuracy without -> with Harmony: rna_pca 0.930 -> 0.350,
    wnn 0.916 -> 0.358 (chance ~0.34); label KMeans ARI rna_pca 0.232 -> 0.579, wnn 0.650 -> 0.650."""
    mdata, batches, types = libraries
    plain, _ = embed(method, mdata, n_top_genes=300, n_pcs=15, n_lsi_components=15)
    harmonized, info = embed(method, mdata, n_top_genes=300, n_pcs=15, n_lsi_components=15, batches=batches)
    assert harmonized.shape == plain.shape and info["batches"] == 3
    before, after = batch_knn_accuracy(plain, batches), batch_knn_accuracy(harmonized, batches)
    ari_before, ari_after = kmeans_ari(plain, types), kmeans_ari(harmonized, types)
    print(method, "library accuracy", before, "->", after, "label ARI", ari_before, "->", ari_after)
    assert before >= 0.75 and after <= before - 0.25
    assert ari_after >= ari_before - 0.05


def test_one_batch_is_no_batch(libraries):
    mdata, batches, _ = libraries
    plain, _ = embed("atac_lsi", mdata, n_lsi_components=10)
    same, info = embed("atac_lsi", mdata, n_lsi_components=10, batches=np.full(len(batches), "only"))
    assert np.array_equal(plain, same) and "harmony" not in info
