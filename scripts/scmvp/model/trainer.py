"""Training loop: KL warm-up, GMM initialisation after a warm-up, cycle loss, validation, early stopping,
atomic per-epoch checkpoints (resumable after SIGKILL), history of every loss term."""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import sys
import time

import numpy as np
import torch

log = logging.getLogger("scmvp.model")

TERMS = ("rna_nll", "atac_nll", "kl", "align", "cycle", "total")
CHECKPOINT = "last.pt"
# config keys that do not change the numbers (so a resume with a different value is still a resume)
NOT_AFFECTING_RESULTS = {"device", "threads", "impute_chunk_size", "impute_reference_batch"}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device is 'cuda' but torch sees no CUDA device")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device):
    """Autocast dtype of the encoders and hidden layers (None: float32). auto = bf16 on a CUDA device that
    supports it, else float32; the posterior heads, decoder outputs and likelihoods are float32 always."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if name == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise RuntimeError("model.precision is 'bf16' but this CUDA device does not support bf16")
        return torch.bfloat16
    return None


def seed_everything(seed: int, device: torch.device):
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def fingerprint(cfg: dict, data) -> str:
    key = {k: v for k, v in sorted(cfg.items()) if k not in NOT_AFFECTING_RESULTS}
    key["data"] = [int(data.n_cells), int(data.n_genes), int(data.n_peaks), float(data.rna_library.sum()),
                   float(data.atac_library.sum())]
    if getattr(data, "batch_codes", None) is not None:        # no key without batches: fingerprints unchanged
        key["batches"] = hashlib.sha256(np.ascontiguousarray(data.batch_codes).tobytes()).hexdigest()[:16]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_cells(n_cells: int, fraction: float, seed: int):
    rng = np.random.default_rng(seed + 7919)
    perm = rng.permutation(n_cells)
    n_val = int(round(n_cells * fraction)) if fraction > 0 else 0
    n_val = min(n_val, n_cells - 2)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def kl_weight(epoch: int, step: int, n_steps: int, warmup_epochs: int, final: float = 1.0) -> float:
    """beta: linear from 0 to `final` over `warmup_epochs` epochs (per step), then `final`."""
    if warmup_epochs <= 0:
        return float(final)
    return float(final * min(1.0, (epoch + step / n_steps) / warmup_epochs))


def atac_weight_at(cfg: dict, epoch: int) -> float:
    """The ATAC likelihood's weight in `epoch` (0-based): `warmup_atac_weight` before `warmup_epochs` (when set),
    `atac_weight` from then on."""
    if cfg.get("warmup_atac_weight") is not None and epoch < cfg["warmup_epochs"]:
        return float(cfg["warmup_atac_weight"])
    return float(cfg["atac_weight"])


def gives_up_warmup_weight(cfg: dict, epoch: int, nll: float, lowest) -> bool:
    """`warmup_atac_weight_max_rise`: in a warm-up epoch (0-based `epoch`) at `warmup_atac_weight`, the held-out
    ATAC NLL `nll` is more than that (relative) above the `lowest` of the warm-up's earlier epochs."""
    limit = cfg.get("warmup_atac_weight_max_rise")
    if limit is None or cfg.get("warmup_atac_weight") is None or epoch >= cfg["warmup_epochs"] or lowest is None:
        return False
    return nll > lowest + abs(lowest) * limit


def mixture_fit_epoch(cfg: dict) -> int:
    """Epoch (0-based) before which the GMM prior is fitted: `warmup_epochs`, and where the warm-up ran at its own
    ATAC weight (`warmup_atac_weight`, not `atac_weight`), `warmup_atac_weight_settle_epochs` later -- epochs at
    `atac_weight` still under N(0, I), in which the types the full-weight warm-up pushed together by their RNA
    come apart again before the mixture is fitted on the latent."""
    settle = cfg.get("warmup_atac_weight_settle_epochs") or 0
    if cfg.get("warmup_atac_weight") in (None, cfg.get("atac_weight")) or not settle:   # no change of weight
        return cfg["warmup_epochs"]
    # never so late that the run ends without its mixture (a short run: the settle epochs give way)
    return min(cfg["warmup_epochs"] + settle, max(cfg["warmup_epochs"], cfg["n_epochs"] - 1))


