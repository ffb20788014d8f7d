"""model.atac_count_split: the encoders read a binomial thinning of each training cell's ATAC counts and the ATAC
likelihood scores the rest (molecular cross-validation); validation, latents and imputation see every count."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from scmvp.model.data import ATAC_SCALE
from scmvp.model.module import split_atac_counts
from test_model import FAST, build

TRAINING = {"n_epochs": 4, "cycle_start_epoch": 2}   # shorter than test_model's FAST; the cycle still switches on


def dense(rows, cols, values, shape):
    out = torch.zeros(shape, dtype=torch.float64)
    out.index_put_((rows, cols), values.double(), accumulate=True)
    return out


def test_the_split_partitions_every_count_and_feeds_the_encoders_the_thinned_part(small_sim):
    model = build(small_sim)
    data = model.data
    batch = data.batch(np.arange(64), "cpu")
    idf = torch.from_numpy(data.idf)
    shape = (64, data.n_peaks)
    counts = dense(batch["atac_row"], batch["atac_index"], batch["atac_count"], shape)
    encoder_batch, target = split_atac_counts(batch, 0.5, idf, torch.Generator().manual_seed(1))

    y_out = dense(target["atac_row"], target["atac_index"], target["atac_count"], shape)
    y_in = counts - y_out
    assert (target["atac_count"] > 0).all()                        # the sparse likelihood takes non-zeros only
    assert (y_out >= 0).all() and (y_in >= 0).all()
    assert float(y_in.sum()) > 0 and float(y_out.sum()) > 0
    # binomial(., 0.5): about half of the counts go to each side (sd of the fraction ~ 0.5 / sqrt(total))
    assert abs(float(y_in.sum() / counts.sum()) - 0.5) < 4 * 0.5 / float(counts.sum()) ** 0.5
    torch.testing.assert_close(target["atac_library"].double(), y_out.sum(1).clamp_min(1.0))

    # the encoders' values: log1p(y_in / library_in * idf * 1e4) at the original non-zeros, 0 where y_in is 0
    rows, cols = batch["atac_row"], batch["atac_index"]
    thinned = y_in[rows, cols]
    library_in = y_in.sum(1).clamp_min(1.0)[rows]
    expected = torch.log1p(thinned / library_in * idf[cols].double() * ATAC_SCALE)
    torch.testing.assert_close(encoder_batch["atac_value"].double(), expected, rtol=1e-5, atol=1e-6)
    assert (encoder_batch["atac_value"][thinned == 0] == 0).all() and (thinned == 0).any()
    # the rest of the batch is untouched, the original batch too
    for key in ("rna", "atac_index", "atac_row", "atac_count", "atac_cell_offsets"):
        assert encoder_batch[key] is batch[key]
    assert not torch.equal(encoder_batch["atac_value"], batch["atac_value"])


def test_the_split_applies_to_training_steps_only(small_sim):
    """The same network scores a minibatch identically with and without the key when `split_atac` is off
    (validation), and differently when it is on (training: a likelihood over about half of the counts)."""
    base = build(small_sim)
    plain, data = base.module.train(), base.data
    split = build(small_sim, atac_count_split=0.5).module.train()
    split.load_state_dict(plain.state_dict())
    batch = data.batch(np.arange(64), "cpu")
    idf = torch.from_numpy(data.idf)

    def loss(module, split_atac, seed=0):
        torch.manual_seed(seed)
        with torch.no_grad():
            return module.loss(batch, idf=idf, generator=torch.Generator().manual_seed(seed),
                               split_atac=split_atac)

    for key in ("rna_nll", "atac_nll", "kl", "total"):
        torch.testing.assert_close(loss(split, False)[key], loss(plain, False)[key])
        torch.testing.assert_close(loss(plain, True)[key], loss(plain, False)[key])   # key off: no split
    on, off = loss(split, True), loss(split, False)
    assert float(on["atac_nll"]) < 0.8 * float(off["atac_nll"])                        # about half the counts
    torch.testing.assert_close(loss(split, True, seed=3)["atac_nll"], loss(split, True, seed=3)["atac_nll"])


def test_a_model_trained_with_the_split_records_full_count_validation_and_a_finite_latent(small_sim):
    model = build(small_sim, atac_count_split=0.5, **TRAINING)
    model.train()
    history = model.history
    assert np.isfinite(history["validation_atac_nll"]).all()
    # training scores the held-back half, validation every count: the training ATAC NLL per cell is the smaller
    assert (history["train_atac_nll"] < 0.8 * history["validation_atac_nll"]).all()
    latent = model.get_latent()
    assert latent.shape == (small_sim.rna.shape[0], FAST["n_latent"]) and np.isfinite(latent).all()
    again = build(small_sim, atac_count_split=0.5, **TRAINING)
    again.train()
    np.testing.assert_array_equal(again.get_latent(), latent)          # the thinning follows the seed


def test_the_split_is_off_by_default_and_bounded():
    from scmvp.model.scmvp import model_config, model_defaults

    assert model_defaults()["atac_count_split"] == 0
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="atac_count_split"):
            model_config({"atac_count_split": bad})
