"""The model issue's done-when in one command: over model seeds, is scMVP's latent at least as good as the best
baseline, by KMeans ARI and by 15-NN label transfer, on every labelled dataset? (Leiden's ARI at the true
number of labels, and the ARI of scMVP's own mixture clusters, are reported beside them, not part of the verdict.)

    .venv/bin/python bench/bench_criterion.py [--datasets example:0 example:2 tissue:1 scicar]
        [--seeds 0 1 2 3 4] [--baselines rna_pca atac_lsi wnn mofa scvi] [--no-scmvp] [--set KEY=VALUE ...] [--jobs 2]
        [--out bench_results/criterion.tsv]

Datasets: `example:D` is the embedded example simulator (`scmvp.simulate.simulate(seed=D)`: 3,000 cells x 2,000
genes x 20,000 peaks, 6 labels); `tissue:D` the hard tissue (`simulate_tissue(n_cells=4000, n_genes=2000,
n_peaks=20000, seed=D)`, 17 labels, as `bench_tissue.py`); `snare:C:D` the hard tissue at the team's SNARE-seq
cortex shape (C cells, 1,677 genes, 25,734 peaks, data seed D; `bench_tissue.py --cells C --genes 1677 --peaks
25734`); `scicar` the shared sci-CAR A549 data (all 2,641 cells,
3 labels, as `bench_scicar.py`). Every method gets the same raw counts of the same cells; scMVP runs with its
schema defaults plus `--set` once per model seed, each baseline once per seed (`scmvp.baselines.embed`, the setup
the README documents). Scores are `bench_tissue.score`: KMeans at the true number of labels (random state 0) ARI /
NMI, Leiden's ARI at that number of clusters on the embedding's 15-NN graph, scMVP's own mixture clusters' ARI
(`own_ari`), and the stratified 5-fold 15-NN label-transfer accuracy (plain and balanced).

Every finished (dataset, method, settings, seed) is appended to `--out` at once and skipped when the command runs
again with the same arguments, so a long comparison can be stopped and resumed, and rows of several `--set`s
(e.g. two schedules) share one table. The settings column holds the `--set` keys ("defaults" when none) and, after
an `@`, a fingerprint of the whole configuration they resolve to, so rows from before a change of the schema's
defaults are kept apart from today's. The
earlier schedule is `--set warmup_epochs=2 kl_warmup_epochs=6 cycle_start_epoch=6 n_epochs=20
early_stopping_patience=10`. `--jobs N` runs N single-threaded trainings side by side. The summary gives, per dataset, each method's mean +- sd over the seeds, the best baseline per score and the verdict: scMVP's mean >=
the best baseline's mean (the issue's criterion), with scMVP's worst seed beside it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))

SCORES = ("ari", "nmi", "leiden_ari", "own_ari", "knn_accuracy", "knn_balanced_accuracy")
CRITERION = ("ari", "knn_accuracy")
# the methods users would pick instead, each as scmvp.baselines.embed sets it up (README, "Baselines")
BASELINES = ("rna_pca", "atac_lsi", "wnn", "mofa", "scvi")
KEY = ("dataset", "method", "settings", "seed")


def config_fingerprint(settings: dict) -> str:
    """8 hex digits naming the configuration scMVP resolves from the schema's defaults of the day plus
    ``settings`` (seed, device and threads left out: a row has its seed, and every run has 1 CPU thread)."""
    import hashlib
    import json

    from scmvp.model.scmvp import model_config

    config = {k: v for k, v in model_config(settings).items() if k not in ("seed", "device", "threads")}
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]


def settings_label(settings: dict) -> str:
    """The settings column of the table: the `--set` keys ("defaults" when none) and the fingerprint of the
    configuration they resolve to, so rows measured under other defaults are neither skipped nor pooled."""
    keys = " ".join(f"{k}={settings[k]}" for k in sorted(settings)) or "defaults"
    return f"{keys} @{config_fingerprint(settings)}"


def settings_column(method: str, settings: dict) -> str:
    """The settings column of a row: the scMVP settings' label, empty for a baseline (which takes none)."""
    return settings_label(settings) if method == "scmvp" else ""


