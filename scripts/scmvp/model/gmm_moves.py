"""Split-and-merge moves for the GMM prior (Ueda et al., "SMEM algorithm for mixture models", Neural Computation
12, 2000), scored by BIC on the latent means of the training cells (pure numpy + scikit-learn).

Why: the mixture is fitted after a short warm-up, when some types have not separated yet; a type that shares its
sibling's component is then pulled into it by the KL term for the rest of training. A split move gives it its own
component once the latent shows two groups in one component; the number of components stays fixed, so the move
pays for the split by merging the two components whose union is the cheapest to describe as one Gaussian.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOG_2PI = math.log(2.0 * math.pi)


def _gaussian_log_likelihood(n, total, total_sq):
    """Maximised log-likelihood of ``n`` points under one diagonal Gaussian from their sums and sums of squares."""
    mean = total / n
    var = np.maximum(total_sq / n - mean ** 2, 1e-6)
    return -0.5 * n * float(np.sum(LOG_2PI + np.log(var) + 1.0))


@dataclass
class SplitMerge:
    split: int                 # the component split in two (keeps one half)
    freed: int                 # the slot that receives the other half (merged into `kept` first)
    kept: int                  # the merged component
    gain: float                # BIC gain of the split (> 0: two Gaussians describe its cells better)
    cost: float                # BIC cost of the merge
    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray


def propose_split_merge(z, assignment, weights, means, variances, min_cells: int, seed: int = 0):
    """The best split of one component and merge of two others, or None when no split pays for its merge.

    ``z`` (cells x dims) the latent means, ``assignment`` each cell's component; ``weights``, ``means``,
    ``variances`` the mixture (after the EM step). A component with at least ``2 * min_cells`` cells may be split
    (a 2-component diagonal GMM on its cells, each half at least ``min_cells`` cells); BIC gain of the split =
    2 (log L_2 - log L_1) - (2 d + 1) log n. A pair's merge cost = 2 (log L_i + log L_j - log L_ij) - (2 d + 1) log
    (n_i + n_j), from sufficient statistics. Returns the new mixture with the split's halves in ``split`` and
    ``freed`` and the merged pair in ``kept``; the posterior-variance part of each variance (variance minus the
    spread of its cells' means) is kept.
    """
    from sklearn.mixture import GaussianMixture

    z = np.asarray(z, dtype=np.float64)
    k, d = means.shape
    n_params = 2 * d + 1
    counts = np.bincount(assignment, minlength=k)
    sums = np.stack([z[assignment == c].sum(0) for c in range(k)])
    sums_sq = np.stack([(z[assignment == c] ** 2).sum(0) for c in range(k)])
    log_l = np.array([_gaussian_log_likelihood(counts[c], sums[c], sums_sq[c]) if counts[c] > 1 else 0.0
                      for c in range(k)])

    best_gain, best = 0.0, None
    for c in np.flatnonzero(counts >= 2 * min_cells):
        cells = z[assignment == c]
        gm = GaussianMixture(2, covariance_type="diag", random_state=seed, reg_covar=1e-6, max_iter=100).fit(cells)
        halves = np.bincount(gm.predict(cells), minlength=2)
        if halves.min() < min_cells:
            continue
        gain = 2.0 * (gm.score(cells) * len(cells) - log_l[c]) - n_params * math.log(len(cells))
        if gain > best_gain:
            best_gain, best = gain, (int(c), gm)
    if best is None:
        return None
    split, gm = best

    best_cost, pair = np.inf, None
    for i in range(k):
        for j in range(i + 1, k):
            if split in (i, j) or counts[i] < 2 or counts[j] < 2:
                continue
            n = counts[i] + counts[j]
            joint = _gaussian_log_likelihood(n, sums[i] + sums[j], sums_sq[i] + sums_sq[j])
            cost = 2.0 * (log_l[i] + log_l[j] - joint) - n_params * math.log(n)
            if cost < best_cost:
                best_cost, pair = cost, (i, j)
    if pair is None or best_cost >= best_gain:
        return None
    kept, freed = pair

    weights, means, variances = (np.array(a, dtype=np.float64, copy=True) for a in (weights, means, variances))
    posterior_part = np.maximum(variances[split] - (sums_sq[split] / counts[split] - (sums[split] / counts[split]) ** 2),
                                0.0)
    # merge kept + freed (moment matching of the two Gaussians)
    w = weights[kept] + weights[freed]
    mean = (weights[kept] * means[kept] + weights[freed] * means[freed]) / w
    second = (weights[kept] * (variances[kept] + means[kept] ** 2)
              + weights[freed] * (variances[freed] + means[freed] ** 2)) / w
    weights[kept], means[kept], variances[kept] = w, mean, np.maximum(second - mean ** 2, 1e-4)
    # split: the two halves, each with the split component's posterior-variance part
    w_split = weights[split]
    for slot, half in ((split, 0), (freed, 1)):
        weights[slot] = w_split * gm.weights_[half]
        means[slot] = gm.means_[half]
        variances[slot] = gm.covariances_[half] + posterior_part
    return SplitMerge(split, freed, kept, float(best_gain), float(best_cost), weights, means, variances)
