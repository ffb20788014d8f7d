"""Integration metrics (scib-metrics): mixed libraries score high on batch mixing, separated ones low."""
from __future__ import annotations

import numpy as np
import pytest

from scmvp.errors import InputError
from scmvp.integration import integration_scores, integration_table


@pytest.fixture(scope="module")
def embeddings():
    rng = np.random.default_rng(0)
    n = 900
    labels = rng.integers(0, 3, n)
    batches = rng.integers(0, 3, n)
    centers, shift = rng.normal(0, 5, (3, 10)), rng.normal(0, 5, (3, 10))
    mixed = centers[labels] + rng.normal(size=(n, 10))
    return {"mixed": mixed, "separated": mixed + shift[batches]}, batches, labels


def test_batch_mixing_separates_mixed_from_separated_libraries(embeddings):
    emb, batches, labels = embeddings
    table = integration_table(emb, batches, labels).set_index("method")
    mixed, separated = table.loc["mixed"], table.loc["separated"]
    assert mixed["ilisi"] > 0.7 and separated["ilisi"] < 0.1
    assert mixed["kbet"] > 0.8 and separated["kbet"] < 0.1
    assert mixed["batch_score"] > separated["batch_score"] + 0.5
    # the labels stay apart in both: cLISI ~1; the library shift blurs the label silhouette
    assert mixed["clisi"] > 0.95 and separated["clisi"] > 0.95
    assert mixed["silhouette_label"] > separated["silhouette_label"]
    assert table["n_batches"].tolist() == [3, 3]


def test_without_labels_only_batch_mixing(embeddings):
    emb, batches, _ = embeddings
    scores = integration_scores(emb["mixed"], batches)
    assert scores["ilisi"] > 0.7 and np.isnan(scores["clisi"])


def test_bad_inputs_are_clear_errors(embeddings):
    emb, batches, labels = embeddings
    with pytest.raises(InputError, match="at least two batches"):
        integration_scores(emb["mixed"], np.zeros(len(batches)))
    bad = emb["mixed"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        integration_scores(bad, batches)
    with pytest.raises(InputError, match="does not match"):
        integration_scores(emb["mixed"][:10], batches)


def test_the_figure_draws_each_method_once_as_the_mean_over_its_seeds(embeddings):
    import pandas as pd

    from scmvp import plots

    emb, batches, labels = embeddings
    rows = []
    for seed, noise in enumerate((0.0, 3.0)):
        noisy = {m: e + np.random.default_rng(seed).normal(0, noise, e.shape) for m, e in emb.items()}
        rows.append(integration_table(noisy, batches, labels).assign(seed=seed))
    table = pd.concat(rows, ignore_index=True)
    fig = plots.integration_panels(table)
    bars = fig.axes[0]
    metrics = [t.get_text() for t in bars.get_xticklabels()]
    heights = [patch.get_height() for patch in bars.patches]
    assert len(heights) == 2 * len(metrics)                                   # two methods, not four rows
    means = table.groupby("method", sort=False)[metrics].mean()
    np.testing.assert_allclose(heights[:len(metrics)], means.loc["mixed"].to_numpy(), rtol=1e-9)
    assert len(fig.axes[1].collections[0].get_offsets()) == 2
