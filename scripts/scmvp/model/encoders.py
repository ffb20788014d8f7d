"""The scMVP encoders: the RNA mask attention and the ATAC transformer over genomic-window tokens (the paper's), their
MLP alternatives, and the Gaussian posterior head; with the small layers they share."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import RNA_SCALE

LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0


def mlp(n_in, n_hidden, n_out, dropout=0.1):
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.LayerNorm(n_hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(n_hidden, n_out))


def fp32(x):
    """Autocast off on `x`'s device: posterior heads, decoder outputs and likelihoods stay float32."""
    return torch.autocast(x.device.type, enabled=False)


def log_normalise(counts, library):
    return torch.log1p(counts / library.unsqueeze(-1) * RNA_SCALE)


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention: softmax(q k^T / sqrt(d_head)) v."""

    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"n_hidden ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, context, key_mask=None):
        """query (B, Lq, d), context (B, Lk, d), key_mask (B, Lk) True where a key may be attended."""
        b, lq, d = query.shape
        lk = context.shape[1]
        q = self.q(query).view(b, lq, self.n_heads, self.d_head).transpose(1, 2)
        k, v = self.kv(context).view(b, lk, 2, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)           # (B, h, Lq, Lk)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        attn = self.dropout(torch.softmax(scores, dim=-1))
        attn = torch.nan_to_num(attn)                                       # a row with no key at all -> 0
        return self.out((attn @ v).transpose(1, 2).reshape(b, lq, d))


class TransformerBlock(nn.Module):
    """Pre-LN block: x + MHA(LN(x)); x + FFN(LN(x))."""

    def __init__(self, d_model, n_heads, dropout=0.1):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(2 * d_model, d_model))

    def forward(self, x, key_mask=None):
        h = self.ln1(x)
        x = x + self.attn(h, h, key_mask)
        return x + self.ff(self.ln2(x))


class PeakEmbedding(nn.Module):
    """Linear map of peaks, computed from sparse nonzeros (embedding_bag) or from a dense matrix.

    With `token_offsets`, each (cell, token) bag sums its peaks: the genomic-window token embeddings.
    """

    def __init__(self, n_peaks, d, std=0.02):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_peaks, d) * std)

    def sparse(self, index, value, offsets):
        return F.embedding_bag(index, self.weight, offsets, mode="sum", per_sample_weights=value,
                               include_last_offset=False)

    def dense(self, values):
        return values @ self.weight


class ATACTransformerEncoder(nn.Module):
    """Genomic-window tokens (+ positional embedding) -> pre-LN transformer -> mean pool."""

    def __init__(self, n_peaks, n_tokens, d_model, n_heads, n_layers, n_out, dropout=0.1):
        super().__init__()
        self.n_tokens = n_tokens
        self.embed = PeakEmbedding(n_peaks, d_model)
        self.position = nn.Parameter(torch.randn(n_tokens, d_model) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(d_model, n_heads, dropout) for _ in range(n_layers)])
        self.out = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, n_out), nn.LayerNorm(n_out), nn.GELU())

    def forward(self, batch):
        n_cells = batch["atac_library"].shape[0]
        tokens = self.embed.sparse(batch["atac_index"], batch["atac_value"], batch["atac_token_offsets"])
        x = tokens.view(n_cells, self.n_tokens, -1) + self.position
        for block in self.blocks:
            x = block(x)
        return self.out(x.mean(dim=1))


class ATACMLPEncoder(nn.Module):
    """Sparse linear map of all peaks -> MLP (used for the ablation and as the ATAC-only cycle encoder)."""

    def __init__(self, n_peaks, n_hidden, n_out, dropout=0.1):
        super().__init__()
        self.embed = PeakEmbedding(n_peaks, n_hidden)
        self.net = nn.Sequential(nn.LayerNorm(n_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(n_hidden, n_out))

    def forward(self, batch):
        return self.net(self.embed.sparse(batch["atac_index"], batch["atac_value"], batch["atac_cell_offsets"]))

    def forward_dense(self, values):
        return self.net(self.embed.dense(values))


class RNAMaskAttentionEncoder(nn.Module):
    """Mask attention over each cell's top expressed genes, pooled by learned per-head queries.

    Token of gene g with log-normalised expression v: key = K[g] + v * k_v, value = V[g] + v * W[g] (a gene
    embedding plus a value embedding; linear in v, so keys/values are gathered, not recomputed by a
    projection per token). Genes outside the cell's top `top_genes` expressed genes, and unexpressed
    genes, are masked out. Scores are q.k / sqrt(d_head), softmax over the attended genes per head.
    """

    def __init__(self, n_genes, d_model, n_heads, top_genes, n_out, dropout=0.1):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"attention_dim ({d_model}) must be divisible by n_heads ({n_heads})")
        self.top_genes = min(top_genes, n_genes)
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.key = nn.Embedding(n_genes, d_model)
        self.value = nn.Embedding(n_genes, d_model)
        self.value_slope = nn.Embedding(n_genes, d_model)
        for emb in (self.key, self.value, self.value_slope):
            nn.init.normal_(emb.weight, std=d_model ** -0.5)
        self.key_slope = nn.Parameter(torch.randn(d_model) * d_model ** -0.5)
        self.query = nn.Parameter(torch.randn(n_heads, self.d_head) * self.d_head ** -0.5)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, n_out), nn.LayerNorm(n_out), nn.GELU())

    def forward(self, batch):
        expr = log_normalise(batch["rna"], batch["rna_library"])
        values, genes = torch.topk(expr, self.top_genes, dim=-1)             # (B, L)
        mask = values > 0                                                    # attend only to expressed genes
        b, n = genes.shape
        v = values.unsqueeze(-1)
        keys = (self.key(genes) + v * self.key_slope).view(b, n, self.n_heads, self.d_head)
        vals = (self.value(genes) + v * self.value_slope(genes)).view(b, n, self.n_heads, self.d_head)
        scores = torch.einsum("bnhd,hd->bhn", keys, self.query) / math.sqrt(self.d_head)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        attn = torch.nan_to_num(torch.softmax(scores, dim=-1))              # a cell with no expressed gene -> 0
        pooled = torch.einsum("bhn,bnhd->bhd", self.dropout(attn), vals).reshape(b, -1)
        return self.out(pooled)


class RNAMLPEncoder(nn.Module):
    def __init__(self, n_genes, n_hidden, n_out, dropout=0.1):
        super().__init__()
        self.net = mlp(n_genes, n_hidden, n_out, dropout)

    def forward(self, batch):
        return self.forward_dense(log_normalise(batch["rna"], batch["rna_library"]))

    def forward_dense(self, expr):
        return self.net(expr)


class GaussianHead(nn.Module):
    """hidden -> (mean, log-variance) of a diagonal Gaussian."""

    def __init__(self, n_in, n_latent):
        super().__init__()
        self.mean = nn.Linear(n_in, n_latent)
        self.logvar = nn.Linear(n_in, n_latent)

    def forward(self, h):
        with fp32(h):
            h = h.float()
            return self.mean(h), self.logvar(h).clamp(LOGVAR_MIN, LOGVAR_MAX)
