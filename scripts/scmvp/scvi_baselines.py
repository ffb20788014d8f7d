"""The scvi-tools baselines (scVI on RNA, MultiVI on RNA + ATAC), set up as scvi-tools documents them.

Training length: each model's own ``train()`` defaults (scvi-tools 1.4, the version pinned here), not one
epoch count for both. ``max_epochs=None`` passes nothing, so the library decides:
- scVI (``SCVI.train``, https://docs.scvi-tools.org/en/stable/api/reference/scvi.model.SCVI.html#scvi.model.SCVI.train):
  ``max_epochs=None`` is ``scvi.model.get_max_epochs_heuristic`` = min(round(20000 / n_cells * 400), 400),
  i.e. 400 epochs up to 20,000 cells; ``early_stopping`` defaults to False.
- MultiVI (``MULTIVI.train``, https://docs.scvi-tools.org/en/stable/api/reference/scvi.model.MULTIVI.html#scvi.model.MULTIVI.train):
  ``max_epochs`` 500, ``early_stopping`` True (on the validation reconstruction loss), as the MultiVI
  tutorial trains it (``mvi.train()``).
Features for MultiVI: the MultiVI tutorial
(https://docs.scvi-tools.org/en/stable/tutorials/notebooks/multimodal/MultiVI_tutorial.html, "filter features
to remove those that appear in fewer than 1% of the cells") runs
``sc.pp.filter_genes(adata_mvi, min_cells=int(adata_mvi.shape[0] * 0.01))`` on genes and peaks together;
multivi_features does the same.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# MultiVI tutorial: features seen in fewer than 1% of the cells are dropped before training.
MULTIVI_MIN_CELL_FRACTION = 0.01


def _scvi_settings(seed: int, threads: int):
    import scvi
    import torch

    scvi.settings.seed = seed
    scvi.settings.dl_num_workers = 0
    torch.set_num_threads(max(1, threads))


def _train_kwargs(max_epochs, early_stopping):
    """``train()`` arguments: None leaves the library's default in place."""
    kwargs = {}
    if max_epochs is not None:
        kwargs["max_epochs"] = int(max_epochs)
    if early_stopping is not None:
        kwargs["early_stopping"] = bool(early_stopping)
    return kwargs


def _epochs_run(model) -> int:
    history = getattr(model, "history", None) or {}
    for key in ("elbo_train", "reconstruction_loss_train", "train_loss_epoch"):
        if key in history:
            return int(len(history[key]))
    return -1


def scvi_rna_with_info(rna, max_epochs: int | None = None, early_stopping: bool | None = False,
                       n_latent: int = 10, seed: int = 0, threads: int = 1, accelerator: str = "cpu", batches=None):
    """scVI on RNA counts alone (scvi-tools; the scVI quick-start: ``setup_anndata`` on raw counts,
    ``SCVI(adata)``, ``train()``); the latent means; ``batches`` (a label per cell) become its ``batch_key``.
    Returns ``(embedding, info)``."""
    import scvi

    from .baselines import counts_of

    _scvi_settings(seed, threads)
    adata = counts_of(rna)
    if batches is not None:
        adata.obs["batch"] = np.asarray(batches).astype(str)
    scvi.model.SCVI.setup_anndata(adata, batch_key="batch" if batches is not None else None)
    model = scvi.model.SCVI(adata, n_latent=n_latent)
    model.train(accelerator=accelerator, enable_progress_bar=False, **_train_kwargs(max_epochs, early_stopping))
    info = {"epochs_run": _epochs_run(model), "max_epochs": max_epochs, "early_stopping": early_stopping}
    log.info("scVI: %s epochs run (max_epochs %s, early_stopping %s)", *info.values())
    return np.asarray(model.get_latent_representation(), dtype=np.float64), info


