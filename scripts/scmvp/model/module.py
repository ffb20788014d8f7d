"""The scMVP network: GMM prior, cluster-guided decoders, the joint posterior and the loss (the encoders are in
:mod:`.encoders`)."""
from __future__ import annotations

import math

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import distributions as D
from .data import ATAC_SCALE, RNA_SCALE, atac_tfidf
from .encoders import (LOGVAR_MAX, LOGVAR_MIN, ATACMLPEncoder, ATACTransformerEncoder, GaussianHead,
                       RNAMaskAttentionEncoder, RNAMLPEncoder, fp32)

# NB inverse dispersion: log theta is clamped. In float32, log_nb loses ~3e-3 nats per entry at log theta 8,
# 0.02 at 10, 0.5 at 14 and gives positive log-probabilities at 20 (lgamma(x + theta) - lgamma(theta)
# cancels); theta = e^8 ~ 3000 is already near-Poisson (extra variance mean^2 / theta).
LOG_THETA_MIN, LOG_THETA_MAX = -10.0, 8.0


class ClusterGuidance(nn.Module):
    """Cluster embeddings weighted by p(c|z), gated by the decoder state and added to its hidden layer."""

    def __init__(self, n_components, n_hidden):
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(n_components, n_hidden) * 0.02)
        self.gate = nn.Linear(2 * n_hidden, n_hidden)

    def forward(self, h, gamma):
        guide = gamma @ self.embedding
        return h + torch.sigmoid(self.gate(torch.cat([h, guide], dim=-1))) * guide


class Decoder(nn.Module):
    """z (+ the batch one-hot, `n_batches` > 0; + `n_covariates` continuous covariates) -> hidden (+ cluster
    guidance) -> softmax scale (+ ZIP dropout)."""

    def __init__(self, n_latent, n_hidden, n_out, zero_inflated, n_batches=0, n_covariates=0):
        super().__init__()
        self.n_hidden = n_hidden
        self.hidden = nn.Sequential(nn.Linear(n_latent + n_batches + n_covariates, n_hidden), nn.LayerNorm(n_hidden),
                                    nn.GELU())
        self.guidance = None     # attached with the GMM prior (its size is the number of components)
        self.scale = nn.Linear(n_hidden, n_out)
        if zero_inflated:
            # dropout logits = per-feature logit + per-cell offset: a second hidden x features head would
            # double the cost of the largest layer for little gain on binarised, very sparse ATAC
            self.dropout_feature = nn.Parameter(torch.full((n_out,), -2.0))
            self.dropout_cell = nn.Linear(n_hidden, 1)
        self.zero_inflated = zero_inflated

    def forward(self, z, gamma=None, batch_onehot=None, covariates=None):
        inputs = [z] + [x.to(z.dtype) for x in (batch_onehot, covariates) if x is not None]
        h = self.hidden(inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1))
        if self.guidance is not None and gamma is not None:
            h = self.guidance(h, gamma)
        with fp32(h):
            h = h.float()
            scale = torch.softmax(self.scale(h), dim=-1)
            dropout_logits = (self.dropout_feature + self.dropout_cell(h)) if self.zero_inflated else None
        return scale, dropout_logits


class GMMPrior(nn.Module):
    """p(c) = softmax(logits); p(z|c) = N(mu_c, diag exp(logvar_c)), each variance at least `min_variance`.

    A floor on the variances keeps the prior from tightening itself: EM sets each component's variance to
    the spread of its cells, the KL then pulls them closer, the next EM step shrinks the variance further, and
    two close types sharing a component end up merged (see model.gmm_min_variance).
    """

    def __init__(self, n_components, n_latent, min_variance=0.0):
        super().__init__()
        self.min_logvar = max(LOGVAR_MIN, math.log(min_variance)) if min_variance > 0 else LOGVAR_MIN
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.mean = nn.Parameter(torch.zeros(n_components, n_latent))
        self.logvar = nn.Parameter(torch.zeros(n_components, n_latent))

    @torch.no_grad()
    def set(self, weights, means, variances):
        self.logits.copy_(torch.log(torch.as_tensor(weights, dtype=torch.float32).clamp_min(1e-6)))
        self.mean.copy_(torch.as_tensor(means, dtype=torch.float32))
        self.logvar.copy_(torch.log(torch.as_tensor(variances, dtype=torch.float32).clamp_min(1e-4))
                          .clamp_min(self.min_logvar))

    def params(self):
        return torch.log_softmax(self.logits, 0), self.mean, self.logvar.clamp(self.min_logvar, LOGVAR_MAX)

    def responsibilities(self, z):
        return D.gmm_responsibilities(z.float(), *self.params())