@lru_cache(maxsize=2)
def simulation(dataset: str):
    """The simulator's output for `example:D` / `tissue:D` (None for the real `scicar`)."""
    name, _, data_seed = dataset.partition(":")
    if name == "scicar":
        return None
    if name == "example":
        from scmvp.simulate import simulate

        return simulate(seed=int(data_seed))
    if name == "tissue":
        from scmvp.simulate_tissue import simulate_tissue

        return simulate_tissue(n_cells=4000, n_genes=2000, n_peaks=20000, seed=int(data_seed))
    if name == "snare":   # snare:CELLS:SEED, the tissue at the SNARE-seq cortex's shape (1,677 genes, 25,734 peaks)
        from scmvp.simulate_tissue import simulate_tissue

        cells, _, seed = data_seed.partition(":")
        if not (cells.isdigit() and seed.lstrip("-").isdigit()):
            raise SystemExit(f"unknown dataset {dataset!r}: use snare:CELLS:SEED, e.g. snare:4000:6")
        return simulate_tissue(n_cells=int(cells), n_genes=1677, n_peaks=25734, seed=int(seed))
    raise SystemExit(f"unknown dataset {dataset!r}: use example:SEED, tissue:SEED, snare:CELLS:SEED or scicar")


@lru_cache(maxsize=2)
def load(dataset: str):
    """(mdata with counts in .X, labels) of a dataset name (see the module docstring)."""
    sim = simulation(dataset)
    if sim is None:
        from bench_scicar import read_scicar

        mdata = read_scicar()
        return mdata, mdata.obs["label"].to_numpy().astype(str)
    from scmvp.simulate_write import to_mudata

    return to_mudata(sim), np.asarray(sim.labels).astype(str)


