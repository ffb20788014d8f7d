"""The GPU path, end to end: train on CUDA, kill and resume, impute, and compare with a CPU run of the same seed.

    .venv/bin/python bench/gpu_check.py [--cells 3000] [--epochs 10] [--device cuda|cpu] [--set KEY=VALUE ...]
                                                                                              (make gpu-check)

Without a CUDA device it says so and exits 0 (CI and CPU machines). On a CUDA machine it:
1. trains scMVP on the simulated example (the `make run` example's settings, seed 0) on the CPU -> latent, ARI;
2. trains the same on CUDA, uninterrupted -> latent, ARI, seconds per epoch;
3. trains on CUDA in a child process that SIGKILLs itself after epoch `--kill-after`, then resumes from the
   checkpoint in a new process to the end -> latent, ARI (the resume path that crashed on CUDA before);
4. imputes every cell on CUDA into an imputed.h5mu and checks shapes and finiteness.
It prints one table and exits 1 when a check fails: the resumed run must finish with the uninterrupted run's
latent (Spearman of pairwise distances >= 0.99); the 15-NN label-transfer accuracy of the CUDA and the resumed
latents must be within 0.02 of the CPU's; the imputed layers must be finite. KMeans ARI is printed but not
checked: CUDA draws its noise from another random stream than the CPU, so the same seed is another training run,
and on this example single runs' ARI falls on either side of a KMeans knife edge (CPU, 10 epochs, 3,000 cells:
seeds 0-3 ARI 0.99 / 0.81 / 0.81 / 0.99, kNN accuracy 0.993-0.997; bench/RESULTS.md "The GPU path, first run").
`--device cpu` runs steps 2-4 on the CPU, to check this script itself anywhere. `--set` changes model settings
(as bench_criterion.py's) in every run.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))
from bench_tissue import parse_settings  # noqa: E402


def example_data(n_cells, seed=0):
    from scmvp.simulate import simulate

    sim = simulate(n_cells=n_cells, n_genes=2000, n_peaks=20000, n_types=6, seed=seed)
    var = sim.peaks.set_index("peak")[["chrom", "start", "end"]]
    return sim.rna, sim.atac, var, np.asarray(sim.labels)


def model_config(device, epochs, settings=None):
    # the example's model settings (config/config.yaml) with a shorter schedule
    return {"n_latent": 16, "n_components": "auto", "device": device, "seed": 0, "n_epochs": epochs,
            "threads": max(1, min(8, os.cpu_count() or 1)), **(settings or {})}


def train(device, epochs, n_cells, checkpoint_dir=None, kill_after=None, settings=None):
    from scmvp.metrics import clustering_scores, kmeans, knn_label_transfer
    from scmvp.model import SCMVP

    rna, atac, var, labels = example_data(n_cells)
    model = SCMVP(rna, atac, var, model_config(device, epochs, settings))

    def maybe_die(epoch, _model):
        if kill_after is not None and epoch >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    start = time.perf_counter()
    history = model.train(checkpoint_dir=checkpoint_dir, progress=False, on_epoch_end=maybe_die)
    seconds = time.perf_counter() - start
    latent = model.get_latent()
    ari = clustering_scores(labels, kmeans(latent, len(set(labels)), seed=0))["ari"]
    knn = knn_label_transfer(latent, labels)["knn_accuracy"]
    return model, latent, {"device": str(model.device), "ari": ari, "knn": knn, "epochs_run": len(history),
                           "seconds_per_epoch": seconds / max(1, len(history))}


def child(args):
    """Run in a subprocess: train (maybe killed), save the latent, print the summary as JSON."""
    _, latent, summary = train(args.device, args.epochs, args.cells, args.checkpoints, args.kill_after,
                               parse_settings(args.set))
    np.save(args.latent_out, latent)
    print(json.dumps(summary))


def run_child(args, checkpoints, latent_out, kill_after=None):
    command = [sys.executable, __file__, "--child", "--device", args.device, "--epochs", str(args.epochs),
               "--cells", str(args.cells), "--checkpoints", str(checkpoints), "--latent-out", str(latent_out),
               "--set", *args.set]
    if kill_after is not None:
        command += ["--kill-after", str(kill_after)]
    proc = subprocess.run(command, capture_output=True, text=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    return proc.returncode, summary, proc.stderr[-2000:]


def latent_agreement(a, b, n=1000, seed=0):
    """Spearman correlation of pairwise distances between two latents of the same cells (rotation-free)."""
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    cells = np.random.default_rng(seed).choice(len(a), min(n, len(a)), replace=False)
    return float(spearmanr(pdist(a[cells]), pdist(b[cells])).statistic)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--kill-after", type=int, default=None, help="epoch after which the child is killed")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model settings for every run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoints", help=argparse.SUPPRESS)
    parser.add_argument("--latent-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False): nothing to check.")
        return 0
    if args.device == "cuda":
        print(f"gpu-check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    kill_after = args.kill_after or max(1, args.epochs // 2)
    failures = []
    settings = parse_settings(args.set)
    _, cpu_latent, cpu = train("cpu", args.epochs, args.cells, settings=settings)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, dev_latent, dev = train(args.device, args.epochs, args.cells, settings=settings)
        code, _, err = run_child(args, tmp / "ckpt", tmp / "killed.npy", kill_after=kill_after)
        if code != -signal.SIGKILL:
            failures.append(f"the child to be killed after epoch {kill_after} ended with {code}: {err}")
        code, resumed, err = run_child(args, tmp / "ckpt", tmp / "resumed.npy")
        if code != 0:
            failures.append(f"resuming after the kill failed ({code}): {err}")
        from scmvp.model.imputation import write_imputed
        import anndata as ad
        import mudata as md

        rna, atac, var, _ = example_data(args.cells)
        mdata = md.MuData({"rna": ad.AnnData(rna.astype(np.float32), layers={"counts": rna}),
                           "atac": ad.AnnData(atac.astype(np.float32), var=var, layers={"counts": atac})})
        start = time.perf_counter()
        write_imputed(model, mdata, tmp / "imputed.h5mu")
        impute_seconds = time.perf_counter() - start
        imputed = md.read_h5mu(tmp / "imputed.h5mu")
        for name in ("rna", "atac"):
            layer = np.asarray(imputed.mod[name].layers["imputed"][:500])
            if layer.shape[1] != imputed.mod[name].n_vars or not np.isfinite(layer).all():
                failures.append(f"imputed {name} has a wrong shape or non-finite values")
        resumed_latent = np.load(tmp / "resumed.npy") if resumed else None
    rows = [("cpu", cpu), (args.device, dev)] + ([(f"{args.device} killed after epoch {kill_after} + resumed",
                                                   resumed)] if resumed else [])
    print(f"\n{'run':<40} {'15-NN acc':>9} {'KMeans ARI':>10} {'epochs':>7} {'s/epoch':>8}")
    for name, summary in rows:
        print(f"{name:<40} {summary['knn']:>9.3f} {summary['ari']:>10.3f} {summary['epochs_run']:>7d} "
              f"{summary['seconds_per_epoch']:>8.2f}")
    resumed_agreement = latent_agreement(dev_latent, resumed_latent) if resumed else None
    print(f"latent agreement (Spearman of pairwise distances): cpu vs {args.device} "
          f"{latent_agreement(cpu_latent, dev_latent):.3f}"
          + (f"; uninterrupted vs resumed {resumed_agreement:.3f}" if resumed else ""))
    print(f"imputation of {args.cells} cells on {args.device}: {impute_seconds:.1f} s")
    for name, summary in rows[1:]:
        if summary["knn"] < cpu["knn"] - 0.02:
            failures.append(f"{name}: 15-NN accuracy {summary['knn']:.3f} is more than 0.02 below the CPU's "
                            f"{cpu['knn']:.3f}")
    if resumed and resumed_agreement < 0.99:
        failures.append(f"the resumed latent differs from the uninterrupted one (agreement {resumed_agreement:.3f})")
    for failure in failures:
        print(f"FAILED: {failure}")
    print("gpu-check: " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