class SCMVPModule(nn.Module):
    """q(z | x, y), p(x | z) NB, p(y | z) ZIP, GMM prior, single-modality encoders for the cycle loss.

    Batches (`n_batches` > 0), as scVI conditions on them: the batch one-hot is concatenated to the input of both
    decoders, so p(x | z, s) and p(y | z, s) carry the library effect and z need not; with `encode_batch` also to
    the joint encoder's input (after the two modality encoders) and to the single-modality posterior heads,
    q(z | x, y, s). The GMM prior and the cluster guidance do not see the batch. `n_batches` = 0 builds exactly
    the network without batches (same parameters, same random initialisation).
    """

    def __init__(self, n_genes, n_peaks, n_latent=20, n_hidden=128, n_components=1, n_tokens=64, n_heads=4,
                 n_transformer_layers=2, top_genes_attended=256, attention_dim=64, prior="gmm", rna_encoder="attention",
                 atac_encoder="mlp", cycle=True, cluster_guidance=True, atac_weight=1.0, dropout=0.1,
                 n_batches=0, encode_batch=False, gmm_min_variance=0.5, cycle_moves_joint=True,
                 joint_posterior="poe", atac_depth_covariate=False, atac_count_split=0.0):
        super().__init__()
        self.atac_count_split = float(atac_count_split)
        self.atac_depth_covariate = bool(atac_depth_covariate)
        # mean and sd of the log ATAC library of the cells the model was built on (every cell, as the idf): the
        # covariate is the cell's standardised log depth
        self.register_buffer("atac_log_depth", torch.tensor([0.0, 1.0]))
        self.joint_posterior = joint_posterior
        self.cycle_moves_joint = bool(cycle_moves_joint)
        self.gmm_min_variance = float(gmm_min_variance)
        self.prior_kind, self.use_cycle, self.cluster_guidance = prior, cycle, cluster_guidance
        self.atac_weight = float(atac_weight)
        self.n_latent = n_latent
        self.n_components = None
        self.n_batches = int(n_batches)
        self.encode_batch = bool(encode_batch) and self.n_batches > 0
        n_enc_batches = self.n_batches if self.encode_batch else 0
        self.rna_encoder = (RNAMaskAttentionEncoder(n_genes, attention_dim, n_heads, top_genes_attended, n_hidden,
                                                    dropout)
                            if rna_encoder == "attention" else RNAMLPEncoder(n_genes, n_hidden, n_hidden, dropout))
        self.atac_encoder = (ATACTransformerEncoder(n_peaks, n_tokens, attention_dim, n_heads, n_transformer_layers,
                                                    n_hidden, dropout)
                             if atac_encoder == "attention" else ATACMLPEncoder(n_peaks, n_hidden, n_hidden, dropout))
        if joint_posterior == "poe":
            # one Gaussian expert per modality encoder; q(z | x, y) is their product with N(0, I)
            self.rna_expert = GaussianHead(n_hidden + n_enc_batches, n_latent)
            self.atac_expert = GaussianHead(n_hidden + n_enc_batches, n_latent)
        else:
            self.joint = nn.Sequential(nn.Linear(2 * n_hidden + n_enc_batches, n_hidden), nn.LayerNorm(n_hidden),
                                       nn.GELU(), nn.Dropout(dropout))
            self.posterior = GaussianHead(n_hidden, n_latent)
        self.rna_decoder = Decoder(n_latent, n_hidden, n_genes, zero_inflated=False, n_batches=self.n_batches)
        self.atac_decoder = Decoder(n_latent, n_hidden, n_peaks, zero_inflated=True, n_batches=self.n_batches,
                                    n_covariates=int(self.atac_depth_covariate))
        self.rna_log_theta = nn.Parameter(torch.zeros(n_genes))
        self.prior = None         # the GMM prior, attached after the warm-up (N(0, I) until then)
        if prior == "gmm" and n_components:
            self.attach_gmm(n_components)
        if cycle:
            self.rna_only = nn.Sequential(RNAMLPEncoder(n_genes, n_hidden, n_hidden, dropout), nn.GELU(),
                                          GaussianHead(n_hidden + n_enc_batches, n_latent))
            self.atac_only = nn.Sequential(ATACMLPEncoder(n_peaks, attention_dim, n_hidden, dropout), nn.GELU(),
                                           GaussianHead(n_hidden + n_enc_batches, n_latent))

    def attach_gmm(self, n_components):
        """Create the GMM prior (and the cluster guidance of the decoders); returns the new parameters."""
        device = self.rna_log_theta.device
        self.n_components = int(n_components)
        self.prior = GMMPrior(self.n_components, self.n_latent, self.gmm_min_variance).to(device)
        new = list(self.prior.parameters())
        if self.cluster_guidance:
            for decoder in (self.rna_decoder, self.atac_decoder):
                decoder.guidance = ClusterGuidance(self.n_components, decoder.n_hidden).to(device)
                new += list(decoder.guidance.parameters())
        return new

    def gmm_parameters(self):
        """Parameters that exist only once the GMM is attached (a separate optimiser group)."""
        params = list(self.prior.parameters()) if self.prior is not None else []
        for decoder in (self.rna_decoder, self.atac_decoder):
            if decoder.guidance is not None:
                params += list(decoder.guidance.parameters())
        return params

    def network_parameters(self):
        gmm = {id(p) for p in self.gmm_parameters()}
        return [p for p in self.parameters() if id(p) not in gmm]

    # -- batches ----------------------------------------------------------------------------------------
    def batch_onehot(self, batch_index):
        """One-hot (float32) of integer batch codes; None without batches."""
        if self.n_batches == 0:
            return None
        if batch_index is None:
            raise ValueError("the model was built with batches: every minibatch needs its cells' batch codes")
        return F.one_hot(batch_index.long(), self.n_batches).float()

    def _encoder_onehot(self, batch_index):
        return self.batch_onehot(batch_index) if self.encode_batch else None

    @staticmethod
    def _with(h, onehot):
        return h if onehot is None else torch.cat([h, onehot.to(h.dtype)], dim=-1)

    # -- encoders ---------------------------------------------------------------------------------------
    def require_experts(self):
        if self.joint_posterior != "poe":
            raise ValueError(f"the joint posterior is {self.joint_posterior!r}: only 'poe' has per-modality experts")

    def experts(self, batch):
        """The product of experts' two factors: ((mu, logvar) of the RNA expert, (mu, logvar) of the ATAC one)."""
        self.require_experts()
        onehot = self._encoder_onehot(batch.get("batch"))
        return (self.rna_expert(self._with(self.rna_encoder(batch), onehot)),
                self.atac_expert(self._with(self.atac_encoder(batch), onehot)))

    def encode(self, batch):
        if self.joint_posterior == "poe":
            rna, atac = self.experts(batch)
            return D.product_of_experts(*rna, *atac)
        onehot = self._encoder_onehot(batch.get("batch"))
        h = torch.cat([self.rna_encoder(batch), self.atac_encoder(batch)], dim=-1)
        mu, logvar = self.posterior(self.joint(self._with(h, onehot)))
        return mu.float(), logvar.float()

    def encode_rna_only(self, batch=None, expr=None, batch_index=None):
        enc, act, head = self.rna_only
        h = enc(batch) if expr is None else enc.forward_dense(expr)
        if batch_index is None and batch is not None:
            batch_index = batch.get("batch")
        mu, logvar = head(self._with(act(h), self._encoder_onehot(batch_index)))
        return mu.float(), logvar.float()

    def encode_atac_only(self, batch=None, values=None, batch_index=None):
        enc, act, head = self.atac_only
        h = enc(batch) if values is None else enc.forward_dense(values)
        if batch_index is None and batch is not None:
            batch_index = batch.get("batch")
        mu, logvar = head(self._with(act(h), self._encoder_onehot(batch_index)))
        return mu.float(), logvar.float()

    def rna_theta(self):
        """theta of the RNA NB, per gene (log theta clamped to [LOG_THETA_MIN, LOG_THETA_MAX])."""
        return torch.exp(self.rna_log_theta.clamp(LOG_THETA_MIN, LOG_THETA_MAX))

    def gamma(self, z):
        return self.prior.responsibilities(z) if self.prior is not None else None

    # -- ATAC depth ---------------------------------------------------------------------------------------
    def set_atac_depth_reference(self, atac_library):
        """Mean and sd of the log ATAC library over `atac_library` (every cell the model is built on)."""
        log_depth = np.log(np.maximum(np.asarray(atac_library, dtype=np.float64), 1.0))
        self.atac_log_depth.copy_(torch.tensor([log_depth.mean(), max(log_depth.std(), 1e-3)]))

    def atac_depth(self, atac_library, n_cells):
        """The ATAC decoder's covariate (cells x 1): standardised log library, 0 (the training mean) where
        `atac_library` is None; None when the model has no depth covariate."""
        if not self.atac_depth_covariate:
            return None
        mean, sd = self.atac_log_depth[0], self.atac_log_depth[1]
        if atac_library is None:
            return torch.zeros(n_cells, 1, device=mean.device)
        library = torch.as_tensor(atac_library, dtype=torch.float32, device=mean.device).expand(n_cells)
        return ((torch.log(library.clamp_min(1.0)) - mean) / sd).unsqueeze(-1)

    def decode(self, z, gamma=None, batch_index=None, atac_library=None):
        """Decoded RNA scale, ATAC scale and ZIP dropout logits of z in batches `batch_index` (integer codes;
        ignored without batches); with the depth covariate, at ATAC library sizes `atac_library` (per cell, or
        one number for every cell; None = the reference cells' mean log depth)."""
        onehot = self.batch_onehot(batch_index)
        rna_scale, _ = self.rna_decoder(z, gamma, onehot)
        atac_scale, atac_dropout = self.atac_decoder(z, gamma, onehot, self.atac_depth(atac_library, z.shape[0]))
        return rna_scale, atac_scale, atac_dropout

    # -- objective --------------------------------------------------------------------------------------
    def loss(self, batch, beta=1.0, use_cycle=False, idf=None, generator=None, split_atac=False):
        """Per-batch mean of each loss term (dict of scalars) and the total to minimise.

        With `split_atac` and `atac_count_split` > 0 (training steps) the encoders read a binomial thinning of each
        cell's ATAC counts and the ATAC likelihood scores the remaining counts (see split_atac_counts)."""
        target = None
        if split_atac and self.atac_count_split > 0:
            batch, target = split_atac_counts(batch, self.atac_count_split, idf, generator)
        mu, logvar = self.encode(batch)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        with fp32(z):
            if self.prior is not None:
                log_pi, mu_c, logvar_c = self.prior.params()
                gamma = D.gmm_responsibilities(z, log_pi, mu_c, logvar_c)
                kl = D.kl_gmm(mu, logvar, gamma, log_pi, mu_c, logvar_c)
                # the decoders' p(c|z) sees the prior detached: reconstruction moves z towards the component
                # that decodes it best but not the prior (the KL term trains it between the EM steps, which
                # overwrite it); detaching gamma itself cost the sci-CAR-like example its C3/C4 split
                guide = D.gmm_responsibilities(z, log_pi.detach(), mu_c.detach(), logvar_c.detach())
            else:
                gamma = guide = None
                kl = D.kl_normal_standard(mu, logvar)
        batch_index = batch.get("batch")
        if target is None:
            target = {k: batch[k] for k in ("atac_library", "atac_row", "atac_index", "atac_count")}
        rna_scale, atac_scale, atac_dropout = self.decode(z, guide, batch_index, target["atac_library"])
        with fp32(z):
            rna_mean = rna_scale * batch["rna_library"].unsqueeze(-1)
            atac_rate = atac_scale * target["atac_library"].unsqueeze(-1)
            rna_nll = -D.log_nb(batch["rna"], rna_mean, self.rna_theta()).sum(-1)
            atac_nll = -D.log_zip_sum_sparse(atac_rate, atac_dropout, target["atac_row"], target["atac_index"],
                                             target["atac_count"])
        zero = torch.zeros_like(kl)
        align, cycle = zero, zero
        if self.use_cycle:
            # single-modality encoders learn q(z|x) and q(z|y) from real inputs (joint posterior held fixed)
            mu_d, logvar_d = mu.detach(), logvar.detach()
            align = (D.kl_normal_normal(mu_d, logvar_d, *self.encode_rna_only(batch))
                     + D.kl_normal_normal(mu_d, logvar_d, *self.encode_atac_only(batch)))
            if use_cycle:
                expr_hat = torch.log1p(rna_scale * RNA_SCALE)
                atac_values = _decoded_atac_tfidf(atac_scale, atac_dropout, idf)
                # with cycle_moves_joint the KL also pulls q(z|x,y) towards what one modality's profile alone
                # can encode: a consensus term that merges types only one modality tells apart
                target = (mu, logvar) if self.cycle_moves_joint else (mu_d, logvar_d)
                cycle = (D.kl_normal_normal(*target, *self.encode_rna_only(expr=expr_hat, batch_index=batch_index))
                         + D.kl_normal_normal(*target, *self.encode_atac_only(values=atac_values,
                                                                               batch_index=batch_index)))
        total = rna_nll + self.atac_weight * atac_nll + beta * kl + align + cycle
        terms = {"rna_nll": rna_nll, "atac_nll": atac_nll, "kl": kl, "align": align, "cycle": cycle,
                 "total": total}
        out = {k: v.mean() for k, v in terms.items()}
        out["assignments"] = gamma.argmax(-1) if gamma is not None else None
        return out