def first_scored_epoch(cfg: dict) -> int:
    """First epoch (0-based) that early stopping scores: every schedule is on for the whole epoch (beta at
    kl_weight from its first step, the GMM attached, the cycle term on). An earlier epoch has a lower validation
    total (less KL, no cycle term) that stays "best", and its state may predate the GMM (so it cannot be
    restored)."""
    return max(cfg["kl_warmup_epochs"], mixture_fit_epoch(cfg) if cfg["prior"] == "gmm" else 0,
               cfg["cycle_start_epoch"] if cfg["cycle"] else 0)


def improves(loss: float, reference, min_delta: float) -> bool:
    """`loss` is lower than `reference` by more than the relative `min_delta` (reference None: nothing to beat)."""
    if reference is None or not math.isfinite(reference):
        return True
    return loss < reference - min_delta * abs(reference)


AUTO_BATCH_MIN, AUTO_BATCH_MAX, AUTO_BATCH_STEPS = 32, 512, 128


def training_batch_size(setting, n_train_cells: int) -> int:
    """`batch_size` of the config; `auto`: 32 cells up to AUTO_BATCH_STEPS x 32 training cells, beyond that as
    many as keep AUTO_BATCH_STEPS steps per epoch (at most AUTO_BATCH_MAX)."""
    if setting != "auto":
        return int(setting)
    return int(min(AUTO_BATCH_MAX, max(AUTO_BATCH_MIN, math.ceil(n_train_cells / AUTO_BATCH_STEPS))))


def learning_rate(cfg: dict, epoch: int, step: int, n_steps: int) -> float:
    """Cosine decay (per step) from `lr` to `lr * final_lr_fraction` at the end of `n_epochs`: the late
    epochs fine-tune instead of jumping between solutions (a function of the position, so resumable)."""
    progress = min(1.0, (epoch + step / n_steps) / cfg["n_epochs"])
    floor = cfg["final_lr_fraction"]
    return float(cfg["lr"] * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))))


def atomic_torch_save(obj, path):
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def build_optimizer(module, cfg):
    groups = [{"params": module.network_parameters(), "name": "network"}]
    gmm = module.gmm_parameters()
    if gmm:
        groups.append({"params": gmm, "name": "gmm"})
    # foreach (the multi-tensor path; PyTorch's default only on CUDA): the same arithmetic as the per-tensor loop,
    # bitwise, at ~2/3 of its time on CPU. Not fused: fused AdamW took a CPU step at 100k peaks from 626 to 504 ms,
    # but its different rounding moved the example-scale test (3,000 cells, seed 0) from ARI >= 0.9 to 0.81.
    return torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"], foreach=True)


