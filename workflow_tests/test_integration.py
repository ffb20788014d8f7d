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
