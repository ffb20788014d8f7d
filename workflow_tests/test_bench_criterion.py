"""bench/bench_criterion.py: the issue's verdict and the resumable table (pure functions; the runs are benchmarks)."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_criterion as bc  # noqa: E402
import bench_tissue  # noqa: E402


def _row(dataset, method, seed, ari, knn, settings=""):
    return {"dataset": dataset, "method": method, "settings": settings, "seed": seed, "ari": ari, "nmi": 0.0,
            "knn_accuracy": knn, "knn_balanced_accuracy": 0.0, "seconds": 1.0}


def test_verdict_compares_scmvp_mean_with_the_best_baseline_per_score():
    late = "warmup_epochs=20"
    table = pd.DataFrame([
        _row("a", "rna_pca", 0, 0.50, 0.90), _row("a", "rna_pca", 1, 0.50, 0.90),
        _row("a", "atac_lsi", 0, 0.70, 0.80), _row("a", "atac_lsi", 1, 0.70, 0.80),
        _row("a", "scmvp", 0, 0.80, 0.92, "defaults"), _row("a", "scmvp", 1, 0.60, 0.86, "defaults"),
        _row("a", "scmvp", 0, 0.75, 0.95, late), _row("a", "scmvp", 1, 0.72, 0.93, late),
    ])
    v = bc.verdicts(table).set_index("settings")
    # defaults: ARI mean 0.70 = ATAC LSI's 0.70 (met), kNN mean 0.89 < RNA PCA's 0.90 (not met)
    assert v.loc["defaults", "best_baseline_ari"] == "atac_lsi 0.700"
    assert v.loc["defaults", "best_baseline_knn_accuracy"] == "rna_pca 0.900"
    assert bool(v.loc["defaults", "meets_ari"]) and not bool(v.loc["defaults", "meets_knn_accuracy"])
    assert not bool(v.loc["defaults", "meets"])
    assert abs(v.loc["defaults", "scmvp_worst_knn_accuracy"] - 0.86) < 1e-12
    assert bool(v.loc[late, "meets"]) and v.loc[late, "seeds"] == 2


def test_finished_runs_are_skipped_and_settings_keep_runs_apart():
    assert bench_tissue.parse_settings(["n_epochs=40", "cycle=false", "prior=normal", "warmup_atac_weight=null"]) == {
        "n_epochs": 40, "cycle": False, "prior": "normal", "warmup_atac_weight": None}
    defaults = bc.settings_label({})
    assert defaults.startswith("defaults @")
    assert bc.settings_label({"n_epochs": 40, "cycle_start_epoch": 20}).startswith("cycle_start_epoch=20 n_epochs=40 @")
    done = pd.DataFrame([_row("example:0", "rna_pca", 0, 0.5, 0.9),
                         _row("example:0", "scmvp", 0, 0.5, 0.9, defaults)])
    late = {"warmup_epochs": 20}
    tasks = [("example:0", "rna_pca", {}, 0), ("example:0", "rna_pca", {}, 1), ("example:0", "scmvp", {}, 0),
             ("example:0", "scmvp", late, 0)]
    assert bc.pending(tasks, done) == [tasks[1], tasks[3]]


def test_table_round_trip_keeps_empty_settings(tmp_path):
    out = tmp_path / "criterion.tsv"
    pd.DataFrame([_row("scicar", "rna_pca", 0, 0.3, 0.9)]).to_csv(out, sep="\t", index=False)
    done = bc.read_done(out)
    assert bc.pending([("scicar", "rna_pca", {}, 0)], done) == []


def test_the_settings_column_names_the_resolved_configuration(monkeypatch):
    from scmvp.model import scmvp as model_module

    # the late schedule spelled out resolves to today's defaults (fractions of n_epochs: 20 / 6 / 20 of 40)
    spelled_out = {"n_epochs": 40, "warmup_epochs": 20, "kl_warmup_epochs": 6, "cycle_start_epoch": 20}
    assert bc.config_fingerprint(spelled_out) == bc.config_fingerprint({})
    assert bc.config_fingerprint({"n_latent": 16}) != bc.config_fingerprint({})
    assert bc.config_fingerprint({"seed": 3, "threads": 2}) == bc.config_fingerprint({})
    # rows written under other schema defaults are not taken for today's
    before = bc.settings_label({})
    defaults = model_module.model_defaults()
    monkeypatch.setattr(model_module, "model_defaults", lambda: {**defaults, "n_epochs": 20})
    assert bc.settings_label({}) != before
    done = pd.DataFrame([_row("example:0", "scmvp", 0, 0.5, 0.9, before)])
    assert bc.pending([("example:0", "scmvp", {}, 0)], done) == [("example:0", "scmvp", {}, 0)]


def test_a_table_from_before_a_score_existed_gets_the_new_column(tmp_path):
    out = tmp_path / "criterion.tsv"
    old = _row("scicar", "rna_pca", 0, 0.3, 0.9)
    pd.DataFrame([old]).to_csv(out, sep="\t", index=False)          # written before leiden_ari existed
    bc.append_row(out, {**_row("scicar", "wnn", 0, 0.4, 0.8), "leiden_ari": 0.35})
    bc.append_row(out, {**_row("scicar", "mofa", 0, 0.2, 0.7), "leiden_ari": 0.25})
    done = bc.read_done(out).set_index("method")
    assert list(done.index) == ["rna_pca", "wnn", "mofa"]
    assert done["leiden_ari"].isna().tolist() == [True, False, False]
    assert done.loc["mofa", "leiden_ari"] == 0.25 and done.loc["mofa", "knn_accuracy"] == 0.7
    assert done.loc["rna_pca", "ari"] == 0.3
    assert not (tmp_path / "criterion.tsv.partial").exists()


def test_scores_give_both_clusterings_and_leiden_keeps_a_large_broad_type_whole():
    import numpy as np

    rng = np.random.default_rng(0)
    # one large type spread along an axis (as a broad type is in a latent) beside two small compact ones:
    # KMeans at k = 3 cuts the large one and merges the small ones, Leiden on the 15-NN graph does not
    large = np.column_stack([rng.uniform(-12, 12, 600), rng.normal(0, 0.3, 600)])
    small = [rng.normal((0, c), 0.3, (60, 2)) for c in (6, 9)]
    embedding = np.vstack([large, *small])
    labels = np.array(["big"] * 600 + ["a"] * 60 + ["b"] * 60)
    scores = bench_tissue.score(embedding, labels, 0)
    assert scores["leiden_ari"] > 0.95
    assert scores["ari"] < 0.6
    assert scores["knn_accuracy"] > 0.99
    assert np.isnan(scores["own_ari"])                              # a baseline has no clusters of its own
    own = np.r_[np.zeros(300), np.ones(300), np.full(120, 2)]      # a model's own clusters: "big" cut in two
    assert 0.3 < bench_tissue.score(embedding, labels, 0, own)["own_ari"] < 0.7


def test_snare_datasets_are_the_tissue_at_the_snare_seq_shape():
    import pytest

    sim = bc.simulation("snare:400:3")
    assert sim.rna.shape == (400, 1677) and sim.atac.shape == (400, 25734)
    assert len(set(sim.labels)) == 17 and len(sim.extra["chromatin_only"]) == 3
    for bad in ("snare:400", "snare:x:3", "snares:400:3"):
        with pytest.raises(SystemExit, match="unknown dataset"):
            bc.simulation(bad)


def test_atac_only_keeps_the_cells_and_atac_and_gives_rna_without_information():
    import numpy as np
    import bench_experts

    mdata, labels = bc.load("example:1")
    noise = bench_experts.without_rna_information(mdata)
    assert list(noise.obs_names) == list(mdata.obs_names)
    assert noise.mod["atac"] is mdata.mod["atac"]
    rna = noise.mod["rna"].X.toarray()
    assert rna.shape == (mdata.n_obs, 2) and abs(rna.mean() - 5.0) < 0.2
    # the same noise for every label: per-label means within sampling error of the overall mean
    for label in np.unique(labels):
        part = rna[labels == label]
        assert np.all(np.abs(part.mean(0) - 5.0) < 5 * np.sqrt(5.0 / len(part)))
