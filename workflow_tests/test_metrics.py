"""Known answers of the benchmark's metric code (scripts/scmvp/metrics.py, LSI depth logic)."""
import numpy as np
import pytest

from scmvp import baselines, metrics


def blobs(n_per_cluster=60, n_clusters=5, dims=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=12, size=(n_clusters, dims))
    labels = np.repeat(np.arange(n_clusters), n_per_cluster)
    return centres[labels] + rng.normal(size=(len(labels), dims)), labels


def test_permuted_labelling_scores_one():
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c", "d"], size=500)
    renamed = {"a": 7, "b": 3, "c": 0, "d": 11}
    scores = metrics.clustering_scores(labels, [renamed[x] for x in labels])
    assert scores["ari"] == pytest.approx(1.0)
    assert scores["nmi"] == pytest.approx(1.0)


def test_random_labelling_scores_near_zero():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=4000)
    scores = metrics.clustering_scores(labels, rng.integers(0, 4, size=4000))
    assert abs(scores["ari"]) < 0.01
    assert scores["nmi"] < 0.01


def test_partial_agreement_scores_between():
    labels = np.repeat([0, 1, 2, 3], 100)
    merged = np.where(labels == 3, 2, labels)  # two labels merged into one cluster
    scores = metrics.clustering_scores(labels, merged)
    assert 0.5 < scores["ari"] < 0.95 and 0.7 < scores["nmi"] < 0.99


def test_scores_reject_mismatched_lengths():
    with pytest.raises(ValueError):
        metrics.clustering_scores([0, 1, 1], [0, 1])


def test_kmeans_recovers_blobs_and_is_seeded():
    embedding, labels = blobs()
    clusters = metrics.kmeans(embedding, 5, seed=3)
    assert metrics.clustering_scores(labels, clusters)["ari"] == pytest.approx(1.0)
    assert np.array_equal(clusters, metrics.kmeans(embedding, 5, seed=3))


@pytest.mark.parametrize("target", [5, 8])
def test_leiden_resolution_search_hits_target(target):
    embedding, labels = blobs()
    graph = metrics.knn_graph(embedding, n_neighbors=15, seed=0)
    clusters, resolution, reached = metrics.leiden_with_n_clusters(graph, target, seed=0)
    assert reached == target == len(np.unique(clusters))
    assert resolution > 0
    if target == 5:
        assert metrics.clustering_scores(labels, clusters)["ari"] == pytest.approx(1.0)
    again, _, _ = metrics.leiden_with_n_clusters(graph, target, seed=0)
    assert np.array_equal(clusters, again)


def test_leiden_resolution_monotone_on_blobs():
    embedding, _ = blobs()
    graph = metrics.knn_graph(embedding, n_neighbors=15, seed=0)
    n_low = len(np.unique(metrics.leiden(graph, 0.05, seed=0)))
    n_high = len(np.unique(metrics.leiden(graph, 5.0, seed=0)))
    assert n_low <= 5 < n_high


def test_score_clusterings_skips_unlabelled_cells():
    embedding, labels = blobs(n_clusters=3)
    labels = labels.astype(object)
    labels[::10] = None
    graph = metrics.knn_graph(embedding, n_neighbors=15, seed=0)
    rows = metrics.score_clusterings(embedding, graph, labels, seed=0)
    assert [r["clustering"] for r in rows] == ["kmeans", "leiden"]
    for row in rows:
        assert row["n_clusters"] == 3 and row["ari"] == pytest.approx(1.0) and row["nmi"] == pytest.approx(1.0)