def run_one(task) -> dict:
    """Embed and score one (dataset, method, settings, seed); single-threaded (a baseline's settings are {})."""
    import warnings

    from bench_tissue import embed_with_own_clusters, score

    warnings.simplefilter("ignore")
    dataset, method, settings, seed = task
    mdata, labels = load(dataset)
    start = time.perf_counter()
    embedding, own = embed_with_own_clusters(method, mdata, seed, settings, threads=1)
    seconds = time.perf_counter() - start
    return {"dataset": dataset, "method": method, "settings": settings_column(method, settings),
            "seed": seed, **{k: float(v) for k, v in score(np.asarray(embedding), labels, seed, own).items()},
            "seconds": round(seconds, 1)}


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and scMVP settings: scMVP's mean (and worst seed) against the best baseline's mean, per score
    of the criterion; `meets` = scMVP's mean >= the best baseline's mean on every score of CRITERION."""
    rows = []
    for dataset, part in table.groupby("dataset", sort=False):
        baselines = part[part["method"] != "scmvp"].groupby("method")[list(CRITERION)].mean()
        for settings, runs in part[part["method"] == "scmvp"].groupby("settings", sort=False):
            row = {"dataset": dataset, "settings": settings, "seeds": len(runs)}
            for score in CRITERION:
                row[f"scmvp_{score}"] = runs[score].mean()
                row[f"scmvp_worst_{score}"] = runs[score].min()
                if len(baselines):
                    best = baselines[score].idxmax()
                    row[f"best_baseline_{score}"] = f"{best} {baselines.loc[best, score]:.3f}"
                    row[f"meets_{score}"] = bool(runs[score].mean() >= baselines.loc[best, score])
            row["meets"] = all(row.get(f"meets_{s}", False) for s in CRITERION)
            rows.append(row)
    return pd.DataFrame(rows)


def pending(tasks, done: pd.DataFrame) -> list:
    """The tasks (dataset, method, settings dict, seed) without a row in ``done``."""
    finished = {tuple(str(v) for v in row) for row in done[list(KEY)].itertuples(index=False)}
    return [(dataset, method, settings, seed) for dataset, method, settings, seed in tasks
            if (dataset, method, settings_column(method, settings), str(seed)) not in finished]


def read_done(out: Path | None) -> pd.DataFrame:
    """The table of finished runs; a score a row was measured without (an older table) is NaN."""
    if out is None or not out.exists():
        return pd.DataFrame(columns=[*KEY, *SCORES, "seconds"])
    table = pd.read_csv(out, sep="\t", keep_default_na=False, dtype={"settings": str})
    for name in (*SCORES, "seconds"):
        table[name] = pd.to_numeric(table[name], errors="coerce") if name in table else np.nan
    return table


def append_row(out: Path, row: dict):
    """Add one finished run to the table at `out`; a table written before a score existed is rewritten once
    with the new column (its old rows NaN there), so every row stays under its own header."""
    out.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame([row])
    if out.exists():
        header = pd.read_csv(out, sep="\t", nrows=0).columns.tolist()
        if set(new.columns) - set(header):
            partial = out.with_name(out.name + ".partial")
            pd.concat([read_done(out), new], ignore_index=True).to_csv(partial, sep="\t", index=False)
            os.replace(partial, out)
            return
        new = new.reindex(columns=header)
    new.to_csv(out, sep="\t", index=False, mode="a", header=not out.exists())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["example:0", "tissue:1", "scicar"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES),
                        help="scmvp.baselines methods to compare with (also multivi: the slowest by far)")
    parser.add_argument("--no-scmvp", dest="scmvp", action="store_false",
                        help="run only the baselines (their rows join the table's scMVP rows of earlier runs)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="scMVP model settings")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run side by side (1 thread each)")
    parser.add_argument("--out", type=Path, help="the table of every run (appended to; finished runs are skipped)")
    args = parser.parse_args(argv)
    from bench_tissue import parse_settings

    settings = parse_settings(args.set)

    done = read_done(args.out)
    tasks = [(d, m, settings if m == "scmvp" else {}, s) for d in args.datasets for s in args.seeds
             for m in [*(["scmvp"] if args.scmvp else []), *args.baselines]]
    todo = pending(tasks, done)
    print(f"# {len(tasks) - len(todo)} of {len(tasks)} runs already in {args.out}; {len(todo)} to run", flush=True)
    rows = []

    def keep(row):
        rows.append(row)
        print("\t".join(str(round(v, 4)) if isinstance(v, float) else str(v) for v in row.values()), flush=True)
        if args.out:
            append_row(args.out, row)

    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for row in pool.map(run_one, todo):
                keep(row)
    else:
        for task in todo:
            keep(run_one(task))

    table = pd.concat([done, pd.DataFrame(rows)], ignore_index=True) if rows else done
    wanted = table["dataset"].isin(args.datasets) & table["seed"].astype(int).isin(args.seeds) & (
        (table["method"] != "scmvp") | (table["settings"] == settings_label(settings))
    ) & table["method"].isin(["scmvp", *args.baselines])
    table = table[wanted].astype({s: float for s in SCORES})
    summary = table.groupby(["dataset", "method", "settings"], sort=False)[list(SCORES)].agg(["mean", "std"])
    print(f"\nmean +- sd over seeds {args.seeds}; scMVP settings: {settings_label(settings)}")
    for (dataset, method, _), values in summary.iterrows():
        print(f"{dataset}\t{method}\t" + "\t".join(
            f"{s} {values[(s, 'mean')]:.3f} +- {values[(s, 'std')]:.3f}" for s in SCORES))
    print("\nthe criterion (scMVP mean >= best baseline mean, by KMeans ARI and by kNN accuracy):")
    print(verdicts(table).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
