"""Evaluation of predicted peak-gene links (:mod:`scmvp.cre`): enrichment of the linked peaks in histone-mark
peaks (bedtools intersect through pybedtools; Fisher's exact test, Woolf CI of the odds ratio) per region
(promoter / distal / all), accuracy against true links where they are known (simulated data), and the
enrichment figure.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .errors import InputError
from .intervals import build_mismatch_message, reconcile_chromosomes

ENRICHMENT_COLUMNS = ["mark", "input", "method", "region", "n_linked", "n_background", "fraction_linked",
                      "fraction_background", "odds_ratio", "ci_low", "ci_high", "p_value"]
ACCURACY_COLUMNS = ["method", "input", "n_predicted", "precision", "recall", "n_true", "true_positives",
                    "k_equal", "recall_at_k_equal"]
INPUTS = ("raw", "imputed")
REGIONS = ("promoter", "distal", "all")
# Below this fraction of peaks (on shared chromosomes) overlapping a reference, the builds likely differ.
MIN_OVERLAP_FRACTION = 0.005


# ------------------------------------------------------------------------------------------ enrichment
def odds_ratio_ci(a: int, b: int, c: int, d: int, level: float = 0.95):
    """Odds ratio of the 2x2 table [[a, b], [c, d]] with a Woolf (log) CI; Haldane +0.5 when a cell is 0."""
    cells = np.array([a, b, c, d], dtype=np.float64)
    if (cells == 0).any():
        cells = cells + 0.5
    a_, b_, c_, d_ = cells
    odds = (a_ * d_) / (b_ * c_)
    se = math.sqrt((1.0 / cells).sum())
    zq = stats.norm.ppf(0.5 + level / 2)
    return odds, math.exp(math.log(odds) - zq * se), math.exp(math.log(odds) + zq * se)


def enrichment_row(overlaps: np.ndarray, linked: np.ndarray):
    """Linked peaks vs all tested peaks (the background); OR and Fisher on linked vs not-linked peaks."""
    overlaps = np.asarray(overlaps, dtype=bool)
    linked = np.asarray(linked, dtype=bool)
    a = int((overlaps & linked).sum())
    b = int((~overlaps & linked).sum())
    c = int((overlaps & ~linked).sum())
    d = int((~overlaps & ~linked).sum())
    n_linked, n_background = a + b, len(overlaps)
    # no linked / no unlinked peak, or no tested peak / every tested peak carrying the mark: an odds ratio would
    # only reflect the +0.5 correction, so there is nothing to compare
    if n_linked and (c + d) and (a + c) and (b + d):
        odds, low, high = odds_ratio_ci(a, b, c, d)
        p = stats.fisher_exact([[a, b], [c, d]])[1]
    else:
        odds = low = high = p = float("nan")
    return {"n_linked": n_linked, "n_background": n_background,
            "fraction_linked": a / n_linked if n_linked else float("nan"),
            "fraction_background": overlaps.mean() if n_background else float("nan"),
            "odds_ratio": odds, "ci_low": low, "ci_high": high, "p_value": p}


def mark_overlaps(peaks: pd.DataFrame, mark: pd.DataFrame, path, mark_name: str, genome=None) -> np.ndarray:
    """Which peaks overlap an interval of the mark (bedtools intersect -u via pybedtools).

    NaN for peaks on chromosomes the mark file does not cover. Raises InputError when the builds look
    different (no shared chromosome names, or almost no overlap on the shared chromosomes).
    """
    import pybedtools

    mark = mark.copy()
    mark["chrom"] = reconcile_chromosomes(mark["chrom"], peaks["chrom"], path, f"{mark_name} peaks",
                                          genome).to_numpy()
    covered = peaks["chrom"].isin(set(mark["chrom"])).to_numpy()
    frame = pd.DataFrame({"chrom": peaks["chrom"].to_numpy(), "start": peaks["start"].to_numpy(),
                          "end": peaks["end"].to_numpy(), "name": np.arange(len(peaks)).astype(str)})
    peak_bed = pybedtools.BedTool.from_dataframe(frame[covered]).sort()
    mark_bed = pybedtools.BedTool.from_dataframe(mark[["chrom", "start", "end"]]).sort()
    try:
        hits = peak_bed.intersect(mark_bed, u=True)
        hit_idx = np.array([int(iv.name) for iv in hits], dtype=np.int64)
    finally:
        pybedtools.cleanup()
    result = np.full(len(peaks), np.nan)
    result[covered] = 0.0
    result[hit_idx] = 1.0
    if covered.sum() >= 50 and len(mark) >= 50 and len(hit_idx) < MIN_OVERLAP_FRACTION * covered.sum():
        raise InputError(path, build_mismatch_message(
            f"{mark_name} peaks", genome,
            f"only {len(hit_idx)} of {int(covered.sum())} ATAC peaks on shared chromosomes overlap it"))
    return result


def enrichment_table(links: pd.DataFrame, peaks: pd.DataFrame, regions: pd.Series,
                     marks: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per mark x input x method x region.

    ``peaks``/``regions`` are indexed by peak name; ``marks`` maps a mark to per-peak overlap (1/0/NaN).
    """
    rows = []
    for (input_name, method), group in links.groupby(["input", "method"], sort=False):
        tested = pd.Index(group["peak"].unique())
        linked_peaks = set(group.loc[group["selected"].astype(bool), "peak"])
        linked = tested.isin(linked_peaks)
        position = peaks.index.get_indexer(tested)
        region_of = regions.reindex(tested).to_numpy()
        for mark, overlap in marks.items():
            values = overlap[position]
            known = ~np.isnan(values)
            for region in REGIONS:
                mask = known & ((region_of == region) if region != "all" else True)
                row = {"mark": mark, "input": input_name, "method": method, "region": region}
                row.update(enrichment_row(values[mask] > 0, linked[mask]))
                rows.append(row)
    return pd.DataFrame(rows, columns=ENRICHMENT_COLUMNS)