def split_atac_counts(batch, fraction, idf, generator=None):
    """Split each cell's ATAC counts in two independent parts: y_in ~ Binomial(y, fraction), y_out = y - y_in.

    Returns (the batch with the encoders' TF-IDF values recomputed from y_in, the likelihood's target: y_out's
    non-zeros and per-cell totals). Given the cell's true rates the two parts' Poisson noise is independent, so a
    latent read from y_in can explain y_out only through the rates, not by recalling the cell's own sampling noise
    (molecular cross-validation / Noise2Self, Batson & Royer 2019). Entries where y_in is 0 keep their place in the
    sparse input with value 0, which adds nothing to the peak embedding's sums.
    """
    counts, rows, cols = batch["atac_count"], batch["atac_row"], batch["atac_index"]
    n_cells = batch["atac_library"].shape[0]
    y_in = torch.binomial(counts, torch.full_like(counts, fraction), generator=generator)
    y_out = counts - y_in
    library_in = torch.zeros(n_cells, dtype=counts.dtype, device=counts.device).index_add_(0, rows, y_in)
    library_out = torch.zeros_like(library_in).index_add_(0, rows, y_out)
    values = atac_tfidf(y_in, library_in.clamp_min(1.0)[rows], idf[cols])
    encoder_batch = dict(batch, atac_value=values.to(batch["atac_value"].dtype))
    kept = y_out > 0
    target = {"atac_library": library_out.clamp_min(1.0), "atac_row": rows[kept], "atac_index": cols[kept],
              "atac_count": y_out[kept]}
    return encoder_batch, target