def test_first_lsi_component_dropped_only_when_it_follows_depth():
    rng = np.random.default_rng(0)
    depth = rng.lognormal(7, 0.8, size=400)
    signal = rng.normal(size=(400, 4))
    depth_first = np.column_stack([np.log1p(depth) + 0.1 * rng.normal(size=400), signal])
    kept_first = np.column_stack([rng.normal(size=400), signal])

    embedding, rho = baselines.drop_depth_component(depth_first, depth)
    assert rho > 0.9
    assert embedding.shape == (400, 4) and np.array_equal(embedding, signal)

    embedding, rho = baselines.drop_depth_component(kept_first, depth)
    assert abs(rho) < 0.5
    assert embedding.shape == (400, 5)

    # a strongly anti-correlated component is depth too
    embedding, rho = baselines.drop_depth_component(-depth_first, depth)
    assert rho < -0.9 and embedding.shape == (400, 4)


def test_track_resources_sees_time_and_memory():
    with metrics.track_resources() as before:
        pass
    with metrics.track_resources() as usage:
        block = np.ones((300, 1024, 1024), dtype=np.uint8)  # 300 MB touched
        block.sum()
    del block
    assert usage["seconds"] > 0
    if metrics._reset_peak_rss():  # Linux: the peak counter restarts at each block
        assert usage["peak_mem_mb"] > before["peak_mem_mb"] + 250
    else:  # the process peak so far, which includes the block
        assert usage["peak_mem_mb"] > 300


def test_knn_accuracy_of_separated_labels_is_one():
    embedding, labels = blobs()
    scores = metrics.knn_label_transfer(embedding, labels.astype(str), n_neighbors=15, seed=0)
    assert scores == {"knn_accuracy": 1.0, "knn_balanced_accuracy": 1.0}


def test_knn_accuracy_of_a_random_embedding_is_chance():
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c", "d"], size=2000)
    scores = metrics.knn_label_transfer(rng.normal(size=(2000, 10)), labels, seed=0)
    assert scores["knn_accuracy"] == pytest.approx(0.25, abs=0.04)
    assert scores["knn_balanced_accuracy"] == pytest.approx(0.25, abs=0.04)


def test_knn_balanced_accuracy_counts_a_rare_label_as_much_as_a_common_one():
    # one random cloud, 95 % "a": 15 neighbours almost always vote "a", so accuracy ~ 0.95, balanced ~ 0.5
    rng = np.random.default_rng(1)
    labels = np.array(["a"] * 950 + ["b"] * 50)
    scores = metrics.knn_label_transfer(rng.normal(size=(1000, 5)), labels, seed=0)
    assert scores["knn_accuracy"] == pytest.approx(0.95, abs=0.01)
    assert scores["knn_balanced_accuracy"] == pytest.approx(0.5, abs=0.02)


def test_knn_label_recall_names_the_lost_label_and_averages_to_the_balanced_accuracy():
    # "b" lives inside "a"'s cloud (lost), "c" is a separate cloud (kept)
    rng = np.random.default_rng(3)
    embedding = np.vstack([rng.normal(size=(600, 5)), rng.normal(size=(60, 5)), rng.normal(8.0, 1.0, size=(100, 5))])
    labels = np.array(["a"] * 600 + ["b"] * 60 + ["c"] * 100)
    recall = metrics.knn_label_recall(embedding, labels, seed=0)
    assert list(recall.index) == ["a", "b", "c"]
    assert recall["a"] > 0.98 and recall["b"] < 0.1 and recall["c"] == 1.0
    scores = metrics.knn_label_transfer(embedding, labels, seed=0)
    assert recall.mean() == pytest.approx(scores["knn_balanced_accuracy"])


