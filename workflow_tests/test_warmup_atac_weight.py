"""model.warmup_atac_weight: the ATAC likelihood's weight during the warm-up epochs (under the N(0, I) prior),
`atac_weight` from the mixture on."""
from __future__ import annotations

import numpy as np
import pytest

from scmvp.model.trainer import atac_weight_at
from scmvp.simulate import simulate
from test_model import build


@pytest.fixture(scope="module")
def sim():
    return simulate(n_cells=160, n_genes=60, n_peaks=400, n_types=5, seed=3)


def test_the_weight_is_the_warm_up_weight_before_the_mixture_and_atac_weight_after():
    cfg = {"warmup_epochs": 3, "atac_weight": 0.05, "warmup_atac_weight": 1.0}
    assert [atac_weight_at(cfg, epoch) for epoch in range(5)] == [1.0, 1.0, 1.0, 0.05, 0.05]
    assert [atac_weight_at(dict(cfg, warmup_atac_weight=None), epoch) for epoch in range(5)] == [0.05] * 5
    assert atac_weight_at(dict(cfg, warmup_atac_weight=0.0), 0) == 0.0          # 0 is a weight, not "unset"


def test_a_trained_model_weighs_the_atac_by_the_epoch(sim):
    """The history's totals are rna + w x atac + beta x kl + align + cycle: w read back per epoch from the validation
    terms (beta is kl_weight there) is the warm-up weight in the first two epochs and atac_weight after."""
    model = build(sim, n_epochs=4, warmup_epochs=2, kl_warmup_epochs=0, cycle_start_epoch=2, atac_weight=0.05,
                  warmup_atac_weight=1.0)
    model.train()
    h = model.history
    rest = h["validation_rna_nll"] + h["validation_kl"] + h["validation_align"] + h["validation_cycle"]
    weight = (h["validation_total"] - rest) / h["validation_atac_nll"]
    np.testing.assert_allclose(weight.to_numpy(), [1.0, 1.0, 0.05, 0.05], rtol=1e-4)
    assert np.isfinite(model.get_latent()).all()


def test_the_warm_up_weight_and_the_weight_choice_exclude_each_other():
    from scmvp.model.scmvp import model_config

    with pytest.raises(ValueError, match="warmup_atac_weight"):
        model_config({"warmup_atac_weight": 1.0, "atac_weight_candidates": [0.05, 0.3]})
    assert model_config({"warmup_atac_weight": None, "atac_weight_candidates": [0.05, 0.3]})
