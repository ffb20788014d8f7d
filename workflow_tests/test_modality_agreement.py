"""The RNA-ATAC pairing check (scmvp.modality_agreement): known answers of the overlap, chance and shuffled
pairings at 1, a simulated paired dataset far above it, and one mis-paired library among three flagged alone."""
import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from scmvp import baselines
from scmvp.modality_agreement import (NEAR_CHANCE_RATIO, agreement, agreement_table, chance_jaccard, mean_jaccard,
                                      neighbour_indices, shuffled_jaccards)
from scmvp.simulate import simulate


def test_mean_jaccard_known_answer():
    first = np.array([[0, 1, 2], [3, 4, 5]])
    second = np.array([[2, 1, 0], [3, 6, 7]])
    # row 1: the same set (1); row 2: one shared of five (1/5)
    assert mean_jaccard(first, second) == pytest.approx((1 + 1 / 5) / 2)


def test_chance_is_what_random_neighbour_sets_share():
    rng = np.random.default_rng(0)
    n, k = 400, 15
    draws = [np.array([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
             for _ in range(2)]
    assert mean_jaccard(*draws) == pytest.approx(chance_jaccard(n, k), rel=0.1)


@pytest.fixture(scope="module")
def embeddings():
    """rna_pca / atac_lsi of a simulated paired dataset (the example's simulator: shared types and trajectory)."""
    sim = simulate(n_cells=900, n_genes=400, n_peaks=3000, seed=3)
    rna = ad.AnnData(sp.csr_matrix(sim.rna, dtype=np.float32))
    atac = ad.AnnData(sp.csr_matrix(sim.atac, dtype=np.float32))
    return baselines.rna_pca(rna, n_top_genes=300, n_pcs=20), baselines.atac_lsi(atac, n_components=20)[0]


def test_paired_cells_agree_far_above_chance_and_a_shuffle_does_not(embeddings):
    rna, atac = embeddings
    paired = agreement(rna, atac)
    assert paired["cells"] == 900 and paired["k"] == 15
    assert paired["ratio_to_chance"] > 2.5 and not paired["near_chance"]
    assert paired["shuffled_ratio_max"] < NEAR_CHANCE_RATIO
    shuffled = agreement(rna, atac[np.random.default_rng(1).permutation(900)])
    assert 0.7 < shuffled["ratio_to_chance"] < NEAR_CHANCE_RATIO and shuffled["near_chance"]


def test_shuffled_jaccards_are_a_mis_paired_join():
    """A shuffled pairing's relabelled neighbour sets equal a new search on the shuffled second embedding."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 5)), rng.normal(size=(200, 5))
    na, nb = neighbour_indices(a, 10), neighbour_indices(b, 10)
    first_shuffle = np.random.default_rng(0).permutation(200)       # shuffled_jaccards' first, seed 0
    via_relabelling = shuffled_jaccards(na, nb, 1, seed=0)[0]
    assert via_relabelling == pytest.approx(mean_jaccard(na, neighbour_indices(b[first_shuffle], 10)))
    assert via_relabelling != pytest.approx(mean_jaccard(na, nb))


def test_one_mis_paired_library_is_flagged_alone(embeddings):
    rna, atac = embeddings
    samples = np.repeat(["lib1", "lib2", "lib3"], 300)
    atac = atac.copy()
    lib2 = np.flatnonzero(samples == "lib2")
    atac[lib2] = atac[np.random.default_rng(2).permutation(lib2)]   # lib2's ATAC joined to the wrong cells
    table = agreement_table(rna, atac, samples).set_index("group")
    assert list(table.index) == ["all", "lib1", "lib2", "lib3"]
    assert table.loc[["lib1", "lib2", "lib3"], "cells"].tolist() == [300, 300, 300]
    assert table["near_chance"].to_dict() == {"all": False, "lib1": False, "lib2": True, "lib3": False}
    assert table.loc["lib1", "ratio_to_chance"] > 2 * table.loc["lib2", "ratio_to_chance"]


def test_small_samples_are_skipped_and_too_few_cells_is_an_error(embeddings):
    rna, atac = embeddings
    samples = np.array(["big"] * 880 + ["tiny"] * 20)
    assert list(agreement_table(rna, atac, samples)["group"]) == ["all", "big"]
    with pytest.raises(ValueError, match="too few"):
        agreement(rna[:2], atac[:2])
    with pytest.raises(ValueError, match="ATAC rows"):
        agreement(rna, atac[:10])


def test_real_10x_multiome_cells_pass_and_their_shuffle_is_flagged(shared_data):
    """The real PBMC slice (Cell Ranger ARC, 1,000 cells; 45 genes, 174 peaks near markers): 2.38 x chance paired,
    0.83 with the ATAC of other cells."""
    import warnings

    import mudata as md

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = md.read_h5mu(shared_data / "tenx_multiome_pbmc_subset" / "test_rna_atac.h5mu")
    rna = baselines.rna_pca(mdata.mod["rna"], n_top_genes=45, n_pcs=20, seed=0)
    atac, _ = baselines.atac_lsi(mdata.mod["atac"], n_components=20, seed=0)
    paired = agreement(rna, atac)
    assert paired["ratio_to_chance"] > 2 and not paired["near_chance"]
    assert agreement(rna, atac[np.random.default_rng(0).permutation(len(atac))])["near_chance"]
