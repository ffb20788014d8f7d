"""Log-likelihoods and KL divergences of the scMVP objective (pure functions of tensors).

Every function returns one value per cell (summed over features / latent dimensions).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def log_nb(x, mean, theta, eps: float = 1e-8):
    """log NB(x | mean, inverse dispersion theta), elementwise.

    Parametrisation: Var = mean + mean^2 / theta (scipy: nbinom(n=theta, p=theta / (theta + mean))).
    """
    log_theta_mean = torch.log(theta + mean + eps)
    return (torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1.0)
            + theta * (torch.log(theta + eps) - log_theta_mean)
            + x * (torch.log(mean + eps) - log_theta_mean))


def log_zip(y, rate, dropout_logits, eps: float = 1e-8):
    """log ZIP(y | rate, pi), elementwise, with pi = sigmoid(dropout_logits) the zero-inflation probability.

    p(0) = pi + (1 - pi) exp(-rate); p(y > 0) = (1 - pi) Poisson(y | rate).
    """
    log_pi = -F.softplus(-dropout_logits)
    log_one_minus_pi = -F.softplus(dropout_logits)
    log_p0 = torch.logaddexp(log_pi, log_one_minus_pi - rate)
    log_pos = log_one_minus_pi + y * torch.log(rate + eps) - rate - torch.lgamma(y + 1.0)
    return torch.where(y > 0, log_pos, log_p0)


class _SparseZIPLogLikelihood(torch.autograd.Function):
    """Per-row sum of log ZIP(y | rate, pi = sigmoid(logits)) for sparse y, with the gradient written out.

    log p(0) = log(sigmoid(d) + sigmoid(-d) e^-r) = logaddexp(d, -r) - softplus(d) at every entry, then at each
    non-zero log p(y) - log p(0) = y log r - r - log y! - logaddexp(d, -r) (the log(1 - pi) = -softplus(d) of both
    cancels). Gradients: at a zero d/dr = sigmoid(r + d) - 1, d/dd = sigmoid(r + d) - sigmoid(d); at a non-zero
    d/dr = y / r - 1, d/dd = -sigmoid(d). Over every peak of a minibatch this is the largest elementwise cost of
    a training step; autograd of the composed form makes more full-size passes and two dense zero-filled buffers
    for the gathers (bench/RESULTS.md, "A faster training step").
    """

    @staticmethod
    def forward(ctx, rate, logits, rows, cols, counts, eps):
        rate_nz, logits_nz = rate[rows, cols], logits[rows, cols]
        log_p0 = torch.logaddexp(logits, rate.neg())
        log_p0 -= F.softplus(logits)
        correction = (counts * torch.log(rate_nz + eps) - rate_nz - torch.lgamma(counts + 1.0)
                      - torch.logaddexp(logits_nz, -rate_nz))
        ctx.save_for_backward(rate, logits, rows, cols, counts, rate_nz, logits_nz)
        ctx.eps = eps
        return log_p0.sum(-1).index_add_(0, rows, correction)

    @staticmethod
    def backward(ctx, grad):
        rate, logits, rows, cols, counts, rate_nz, logits_nz = ctx.saved_tensors
        grad_row = grad.unsqueeze(-1)
        s = torch.sigmoid(rate + logits)
        grad_logits = (s - torch.sigmoid(logits)).mul_(grad_row)
        grad_rate = s.sub_(1.0).mul_(grad_row)
        grad_nz = grad[rows]
        grad_rate[rows, cols] = grad_nz * (counts / (rate_nz + ctx.eps) - 1.0)
        grad_logits[rows, cols] = -grad_nz * torch.sigmoid(logits_nz)
        return grad_rate, grad_logits, None, None, None, None


def log_zip_sum_sparse(rate, dropout_logits, rows, cols, counts, eps: float = 1e-8):
    """Per-cell ``log_zip(y, rate, dropout_logits).sum(-1)`` with ``y`` given by its non-zeros (``rows``,
    ``cols``, ``counts``; at most one entry per (row, col)).

    Every entry gets log p(0) (cheap: no log of the rate, no lgamma); each non-zero is then corrected. On sparse
    ATAC (1-5 % non-zero) this avoids the Poisson term on the zeros and the dense target matrix; the value and
    the gradients are the dense sum's up to float rounding (see _SparseZIPLogLikelihood).
    """
    return _SparseZIPLogLikelihood.apply(rate, dropout_logits, rows, cols, counts.to(rate.dtype), eps)


def zip_mean(rate, dropout_logits):
    return torch.sigmoid(-dropout_logits) * rate


def zip_prob_nonzero(rate, dropout_logits):
    """P(y > 0) under the ZIP: the accessibility probability."""
    return torch.sigmoid(-dropout_logits) * (-torch.expm1(-rate))


def kl_normal_standard(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) per cell."""
    return 0.5 * torch.sum(torch.exp(logvar) + mu.pow(2) - 1.0 - logvar, dim=-1)


