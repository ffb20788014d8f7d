"""The hard simulated tissue (model issue): many unequal types, low depth, single-modality types, a trajectory."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scmvp.simulate import TRAJECTORY_LABELS
from scmvp.simulate_write import write_simulated
from scmvp.simulate_tissue import MIN_CELLS_PER_TYPE, simulate_tissue, type_sizes

SIZE = dict(n_cells=2000, n_genes=400, n_peaks=4000, n_types=17, n_chromosomes=3, seed=3)


@pytest.fixture(scope="module")
def tissue():
    return simulate_tissue(**SIZE)


def test_fifteen_types_of_very_unequal_size_and_the_trajectory(tissue):
    share = pd.Series(tissue.labels).value_counts(normalize=True)
    discrete = share.drop(list(TRAJECTORY_LABELS))
    assert len(discrete) == 15 and set(TRAJECTORY_LABELS) <= set(share.index)
    assert discrete.max() >= 0.30
    assert (discrete < 0.01).sum() >= 3
    assert pd.Series(tissue.labels).value_counts().min() >= MIN_CELLS_PER_TYPE
    on_traj = np.isin(tissue.labels, TRAJECTORY_LABELS)
    assert np.isfinite(tissue.pseudotime[on_traj]).all() and np.isnan(tissue.pseudotime[~on_traj]).all()


def test_low_depth(tissue):
    umis = np.asarray(tissue.rna.sum(axis=1)).ravel()
    assert 850 <= np.median(umis) <= 1150
    # 2,000 fragments in peaks, each leaving one or two cut sites there (1.5 on average)
    cuts = np.asarray(tissue.atac.sum(axis=1)).ravel()
    assert 2600 <= np.median(cuts) <= 3400


def test_single_modality_types_differ_from_their_sibling_in_one_modality_only(tissue):
    chromatin_only, rna_only = tissue.extra["chromatin_only"], tissue.extra["rna_only"]
    assert len(chromatin_only) == 3 and len(rna_only) == 3
    expression = tissue.bulk_rna.set_index("gene")
    openness = tissue.peak_openness
    for kind, pairs in (("chromatin", chromatin_only), ("rna", rna_only)):
        for label, sibling in pairs.items():
            same_rna = np.allclose(expression[label], expression[sibling])
            same_chromatin = np.allclose(openness[label], openness[sibling])
            assert (same_rna, same_chromatin) == ((True, False) if kind == "chromatin" else (False, True)), label
    # and it shows in the counts: a chromatin-only type is more open than its sibling on its own peaks
    label, sibling = next(iter(chromatin_only.items()))
    own = (openness[label] - openness[sibling]).to_numpy() > 0.5
    assert own.sum() >= 5
    mean_counts = {x: np.asarray(tissue.atac[tissue.labels == x][:, own].mean(axis=0)).ravel().mean()
                   for x in (label, sibling)}
    assert mean_counts[label] > 3 * mean_counts[sibling], mean_counts


def test_same_seed_same_data_and_it_writes_the_arc_layout(tissue, tmp_path):
    again = simulate_tissue(**SIZE)
    assert (again.rna != tissue.rna).nnz == 0 and (again.atac != tissue.atac).nnz == 0
    keys = {"matrix": "m.h5", "labels": "labels.tsv", "genes": "genes.gtf", "bulk_rna": "bulk_rna.tsv",
            "bulk_atac": "bulk_atac.bed", "H3K4me3": "k4.bed", "H3K27ac": "k27.bed", "links": "links.tsv",
            "de_genes": "de.tsv", "pseudotime": "pt.tsv"}
    write_simulated(tissue, {k: tmp_path / v for k, v in keys.items()})
    from scmvp.io import read_dataset
    mdata = read_dataset("10x_multiome", tmp_path / "m.h5", labels=tmp_path / "labels.tsv")
    assert mdata.n_obs == SIZE["n_cells"] and mdata.mod["atac"].n_vars == SIZE["n_peaks"]
    assert mdata.obs["label"].nunique() == 17


def test_too_few_cells_for_the_types_is_a_clear_error():
    with pytest.raises(ValueError, match="too few for 15 types"):
        type_sizes(100, 15, 0.32)
