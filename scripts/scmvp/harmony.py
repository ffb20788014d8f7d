"""Harmony (Korsunsky et al., Nature Methods 2019) on a method's components, through harmonypy.

Harmony corrects a low-dimensional embedding (PCA, LSI), not counts: the authors' workflow runs it on the
principal components (https://github.com/slowkow/harmonypy, README; Seurat/Signac's multi-sample vignettes run it
on PCA and on LSI alike, e.g. https://stuartlab.org/signac/articles/integrate_atac). The baselines that are a
linear embedding (RNA PCA, ATAC LSI, and both inputs of WNN) are corrected this way when the dataset has
batches; scVI/MultiVI take the batch as a covariate and MOFA+ as groups instead (baselines.embed).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger("scmvp.harmony")


def harmonize(embedding, batches, seed: int = 0) -> np.ndarray:
    """``embedding`` (cells x components) with the batch effect removed by Harmony (harmonypy defaults:
    theta 2, clusters min(100, cells / 30)); returned as cells x components, float64."""
    import harmonypy

    embedding = np.ascontiguousarray(embedding, dtype=np.float64)
    batches = np.asarray(batches).astype(str)
    if len(np.unique(batches)) < 2:
        return embedding
    meta = pd.DataFrame({"batch": batches})
    result = harmonypy.run_harmony(embedding, meta, ["batch"], random_state=seed, verbose=False)
    corrected = np.asarray(result.Z_corr, dtype=np.float64)
    if corrected.shape != embedding.shape:  # harmonypy returns components x cells
        corrected = corrected.T
    log.info("Harmony over %d batches: %d cells x %d components", len(np.unique(batches)), *embedding.shape)
    return corrected
