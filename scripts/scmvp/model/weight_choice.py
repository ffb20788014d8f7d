"""The ATAC weight chosen from the data (`model.atac_weight_candidates`; for the warm-up epochs only,
`model.warmup_atac_weight_candidates`, compared at the end of the warm-up within `warmup_atac_weight_tolerance`;
and in one run, the default: the warm-up at `warmup_atac_weight` given up when its own held-out ATAC climbs more
than `warmup_atac_weight_max_rise` above its lowest, `train_giving_up_warmup_weight`).

One model is trained per candidate weight -- same cells, same held-out cells, same seed -- up to
`atac_weight_decision_epoch` (by default the end of the warm-up, before the mixture prior), the largest weight is
chosen whose held-out ATAC negative log-likelihood (per cell, unweighted) is then at most `atac_weight_tolerance`
(relative) above the smallest weight's, and only the chosen model is trained on. The reasoning: a larger weight
makes the latent carry more of the ATAC; if what it then carries is shared between cells (chromatin that differs
between types), the held-out cells' ATAC is predicted as well as before; if it is what the training cells alone
have (sparse, noisy ATAC), the held-out ATAC gets worse. Measured (bench/RESULTS.md, "The ATAC weight chosen from
held-out ATAC" and "... at the end of the warm-up"): from 0.05 to 0.3 the held-out ATAC NLL after epoch 40 rose
0.05-0.5 % on the simulated tissues, where 0.3 raised label transfer (and on some draws lowered KMeans ARI), and
1.5-18 % on the example simulator, sci-CAR and three simulated libraries; after epoch 20 it had risen -0.06 to
+0.02 % on the tissues and 0.24-6.8 % on the others, and the 0.1 % tolerance there chooses as 1 % after epoch 40
on all 21 paired runs (1,196-10,309 cells). A 22nd, an example-simulator draw at 10,000 cells, is the first where
the two rules part (+0.12 % after epoch 20, +0.55 % after epoch 40), with the two weights level there. Over model
seeds on one example draw the epoch-20 rise varies -0.03 to +0.61 %, and seed 3 takes 0.3 at a cost of 0.004 kNN
(bench/RESULTS.md, "The weight choice at 10,000 cells"): the signal is noisier across seeds than across draws.
"""
from __future__ import annotations

import logging
import math
import os

import pandas as pd

log = logging.getLogger("scmvp.model")


def held_out_nll(history: pd.DataFrame, epoch: int, modality: str = "atac") -> float:
    """The validation NLL per cell of `modality` ("atac" / "rna") after `epoch` (1-based, the epoch whose state
    the model ends with)."""
    column = f"validation_{modality}_nll"
    if column not in history:
        raise ValueError("choosing the ATAC weight needs held-out cells (model.validation_fraction > 0)")
    row = history.loc[history["epoch"] == epoch, column]
    if row.empty:
        raise ValueError(f"no {column} for epoch {epoch} in the training history")
    return float(row.iloc[0])


def choose_atac_weight(held_out: dict, tolerance: float) -> float:
    """The largest weight whose held-out ATAC NLL is at most (1 + tolerance) x the smallest weight's."""
    if not held_out:
        raise ValueError("no candidate ATAC weights")
    if any(not math.isfinite(v) for v in held_out.values()):
        raise ValueError(f"non-finite held-out ATAC NLL among the candidates: {held_out}")
    reference = held_out[min(held_out)]
    return max(w for w, nll in held_out.items() if nll <= reference + abs(reference) * tolerance)


def held_out_row(key: str, weight: float, history: pd.DataFrame, epoch: int) -> dict:
    """A row of the weight-choice table: the weight under its config key, the epoch and the held-out NLLs there."""
    return {key: weight, "epoch": epoch, "validation_atac_nll": held_out_nll(history, epoch),
            "validation_rna_nll": held_out_nll(history, epoch, "rna")}


# the config keys whose candidates switch the choice on (at most one may be set: scmvp.model_config)
CANDIDATE_KEYS = ("atac_weight_candidates", "warmup_atac_weight_candidates")


def chosen_key(cfg: dict) -> tuple[str, list, int, float]:
    """(the config key the candidates set, the candidates, the decision epoch, the tolerance):
    `atac_weight_candidates` set the weight of the whole run and are compared at `atac_weight_decision_epoch`
    within `atac_weight_tolerance`; `warmup_atac_weight_candidates` set the warm-up's weight only and are compared
    at the end of the warm-up (after it the runs differ only by where their warm-ups left them) within
    `warmup_atac_weight_tolerance`."""
    if cfg["atac_weight_candidates"]:
        return ("atac_weight", cfg["atac_weight_candidates"], min(cfg["atac_weight_decision_epoch"], cfg["n_epochs"]),
                cfg["atac_weight_tolerance"])
    return ("warmup_atac_weight", cfg["warmup_atac_weight_candidates"], min(cfg["warmup_epochs"], cfg["n_epochs"]),
            cfg["warmup_atac_weight_tolerance"])