def test_knn_accuracy_with_labels_smaller_than_the_folds_and_unlabelled_cells():
    embedding, labels = blobs(n_per_cluster=40, n_clusters=3)
    labels = labels.astype(str).astype(object)
    labels[:3] = "rare"  # 3 cells, fewer than the 5 folds
    labels[3] = "single"  # 1 cell: never in its own training folds
    scores = metrics.knn_label_transfer(embedding, labels, seed=0)
    assert 0.9 < scores["knn_accuracy"] < 1.0  # the rare cells sit in cluster 0: they get its label
    assert scores["knn_balanced_accuracy"] < scores["knn_accuracy"]
    # unlabelled cells are neither references nor queries: adding them changes nothing
    extra = np.vstack([embedding, np.random.default_rng(2).normal(size=(30, embedding.shape[1]))])
    with_unlabelled = np.concatenate([labels, np.full(30, None, dtype=object)])
    assert metrics.knn_label_transfer(extra, with_unlabelled, seed=0) == scores
    # seeded: the same folds, the same numbers
    assert metrics.knn_label_transfer(embedding, labels, seed=0) == scores
    with pytest.raises(ValueError, match="two distinct labels"):
        metrics.knn_label_transfer(embedding, ["x"] * len(embedding))


def _seed_scores():
    """clustering.tsv rows: a deterministic method and one whose scores move with the seed."""
    import pandas as pd

    rows = []
    for seed, moving in ((0, 0.5), (1, 0.7), (2, 0.9)):
        for clustering, shift in (("kmeans", 0.0), ("leiden", 0.05)):
            rows.append({"method": "scmvp", "clustering": clustering, "ari": moving - shift, "nmi": moving,
                         "n_clusters": 4, "seconds": 10.0 * (seed + 1), "peak_mem_mb": 100.0 + seed, "seed": seed,
                         "knn_accuracy": moving + 0.05, "knn_balanced_accuracy": moving})
            rows.append({"method": "rna_pca", "clustering": clustering, "ari": 0.6, "nmi": 0.65, "n_clusters": 4,
                         "seconds": 1.0, "peak_mem_mb": 50.0, "seed": seed, "knn_accuracy": 0.8,
                         "knn_balanced_accuracy": 0.75})
    return pd.DataFrame(rows, columns=metrics.SCORE_COLUMNS)


def test_summary_gives_mean_and_sd_over_seeds_per_method():
    summary = metrics.summarise_seeds(_seed_scores()).set_index("method")
    assert list(summary.index) == ["scmvp", "rna_pca"]
    assert (summary["n_seeds"] == 3).all() and (summary["seeds"] == "0,1,2").all()
    scmvp, pca = summary.loc["scmvp"], summary.loc["rna_pca"]
    assert scmvp["kmeans_ari_mean"] == pytest.approx(0.7) and scmvp["kmeans_ari_sd"] == pytest.approx(0.2)
    assert scmvp["leiden_ari_mean"] == pytest.approx(0.65) and scmvp["leiden_nmi_sd"] == pytest.approx(0.2)
    assert scmvp["knn_accuracy_mean"] == pytest.approx(0.75) and scmvp["knn_accuracy_sd"] == pytest.approx(0.2)
    assert scmvp["seconds_mean"] == pytest.approx(20.0) and scmvp["peak_mem_mb_max"] == 102.0
    for column in ("kmeans_ari", "kmeans_nmi", "leiden_ari", "leiden_nmi", "knn_accuracy", "knn_balanced_accuracy"):
        assert pca[f"{column}_sd"] == 0.0
    assert pca["leiden_nmi_mean"] == pytest.approx(0.65) and pca["knn_balanced_accuracy_mean"] == pytest.approx(0.75)


def test_summary_of_one_seed_has_no_sd_and_rejects_duplicates():
    scores = _seed_scores()
    one = metrics.summarise_seeds(scores[scores["seed"] == 1]).set_index("method")
    assert (one["n_seeds"] == 1).all()
    assert one.loc["scmvp", "kmeans_ari_mean"] == pytest.approx(0.7)
    assert np.isnan(one.loc["scmvp", "kmeans_ari_sd"]) and np.isnan(one.loc["rna_pca", "knn_accuracy_sd"])
    with pytest.raises(ValueError, match="more than one row"):
        metrics.summarise_seeds(pd_concat(scores, scores.iloc[:1]))


def pd_concat(*frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)
