"""scMVP training throughput and memory, and the peak memory of chunked imputation.

    .venv/bin/python bench/bench_model.py [--cells 1000 10000 50000] [--genes 2000] [--peaks 20000] [--epochs 2]
                                          [--impute-cells 10000] [--impute-peaks 100000] [--threads 1 2]
                                          [--batch-size 32 auto] [--skip-impute] [--step-phases]

Each measurement runs in its own process so that its peak RSS (ru_maxrss) is its own. Training data:
random sparse counts (RNA --genes ~10% non-zero, ATAC --peaks ~3% non-zero); throughput is
cells x epochs / s of training (validation included). `--step-phases`: instead of training, the milliseconds of
each phase of a whole-model step (minibatch, forward, backward, gradient clipping, AdamW; mixture attached, cycle
term on), mean of 12 steps after 2 unmeasured ones, inside and outside `host_memory.reuse_large_buffers`. Imputation: 10k cells x 100k peaks written to a
temporary imputed.h5mu in chunks (an untrained model: the memory does not depend on the weights).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def random_counts(rng, n_rows, n_cols, density, low, high):
    """CSR counts with ~density non-zeros per row, built row-wise (scipy.sparse.random samples positions
    over all rows x columns at once: ~8 GiB at 50k x 20k, which would be measured instead of the model)."""
    import numpy as np
    import scipy.sparse as sp

    per_row = rng.binomial(n_cols, density, n_rows)
    indptr = np.r_[0, np.cumsum(per_row)]
    indices = rng.integers(0, n_cols, indptr[-1], dtype=np.int32)
    values = rng.integers(low, high, indptr[-1]).astype(np.float32)
    matrix = sp.csr_matrix((values, indices, indptr), shape=(n_rows, n_cols))
    matrix.sum_duplicates()
    return matrix


def random_paired(n_cells, n_genes, n_peaks, seed=0, rna_density=0.1, atac_density=0.03):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rna = random_counts(rng, n_cells, n_genes, rna_density, 1, 20)
    atac = random_counts(rng, n_cells, n_peaks, atac_density, 1, 3)
    var = pd.DataFrame({"chrom": [f"chr{1 + i * 5 // n_peaks}" for i in range(n_peaks)],
                        "start": np.arange(n_peaks) * 1000, "end": np.arange(n_peaks) * 1000 + 500},
                       index=[f"peak{i}" for i in range(n_peaks)])
    return rna, atac, var


def child_train(n_cells, epochs, threads, n_genes=2000, n_peaks=20000, batch_size=32, device="cpu"):
    from scmvp.model import SCMVP

    rna, atac, var = random_paired(n_cells, n_genes, n_peaks)
    import numpy as np

    model = SCMVP(rna, atac, var, {"n_epochs": epochs, "warmup_epochs": 1, "kl_warmup_epochs": 1,
                                   "cycle_start_epoch": 1, "n_components": 5, "device": device, "threads": threads,
                                   "batch_size": batch_size})
    start = time.perf_counter()
    model.train(progress=False)
    seconds = time.perf_counter() - start
    return {"cells": n_cells, "epochs": epochs, "seconds": seconds, "cells_epochs_per_s": n_cells * epochs / seconds,
            "batch_size": int(model.history["batch_size"].iloc[0]),
            "seconds_per_epoch": float(np.mean(model.history["seconds"]))}


def child_step_phases(n_cells, threads, n_genes, n_peaks, batch_size, reuse_buffers, device="cpu", n_steps=12,
                      n_unmeasured=2):
    import contextlib

    import numpy as np
    import torch

    from scmvp.model import SCMVP
    from scmvp.model.host_memory import reuse_large_buffers
    from scmvp.model.trainer import build_optimizer, training_batch_size

    rna, atac, var = random_paired(n_cells, n_genes, n_peaks)
    model = SCMVP(rna, atac, var, {"device": device, "threads": threads, "n_components": 8})
    device = model.device

    def now():
        # a CUDA step's phases end when its kernels do, not when Python returns
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    batch_size = training_batch_size(batch_size, int(n_cells * 0.9))
    module = model.module
    module.attach_gmm(8)
    module.train()
    optimizer = build_optimizer(module, model.config)
    idf = torch.from_numpy(model.data.idf).to(device)
    phases = dict.fromkeys(("minibatch", "forward", "backward", "clip", "adamw"), 0.0)
    with reuse_large_buffers() if reuse_buffers else contextlib.nullcontext():
        for step in range(n_unmeasured + n_steps):
            times = [now()]
            batch = model.data.batch(np.arange(step * batch_size, (step + 1) * batch_size) % n_cells, device)
            times.append(now())
            with model.autocast():
                out = module.loss(batch, beta=1.0, use_cycle=True, idf=idf)
            times.append(now())
            optimizer.zero_grad(set_to_none=True)
            out["total"].backward()
            times.append(now())
            torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
            times.append(now())
            optimizer.step()
            times.append(now())
            if step >= n_unmeasured:
                for phase, start, end in zip(phases, times, times[1:]):
                    phases[phase] += (end - start) * 1000 / n_steps
    return {"batch_size": batch_size, "reuse_buffers": reuse_buffers, **phases, "step": sum(phases.values())}


def child_impute(n_cells, n_peaks, threads, device="cpu"):
    import anndata as ad
    import mudata as md

    from scmvp.model import SCMVP
    from scmvp.model.imputation import write_imputed

    rna, atac, var = random_paired(n_cells, 2000, n_peaks, atac_density=0.01)
    mdata = md.MuData({"rna": ad.AnnData(rna.copy(), layers={"counts": rna}),
                       "atac": ad.AnnData(atac.copy(), var=var, layers={"counts": atac})})
    model = SCMVP.from_mudata(mdata, {"device": device, "threads": threads, "impute_chunk_size": 512})
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        start = time.perf_counter()
        write_imputed(model, mdata, Path(tmp) / "imputed.h5mu")
        seconds = time.perf_counter() - start
        size_gb = (Path(tmp) / "imputed.h5mu").stat().st_size / 2**30
    return {"cells": n_cells, "peaks": n_peaks, "seconds": seconds, "file_GiB": size_gb}


def in_child(kind, *args):
    code = (f"import sys, json, resource; sys.path[:0] = [{str(REPO / 'scripts')!r}, {str(REPO / 'bench')!r}]; "
            f"import bench_model as b; r = b.child_{kind}(*{args!r}); "
            "r['peak_rss_GiB'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20; print(json.dumps(r))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_step_phases(args):
    print("cells\tgenes\tpeaks\tthreads\tbatch\treuse_buffers\tminibatch_ms\tforward_ms\tbackward_ms\tclip_ms\t"
          "adamw_ms\tstep_ms\tpeak_rss_GiB", flush=True)
    for n in args.cells:
        for threads in args.threads:
            for batch in args.batch_size:
                batch = batch if batch == "auto" else int(batch)
                for reuse in (False, True):
                    r = in_child("step_phases", n, threads, args.genes, args.peaks, batch, reuse, args.device)
                    print(f"{n}\t{args.genes}\t{args.peaks}\t{threads}\t{r['batch_size']}\t{reuse}\t"
                          + "\t".join(f"{r[k]:.1f}" for k in ("minibatch", "forward", "backward", "clip", "adamw",
                                                                "step"))
                          + f"\t{r['peak_rss_GiB']:.2f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--impute-cells", type=int, default=10000)
    parser.add_argument("--impute-peaks", type=int, default=100000)
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--peaks", type=int, default=20000)
    parser.add_argument("--skip-impute", action="store_true")
    parser.add_argument("--batch-size", nargs="+", default=["32"], help="model.batch_size values (numbers or auto)")
    parser.add_argument("--step-phases", action="store_true", help="time the phases of a step instead of training")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="model.device of training, imputation and --step-phases")
    args = parser.parse_args(argv)
    if args.step_phases:
        print_step_phases(args)
        return
    print("what\tdevice\tcells\tgenes\tpeaks\tthreads\tbatch\tepochs\tseconds\ts_per_epoch\tcells_epochs_per_s\tpeak_rss_GiB",
          flush=True)
    for n in args.cells:
        for threads in args.threads:
            for batch in args.batch_size:
                batch = batch if batch == "auto" else int(batch)
                r = in_child("train", n, args.epochs, threads, args.genes, args.peaks, batch, args.device)
                print(f"train\t{args.device}\t{n}\t{args.genes}\t{args.peaks}\t{threads}\t{r['batch_size']}\t{args.epochs}\t"
                      f"{r['seconds']:.1f}\t{r['seconds_per_epoch']:.1f}\t{r['cells_epochs_per_s']:.1f}\t"
                      f"{r['peak_rss_GiB']:.2f}", flush=True)
    if not args.skip_impute:
        r = in_child("impute", args.impute_cells, args.impute_peaks, args.threads[0], args.device)
        print(f"impute\t{args.device}\t{r['cells']}\t-\t{r['peaks']}\t{args.threads[0]}\t-\t-\t{r['seconds']:.1f}\t-\t-\t{r['peak_rss_GiB']:.2f}"
              f"\t(file {r['file_GiB']:.2f} GiB)", flush=True)


if __name__ == "__main__":
    main()