def kl_normal_normal(mu1, logvar1, mu2, logvar2):
    """KL(N(mu1, exp(logvar1)) || N(mu2, exp(logvar2))) per cell (diagonal Gaussians)."""
    return 0.5 * torch.sum(logvar2 - logvar1 + (torch.exp(logvar1) + (mu1 - mu2).pow(2)) * torch.exp(-logvar2)
                           - 1.0, dim=-1)


def product_of_experts(mu_a, logvar_a, mu_b, logvar_b):
    """Mean and log-variance of N(0, I) x N(mu_a, var_a) x N(mu_b, var_b), normalised (precisions add, means are
    precision-weighted; the N(0, I) expert keeps the product defined when both experts are vague, as in Wu &
    Goodman's multimodal VAE, NeurIPS 2018)."""
    prec_a, prec_b = torch.exp(-logvar_a.float()), torch.exp(-logvar_b.float())
    precision = 1.0 + prec_a + prec_b
    mu = (mu_a.float() * prec_a + mu_b.float() * prec_b) / precision
    return mu, -torch.log(precision)


def gmm_log_joint(z, log_pi, mu_c, logvar_c):
    """log pi_c + log N(z | mu_c, diag exp(logvar_c)), shape (cells, components)."""
    diff = z.unsqueeze(1) - mu_c.unsqueeze(0)                       # (n, K, d)
    log_density = -0.5 * torch.sum(LOG_2PI + logvar_c.unsqueeze(0) + diff.pow(2) * torch.exp(-logvar_c).unsqueeze(0),
                                   dim=-1)
    return log_pi.unsqueeze(0) + log_density


def gmm_responsibilities(z, log_pi, mu_c, logvar_c):
    """gamma = p(c | z) under the GMM prior, shape (cells, components)."""
    return torch.softmax(gmm_log_joint(z, log_pi, mu_c, logvar_c), dim=-1)


def kl_gmm(mu_q, logvar_q, gamma, log_pi, mu_c, logvar_c, eps: float = 1e-10):
    """The VaDE KL term KL(q(z|x) q(c|x) || p(z, c)) with q(c|x) = gamma, per cell.

        sum_c gamma_c * 0.5 * sum_d (log 2pi + logvar_c + (var_q + (mu_q - mu_c)^2) / var_c)
      - sum_c gamma_c * (log pi_c - log gamma_c)
      - 0.5 * sum_d (1 + log 2pi + logvar_q)

    `logvar_*` are log-variances (exponentiated here, never used as variances). The gamma log gamma term
    enters with a + sign (the negative entropy of q(c|x)): with gamma = p(c|z) the c-part equals
    -log p(z), so no assignment pattern (e.g. all cells in one component) is rewarded by itself.
    """
    var_q = torch.exp(logvar_q).unsqueeze(1)                        # (n, 1, d)
    diff2 = (mu_q.unsqueeze(1) - mu_c.unsqueeze(0)).pow(2)          # (n, K, d)
    expected_neg_log_normal = 0.5 * torch.sum(LOG_2PI + logvar_c.unsqueeze(0)
                                              + (var_q + diff2) * torch.exp(-logvar_c).unsqueeze(0), dim=-1)
    cross = torch.sum(gamma * expected_neg_log_normal, dim=-1)
    categorical = -torch.sum(gamma * (log_pi.unsqueeze(0) - torch.log(gamma + eps)), dim=-1)
    neg_entropy_q = -0.5 * torch.sum(1.0 + LOG_2PI + logvar_q, dim=-1)
    return cross + categorical + neg_entropy_q
