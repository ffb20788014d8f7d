"""bench/bench_overfit.py's split-half test (pure functions; the runs are benchmarks)."""
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_overfit as bo  # noqa: E402


def test_split_nonzeros_gives_two_disjoint_halves_that_add_up():
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(0.3, size=(50, 400)))
    a, b = bo.split_nonzeros(counts, np.random.default_rng(1))
    assert (a + b - counts).nnz == 0
    assert a.multiply(b).nnz == 0                      # no entry in both halves
    assert 0.4 < a.nnz / counts.nnz < 0.6


def test_split_half_agreement_sees_shared_state_not_sampling_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(["A", "B"], 200)
    state = rng.normal(size=(400, 3))                  # a per-cell state both halves would share
    noise_a, noise_b = rng.normal(size=(2, 400, 3))
    assert bo.split_half_agreement(state + 0.3 * noise_a, state + 0.3 * noise_b, labels) > 0.9
    assert abs(bo.split_half_agreement(noise_a, noise_b, labels)) < 0.1
    # a label offset alone is removed before correlating: it is not within-label agreement
    offset = np.where(labels[:, None] == "A", 5.0, -5.0) * np.ones((1, 3))
    assert abs(bo.split_half_agreement(offset + noise_a, offset + noise_b, labels)) < 0.1
    assert np.allclose(bo.within_label(offset, labels), 0.0)
