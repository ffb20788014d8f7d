"""The user-facing scMVP model: build from paired counts or a MuData, train, embed, cluster, impute."""
from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from ..batches import batch_labels, obs_column, obs_columns, resolve_batch_key  # noqa: F401
from ..config_check import ConfigError, config_problems
from ..errors import InputError
from .data import RNA_SCALE, PairedData
from .host_memory import reuse_large_buffers
from .module import SCMVPModule
from . import distributions as D
from .trainer import Trainer, resolve_device, resolve_precision, seed_everything
from .weight_choice import CANDIDATE_KEYS, train_choosing_atac_weight, train_giving_up_warmup_weight

log = logging.getLogger("scmvp.model")

SCHEMA = Path(__file__).resolve().parents[3] / "config" / "schemas" / "config.schema.yaml"


def _model_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())["properties"]["model"]


def model_defaults() -> dict:
    """Defaults of the config's `model` section, read from the JSON schema (the single source)."""
    props = _model_schema()["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


def check_model_overrides(overrides: dict) -> None:
    """Raise ConfigError (a ValueError) when `overrides` break the schema's `model` section -- an unknown or
    misspelled key, a wrong type, a value out of range -- with the workflow's one-line messages; so the
    in-process API (`SCMVP(..., config)`, the benchmarks' `--set`) refuses what the workflow's config check does."""
    problems = config_problems({"model": dict(overrides)}, {"type": "object", "properties": {"model": _model_schema()}})
    if problems:
        raise ConfigError("\n".join(problems))


# the watched warm-up (`weight_choice.train_giving_up_warmup_weight`), on by default
WATCHED_WARMUP_KEYS = ("warmup_atac_weight", "warmup_atac_weight_max_rise")
SCHEDULE_KEYS = ("warmup_epochs", "kl_warmup_epochs", "cycle_start_epoch", "atac_weight_decision_epoch",
                 "warmup_atac_weight_settle_epochs")


def model_config(overrides: dict | None = None) -> dict:
    cfg = model_defaults()
    check_model_overrides(overrides or {})
    cfg.update(overrides or {})
    choices = [k for k in CANDIDATE_KEYS if cfg[k]]
    no_warm_up = not schedule_epochs(cfg["warmup_epochs"], cfg["n_epochs"]) >= 1
    if choices or not cfg["validation_fraction"] > 0 or no_warm_up:
        # the default watched warm-up (full ATAC weight, given up when held-out ATAC worsens) gives way to a
        # weight choice, and has nothing to watch without held-out cells or warm-up epochs: off unless set
        for key in WATCHED_WARMUP_KEYS:
            if key not in (overrides or {}):
                cfg[key] = None
    if choices and not cfg["validation_fraction"] > 0:
        raise ValueError(f"model.{choices[0]} chooses an ATAC weight on held-out cells: "
                         "model.validation_fraction must be > 0")
    if len(choices) == 2:
        raise ValueError("model.atac_weight_candidates and model.warmup_atac_weight_candidates cannot both be set: "
                         "choose the weight of the whole run or of the warm-up")
    if cfg["atac_weight_candidates"] and cfg["warmup_atac_weight"] is not None:
        raise ValueError("model.atac_weight_candidates compares ATAC weights by the warm-up they trained with: "
                         "set model.warmup_atac_weight to null to use it")
    if cfg["warmup_atac_weight_candidates"] and no_warm_up:
        raise ValueError("model.warmup_atac_weight_candidates are compared at the end of the warm-up: "
                         "model.warmup_epochs must be at least one epoch")
    if cfg["warmup_atac_weight_max_rise"] is not None and choices:
        raise ValueError(f"model.warmup_atac_weight_max_rise and model.{choices[0]} cannot both be set: "
                         "give up the warm-up weight in one run or choose it among candidates")
    # warmup_atac_weight_max_rise without warmup_atac_weight has nothing to watch (and is what a given-up run saves)
    if cfg["warmup_atac_weight_max_rise"] is not None and cfg["warmup_atac_weight"] is not None:
        if not cfg["validation_fraction"] > 0:
            raise ValueError("model.warmup_atac_weight_max_rise watches held-out cells: "
                             "model.validation_fraction must be > 0")
        if no_warm_up:
            raise ValueError("model.warmup_atac_weight_max_rise watches the warm-up: "
                             "model.warmup_epochs must be at least one epoch")
    for key in SCHEDULE_KEYS:
        cfg[key] = schedule_epochs(cfg[key], cfg["n_epochs"])
    return cfg


def schedule_epochs(value, n_epochs: int) -> int:
    """A schedule key in epochs: an integer is a count of epochs, a number strictly between 0 and 1 a fraction of
    `n_epochs` (rounded half up; scikit-learn's convention for sizes such as `test_size`), so that the schedule
    keeps its shape when `n_epochs` changes."""
    if isinstance(value, float) and 0.0 < value < 1.0:
        return int(math.floor(value * n_epochs + 0.5))
    return int(value)


_FROM_CONFIG = object()


def _layer(mod, name, path, what):
    if name in mod.layers:
        return mod.layers[name]
    raise InputError(path, f"{what}.layers['{name}'] is missing (raw counts are required)")


class SCMVP:
    """scMVP on paired RNA + ATAC counts of the same cells.

    >>> model = SCMVP.from_mudata(mdata, {"n_epochs": 30})
    >>> model.train(checkpoint_dir="ckpt")
    >>> latent = model.get_latent()

    Batches (libraries, samples): `batch` gives each cell's batch label (strings; None = no batches);
    `batch_categories` fixes the known batches and their order (a loaded model's), else the sorted labels. With
    two or more batches the decoders (and with `encode_batch` the encoders) get the batch one-hot; with one the
    model is the one without batches.
    """

    def __init__(self, rna_counts, atac_counts, atac_var: pd.DataFrame, config: dict | None = None,
                 gene_names=None, peak_names=None, path=None, batch=None, batch_categories=None, batch_key=None):
        self.config = model_config(config)
        self.device = resolve_device(self.config["device"])
        self.autocast_dtype = resolve_precision(self.config["precision"], self.device)
        torch.set_num_threads(int(self.config["threads"]))
        self.batch_key = batch_key
        self.batch_categories, codes = self._batch_codes(batch, batch_categories, path)
        # the genome-window token bags feed the ATAC transformer only
        n_tokens = self.config["n_tokens"] if self.config["atac_encoder"] == "attention" else None
        self.data = PairedData(rna_counts, atac_counts, atac_var, n_tokens, path=path, batch_codes=codes)
        self.gene_names = None if gene_names is None else [str(g) for g in gene_names]
        self.peak_names = None if peak_names is None else [str(p) for p in peak_names]
        self.history = None
        self.atac_weight_choice = None      # with atac_weight_candidates: every candidate's held-out ATAC NLL
        self._build_module()

    def _batch_codes(self, batch, categories, path):
        """(categories, integer code per cell), or (None, None) without batch labels."""
        if batch is None:
            if categories is not None:
                raise InputError(path, f"the model knows the batches {list(categories)} but no batch labels "
                                       f"were given for the cells")
            return None, None
        labels = np.asarray(batch).astype(str)
        if labels.ndim != 1:
            raise InputError(path, "batch labels: one label per cell expected")
        if categories is None:
            categories = sorted(set(labels.tolist()))
        categories = [str(c) for c in categories]
        index = pd.Index(categories)
        codes = index.get_indexer(labels)
        if (codes < 0).any():
            unknown = sorted(set(labels[codes < 0].tolist()))
            where = f" (obs['{self.batch_key}'])" if self.batch_key else ""
            raise InputError(path, f"{int((codes < 0).sum())} cells belong to batch(es) {unknown}{where} that the "
                                   f"model does not know (its batches: {categories})")
        return categories, codes.astype(np.int64)

    @property
    def n_batches(self) -> int:
        """Batches the network is conditioned on (0: none; a single batch is no batch)."""
        n = len(self.batch_categories or ())
        return n if n > 1 else 0

    def _build_module(self):
        cfg = self.config
        seed_everything(cfg["seed"], self.device)
        self.module = SCMVPModule(
            self.data.n_genes, self.data.n_peaks, n_latent=cfg["n_latent"], n_hidden=cfg["n_hidden"],
            n_components=None, n_tokens=self.data.n_tokens or cfg["n_tokens"], n_heads=cfg["n_heads"],
            n_transformer_layers=cfg["n_transformer_layers"], top_genes_attended=cfg["top_genes_attended"],
            attention_dim=cfg["attention_dim"],
            prior=cfg["prior"], rna_encoder=cfg["rna_encoder"], atac_encoder=cfg["atac_encoder"],
            cycle=cfg["cycle"], cluster_guidance=cfg["cluster_guidance"],
            atac_weight=cfg["atac_weight"], n_batches=self.n_batches,
            encode_batch=cfg["encode_batch"], gmm_min_variance=cfg["gmm_min_variance"],
            cycle_moves_joint=cfg["cycle_moves_joint"], joint_posterior=cfg["joint_posterior"],
            atac_depth_covariate=cfg["atac_depth_covariate"],
            atac_count_split=cfg["atac_count_split"]).to(self.device)
        self.module.set_atac_depth_reference(self.data.atac_library)

    @classmethod
    def from_mudata(cls, mdata, config: dict | None = None, path=None, batch_key=_FROM_CONFIG,
                    batch_categories=None):
        """From the `preprocessed.h5mu` contract: rna/atac layers['counts'], atac.var chrom/start/end.

        Batches from the obs column `batch_key` (by default `model.batch_key`, resolved by
        :func:`resolve_batch_key`; None = no batches)."""
        for mod in ("rna", "atac"):
            if mod not in mdata.mod:
                raise InputError(path, f"modality '{mod}' is missing")
        rna, atac = mdata.mod["rna"], mdata.mod["atac"]
        if list(rna.obs_names) != list(atac.obs_names):
            raise InputError(path, "rna and atac do not hold the same cells in the same order")
        cfg = model_config(config)
        rna_counts = _layer(rna, "counts", path, "rna")
        gene_names = rna.var_names
        if cfg.get("use_highly_variable"):
            if "highly_variable" not in rna.var:
                raise InputError(path, "rna.var['highly_variable'] is missing (model.use_highly_variable)")
            keep = rna.var["highly_variable"].to_numpy(bool)
            rna_counts, gene_names = rna_counts[:, keep], gene_names[keep]
        key = resolve_batch_key(mdata, cfg["batch_key"], path) if batch_key is _FROM_CONFIG else batch_key
        labels = None if key is None else batch_labels(mdata, key, path)
        if key is not None:
            counts = pd.Series(labels).value_counts(sort=False)
            log.info("batches from obs['%s']: %s", key, ", ".join(f"{k} {v}" for k, v in counts.items()))
        return cls(rna_counts, _layer(atac, "counts", path, "atac"), atac.var, cfg, gene_names=gene_names,
                   peak_names=atac.var_names, path=path, batch=labels, batch_categories=batch_categories,
                   batch_key=key)

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # -- training -------------------------------------------------------------------------------------------
    def train(self, checkpoint_dir=None, progress=True, on_epoch_end=None) -> pd.DataFrame:
        """Train (resuming from `checkpoint_dir`/last.pt when present); returns the per-epoch history.

        With `atac_weight_candidates` one model per candidate weight up to `atac_weight_decision_epoch` (with
        `warmup_atac_weight_candidates`, per warm-up weight up to the end of the warm-up), the weight chosen from
        their held-out ATAC likelihood there, and only the chosen model trained on
        (:mod:`scmvp.model.weight_choice`; each candidate checkpointed in its own subfolder); the history is the
        chosen model's, `atac_weight_choice` the table of candidates. With `warmup_atac_weight_max_rise` the
        warm-up at `warmup_atac_weight` is given up when its held-out ATAC worsens, and the model trained again
        without it; `atac_weight_choice` then tells which run was kept."""
        def make_trainer(directory):
            return Trainer(self, directory, progress, on_epoch_end)

        with reuse_large_buffers():
            if any(self.config[k] for k in CANDIDATE_KEYS):
                self.history = train_choosing_atac_weight(self, make_trainer, checkpoint_dir)
            elif all(self.config[k] is not None for k in WATCHED_WARMUP_KEYS):
                self.history = train_giving_up_warmup_weight(self, make_trainer, checkpoint_dir)
            else:
                self.history = pd.DataFrame(make_trainer(checkpoint_dir).train())
        return self.history

    # -- inference ------------------------------------------------------------------------------------------
    def _chunks(self, cells=None, chunk_size=None):
        cells = np.arange(self.data.n_cells) if cells is None else np.asarray(cells)
        chunk_size = chunk_size or self.config["impute_chunk_size"]
        for start in range(0, len(cells), chunk_size):
            yield cells[start:start + chunk_size]

    def _encode_chunks(self, encode, cells=None, chunk_size=None):
        """(cell indices, `encode(minibatch)`) of `cells`, one chunk at a time (eval mode, the model's autocast
        around `encode` only, not around the caller's use of its result); gradients are off in the public
        callers."""
        self.module.eval()
        for idx in self._chunks(cells, chunk_size):
            with self.autocast():
                out = encode(self.data.batch(idx, self.device, dense_atac=False))
            yield idx, out

    @torch.no_grad()
    def get_latent(self, cells=None, chunk_size=None, return_variance=False):
        """Means of q(z | x, y) (and their variances with `return_variance`)."""
        means, variances = [], []
        for _, (mu, logvar) in self._encode_chunks(self.module.encode, cells, chunk_size):
            means.append(mu.float().cpu().numpy())
            variances.append(torch.exp(logvar.float()).cpu().numpy())
        empty = np.zeros((0, self.config["n_latent"]), np.float32)
        mean = np.concatenate(means) if means else empty
        if return_variance:
            return mean, (np.concatenate(variances) if variances else empty)
        return mean

    @torch.no_grad()
    def get_expert_latents(self, cells=None, chunk_size=None) -> dict:
        """With `joint_posterior: poe`, each modality's expert on its own: {"rna": (means, precisions), "atac":
        (means, precisions)}. Their product with N(0, I) is q(z | x, y) (`get_latent`); which expert carries a cell
        type (e.g. the 15-NN label transfer of each expert's means) shows which modality the joint latent uses."""
        self.module.require_experts()
        parts = {"rna": ([], []), "atac": ([], [])}
        for _, experts in self._encode_chunks(self.module.experts, cells, chunk_size):
            for (means, precisions), (mu, logvar) in zip(parts.values(), experts):
                means.append(mu.float().cpu().numpy())
                precisions.append(torch.exp(-logvar.float()).cpu().numpy())
        empty = np.zeros((0, self.config["n_latent"]), np.float32)
        return {name: tuple(np.concatenate(v) if v else empty for v in values) for name, values in parts.items()}

    @torch.no_grad()
    def get_cluster_probabilities(self, latent=None) -> np.ndarray | None:
        """p(c | z) at the latent means (None with a normal prior)."""
        if self.module.prior is None:
            return None
        latent = self.get_latent() if latent is None else latent
        z = torch.as_tensor(latent, dtype=torch.float32, device=self.device)
        return self.module.prior.responsibilities(z).cpu().numpy()

    def get_clusters(self, latent=None) -> np.ndarray:
        probs = self.get_cluster_probabilities(latent)
        return np.zeros(self.data.n_cells, np.int64) if probs is None else probs.argmax(1)

    def batch_code(self, name) -> int:
        """Integer code of batch `name` (InputError when the model does not know it)."""
        if self.batch_categories is None or str(name) not in self.batch_categories:
            known = self.batch_categories or []
            raise InputError(None, f"unknown reference batch '{name}': the model was trained "
                                   + (f"on the batches {known}" if known else "without batches"))
        return self.batch_categories.index(str(name))

    @torch.no_grad()
    def impute_chunks(self, chunk_size=None, rna_library=RNA_SCALE, atac_library=None, reference_batch=None,
                      cells=None):
        """Yield (cell indices, imputed RNA, imputed ATAC) chunk by chunk.

        RNA: NB means at a common library size `rna_library` (default 1e4). ATAC: the probability that a
        peak is accessible, P(y > 0) of the ZIP, at the median ATAC library size (with `atac_depth_covariate` the
        decoder is also told that depth); columns in the input's peak order. `reference_batch` (a batch name):
        every cell is encoded with its own batch but decoded as if it came from that batch; None = its own batch.
        `cells`: these cells only (default all).
        """
        if atac_library is None:
            atac_library = float(np.median(self.data.atac_library))
        reference = None if reference_batch is None else self.batch_code(reference_batch)
        inverse = np.argsort(self.data.peak_order)

        def decode_posterior_mean(batch):
            mu, _ = self.module.encode(batch)
            codes = batch.get("batch")
            if codes is not None and reference is not None:
                codes = torch.full_like(codes, reference)
            return self.module.decode(mu, self.module.gamma(mu), codes, atac_library)

        for idx, (rna_scale, atac_scale, atac_dropout) in self._encode_chunks(decode_posterior_mean, cells,
                                                                              chunk_size):
            rna = (rna_scale * rna_library).float().cpu().numpy()
            atac = D.zip_prob_nonzero(atac_scale * atac_library, atac_dropout).float().cpu().numpy()
            yield idx, rna, atac[:, inverse]

    # -- persistence ----------------------------------------------------------------------------------------
    def save(self, path):
        from ..rule import atomic_path

        payload = {"config": self.config, "module": self.module.state_dict(),
                   "n_components": self.module.n_components, "gene_names": self.gene_names,
                   "peak_names": self.peak_names, "peak_order": self.data.peak_order, "idf": self.data.idf,
                   "batch_key": self.batch_key, "batch_categories": self.batch_categories,
                   "history": None if self.history is None else self.history.to_dict("list"),
                   "atac_weight_choice": None if self.atac_weight_choice is None
                   else self.atac_weight_choice.to_dict("list")}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path, mdata, device=None, path_of_data=None):
        """A trained model on the cells of `mdata` (the same genes/peaks it was trained on; with batches, its
        cells' batches read from the obs column the model was trained with, each one the model knows)."""
        payload = torch.load(path, map_location="cpu", weights_only=False)
        cfg = dict(payload["config"])
        unknown = sorted(set(cfg) - set(model_defaults()))
        if unknown:
            raise InputError(path, f"the model was saved by another version of this pipeline (config keys "
                                   f"{unknown} are unknown here): train it again (delete {path})")
        # saved before `joint_posterior` existed (stop 27): those models have the MLP joint, not today's default
        cfg.setdefault("joint_posterior", "mlp")
        # saved before the watched warm-up became the default (stop 44): trained without it
        for key in WATCHED_WARMUP_KEYS:
            cfg.setdefault(key, None)
        # saved before the settle epochs existed (stop 48): the mixture was fitted at the end of the warm-up
        cfg.setdefault("warmup_atac_weight_settle_epochs", 0)
        if device is not None:
            cfg["device"] = device
        categories = payload.get("batch_categories")
        model = cls.from_mudata(mdata, cfg, path=path_of_data,
                                batch_key=payload.get("batch_key") if categories else None,
                                batch_categories=categories)
        if payload["gene_names"] is not None and model.gene_names != payload["gene_names"]:
            raise InputError(path_of_data, f"genes differ from those the model {path} was trained on")
        if payload["peak_names"] is not None and model.peak_names != payload["peak_names"]:
            raise InputError(path_of_data, f"peaks differ from those the model {path} was trained on")
        model.data.idf = np.asarray(payload["idf"], dtype=np.float32)
        if payload["n_components"]:
            model.module.attach_gmm(payload["n_components"])
        state = dict(payload["module"])
        # saved before the ATAC depth reference existed (stop 36): such models have no depth covariate to use it
        state.setdefault("atac_log_depth", model.module.atac_log_depth)
        model.module.load_state_dict(state)
        model.module.eval()
        if payload.get("history"):
            model.history = pd.DataFrame(payload["history"])
        if payload.get("atac_weight_choice"):
            model.atac_weight_choice = pd.DataFrame(payload["atac_weight_choice"])
        return model

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())
