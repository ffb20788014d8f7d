"""model.warmup_atac_weight: the ATAC likelihood's weight during the warm-up epochs (under the N(0, I) prior),
`atac_weight` from the mixture on."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from scmvp.model.trainer import atac_weight_at
from scmvp.simulate import simulate
from test_model import build


@pytest.fixture(scope="module")
def sim():
    return simulate(n_cells=160, n_genes=60, n_peaks=400, n_types=5, seed=3)


def atac_weight_per_epoch(history):
    """The ATAC weight of each epoch read back from its validation terms: total = rna + w x atac + beta x kl + align
    + cycle, with beta = kl_weight (1) in validation."""
    rest = (history["validation_rna_nll"] + history["validation_kl"] + history["validation_align"]
            + history["validation_cycle"])
    return ((history["validation_total"] - rest) / history["validation_atac_nll"]).to_numpy()


def test_the_weight_is_the_warm_up_weight_before_the_mixture_and_atac_weight_after():
    cfg = {"warmup_epochs": 3, "atac_weight": 0.05, "warmup_atac_weight": 1.0}
    assert [atac_weight_at(cfg, epoch) for epoch in range(5)] == [1.0, 1.0, 1.0, 0.05, 0.05]
    assert [atac_weight_at(dict(cfg, warmup_atac_weight=None), epoch) for epoch in range(5)] == [0.05] * 5
    assert atac_weight_at(dict(cfg, warmup_atac_weight=0.0), 0) == 0.0          # 0 is a weight, not "unset"


def test_a_trained_model_weighs_the_atac_by_the_epoch(sim):
    """The weight read back per epoch from the history is the warm-up weight in the first two epochs and atac_weight
    after."""
    model = build(sim, n_epochs=4, warmup_epochs=2, kl_warmup_epochs=0, cycle_start_epoch=2, atac_weight=0.05,
                  warmup_atac_weight=1.0)
    model.train()
    np.testing.assert_allclose(atac_weight_per_epoch(model.history), [1.0, 1.0, 0.05, 0.05], rtol=1e-4)
    assert np.isfinite(model.get_latent()).all()


def test_the_warm_up_weight_and_the_weight_choice_exclude_each_other():
    from scmvp.model.scmvp import model_config

    with pytest.raises(ValueError, match="warmup_atac_weight"):
        model_config({"warmup_atac_weight": 1.0, "atac_weight_candidates": [0.05, 0.3]})
    assert model_config({"warmup_atac_weight": None, "atac_weight_candidates": [0.05, 0.3]})


def test_the_warm_up_weight_chosen_from_held_out_atac_trains_on_at_atac_weight(sim, tmp_path, capsys):
    """`warmup_atac_weight_candidates`: each candidate trains through the warm-up, they are compared there, and the
    chosen one goes on at `atac_weight` -- the same model as training that warm-up weight alone."""
    from scmvp.model.weight_choice import choose_atac_weight

    schedule = dict(n_epochs=4, warmup_epochs=2, kl_warmup_epochs=0, cycle_start_epoch=2, atac_weight=0.05)
    model = build(sim, warmup_atac_weight_candidates=[1.0, 0.05], warmup_atac_weight_tolerance=0.0,
                  atac_weight_tolerance=1.0, **schedule)   # the whole run's tolerance is not the warm-up's
    history = model.train(checkpoint_dir=tmp_path)
    table = model.atac_weight_choice
    assert table["warmup_atac_weight"].tolist() == [0.05, 1.0] and table["epoch"].tolist() == [2, 2]
    chosen = float(table.loc[table["chosen"], "warmup_atac_weight"].iloc[0])
    held_out = dict(zip(table["warmup_atac_weight"], table["validation_atac_nll"]))
    assert chosen == choose_atac_weight(held_out, 0.0)
    assert model.config["warmup_atac_weight"] == chosen and (history["warmup_atac_weight"] == chosen).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warmup_atac_weight_0.05", "warmup_atac_weight_1"]
    np.testing.assert_allclose(atac_weight_per_epoch(history), [chosen, chosen, 0.05, 0.05], rtol=1e-4)
    alone = build(sim, warmup_atac_weight=chosen, **schedule)
    alone.train()
    np.testing.assert_array_equal(alone.get_latent(), model.get_latent())
    # the benchmarks print the candidates under the key they set
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_tissue import print_weight_choice

    print_weight_choice(model, 0)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["# warmup_atac_weight seed 0"] * 2
    assert sum(line.endswith(" chosen") for line in lines) == 1 and f"0: {chosen:g} held-out" in "".join(lines)
    # a tolerance above the larger weight's rise takes it, below keeps the smaller one
    rise = held_out[1.0] / held_out[0.05] - 1
    if rise > 0:
        assert choose_atac_weight(held_out, rise * 1.01) == 1.0 and choose_atac_weight(held_out, rise * 0.99) == 0.05


def test_the_two_weight_choices_exclude_each_other():
    from scmvp.model.scmvp import model_config

    with pytest.raises(ValueError, match="cannot both be set"):
        model_config({"atac_weight_candidates": [0.05, 0.3], "warmup_atac_weight_candidates": [0.05, 1]})
    with pytest.raises(ValueError, match="validation_fraction"):
        model_config({"warmup_atac_weight_candidates": [0.05, 1], "validation_fraction": 0})
    with pytest.raises(ValueError, match="warmup_epochs"):
        model_config({"warmup_atac_weight_candidates": [0.05, 1], "warmup_epochs": 0})


def test_each_choice_sets_its_own_key_at_its_own_epoch_within_its_own_tolerance():
    from scmvp.model.scmvp import model_config
    from scmvp.model.weight_choice import chosen_key

    both = {"atac_weight_tolerance": 0.5, "warmup_atac_weight_tolerance": 0.02, "atac_weight_decision_epoch": 30}
    warm_up = model_config(dict(both, warmup_atac_weight_candidates=[1.0, 0.05]))
    assert chosen_key(warm_up) == ("warmup_atac_weight", [1.0, 0.05], 20, 0.02)
    whole = model_config(dict(both, atac_weight_candidates=[0.05, 0.3]))
    assert chosen_key(whole) == ("atac_weight", [0.05, 0.3], 30, 0.5)