class _DecodedTFIDF(torch.autograd.Function):
    """x = log1p(a * y / sum(y)) with y = sigmoid(-d) * s, per row, with the gradient written out.

    With u1 = 1 + a y / S and q = sigmoid(-d): dL/du = g / u1; dL/dy = (a dL/du - c) / S where
    c = sum_j dL/du_j (u1_j - 1) = sum g - sum dL/du; dL/ds = dL/dy q; dL/dd = -dL/dy s q (1 - q).
    Autograd of the composed form makes more passes over the cells x peaks matrix (bench/RESULTS.md, stop 15).
    """

    @staticmethod
    def forward(ctx, scale, logits, idf_scaled):
        q = torch.sigmoid(logits.neg())
        y = q * scale
        total = y.sum(-1, keepdim=True).clamp_min_(1e-12)
        u1 = y.mul_(idf_scaled).div_(total).add_(1.0)
        ctx.save_for_backward(scale, q, u1, total, idf_scaled)
        return torch.log(u1)

    @staticmethod
    def backward(ctx, grad):
        scale, q, u1, total, idf_scaled = ctx.saved_tensors
        grad_u = grad / u1
        c = grad.sum(-1, keepdim=True) - grad_u.sum(-1, keepdim=True)
        grad_y = grad_u.mul_(idf_scaled).sub_(c).div_(total)
        grad_scale = grad_y.mul_(q)
        grad_logits = (q - 1.0).mul_(scale).mul_(grad_scale)
        return grad_scale, grad_logits, None


def _decoded_atac_tfidf(atac_scale, atac_dropout, idf):
    """The encoders' TF-IDF-like input transform, log1p(y / sum(y) * idf * ATAC_SCALE), of the decoded ZIP means
    y = sigmoid(-dropout) * scale * library; the library cancels in y / sum(y), so it is left out."""
    return _DecodedTFIDF.apply(atac_scale, atac_dropout, idf * ATAC_SCALE)
