"""Paired count matrices kept sparse (CSR); minibatches are densified one batch of rows at a time."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..errors import InputError

RNA_SCALE = 1e4
ATAC_SCALE = 1e4


def atac_tfidf(counts, library, idf):
    """The encoders' TF-IDF-like values of non-zero ATAC counts, log1p(count / cell total x idf x ATAC_SCALE),
    with each entry's cell total and peak idf already gathered; numpy arrays or torch tensors (the minibatch
    builder and the count split of training steps share it)."""
    scaled = counts / library * idf * ATAC_SCALE
    return torch.log1p(scaled) if isinstance(scaled, torch.Tensor) else np.log1p(scaled)


def _chrom_key(chrom: str):
    """Natural order of chromosome names: chr2 < chr10, then X, Y, M, then the rest alphabetically."""
    name = re.sub(r"^chr", "", str(chrom), flags=re.I)
    if name.isdigit():
        return (0, int(name), "")
    special = {"X": 1, "Y": 2, "M": 3, "MT": 3}
    return (1, special.get(name.upper(), 9), name)


def genome_order(atac_var: pd.DataFrame, path=None) -> np.ndarray:
    """Permutation sorting peaks by (chrom, start)."""
    for col in ("chrom", "start"):
        if col not in atac_var.columns:
            raise InputError(path, f"atac.var lacks the column '{col}' (peaks need chrom/start/end)")
    chroms = atac_var["chrom"].astype(str).to_numpy()
    uniq = sorted(set(chroms), key=_chrom_key)
    rank = {c: i for i, c in enumerate(uniq)}
    chrom_rank = np.array([rank[c] for c in chroms])
    starts = pd.to_numeric(atac_var["start"], errors="coerce").to_numpy()
    if np.isnan(starts).any():
        raise InputError(path, "atac.var['start'] has non-numeric values")
    return np.lexsort((starts, chrom_rank))


def token_of_peaks(n_peaks: int, n_tokens: int) -> np.ndarray:
    """Contiguous chunks of (genome-ordered) peaks -> token index of each peak."""
    n_tokens = max(1, min(n_tokens, n_peaks))
    return (np.arange(n_peaks) * n_tokens // n_peaks).astype(np.int64)


def _as_csr(matrix, path, what):
    m = sp.csr_matrix(matrix, dtype=np.float32)
    if m.data.size and (not np.all(np.isfinite(m.data)) or m.data.min() < 0):
        raise InputError(path, f"{what} has negative or non-finite counts")
    m.sort_indices()
    return m


def to_device(array: np.ndarray, device) -> torch.Tensor:
    """A minibatch array as a tensor on ``device``; to a CUDA device through page-locked (pinned) host memory
    with a non-blocking copy, so the transfer overlaps the previous step's kernels (PyTorch keeps the pinned
    buffer alive until the copy is done)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class PairedData:
    """RNA and ATAC counts of the same cells; ATAC columns stored in genome order; optionally the integer batch
    code of every cell (`batch_codes`, 0 .. n_batches - 1), added to each minibatch as ``batch``."""

    def __init__(self, rna_counts, atac_counts, atac_var: pd.DataFrame, n_tokens: int | None, path=None,
                 peak_order=None, idf=None, batch_codes=None):
        self.rna = _as_csr(rna_counts, path, "rna counts")
        atac = _as_csr(atac_counts, path, "atac counts")
        if self.rna.shape[0] != atac.shape[0]:
            raise InputError(path, f"rna has {self.rna.shape[0]} cells but atac has {atac.shape[0]}")
        if self.rna.shape[0] < 2:
            raise InputError(path, "fewer than 2 cells")
        self.peak_order = genome_order(atac_var, path) if peak_order is None else np.asarray(peak_order)
        if np.array_equal(self.peak_order, np.arange(atac.shape[1])):
            self.atac = atac                   # already in genome order: no second cells x peaks matrix
        else:
            self.atac = atac[:, self.peak_order].tocsr()
            self.atac.sort_indices()
        self.n_cells, self.n_genes = self.rna.shape
        self.n_peaks = self.atac.shape[1]
        # n_tokens None: no genome-window token bags in the minibatches (only the ATAC transformer reads them)
        self.token = None if n_tokens is None else token_of_peaks(self.n_peaks, n_tokens)
        self.n_tokens = None if n_tokens is None else int(self.token.max()) + 1
        self.rna_library = np.asarray(self.rna.sum(1)).ravel().astype(np.float32)
        self.atac_library = np.asarray(self.atac.sum(1)).ravel().astype(np.float32)
        if idf is None:
            cells_with_peak = np.bincount(self.atac.indices, minlength=self.n_peaks)
            idf = np.log1p(self.n_cells / (1.0 + cells_with_peak))
        self.idf = np.asarray(idf, dtype=np.float32)
        self.batch_codes = None
        if batch_codes is not None:
            codes = np.asarray(batch_codes, dtype=np.int64)
            if codes.shape != (self.n_cells,) or (codes < 0).any():
                raise InputError(path, f"batch codes: {codes.shape[0] if codes.ndim else 0} non-negative codes "
                                       f"needed, one per cell ({self.n_cells} cells)")
            self.batch_codes = codes

    def batch(self, idx, device, dense_atac: bool = False) -> dict:
        """Tensors of cells `idx`: dense RNA counts; sparse ATAC: TF-IDF values for the encoders, raw counts
        with their row (cell in the batch) and column for the ZIP likelihood; the dense ATAC counts only when
        asked for (``dense_atac``)."""
        idx = np.asarray(idx)
        rna = self.rna[idx]
        atac = self.atac[idx]
        atac.sort_indices()
        rna_lib = np.maximum(self.rna_library[idx], 1.0)
        atac_lib = np.maximum(self.atac_library[idx], 1.0)
        rows = np.repeat(np.arange(len(idx)), np.diff(atac.indptr))
        cols = atac.indices.astype(np.int64)
        values = atac_tfidf(atac.data, atac_lib[rows], self.idf[cols]).astype(np.float32)
        out = {
            "rna": to_device(rna.toarray(), device),
            "rna_library": to_device(rna_lib, device),
            "atac_library": to_device(atac_lib, device),
            "atac_index": to_device(cols, device),
            "atac_row": to_device(rows.astype(np.int64), device),
            "atac_count": to_device(atac.data.astype(np.float32), device),
            "atac_value": to_device(values, device),
            "atac_cell_offsets": to_device(atac.indptr[:-1].astype(np.int64), device),
        }
        if self.token is not None:
            # bags of the token embedding: one per (cell, token); nonzeros are sorted by (row, genome position)
            bag_key = rows * self.n_tokens + self.token[cols]
            token_offsets = np.searchsorted(bag_key, np.arange(len(idx) * self.n_tokens)).astype(np.int64)
            out["atac_token_offsets"] = to_device(token_offsets, device)
        if self.batch_codes is not None:
            out["batch"] = to_device(self.batch_codes[idx], device)
        if dense_atac:
            out["atac"] = to_device(atac.toarray(), device)
        return out


def iterate_batches(indices, batch_size, rng=None):
    """Minibatches of `indices` (shuffled with the numpy Generator `rng` when given)."""
    indices = np.asarray(indices)
    if rng is not None:
        indices = indices[rng.permutation(len(indices))]
    n_batches = max(1, int(np.ceil(len(indices) / batch_size)))
    # avoid a last batch of one cell (LayerNorm/statistics are fine, but the gradient is noisy)
    for chunk in np.array_split(indices, n_batches):
        if len(chunk):
            yield chunk
