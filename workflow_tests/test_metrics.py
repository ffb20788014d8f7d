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
