"""The clustering benchmark: each baseline on a small synthetic MuData (shape, seeded determinism,
clusters found), the rule scripts' input checks, and the end-to-end benchmark + report on the tiny workflow.
"""
import json

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import snakemake
from scmvp import baselines, metrics, scvi_baselines
from scmvp.errors import InputError

N_TYPES = 4


def synthetic_mudata(n_cells=240, n_genes=150, n_peaks=1200, seed=0):
    """Paired counts of N_TYPES cell types: type-specific gene means and peak probabilities,
    and a per-cell depth shared by both modalities (so the first LSI component follows depth)."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, N_TYPES, n_cells)
    gene_means = rng.gamma(1.0, 1.0, (N_TYPES, n_genes)) * rng.choice([1, 5], (N_TYPES, n_genes), p=[0.85, 0.15])
    depth = rng.lognormal(0, 0.4, n_cells)
    rna = rng.poisson(gene_means[types] * depth[:, None])
    peak_p = rng.beta(0.5, 10, (N_TYPES, n_peaks))
    peak_p = np.where(rng.random((N_TYPES, n_peaks)) < 0.15, np.minimum(peak_p * 8, 0.7), peak_p)
    atac = rng.random((n_cells, n_peaks)) < np.minimum(peak_p[types] * depth[:, None], 1)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    mods = {}
    for name, counts, features in (("rna", rna, [f"gene{i}" for i in range(n_genes)]),
                                   ("atac", atac, [f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(n_peaks)])):
        adata = ad.AnnData(sp.csr_matrix(counts.astype(np.float32)), obs=obs.copy(),
                           var=pd.DataFrame(index=features))
        adata.layers["counts"] = adata.X.copy()
        adata.X = adata.X * 0.5  # X is not the counts: methods must read layers["counts"]
        mods[name] = adata
    mdata = md.MuData(mods)
    mdata.obs["label"] = [f"type{t}" for t in types]
    return mdata


@pytest.fixture(scope="module")
def mdata():
    return synthetic_mudata()


@pytest.fixture(scope="module")
def labels(mdata):
    return mdata.obs["label"].to_numpy()


def kmeans_ari(embedding, labels):
    return metrics.clustering_scores(labels, metrics.kmeans(embedding, N_TYPES, seed=0))["ari"]


def test_rna_pca_shape_determinism_and_clusters(mdata, labels):
    first = baselines.rna_pca(mdata.mod["rna"], n_top_genes=100, n_pcs=12, seed=0)
    again = baselines.rna_pca(mdata.mod["rna"], n_top_genes=100, n_pcs=12, seed=0)
    assert first.shape == (mdata.n_obs, 12)
    np.testing.assert_allclose(first, again, atol=1e-6)
    assert kmeans_ari(first, labels) > 0.9


def depth_dominated_simulation(n_cells=400, seed=3):
    """scmvp.simulate's paired data with the RNA counts of each cell thinned to a random 5-100% of them
    (log-uniform): a strong RNA depth effect, as in sci-CAR A549 (PC1 rho -0.98 with depth)."""
    from scmvp import simulate

    sim = simulate.simulate(n_cells=n_cells, n_genes=300, n_peaks=1500, n_types=5, seed=seed)
    rng = np.random.default_rng(seed)
    keep = np.exp(rng.uniform(np.log(0.05), 0, n_cells))
    rna = sp.csr_matrix(sim.rna, dtype=np.int64)
    rna.data = rng.binomial(rna.data, np.repeat(keep, np.diff(rna.indptr)))
    rna.eliminate_zeros()
    return ad.AnnData(sp.csr_matrix(rna, dtype=np.float32)), sim.labels


def test_rna_pca_drops_the_depth_components():
    """With a strong depth effect, scanpy's plain route has a PC following depth (|rho| > cutoff): the
    baseline drops it, keeps n_pcs components, none of them following depth, and clusters better."""
    import scanpy as sc

    rna, labels = depth_dominated_simulation()
    depth = np.asarray(rna.X.sum(axis=1)).ravel()
    plain = baselines._log_normalised(rna, 200)
    sc.pp.scale(plain, max_value=10)
    sc.pp.pca(plain, n_comps=10, random_state=0, svd_solver="arpack")
    plain_rho = np.abs(baselines.depth_correlations(plain.obsm["X_pca"], depth))
    assert plain_rho.max() > baselines.DEPTH_CORRELATION_CUTOFF  # the test can fail: depth is there to find

    embedding, info = baselines.rna_pca_with_info(rna, n_top_genes=200, n_pcs=10, seed=0)
    assert embedding.shape == (rna.n_obs, 10)
    assert info["depth_components_dropped"] >= 1
    assert np.abs(baselines.depth_correlations(embedding, depth)).max() <= baselines.DEPTH_CORRELATION_CUTOFF
    k = len(set(labels))
    ari = metrics.clustering_scores(labels, metrics.kmeans(embedding, k, seed=0))["ari"]
    plain_ari = metrics.clustering_scores(labels, metrics.kmeans(plain.obsm["X_pca"], k, seed=0))["ari"]
    assert ari > plain_ari + 0.1, (ari, plain_ari)


def test_drop_depth_components_tests_every_component_and_every_depth():
    rng = np.random.default_rng(0)
    rna_depth, atac_depth = rng.lognormal(5, 1, 300), rng.lognormal(5, 1, 300)
    signal = rng.normal(size=(300, 4))
    embedding = np.column_stack([signal[:, 0], np.log(rna_depth), signal[:, 1], -np.log(atac_depth),
                                 signal[:, 2:]])
    kept, info = baselines.drop_depth_components(embedding, [rna_depth, atac_depth], n_keep=3)
    assert info == {"depth_components_dropped": 2, "depth_dropped_indices": [1, 3]}
    np.testing.assert_allclose(kept, signal[:, :3])


def test_atac_lsi_drops_depth_component_and_is_seeded(mdata, labels):
    first, rho = baselines.atac_lsi(mdata.mod["atac"], n_components=10, seed=0)
    again, _ = baselines.atac_lsi(mdata.mod["atac"], n_components=10, seed=0)
    assert abs(rho) > 0.5  # the synthetic depth dominates the first component: it was dropped
    assert first.shape == (mdata.n_obs, 10)
    np.testing.assert_allclose(first, again, atol=1e-6)
    # the depth component is gone from what is kept
    assert np.abs(baselines.depth_correlations(first, mdata.mod["atac"].layers["counts"].sum(axis=1))).max() < 0.9
    assert kmeans_ari(first, labels) > 0.9


def test_mofa_factors(mdata, labels):
    first, info = baselines.mofa_with_info(mdata, n_factors=5, n_top_genes=100, n_top_peaks=500,
                                           n_iterations=100, seed=0)
    again = baselines.mofa(mdata, n_factors=5, n_top_genes=100, n_top_peaks=500, n_iterations=100, seed=0)
    assert first.shape[0] == mdata.n_obs and 2 <= first.shape[1] <= 5
    np.testing.assert_allclose(first, again, atol=1e-6)
    assert kmeans_ari(first, labels) > 0.9
    # variable features per view (not every feature), and no factor follows RNA or ATAC depth
    assert info["n_genes"] == 100 and info["n_peaks"] == 500 and "depth_components_dropped" in info
    for mod in ("rna", "atac"):
        depth = mdata.mod[mod].layers["counts"].sum(axis=1)
        assert np.abs(baselines.depth_correlations(first, depth)).max() <= baselines.DEPTH_CORRELATION_CUTOFF


def test_scvi_rna_latent(mdata, labels):
    first = scvi_baselines.scvi_rna(mdata.mod["rna"], n_epochs=3, n_latent=6, seed=0)
    again = scvi_baselines.scvi_rna(mdata.mod["rna"], n_epochs=3, n_latent=6, seed=0)
    assert first.shape == (mdata.n_obs, 6)
    np.testing.assert_allclose(first, again, atol=1e-5)
    assert np.isfinite(first).all()


def test_multivi_latent(mdata):
    first, info = scvi_baselines.multivi_with_info(mdata, max_epochs=3, n_latent=6, seed=0)
    again = scvi_baselines.multivi(mdata, n_epochs=3, n_latent=6, seed=0)
    assert first.shape == (mdata.n_obs, 6)
    np.testing.assert_allclose(first, again, atol=1e-5)
    assert np.isfinite(first).all()
    genes, peaks = scvi_baselines.multivi_features(mdata)
    assert (info["genes_kept"], info["peaks_kept"]) == (genes.sum(), peaks.sum())
    assert info["epochs_run"] == 3


def test_multivi_feature_filter_keeps_features_in_one_percent_of_cells():
    """The MultiVI tutorial's filter, min_cells = int(n_cells * 0.01): with 500 cells, features seen in
    4 cells go, in 5 or more stay (genes and peaks alike); counts of 0 do not count as seen."""
    n_cells = 500
    seen_in = np.array([0, 1, 4, 5, 6, 499, 500])  # cells with a count > 0, per feature
    dense = np.zeros((n_cells, len(seen_in)), dtype=np.float32)
    for j, n in enumerate(seen_in):
        dense[:n, j] = 2.0
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n_cells)])
    mods = {}
    for name in ("rna", "atac"):
        adata = ad.AnnData(sp.csr_matrix(dense), obs=obs.copy(),
                           var=pd.DataFrame(index=[f"{name}{j}" for j in range(len(seen_in))]))
        adata.layers["counts"] = adata.X.copy()
        mods[name] = adata
    genes, peaks = scvi_baselines.multivi_features(md.MuData(mods))
    expected = [False, False, False, True, True, True, True]
    assert genes.tolist() == expected and peaks.tolist() == expected
    genes, _ = scvi_baselines.multivi_features(md.MuData(mods), min_cell_fraction=0.0)
    assert genes.all()  # 0 = keep everything (the filter is the config's multivi.min_cell_fraction)


def test_wnn_graph_and_embedding(mdata, labels):
    # one WNN call in the suite: muon spends ~60 s compiling it in every new process
    embedding, graph, rna_weight, info = baselines.wnn_with_info(mdata, n_top_genes=100, n_pcs=10,
                                                                 n_lsi_components=10, seed=0)
    # scored like every other method: an embedding of n_pcs dims (a diffusion map of the WNN graph), not
    # a 2-D UMAP
    assert embedding.shape == (mdata.n_obs, 10) and np.isfinite(embedding).all()
    assert kmeans_ari(embedding, labels) > 0.9
    # WNN's inputs lost their depth components (the synthetic depth is shared by both modalities)
    assert info["atac_depth_components_dropped"] >= 1 and "rna_depth_components_dropped" in info
    assert graph.shape == (mdata.n_obs, mdata.n_obs)
    assert abs(graph - graph.T).max() < 1e-6
    assert ((rna_weight >= 0) & (rna_weight <= 1)).all()
    clusters, _, reached = metrics.leiden_with_n_clusters(graph, N_TYPES, seed=0)
    assert reached == N_TYPES
    assert metrics.clustering_scores(labels, clusters)["ari"] > 0.9


def test_read_cells_and_obsm_follow_the_benchmark_cells(tmp_path, mdata):
    path = tmp_path / "imputed.h5mu"
    written = mdata.copy()
    written.obsm["X_scmvp"] = np.arange(mdata.n_obs * 3, dtype=float).reshape(-1, 3)
    written.write(path)
    barcodes, labels = baselines.read_cells(path)
    assert list(barcodes) == list(mdata.obs_names) and list(labels) == list(mdata.obs["label"])
    subset = list(reversed(barcodes[:5]))
    rows = baselines.read_obsm(path, "X_scmvp", subset)
    np.testing.assert_array_equal(rows[:, 0], [3 * int(b[4:]) for b in subset])
    with pytest.raises(InputError, match="lacks 1 of the benchmark's cells"):
        baselines.read_obsm(path, "X_scmvp", ["not_a_cell"])
    with pytest.raises(InputError, match=r'has no obsm\["X_other"\]'):
        baselines.read_obsm(path, "X_other")


def test_bad_inputs_name_the_file(tmp_path):
    not_h5 = tmp_path / "broken.h5mu"
    not_h5.write_text("this is not HDF5")
    with pytest.raises(InputError, match="broken.h5mu"):
        baselines.read_cells(not_h5)
    table = tmp_path / "emb.tsv"
    table.write_text("barcode\tdim_1\ncell0\tnan\n")
    with pytest.raises(InputError, match="emb.tsv: the embedding has NaN"):
        baselines.read_embedding(table)


def test_paired_modalities_check_names_the_file_and_the_problem(mdata):
    baselines.check_paired_modalities(mdata, "ok.h5mu", min_cells=10, purpose="to benchmark")
    with pytest.raises(InputError, match="rna_only.h5mu: has no 'atac' modality"):
        baselines.check_paired_modalities(md.MuData({"rna": mdata["rna"]}), "rna_only.h5mu", 10, "to benchmark")
    with pytest.raises(InputError, match=f"small.h5mu: only {mdata.n_obs} cells: too few for a neighbour overlap"):
        baselines.check_paired_modalities(mdata, "small.h5mu", mdata.n_obs + 1, "for a neighbour overlap")


def test_embedding_tsv_round_trip(tmp_path):
    embedding = np.random.default_rng(0).normal(size=(7, 3))
    barcodes = [f"AAAC-{i}" for i in range(7)]
    baselines.write_embedding(embedding, barcodes, tmp_path / "e.tsv")
    cells, matrix = baselines.read_embedding(tmp_path / "e.tsv")
    assert list(cells) == barcodes
    np.testing.assert_allclose(matrix, embedding, rtol=1e-5)


def test_knn_recall_heatmap_shows_the_mean_over_seeds_largest_label_first():
    from scmvp import plots

    recall = pd.DataFrame({"method": ["scmvp"] * 4 + ["rna_pca"] * 4, "seed": [0, 0, 1, 1] * 2,
                           "label": ["rare", "big"] * 4, "n_cells": [5, 50] * 4,
                           "knn_recall": [0.0, 1.0, 0.5, 0.9, 1.0, 1.0, 1.0, 0.8]})
    fig = plots.knn_recall_heatmap(recall)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["big (50)", "rare (5)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["scmvp", "rna_pca"]
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.95, 0.9], [0.25, 1.0]])
    assert sorted(t.get_text() for t in ax.texts) == sorted(["0.95", "0.90", "0.25", "1.00"])


def test_benchmark_end_to_end_and_report(tiny_workflow):
    """clustering.tsv (per method, clustering and seed) and summary.tsv on the tiny simulated dataset, its
    figures, and the HTML report that shows them."""
    scores, summary, bars, umap, knn_recall, recall_png = tiny_workflow.build(
        "tiny/benchmark/clustering.tsv", "tiny/benchmark/summary.tsv", "tiny/benchmark/clustering.png",
        "tiny/benchmark/umap.png", "tiny/benchmark/knn_recall.tsv", "tiny/benchmark/knn_recall.png")
    table = pd.read_csv(scores, sep="\t")
    # the DESIGN.md columns first, then the per-seed ones
    assert list(table.columns) == ["method", "clustering", "ari", "nmi", "n_clusters", "seconds", "peak_mem_mb",
                                   "seed", "knn_accuracy", "knn_balanced_accuracy"]
    methods = tiny_workflow.config["benchmark"]["methods"]
    seeds = tiny_workflow.config["benchmark"]["seeds"]
    assert len(seeds) == 2 and tiny_workflow.config["model"]["seed"] in seeds
    assert sorted(table["method"].unique()) == sorted(methods)
    assert len(table) == 2 * len(methods) * len(seeds) and set(table["clustering"]) == {"kmeans", "leiden"}
    assert not table.duplicated(["method", "clustering", "seed"]).any() and set(table["seed"]) == set(seeds)
    assert table[["ari", "nmi"]].apply(lambda c: c.between(-0.5, 1.0)).all().all()
    assert table[["knn_accuracy", "knn_balanced_accuracy"]].apply(lambda c: c.between(0.0, 1.0)).all().all()
    rna = table[(table["method"] == "rna_pca") & (table["seed"] == seeds[0])].set_index("clustering")
    assert rna.loc["kmeans", "ari"] > 0.5 and rna.loc["leiden", "ari"] > 0.5
    assert rna.loc["kmeans", "knn_accuracy"] > 0.7  # six simulated types, 1/6 by chance
    n_types = tiny_workflow.config["datasets"]["tiny"]["simulate"]["n_types"]
    assert (rna["n_clusters"] == n_types).all()
    assert (table.loc[table["method"] != "scmvp", "seconds"] > 0).all()
    assert (table.loc[table["method"] != "scmvp", "peak_mem_mb"] > 10).all()
    # per label: every method and seed recalls every label; a run's mean recall is its balanced accuracy
    recall = pd.read_csv(knn_recall, sep="\t")
    assert list(recall.columns) == ["method", "seed", "label", "n_cells", "knn_recall"]
    assert recall.groupby(["method", "seed"]).size().eq(n_types).all() and len(recall) == n_types * len(table) // 2
    assert recall["knn_recall"].between(0.0, 1.0).all()
    assert recall.groupby(["method", "seed"])["n_cells"].sum().nunique() == 1
    balanced = table.drop_duplicates(["method", "seed"]).set_index(["method", "seed"])["knn_balanced_accuracy"]
    mean_recall = recall.groupby(["method", "seed"])["knn_recall"].mean()
    np.testing.assert_allclose(mean_recall.loc[balanced.index], balanced, atol=2e-4)
    for figure in (bars, umap, recall_png):
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    seed_dir = scores.parent / "seeds"
    lsi = json.loads((seed_dir / str(seeds[0]) / "embeddings" / "atac_lsi.json").read_text())
    assert "depth_spearman_first_component" in lsi and lsi["seed"] == seeds[0]

    # scMVP: model.seed's embedding is the main model's latent; the other seed trained its own model
    main_seed, other_seed = seeds
    cells, main_latent = baselines.read_embedding(seed_dir / str(main_seed) / "embeddings" / "scmvp.tsv")
    imputed = tiny_workflow.results / "tiny" / "imputed.h5mu"
    np.testing.assert_allclose(main_latent, baselines.read_obsm(imputed, "X_scmvp", cells), rtol=1e-5, atol=1e-6)
    assert (seed_dir / str(other_seed) / "scmvp" / "model.pt").exists()
    _, other_latent = baselines.read_embedding(seed_dir / str(other_seed) / "embeddings" / "scmvp.tsv")
    assert other_latent.shape == main_latent.shape and not np.allclose(other_latent, main_latent)
    other_json = json.loads((seed_dir / str(other_seed) / "embeddings" / "scmvp.json").read_text())
    assert other_json["seconds"] > 0 and other_json["from"][0].endswith(f"seeds/{other_seed}/train_scmvp.tsv")

    # the summary: one row per method, mean and sd over the seeds
    mean_sd = pd.read_csv(summary, sep="\t").set_index("method")
    assert list(mean_sd.index) == methods and (mean_sd["n_seeds"] == len(seeds)).all()
    for column in ("kmeans_ari", "kmeans_nmi", "leiden_ari", "leiden_nmi", "knn_accuracy", "knn_balanced_accuracy"):
        per_seed = table.drop_duplicates(["method", "seed"]) if column.startswith("knn") else \
            table[table["clustering"] == column.split("_")[0]]
        metric = column if column.startswith("knn") else column.split("_")[1]
        expected = per_seed.groupby("method")[metric].agg(["mean", "std"])
        np.testing.assert_allclose(mean_sd[f"{column}_mean"], expected.loc[methods, "mean"], atol=1e-4)
        # RNA PCA does not depend on the seed (ARPACK converges to the same components): sd 0
        assert mean_sd.loc["rna_pca", f"{column}_sd"] == pytest.approx(0.0, abs=1e-6)
    assert mean_sd.loc["scmvp", "seconds_mean"] > 0

    html = tiny_workflow.workdir / "report.html"
    qc_figure = tiny_workflow.build("tiny/qc/qc.png")
    snakemake(tiny_workflow.workdir, tiny_workflow.config,
              targets=[str(p) for p in (scores, summary, bars, umap, qc_figure)], extra=("--report", str(html)))
    text = html.read_text(errors="replace")
    # the QC page a facility sends: its figure and summary table, in their own section
    for name in ("clustering.png", "umap.png", "clustering.tsv", "summary.tsv", "Clustering benchmark", "scMVP pipeline",
                 "Quality control", "qc.png", "summary.tsv"):
        assert name in text, f"{name} missing from the report"


def test_unlabelled_dataset_gets_umaps_but_no_scores(tmp_path, mdata):
    """Without labels the benchmark's targets are the UMAP grid only (dry run of the real workflow)."""
    unlabelled = mdata.copy()
    del unlabelled.obs["label"]
    path = tmp_path / "mine.h5mu"
    unlabelled.write(path)
    config = {"datasets": {"mine": {"technology": "h5mu", "path": str(path)}},
              "benchmark": {"methods": ["rna_pca", "wnn"]}}
    proc = snakemake(tmp_path, config, extra=("--dry-run", "--quiet", "rules"))
    planned = proc.stdout + proc.stderr
    for rule in ("embed_rna_pca", "embed_wnn", "benchmark_umap", "plot_benchmark_umap"):
        assert rule in planned
    for rule in ("benchmark_scores", "plot_benchmark_scores", "embed_scmvp"):
        assert rule not in planned