# ------------------------------------------------------------------------------------------- accuracy
def link_accuracy(links: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Precision/recall of the selected links vs the true links whose peak and gene were tested.

    ``recall_at_k_equal``: recall of the top-``k_equal`` scored pairs, k_equal = the number of links the
    same method selects on raw data (the number of true links when it selects none), so raw and imputed are compared at the same number of links (at
    equal k, higher recall means higher precision too).
    """
    true_pairs = set(zip(truth["peak"].astype(str), truth["gene"].astype(str)))
    rows = []
    raw_counts = links[links["input"] == "raw"].groupby("method")["selected"].sum()
    for (method, input_name), group in links.groupby(["method", "input"], sort=False):
        tested = set(zip(group["peak"], group["gene"]))
        testable = true_pairs & tested
        pair = list(zip(group["peak"], group["gene"]))
        is_true = np.fromiter((p in true_pairs for p in pair), dtype=bool, count=len(pair))
        chosen = group["selected"].astype(bool).to_numpy()
        tp = int((is_true & chosen).sum())
        k = int(raw_counts.get(method, chosen.sum())) or len(testable)
        order = np.argsort(-group["score"].to_numpy(), kind="stable")[:k]
        rows.append({"method": method, "input": input_name, "n_predicted": int(chosen.sum()),
                     "precision": tp / chosen.sum() if chosen.sum() else float("nan"),
                     "recall": tp / len(testable) if testable else float("nan"),
                     "n_true": len(testable), "true_positives": tp, "k_equal": k,
                     "recall_at_k_equal": is_true[order].sum() / len(testable) if testable else float("nan")})
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS)


# ---------------------------------------------------------------------------------------------- plots
# Okabe-Ito colours (distinguishable with colour-vision deficiencies).
INPUT_COLOURS = {"raw": "#E69F00", "imputed": "#0072B2"}
METHOD_MARKERS = {"lasso": "o", "correlation": "s"}


def plot_enrichment(table: pd.DataFrame, path):
    """Odds ratio (95% CI, log scale) of linked peaks per mark (rows) x region (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    marks = list(pd.unique(table["mark"])) or ["none"]
    fig, axes = plt.subplots(len(marks), len(REGIONS), figsize=(4.4 * len(REGIONS), 3.0 * len(marks) + 0.8),
                             squeeze=False, sharey=False)
    combos = [(m, i) for m in pd.unique(table["method"]) for i in INPUTS]
    for r, mark in enumerate(marks):
        for c, region in enumerate(REGIONS):
            ax = axes[r][c]
            sub = table[(table["mark"] == mark) & (table["region"] == region)]
            for x, (method, input_name) in enumerate(combos):
                row = sub[(sub["method"] == method) & (sub["input"] == input_name)]
                if row.empty or not np.isfinite(row["odds_ratio"].iat[0]):
                    reason = "none\nlinked" if row.empty or not row["n_linked"].iat[0] else "n/a"
                    ax.annotate(reason, (x, 0.5), xycoords=("data", "axes fraction"), ha="center",
                                va="center", fontsize=8, color="grey")
                    continue
                odds = row["odds_ratio"].iat[0]
                err = [[odds - row["ci_low"].iat[0]], [row["ci_high"].iat[0] - odds]]
                ax.errorbar(x, odds, yerr=err, fmt=METHOD_MARKERS.get(method, "o"), capsize=3, markersize=7,
                            color=INPUT_COLOURS.get(input_name, "black"))
                star = "*" if row["p_value"].iat[0] < 0.05 else ""
                ax.annotate(f"{odds:.2g}{star}", (x, row["ci_high"].iat[0]), textcoords="offset points",
                            xytext=(0, 3), ha="center", fontsize=8)
            ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
            ax.set_yscale("log")
            plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.margins(y=0.2)
            ax.set_xticks(range(len(combos)))
            ax.set_xticklabels([f"{m}\n{i}" for m, i in combos], fontsize=8)
            ax.set_xlim(-0.6, len(combos) - 0.4)
            ax.set_title(f"{mark} - {region} peaks", fontsize=10)
            if c == 0:
                ax.set_ylabel("odds ratio (95% CI)")
    handles = [plt.Line2D([], [], color=col, marker="o", linestyle="", label=f"{name} data")
               for name, col in INPUT_COLOURS.items()]
    handles += [plt.Line2D([], [], color="black", marker=mk, linestyle="", label=name)
                for name, mk in METHOD_MARKERS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.suptitle("Linked peaks in histone-mark peaks vs all tested peaks (* Fisher p < 0.05)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)
