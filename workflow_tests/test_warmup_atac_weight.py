"""model.warmup_atac_weight: the ATAC likelihood's weight during the warm-up epochs (under the N(0, I) prior),
`atac_weight` from the mixture on."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from scmvp.model.trainer import atac_weight_at
from test_model import build


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


def test_a_trained_model_weighs_the_atac_by_the_epoch(small_sim):
    """The weight read back per epoch from the history is the warm-up weight in the first two epochs and atac_weight
    after."""
    model = build(small_sim, n_epochs=4, warmup_epochs=2, kl_warmup_epochs=0, cycle_start_epoch=2, atac_weight=0.05,
                  warmup_atac_weight=1.0)
    model.train()
    np.testing.assert_allclose(atac_weight_per_epoch(model.history), [1.0, 1.0, 0.05, 0.05], rtol=1e-4)
    assert np.isfinite(model.get_latent()).all()


def test_the_warm_up_weight_and_the_weight_choice_exclude_each_other():
    from scmvp.model.scmvp import model_config

    with pytest.raises(ValueError, match="warmup_atac_weight"):
        model_config({"warmup_atac_weight": 1.0, "atac_weight_candidates": [0.05, 0.3]})
    assert model_config({"warmup_atac_weight": None, "atac_weight_candidates": [0.05, 0.3]})


def test_the_warm_up_weight_chosen_from_held_out_atac_trains_on_at_atac_weight(small_sim, tmp_path, capsys):
    """`warmup_atac_weight_candidates`: each candidate trains through the warm-up, they are compared there, and the
    chosen one goes on at `atac_weight` -- the same model as training that warm-up weight alone."""
    from scmvp.model.weight_choice import choose_atac_weight

    schedule = dict(n_epochs=4, warmup_epochs=2, kl_warmup_epochs=0, cycle_start_epoch=2, atac_weight=0.05)
    model = build(small_sim, warmup_atac_weight_candidates=[1.0, 0.05], warmup_atac_weight_tolerance=0.0,
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
    alone = build(small_sim, warmup_atac_weight=chosen, **schedule)
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


# -- the warm-up weight given up in one run (warmup_atac_weight_max_rise) -------------------------------------
def test_the_warm_up_weight_is_given_up_only_in_the_warm_up_above_the_max_rise():
    from scmvp.model.trainer import gives_up_warmup_weight

    cfg = {"warmup_epochs": 3, "warmup_atac_weight": 1.0, "warmup_atac_weight_max_rise": 0.01}
    assert gives_up_warmup_weight(cfg, 1, 101.5, 100.0)
    assert not gives_up_warmup_weight(cfg, 1, 100.9, 100.0)                   # within the max rise
    assert not gives_up_warmup_weight(cfg, 3, 150.0, 100.0)                   # after the warm-up
    assert not gives_up_warmup_weight(cfg, 0, 150.0, None)                    # nothing before the first epoch
    assert not gives_up_warmup_weight(dict(cfg, warmup_atac_weight_max_rise=None), 1, 150.0, 100.0)
    assert not gives_up_warmup_weight(dict(cfg, warmup_atac_weight=None), 1, 150.0, 100.0)


# on the tiny data at lr 0.01 the held-out ATAC at weight 1 goes 83.3, 80.7, 79.7, 80.6 (+1.2 % over the lowest),
# 81.4, ... and never more than +2.6 % over its lowest in the 10-epoch warm-up
WATCHED = dict(n_epochs=12, warmup_epochs=10, kl_warmup_epochs=0, cycle_start_epoch=10, atac_weight=0.05, lr=0.01)


@pytest.fixture(scope="module")
def given_up(small_sim, tmp_path_factory):
    checkpoints = tmp_path_factory.mktemp("given_up")
    model = build(small_sim, warmup_atac_weight=1.0, warmup_atac_weight_max_rise=0.0, **WATCHED)
    history = model.train(checkpoint_dir=checkpoints, progress=False)
    return model, history, checkpoints


def test_a_warm_up_whose_held_out_atac_turns_worse_is_given_up_for_the_run_without_it(small_sim, given_up):
    model, history, checkpoints = given_up
    table = model.atac_weight_choice
    assert table["warmup_atac_weight"].tolist() == [1.0, 0.05] and table["chosen"].tolist() == [False, True]
    first = table.iloc[0]
    assert first["epoch"] == 4 and first["validation_atac_nll"] > first["lowest_validation_atac_nll"]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.pt", "warmup_atac_weight_off"]
    assert model.config["warmup_atac_weight"] is None and (history["warmup_atac_weight"] == 0.05).all()
    np.testing.assert_allclose(atac_weight_per_epoch(history), [0.05] * 12, rtol=1e-4)
    alone = build(small_sim, warmup_atac_weight=None, **WATCHED)
    alone.train(progress=False)
    np.testing.assert_array_equal(alone.get_latent(), model.get_latent())


def test_a_warm_up_within_the_max_rise_is_kept_in_one_run(small_sim, tmp_path):
    model = build(small_sim, warmup_atac_weight_max_rise=0.05, **WATCHED)         # the default warm-up weight, 1
    history = model.train(checkpoint_dir=tmp_path, progress=False)
    table = model.atac_weight_choice
    assert table["warmup_atac_weight"].tolist() == [1.0] and table["chosen"].tolist() == [True]
    assert table["epoch"].tolist() == [10] and [p.name for p in tmp_path.iterdir()] == ["last.pt"]   # the plain layout
    np.testing.assert_allclose(atac_weight_per_epoch(history), [1.0] * 10 + [0.05] * 2, rtol=1e-4)
    alone = build(small_sim, warmup_atac_weight=1.0, warmup_atac_weight_max_rise=None, **WATCHED)
    alone.train(progress=False)
    np.testing.assert_array_equal(alone.get_latent(), model.get_latent())


def test_a_rerun_of_a_given_up_warm_up_resumes_both_runs_and_the_model_saves(small_sim, given_up, tmp_path, caplog):
    import pandas as pd

    from scmvp.model import SCMVP
    from scmvp.simulate_write import to_mudata

    model, _, checkpoints = given_up
    again = build(small_sim, warmup_atac_weight=1.0, warmup_atac_weight_max_rise=0.0, **WATCHED)
    with caplog.at_level("INFO", logger="scmvp"):
        again.train(checkpoint_dir=checkpoints, progress=False)
    assert caplog.text.count("resuming from") == 2 and "epoch 1/" not in caplog.text     # nothing retrained
    pd.testing.assert_frame_equal(again.atac_weight_choice, model.atac_weight_choice)
    np.testing.assert_array_equal(again.get_latent(), model.get_latent())
    model.save(tmp_path / "model.pt")
    loaded = SCMVP.load(tmp_path / "model.pt", to_mudata(small_sim, labels=False))
    assert loaded.config["warmup_atac_weight"] is None
    pd.testing.assert_frame_equal(loaded.atac_weight_choice, model.atac_weight_choice)


def test_the_max_rise_needs_held_out_cells_and_no_candidates():
    from scmvp.model.scmvp import model_config

    watched = {"warmup_atac_weight": 1.0, "warmup_atac_weight_max_rise": 0.01}
    with pytest.raises(ValueError, match="validation_fraction"):
        model_config(dict(watched, validation_fraction=0))
    with pytest.raises(ValueError, match="warmup_epochs"):
        model_config(dict(watched, warmup_epochs=0))
    with pytest.raises(ValueError, match="cannot both be set"):
        model_config(dict(watched, warmup_atac_weight=None, warmup_atac_weight_candidates=[0.05, 1]))
    with pytest.raises(ValueError, match="cannot both be set"):
        model_config(dict(watched, warmup_atac_weight=None, atac_weight_candidates=[0.05, 0.3]))
    # nothing to watch without the warm-up weight (what a given-up run's model saves), so nothing to check
    assert model_config(dict(watched, warmup_atac_weight=None, validation_fraction=0))


def test_the_watched_warm_up_is_the_default_and_gives_way_to_a_choice_or_no_held_out_cells():
    from scmvp.model.scmvp import model_config

    defaults = model_config()
    assert (defaults["warmup_atac_weight"], defaults["warmup_atac_weight_max_rise"]) == (1, 0.01)
    for overrides in ({"atac_weight_candidates": [0.05, 0.3]}, {"warmup_atac_weight_candidates": [0.05, 1]},
                      {"validation_fraction": 0}, {"warmup_epochs": 0}):
        cfg = model_config(overrides)
        assert (cfg["warmup_atac_weight"], cfg["warmup_atac_weight_max_rise"]) == (None, None), overrides
    # a warm-up weight set explicitly without held-out cells is kept, unwatched
    cfg = model_config({"warmup_atac_weight": 1.0, "validation_fraction": 0})
    assert (cfg["warmup_atac_weight"], cfg["warmup_atac_weight_max_rise"]) == (1.0, None)


def test_a_model_saved_before_the_watched_warm_up_loads_as_trained_without_it(small_sim, tmp_path):
    from scmvp.model import SCMVP
    from scmvp.simulate_write import to_mudata
    from test_model import saved_without

    model = build(small_sim, n_epochs=1, warmup_atac_weight=None)
    old = saved_without(model, tmp_path, "config", "warmup_atac_weight", "warmup_atac_weight_max_rise")
    loaded = SCMVP.load(old, to_mudata(small_sim, labels=False))
    assert (loaded.config["warmup_atac_weight"], loaded.config["warmup_atac_weight_max_rise"]) == (None, None)


def test_the_mixture_is_fitted_the_settle_epochs_after_a_warm_up_at_its_own_weight():
    from scmvp.model.scmvp import model_config
    from scmvp.model.trainer import mixture_fit_epoch

    cfg = {"n_epochs": 10, "warmup_epochs": 3, "atac_weight": 0.05, "warmup_atac_weight": 1.0,
           "warmup_atac_weight_settle_epochs": 2}
    assert mixture_fit_epoch(cfg) == 5
    assert mixture_fit_epoch(dict(cfg, warmup_atac_weight=0.05)) == 3       # the same weight: nothing to settle
    assert mixture_fit_epoch(dict(cfg, n_epochs=5)) == 4            # the last epoch still has the mixture
    assert mixture_fit_epoch(dict(cfg, n_epochs=3)) == 3            # the warm-up itself as long as the run: as set
    assert mixture_fit_epoch(dict(cfg, warmup_atac_weight=None)) == 3       # no warm-up weight (or given up)
    assert mixture_fit_epoch(dict(cfg, warmup_atac_weight_settle_epochs=0)) == 3
    assert model_config()["warmup_atac_weight_settle_epochs"] == 4                 # the default: 0.1 of 40 epochs
    assert model_config({"n_epochs": 60})["warmup_atac_weight_settle_epochs"] == 6


def test_a_trained_model_settles_at_atac_weight_under_the_normal_prior_before_the_mixture(small_sim):
    """Epochs 3-4 (1-based) run at atac_weight with no mixture yet; the mixture is attached for epoch 5. Without a
    warm-up weight the same settle key changes nothing: the mixture comes after warmup_epochs."""
    settings = dict(n_epochs=6, warmup_epochs=2, warmup_atac_weight_settle_epochs=2, kl_warmup_epochs=0,
                    cycle_start_epoch=2, atac_weight=0.05, warmup_atac_weight_max_rise=None)
    model = build(small_sim, warmup_atac_weight=1.0, **settings)
    model.train()
    np.testing.assert_allclose(atac_weight_per_epoch(model.history), [1.0, 1.0] + [0.05] * 4, rtol=1e-4)
    assert (model.history["n_active_components"].to_numpy()[:4] == 0).all()
    assert (model.history["n_active_components"].to_numpy()[4:] > 0).all()
    plain = build(small_sim, warmup_atac_weight=None, **settings)
    plain.train()
    assert (plain.history["n_active_components"].to_numpy()[:2] == 0).all()
    assert (plain.history["n_active_components"].to_numpy()[2:] > 0).all()


def test_a_model_saved_before_the_settle_epochs_loads_as_fitted_at_the_end_of_the_warm_up(small_sim, tmp_path):
    from scmvp.model import SCMVP
    from scmvp.simulate_write import to_mudata
    from test_model import saved_without

    model = build(small_sim, n_epochs=10, warmup_atac_weight=None)   # today's default would resolve to 1 epoch here
    old = saved_without(model, tmp_path, "config", "warmup_atac_weight_settle_epochs")
    loaded = SCMVP.load(old, to_mudata(small_sim, labels=False))
    assert loaded.config["warmup_atac_weight_settle_epochs"] == 0