def scvi_rna(rna, n_epochs: int | None = None, n_latent: int = 10, seed: int = 0, threads: int = 1,
             accelerator: str = "cpu", early_stopping: bool | None = False) -> np.ndarray:
    """The latent of scvi_rna_with_info."""
    return scvi_rna_with_info(rna, n_epochs, early_stopping, n_latent, seed, threads, accelerator)[0]


def multivi_features(mdata, min_cell_fraction: float = MULTIVI_MIN_CELL_FRACTION):
    """Boolean masks (genes, peaks) of the features MultiVI's tutorial keeps: seen (count > 0) in at least
    ``int(n_cells * min_cell_fraction)`` cells."""
    from .baselines import counts_of

    min_cells = int(mdata.n_obs * min_cell_fraction)
    masks = []
    for mod in ("rna", "atac"):
        counts = counts_of(mdata.mod[mod]).X
        masks.append(np.asarray((counts > 0).sum(axis=0)).ravel() >= min_cells)
    return masks[0], masks[1]


def multivi_with_info(mdata, max_epochs: int | None = None, early_stopping: bool | None = True,
                      min_cell_fraction: float = MULTIVI_MIN_CELL_FRACTION, n_latent: int | None = None,
                      seed: int = 0, threads: int = 1, accelerator: str = "cpu", batches=None):
    """MultiVI (scvi-tools) on RNA counts + binarised ATAC of the same cells, features seen in fewer than
    ``min_cell_fraction`` of the cells dropped (multivi_features); the latent means; ``batches`` (a label per
    cell) become its ``batch_key``.
    Returns ``(embedding, info)``."""
    import mudata as md
    import scvi

    from .baselines import counts_of

    _scvi_settings(seed, threads)
    genes, peaks = multivi_features(mdata, min_cell_fraction)
    if not genes.any() or not peaks.any():
        raise ValueError(f"MultiVI: no genes ({genes.sum()}) or no peaks ({peaks.sum()}) are seen in "
                         f">= {min_cell_fraction:.1%} of the {mdata.n_obs} cells")
    rna = counts_of(mdata.mod["rna"])[:, genes].copy()
    atac = counts_of(mdata.mod["atac"])[:, peaks].copy()
    atac.X.data[:] = 1.0  # MultiVI models accessibility as Bernoulli
    modalities = {"rna_layer": "rna", "atac_layer": "atac"}
    if batches is not None:
        rna.obs["batch"] = np.asarray(batches).astype(str)
        modalities["batch_key"] = "rna"
    joint = md.MuData({"rna": rna, "atac": atac})
    scvi.model.MULTIVI.setup_mudata(joint, batch_key="batch" if batches is not None else None,
                                    modalities=modalities)
    model = scvi.model.MULTIVI(joint, n_latent=n_latent)
    model.train(accelerator=accelerator, enable_progress_bar=False, **_train_kwargs(max_epochs, early_stopping))
    info = {"genes_kept": int(genes.sum()), "genes_total": int(genes.size), "peaks_kept": int(peaks.sum()),
            "peaks_total": int(peaks.size), "epochs_run": _epochs_run(model), "max_epochs": max_epochs,
            "early_stopping": early_stopping}
    log.info("MultiVI: %d of %d genes and %d of %d peaks in >= %.1f%% of cells; %s epochs run", genes.sum(),
             genes.size, peaks.sum(), peaks.size, 100 * min_cell_fraction, info["epochs_run"])
    return np.asarray(model.get_latent_representation(), dtype=np.float64), info


def multivi(mdata, n_epochs: int | None = None, n_latent: int | None = None, seed: int = 0, threads: int = 1,
            accelerator: str = "cpu", early_stopping: bool | None = True,
            min_cell_fraction: float = MULTIVI_MIN_CELL_FRACTION) -> np.ndarray:
    """The latent of multivi_with_info."""
    return multivi_with_info(mdata, n_epochs, early_stopping, min_cell_fraction, n_latent, seed, threads,
                             accelerator)[0]