class Trainer:
    def __init__(self, model, checkpoint_dir=None, progress=True, on_epoch_end=None):
        self.model = model                       # the SCMVP user object (module, data, config, device)
        self.cfg = model.config
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.on_epoch_end = on_epoch_end     # callback(epoch, model) after each checkpoint (benchmarks)
        self.optimizer = None
        self.final_epoch = None                  # after train(): the epoch whose state the module ends with
        self.given_up_epoch = None               # after train(): the epoch the warm-up weight was given up
        self._paused = None                      # train(until_epoch=...) stopped before n_epochs: what goes on
        # for run_epoch outside train() (tests, benchmarks); train() recomputes it from its training cells
        self.batch_size = training_batch_size(self.cfg["batch_size"], model.data.n_cells)

    # -- the GMM after the warm-up ------------------------------------------------------------------------
    def fit_gmm(self, cells):
        from sklearn.mixture import GaussianMixture

        latent, posterior_var = self.model.get_latent(cells, return_variance=True)
        k = self.cfg["n_components"]
        if k == "auto":
            k = leiden_cluster_count(latent, self.cfg["seed"])
        k = int(max(1, min(k, len(cells) // 2)))
        gmm = GaussianMixture(k, covariance_type="diag", random_state=self.cfg["seed"], reg_covar=1e-4,
                              max_iter=200).fit(latent)
        log.info("GMM prior: %d components fitted on the warm-up latent of %d cells", k, len(cells))
        # the GMM is fitted on posterior means: add the mean posterior variance so that the prior's spread
        # matches the aggregate posterior (else the KL jumps and squeezes the latent when the prior switches)
        return k, gmm.weights_, gmm.means_, gmm.covariances_ + posterior_var.mean(0, keepdims=True)

    @torch.no_grad()
    def em_update(self, cells):
        """One EM step of the GMM prior on the aggregate posterior of the training cells.

        E: responsibilities p(c | mu_x) of the latent means. M: pi, mu_c from them; var_c = the weighted
        spread of the means + the weighted mean posterior variance (so that the prior matches the aggregate
        posterior, not only its means). A component that lost (almost) all its cells is re-seeded by
        splitting the heaviest one along its widest dimension: gradient descent alone lets components die
        one by one (their p(c|z) vanishes, so nothing pulls them back) and the prior collapses to 1-3.
        """
        prior = self.model.module.prior
        latent, posterior_var = self.model.get_latent(cells, return_variance=True)
        z = torch.as_tensor(latent, dtype=torch.float64)
        var_q = torch.as_tensor(posterior_var, dtype=torch.float64)
        log_pi, mu_c, logvar_c = (t.detach().double().cpu() for t in prior.params())
        from . import distributions as D

        gamma = D.gmm_responsibilities(z, log_pi, mu_c, logvar_c)
        n_k = gamma.sum(0)
        min_cells = max(2.0, self.cfg["gmm_min_fraction"] * len(cells))
        weights = n_k / n_k.sum()
        means = (gamma.T @ z) / n_k.clamp_min(1e-8).unsqueeze(1)
        spread = (gamma.T @ z.pow(2)) / n_k.clamp_min(1e-8).unsqueeze(1) - means.pow(2)
        variances = spread.clamp_min(0) + (gamma.T @ var_q) / n_k.clamp_min(1e-8).unsqueeze(1)
        variances = variances.clamp_min(1e-4)
        dead = [int(c) for c in torch.nonzero(n_k < min_cells).flatten()]
        for c in dead:
            big = int(torch.argmax(weights))
            dim = int(torch.argmax(variances[big]))
            shift = torch.zeros_like(means[big])
            shift[dim] = 0.5 * float(torch.sqrt(variances[big, dim]))
            means[c], variances[c] = means[big] + shift, variances[big].clone()
            means[big] = means[big] - shift
            weights[c] = weights[big] = weights[big] / 2
        weights, means, variances = weights.numpy(), means.numpy(), variances.numpy()
        moves = {"reseeded_components": len(dead)}
        if self.cfg["gmm_split_merge"]:
            from .gmm_moves import propose_split_merge

            move = propose_split_merge(latent, gamma.argmax(1).numpy(), weights, means, variances, int(min_cells),
                                       self.cfg["seed"])
            moves["split_merge"] = int(move is not None)
            if move is not None:
                log.info("GMM: component %d split (BIC gain %.0f), components %d and %d merged (cost %.0f)",
                         move.split, move.gain, move.kept, move.freed, move.cost)
                self._move_guidance(move, weights)
                weights, means, variances = move.weights, move.means, move.variances
        prior.set(weights, means, variances)
        self.reset_optimizer_state(prior.parameters())
        return moves

    @torch.no_grad()
    def _move_guidance(self, move, old_weights):
        """The decoders' cluster embeddings follow a split-merge move: the merged slot gets the weighted mean of
        the pair's, the freed slot a copy of the split component's."""
        module = self.model.module
        w_kept, w_freed = float(old_weights[move.kept]), float(old_weights[move.freed])
        for decoder in (module.rna_decoder, module.atac_decoder):
            if decoder.guidance is None:
                continue
            emb = decoder.guidance.embedding
            emb[move.kept] = (w_kept * emb[move.kept] + w_freed * emb[move.freed]) / max(w_kept + w_freed, 1e-12)
            emb[move.freed] = emb[move.split]
            self.reset_optimizer_state([emb])

    def reset_optimizer_state(self, params):
        """Forget AdamW's moments of `params` (after EM overwrote them: the old moments belong to other values)."""
        if self.optimizer is not None:
            for p in params:
                self.optimizer.state.pop(p, None)

    # -- one pass -----------------------------------------------------------------------------------------
    def run_epoch(self, cells, epoch, train, rng=None):
        module, data, cfg = self.model.module, self.model.data, self.cfg
        device = self.model.device
        module.train(train)
        # loss sums and component counts stay on the device until the epoch ends (no host sync per step)
        sums = torch.zeros(len(TERMS), dtype=torch.float64, device=device)
        counts = torch.zeros(module.n_components or 1, dtype=torch.int64, device=device)
        n_total = 0
        batch_size = self.batch_size
        batches = list(_batches(cells, batch_size, rng))
        if train:
            # a small dataset gives few optimizer steps per epoch: draw further shuffled passes so that an
            # epoch (and so the warm-up schedules counted in epochs) always has at least this many steps
            while len(batches) < cfg["min_steps_per_epoch"]:
                batches += list(_batches(cells, batch_size, rng))
            batches = batches[:max(cfg["min_steps_per_epoch"], int(np.ceil(len(cells) / batch_size)))]
        use_cycle = module.use_cycle and epoch >= cfg["cycle_start_epoch"]
        idf = torch.from_numpy(data.idf).to(device)
        generator = None
        if not train:
            generator = torch.Generator(device=device).manual_seed(cfg["seed"] * 100003 + epoch)
        final_beta = beta = cfg["kl_weight"]
        for step, idx in enumerate(batches):
            # validation scores the full objective (the final beta), comparable across epochs
            beta = kl_weight(epoch, step, len(batches), cfg["kl_warmup_epochs"], final_beta) if train else final_beta
            if train:
                for group in self.optimizer.param_groups:
                    group["lr"] = learning_rate(cfg, epoch, step, len(batches))
            batch = data.batch(idx, device)
            with torch.set_grad_enabled(train), self.model.autocast():
                out = module.loss(batch, beta=beta, use_cycle=use_cycle, idf=idf, generator=generator,
                                  split_atac=train)
            if train:
                self.optimizer.zero_grad(set_to_none=True)
                out["total"].backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
                self.optimizer.step()
            sums += torch.stack([out[t].detach().double() for t in TERMS]) * len(idx)
            if out["assignments"] is not None:
                counts += torch.bincount(out["assignments"], minlength=len(counts))
            n_total += len(idx)
        means = dict(zip(TERMS, (sums / max(n_total, 1)).tolist()))
        counts = counts.cpu().numpy()
        active = int((counts >= max(1, 0.01 * n_total)).sum()) if module.prior is not None else 0
        return means, beta, active

    # -- the whole run ------------------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        """train(until_epoch=...) ended before n_epochs (and before early stopping): train() goes on from there."""
        return self._paused is not None

    def train(self, until_epoch=None):
        """Train to `n_epochs` (or until early stopping). With `until_epoch`, stop after that epoch instead, the
        module in its state of that epoch (no best state restored); a later `train()` goes on exactly where it
        stopped (the same optimizer, schedules and random streams, torch's global generator included: the run
        equals one uninterrupted run, even with other models trained in between)."""
        model, cfg = self.model, self.cfg
        module = model.module
        train_cells, val_cells = split_cells(model.data.n_cells, cfg["validation_fraction"], cfg["seed"])
        self.batch_size = training_batch_size(cfg["batch_size"], len(train_cells))
        if self._paused is None:
            log.info("training on %d cells (%d held out for validation), %d cells per minibatch",
                     len(train_cells), len(val_cells), self.batch_size)
            self.optimizer = build_optimizer(module, cfg)
            state = self._initial_state()
            state = self._resume(state)
            rng = np.random.default_rng(cfg["seed"])
            if state.get("numpy_rng") is not None:
                rng.bit_generator.state = state["numpy_rng"]
        else:
            state, rng, torch_rngs = self._paused
            self._paused = None
            _set_torch_rng_states(*torch_rngs)
        end = cfg["n_epochs"] if until_epoch is None else min(int(until_epoch), cfg["n_epochs"])
        first_scored = first_scored_epoch(cfg)
        patience = cfg["early_stopping_patience"]
        min_delta = cfg["early_stopping_min_delta"]
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg["n_epochs"], initial=state["epoch"], file=sys.stderr, disable=not self.progress,
                   desc="scMVP", unit="epoch", dynamic_ncols=True)
        while state["epoch"] < end and not state["stopped"]:
            epoch = state["epoch"]
            start = time.perf_counter()
            if cfg["prior"] == "gmm" and module.prior is None and epoch >= mixture_fit_epoch(cfg):
                k, weights, means, variances = self.fit_gmm(train_cells)
                new_params = module.attach_gmm(k)
                module.prior.set(weights, means, variances)
                self.optimizer.add_param_group({"params": new_params, "name": "gmm"})
            module.atac_weight = atac_weight_at(cfg, epoch)
            train_terms, beta, active = self.run_epoch(train_cells, epoch, True, rng)
            row = {"epoch": epoch + 1, "beta": beta, "n_active_components": active, "batch_size": self.batch_size}
            if module.prior is not None and cfg["gmm_em"]:
                row.update(self.em_update(train_cells))
                module.train()
            row.update({f"train_{t}": v for t, v in train_terms.items()})
            if len(val_cells):
                with torch.no_grad():
                    val_terms, _, _ = self.run_epoch(val_cells, epoch, False)
                row.update({f"validation_{t}": v for t, v in val_terms.items()})
                # every earlier epoch is a warm-up epoch while this one is
                lowest = min((r["validation_atac_nll"] for r in state["history"]), default=None)
                if gives_up_warmup_weight(cfg, epoch, val_terms["atac_nll"], lowest):
                    state["stopped"], state["given_up_epoch"] = True, epoch + 1
                    log.info("warm-up ATAC weight %g given up after epoch %d: held-out ATAC NLL %.2f, more than "
                             "%g above its lowest (%.2f)", cfg["warmup_atac_weight"], epoch + 1,
                             val_terms["atac_nll"], cfg["warmup_atac_weight_max_rise"], lowest)
                if patience > 0 and epoch >= first_scored:
                    state["last_loss"] = val_terms["total"]
                    if improves(val_terms["total"], state["best_loss"], min_delta):
                        state["best_loss"], state["bad_epochs"] = val_terms["total"], 0
                        state["best_state"] = copy.deepcopy(module.state_dict())
                        state["best_epoch"] = epoch + 1
                    else:
                        state["bad_epochs"] += 1
                        if state["bad_epochs"] >= patience:
                            state["stopped"] = True
                            log.info("early stopping after epoch %d (best %d)", epoch + 1, state["best_epoch"])
            row["seconds"] = time.perf_counter() - start
            state["history"].append(row)
            state["epoch"] = epoch + 1
            self._checkpoint(state, rng)
            if self.on_epoch_end is not None:
                self.on_epoch_end(state["epoch"], self.model)
                module.train()
            log.info("epoch %d/%d: train loss %.2f (rna %.2f, atac %.2f, kl %.2f, cycle %.2f), validation %.2f, "
                     "beta %.2f, %d active components, %.1f s", epoch + 1, cfg["n_epochs"], train_terms["total"],
                     train_terms["rna_nll"], train_terms["atac_nll"], train_terms["kl"], train_terms["cycle"],
                     row.get("validation_total", float("nan")), beta, active, row["seconds"])
            bar.update(1)
            bar.set_postfix(loss=f"{train_terms['total']:.1f}",
                            val=f"{row.get('validation_total', float('nan')):.1f}", k=active)
        bar.close()
        self.given_up_epoch = state["given_up_epoch"]
        if state["epoch"] < cfg["n_epochs"] and not state["stopped"]:
            self._paused = (state, rng, _torch_rng_states())
            self.final_epoch = state["epoch"]
            module.eval()
            return state["history"]
        if state.get("best_state") is not None and improves(state["best_loss"], state.get("last_loss"), min_delta):
            log.info("restoring epoch %d (validation %.2f; last epoch %.2f)", state["best_epoch"],
                     state["best_loss"], state["last_loss"])
            module.load_state_dict(state["best_state"])
            self.final_epoch = state["best_epoch"]
        else:
            self.final_epoch = state["epoch"]
        module.eval()
        return state["history"]

    def _initial_state(self):
        return {"epoch": 0, "history": [], "best_loss": float("inf"), "best_state": None, "best_epoch": None,
                "last_loss": None, "bad_epochs": 0, "stopped": False, "numpy_rng": None, "given_up_epoch": None}

    def _checkpoint_path(self):
        return os.path.join(self.checkpoint_dir, CHECKPOINT) if self.checkpoint_dir else None

    def _checkpoint(self, state, rng):
        path = self._checkpoint_path()
        if path is None:
            return
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        module = self.model.module
        payload = dict(state)
        torch_rng, cuda_rng = _torch_rng_states()
        payload.update({
            "fingerprint": fingerprint(self.cfg, self.model.data),
            "module": module.state_dict(),
            "n_components": module.n_components,
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch_rng,
            "cuda_rng": cuda_rng,
            "numpy_rng": rng.bit_generator.state,
        })
        atomic_torch_save(payload, path)

    def _resume(self, state):
        path = self._checkpoint_path()
        if path is None or not os.path.exists(path):
            return state
        try:
            # on the CPU: torch.set_rng_state takes CPU byte tensors only; load_state_dict moves the weights
            # (and optimizer.load_state_dict the optimizer state) to the parameters' device
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - an unreadable checkpoint: start again
            log.warning("ignoring unreadable checkpoint %s (%s)", path, err)
            return state
        if ckpt.get("fingerprint") != fingerprint(self.cfg, self.model.data):
            log.warning("checkpoint %s was written with another config or data: starting from scratch", path)
            return state
        module = self.model.module
        if ckpt["n_components"] and module.prior is None:
            module.attach_gmm(ckpt["n_components"])
            self.optimizer = build_optimizer(module, self.cfg)
        module.load_state_dict(ckpt["module"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        _set_torch_rng_states(ckpt["torch_rng"], ckpt.get("cuda_rng"))
        log.info("resuming from %s after epoch %d", path, ckpt["epoch"])
        return {k: ckpt.get(k, default) for k, default in self._initial_state().items()}


def _torch_rng_states():
    """torch's global generators: (CPU state, every CUDA device's state or None without CUDA)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def _set_torch_rng_states(cpu_state, cuda_states=None):
    torch.set_rng_state(cpu_state)
    if cuda_states is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)


def _batches(cells, batch_size, rng):
    from .data import iterate_batches

    return iterate_batches(cells, batch_size, rng)


def leiden_cluster_count(latent, seed, n_neighbors=15, resolution=1.0):
    """Number of Leiden clusters of a kNN graph of `latent` (the `n_components: auto` rule)."""
    import igraph as ig
    import leidenalg
    from sklearn.neighbors import NearestNeighbors

    n = latent.shape[0]
    k = min(n_neighbors, n - 1)
    _, nbrs = NearestNeighbors(n_neighbors=k + 1).fit(latent).kneighbors(latent)
    edges = {(min(i, j), max(i, j)) for i in range(n) for j in nbrs[i, 1:] if i != j}
    graph = ig.Graph(n=n, edges=sorted(edges))
    part = leidenalg.find_partition(graph, leidenalg.RBConfigurationVertexPartition,
                                    resolution_parameter=resolution, seed=int(seed))
    return max(1, len(set(part.membership)))