def test_umap_grid_coloured_by_clusters(tmp_path):
    rng = np.random.default_rng(0)
    coords = pd.DataFrame({"method": np.repeat(["rna_pca", "wnn", "mofa"], 50),
                           "umap_1": rng.normal(size=150), "umap_2": rng.normal(size=150),
                           "leiden": rng.integers(0, 12, 150).astype(str)})
    from scmvp import plots

    fig = plots.embedding_grid(coords, colour="leiden")
    assert len([ax for ax in fig.axes if ax.axison]) == 3
    assert len(fig.legends[0].get_texts()) == 12
    plots.save(fig, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 5000


def test_imputed_h5mu_holds_the_latent_umap_and_leiden_clusters(tiny_workflow):
    """Where scanpy/muon users look: obsm["X_umap"], obs["leiden"], obsp connectivities of the scMVP latent."""
    path = tiny_workflow.build("tiny/imputed.h5mu")
    mdata = md.read_h5mu(path)
    assert mdata.obsm["X_umap"].shape == (mdata.n_obs, 2) and np.isfinite(mdata.obsm["X_umap"]).all()
    assert isinstance(mdata.obs["leiden"].dtype, pd.CategoricalDtype)
    assert 2 <= mdata.obs["leiden"].nunique() <= 50
    assert mdata.obsp["connectivities"].shape == (mdata.n_obs, mdata.n_obs)
    assert mdata.uns["neighbors"]["params"]["use_rep"] == "X_scmvp"
    # the simulated cell types separate in the latent: Leiden clusters (resolution 1 splits the 6 types into ~12)
    # agree with them (measured NMI 0.72, ARI 0.50 with model seed 1)
    assert metrics.clustering_scores(mdata.obs["label"].astype(str), mdata.obs["leiden"].astype(str))["nmi"] > 0.5