def train_choosing_atac_weight(model, make_trainer, checkpoint_dir=None) -> pd.DataFrame:
    """Train `model` (an SCMVP) once per candidate weight (`chosen_key`) up to the decision epoch, choose the weight
    from the candidates' held-out ATAC NLL at that epoch, and train the chosen candidate on to the end; the others
    are dropped. `make_trainer(checkpoint_dir)` gives a Trainer of `model` (each candidate checkpoints in its own
    subfolder). The model ends as the chosen candidate's own run (the same as training that weight alone);
    `model.atac_weight_choice` is the table of candidates. Returns the chosen run's history."""
    cfg = model.config
    key, candidates, decision_epoch, tolerance = chosen_key(cfg)
    candidates = sorted({float(w) for w in candidates})
    rows, kept = [], None
    for weight in candidates:
        cfg[key] = weight
        model._build_module()
        subdir = None if checkpoint_dir is None else os.path.join(checkpoint_dir, f"{key}_{weight:g}")
        trainer = make_trainer(subdir)
        history = pd.DataFrame(trainer.train(until_epoch=decision_epoch))
        # the decision epoch, or the epoch an early-stopped candidate ended with
        epoch = min(decision_epoch, trainer.final_epoch)
        rows.append(held_out_row(key, weight, history, epoch))
        nll = rows[-1]["validation_atac_nll"]
        log.info("%s %g: held-out ATAC NLL %.2f per cell after epoch %d", key, weight, nll, epoch)
        held_out = {r[key]: r["validation_atac_nll"] for r in rows}
        if choose_atac_weight(held_out, tolerance) == weight:
            # candidates go up, so the chosen weight is always the last one that passed: keep only its run
            kept = (weight, model.module, trainer, history)
    weight, module, trainer, history = kept
    table = pd.DataFrame(rows)
    table["chosen"] = table[key] == weight
    log.info("%s chosen from the held-out ATAC NLL (tolerance %g):\n%s", key, tolerance,
             table.to_string(index=False))
    cfg[key] = weight
    model.module = module
    if trainer.paused:
        history = pd.DataFrame(trainer.train())
    model.module.eval()
    model.atac_weight_choice = table
    return history.assign(**{key: weight})


def train_giving_up_warmup_weight(model, make_trainer, checkpoint_dir=None) -> pd.DataFrame:
    """`warmup_atac_weight_max_rise`: train `model` at `warmup_atac_weight` in the warm-up; the trainer gives that
    run up in the warm-up epoch where its held-out ATAC NLL is more than the max rise above its lowest so far
    (`trainer.gives_up_warmup_weight`), and the model is then trained again from the start at `atac_weight`
    throughout -- the same model as with `warmup_atac_weight` null. A one-run form of the warm-up choice: where the
    full weight in the warm-up makes the latent carry what only the training cells' ATAC has, the held-out ATAC
    turns worse within the warm-up (bench/RESULTS.md, "The warm-up weight given up in one run").
    `model.atac_weight_choice`: the watched run's row (given-up or last warm-up epoch, its held-out NLLs there, the
    lowest held-out ATAC NLL before) and, where it was given up, the run trained instead; `chosen` marks the kept
    run. The watched run checkpoints in `checkpoint_dir` (a kept run is the plain layout, `last.pt`), the run
    trained instead in its subfolder `warmup_atac_weight_off`."""
    cfg = model.config
    key, weight = "warmup_atac_weight", float(cfg["warmup_atac_weight"])
    trainer = make_trainer(checkpoint_dir)
    history = pd.DataFrame(trainer.train())
    given_up = trainer.given_up_epoch
    epoch = given_up or min(cfg["warmup_epochs"], int(history["epoch"].max()))
    warm_up = history[history["epoch"] < epoch]
    rows = [dict(held_out_row(key, weight, history, epoch),
                 lowest_validation_atac_nll=float(warm_up["validation_atac_nll"].min()) if len(warm_up) else math.nan,
                 chosen=given_up is None)]
    if given_up is not None:
        cfg[key] = None
        model._build_module()
        history = pd.DataFrame(make_trainer(None if checkpoint_dir is None else
                                            os.path.join(checkpoint_dir, f"{key}_off")).train())
        epoch = min(cfg["warmup_epochs"], int(history["epoch"].max()))
        rows.append(dict(held_out_row(key, float(cfg["atac_weight"]), history, epoch),
                         lowest_validation_atac_nll=math.nan, chosen=True))
    table = pd.DataFrame(rows)
    log.info("warm-up ATAC weight %g %s (held-out ATAC NLL over its lowest in the warm-up, max rise %g):\n%s",
             weight, "kept" if given_up is None else f"given up after epoch {given_up}",
             cfg["warmup_atac_weight_max_rise"], table.to_string(index=False))
    model.module.eval()
    model.atac_weight_choice = table
    return history.assign(**{key: weight if given_up is None else float(cfg["atac_weight"])})
