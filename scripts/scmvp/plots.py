"""Figures of the pipeline (matplotlib/seaborn, Agg backend): small functions, one figure each.

Colour-blind-safe colours throughout (Okabe-Ito), readable axis labels, saved with ``save``.
"""
from __future__ import annotations

import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Okabe & Ito (2008), colour-universal design; black moved last.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999", "#000000"]
# Fixed colour per benchmark method, so every figure shows a method in the same colour.
METHOD_COLOURS = {"scmvp": "#D55E00", "rna_pca": "#56B4E9", "atac_lsi": "#009E73", "wnn": "#E69F00",
                  "mofa": "#CC79A7", "multivi": "#0072B2", "scvi": "#999999"}


def palette(n: int) -> list:
    """``n`` distinguishable colours: Okabe-Ito, then seaborn's colour-blind palette, then husl."""
    if n <= len(OKABE_ITO):
        return OKABE_ITO[:n]
    import seaborn as sns

    base = OKABE_ITO + [c for c in sns.color_palette("colorblind").as_hex() if c not in OKABE_ITO]
    return base[:n] if n <= len(base) else sns.color_palette("husl", n).as_hex()


def save(fig, path, dpi: int = 150):
    """Save a figure (tight bounding box) through a temporary name, then close it."""
    from .rule import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=str(path).rsplit(".", 1)[-1])
    plt.close(fig)


def clustering_bars(scores: pd.DataFrame, title: str = ""):
    """ARI and NMI per method, one panel per clustering (kmeans, leiden), and the kNN label-transfer accuracy in
    a last panel (when the table has it): bars at the mean over seeds, error bars one sd, a dot per seed.

    ``scores`` has the columns of clustering.tsv (one row per method, clustering and seed; a table without a
    ``seed`` column counts as one seed). Returns the figure.
    """
    scores = scores.copy()
    if "seed" not in scores:
        scores["seed"] = 0
    clusterings = list(dict.fromkeys(scores["clustering"]))
    methods = list(dict.fromkeys(scores["method"]))
    has_knn = "knn_accuracy" in scores and scores["knn_accuracy"].notna().any()
    n_panels = len(clusterings) + int(has_knn)
    fig, axes = plt.subplots(1, n_panels, figsize=(1.6 + max(2.4, 0.9 * len(methods)) * n_panels, 4.0),
                             sharey=True, squeeze=False)
    width = 0.38
    x = np.arange(len(methods))
    colours = [METHOD_COLOURS.get(m, "#999999") for m in methods]
    rng = np.random.default_rng(0)  # jitter of the per-seed dots only

    def bars_with_seeds(ax, per_seed, offset, bar_width, hatch, label):
        """Bars at the mean of each method's values over seeds, sd error bars, one dot per seed."""
        values = [pd.to_numeric(per_seed.get(m, pd.Series(dtype=float)), errors="coerce").dropna()
                  for m in methods]
        means = np.array([v.mean() if len(v) else np.nan for v in values])
        sds = np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in values])
        ax.bar(x + offset, means, bar_width, color=colours, edgecolor="black", linewidth=0.6, hatch=hatch,
               label=label, yerr=sds, error_kw={"elinewidth": 0.9, "capsize": 2.5, "ecolor": "black"})
        for i, v in enumerate(values):
            jitter = rng.uniform(-bar_width * 0.25, bar_width * 0.25, len(v))
            ax.scatter(x[i] + offset + jitter, v.to_numpy(), s=9, color="black", zorder=3, linewidths=0)
        return [v.to_numpy() for v in values]

    low = 0.0
    for ax, clustering in zip(axes[0], clusterings):
        table = scores[scores["clustering"] == clustering]
        for offset, metric, hatch in ((-width / 2, "ari", ""), (width / 2, "nmi", "//")):
            per_seed = {m: table.loc[table["method"] == m, metric] for m in methods}
            drawn = bars_with_seeds(ax, per_seed, offset, width, hatch, metric.upper())
            low = min([low] + [float(np.nanmin(v)) for v in drawn if len(v)])
        ax.set_xticks(x, methods, rotation=35, ha="right")
        reached = ["/".join(str(int(n)) for n in sorted(set(table.loc[table["method"] == m, "n_clusters"])))
                   for m in methods]
        ax.set_title(f"{clustering}: ARI / NMI\nclusters: {', '.join(reached)}", fontsize=9)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel("method")
    if has_knn:
        ax = axes[0][-1]
        per_seed = {m: scores[scores["method"] == m].drop_duplicates("seed")["knn_accuracy"] for m in methods}
        bars_with_seeds(ax, per_seed, 0.0, 2 * width, "", "kNN accuracy")
        ax.set_xticks(x, methods, rotation=35, ha="right")
        ax.set_title("kNN label transfer\naccuracy (5-fold)", fontsize=9)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel("method")
    axes[0][0].set_ylim(min(0.0, low), 1.05)
    n_seeds = scores.groupby("method")["seed"].nunique().max()
    axes[0][0].set_ylabel("score vs true labels (1 = perfect)")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="white", edgecolor="black", label="ARI"),
               Patch(facecolor="white", edgecolor="black", hatch="//", label="NMI")]
    handles.append(Line2D([], [], marker="o", linestyle="", color="black", markersize=3,
                          label=f"one seed (bars: mean ± sd of {n_seeds})" if n_seeds > 1 else "one seed"))
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def knn_recall_heatmap(recall: pd.DataFrame, title: str = ""):
    """Mean kNN recall over seeds of every label (rows, largest label first, its cell count in the tick) for every
    method (columns, in the table's order), annotated; ``recall`` has the columns of knn_recall.tsv."""
    methods = list(dict.fromkeys(recall["method"]))
    sizes = recall.groupby("label")["n_cells"].max().sort_values(ascending=False, kind="stable")
    mean = recall.groupby(["label", "method"])["knn_recall"].mean().unstack("method").loc[sizes.index, methods]
    fig, ax = plt.subplots(figsize=(2.0 + 0.9 * len(methods), 1.2 + 0.32 * len(sizes)))
    image = ax.imshow(mean.to_numpy(), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(mean.to_numpy()):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                color="black" if value > 0.6 else "white")
    ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
    ax.set_yticks(range(len(sizes)), [f"{label} ({n})" for label, n in sizes.items()])
    ax.set_ylabel("true label (cells)")
    fig.colorbar(image, ax=ax, label="kNN recall (mean over seeds)", shrink=0.8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def integration_panels(scores: pd.DataFrame, title: str = ""):
    """Left: each metric per method (batch mixing, then biology conservation); right: batch score vs bio score.

    ``scores`` has the columns of integration.tsv; several rows of a method (seeds) are drawn as their mean,
    with the sd as error bars. Returns the figure."""
    from .integration import BATCH_COLUMNS, BIO_COLUMNS

    metrics = [m for m in BATCH_COLUMNS + BIO_COLUMNS if scores[m].notna().any()]
    columns = metrics + ["batch_score", "bio_score"]
    grouped = scores.groupby("method", sort=False)[columns]
    spread = grouped.std(ddof=1).fillna(0.0).reset_index()
    scores = grouped.mean().reset_index()
    methods = list(scores["method"])
    colours = [METHOD_COLOURS.get(m, "#999999") for m in methods]
    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(4 + 0.55 * len(metrics) * max(1, len(methods)) / 2, 3.8),
                                        gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(metrics))
    for i, (method, colour) in enumerate(zip(methods, colours)):
        row = scores.iloc[i]
        bars.bar(x - 0.4 + width * (i + 0.5), [row[m] for m in metrics], width, color=colour, edgecolor="black",
                 linewidth=0.5, label=method, yerr=[spread.iloc[i][m] for m in metrics], error_kw={"linewidth": 0.6})
    bars.set_xticks(x, metrics, rotation=30, ha="right")
    bars.set_ylim(0, 1.05)
    bars.set_ylabel("score (1 = best)")
    bars.axvline(len([m for m in metrics if m in BATCH_COLUMNS]) - 0.5, color="black", linewidth=0.6, ls="--")
    bars.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(0, -0.3), ncol=min(4, len(methods)))
    scatter.scatter(scores["batch_score"], scores["bio_score"], c=colours, edgecolor="black", s=60)
    for _, row in scores.iterrows():
        scatter.annotate(row["method"], (row["batch_score"], row["bio_score"]), fontsize=8, xytext=(4, 4),
                         textcoords="offset points")
    scatter.set_xlim(0, 1.05)
    scatter.set_ylim(0, 1.05)
    scatter.set_xlabel("batch mixing (mean)")
    scatter.set_ylabel("biology conservation (mean)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def embedding_grid(coords: pd.DataFrame, colour: str, panel: str = "method", title: str = "",
                   x: str = "umap_1", y: str = "umap_2", max_columns: int = 4):
    """Scatter plots of 2-D coordinates, one panel per value of ``panel``, coloured by column ``colour``.

    Categories keep one colour across panels; the legend is shared (omitted beyond 20 categories).
    """
    panels = list(dict.fromkeys(coords[panel]))
    categories = sorted(coords[colour].fillna("NA").astype(str).unique(), key=_natural_key)
    colours = dict(zip(categories, palette(len(categories))))
    n_columns = min(max_columns, len(panels))
    n_rows = math.ceil(len(panels) / n_columns)
    fig, axes = plt.subplots(n_rows, n_columns, figsize=(3.2 * n_columns + 1.6, 3.1 * n_rows), squeeze=False)
    point_size = max(1.0, min(12.0, 6000 / max(1, len(coords) / len(panels))))
    for ax, name in zip(axes.flat, panels):
        part = coords[coords[panel] == name]
        groups = part[colour].fillna("NA").astype(str)
        for category in categories:
            mask = (groups == category).to_numpy()
            if mask.any():
                ax.scatter(part[x].to_numpy()[mask], part[y].to_numpy()[mask], s=point_size,
                           color=colours[category], linewidths=0, rasterized=True, label=category)
        ax.set_title(str(name))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(x.replace("_", " ").upper(), fontsize=8)
        ax.set_ylabel(y.replace("_", " ").upper(), fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if len(categories) <= 20:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", linestyle="", color=colours[c], label=c) for c in categories]
        fig.legend(handles=handles, title=colour, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _natural_key(text: str):
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


QC_TITLES = {"rna_n_counts": "RNA UMIs per cell", "rna_n_genes": "genes per cell",
             "rna_mito_fraction": "mitochondrial fraction", "atac_n_counts": "ATAC counts per cell",
             "atac_n_peaks": "peaks per cell", "atac_tss_enrichment": "TSS enrichment",
             "atac_nucleosome_signal": "nucleosome signal", "atac_frip": "fraction of fragments in peaks",
             "doublet_score": "scrublet doublet score"}
# drawn on a log10 axis (counts, and the long-tailed TSS enrichment)
QC_LOG_AXIS = {"rna_n_counts", "rna_n_genes", "atac_n_counts", "atac_n_peaks", "atac_tss_enrichment"}


def qc_distributions(cells: pd.DataFrame, thresholds: pd.DataFrame, title: str = ""):
    """Histogram per QC metric of every incoming cell, kept and removed cells stacked, thresholds dashed.

    ``cells``: the per-cell QC table (metric columns, ``passed``); ``thresholds``: ``metric, low, high``.
    Count metrics and TSS enrichment are drawn on a log axis. With TSS enrichment, a last panel plots it
    against the ATAC counts (log-log), kept and removed cells coloured, its bound dashed. A table with a
    ``sample`` column of several samples is drawn per sample instead (:func:`qc_by_sample`). Returns the figure.
    """
    metrics = [m for m in QC_TITLES if m in cells and np.isfinite(cells[m].to_numpy(dtype=float)).any()
               and not (m == "rna_mito_fraction" and cells[m].max() == 0)]
    if "sample" in cells.columns and cells["sample"].nunique() > 1:
        return qc_by_sample(cells, thresholds, metrics, title)
    bounds = thresholds.set_index("metric")
    scatter = "atac_tss_enrichment" in metrics
    n_panels = len(metrics) + scatter
    n_columns = min(5, n_panels)
    n_rows = math.ceil(n_panels / n_columns)
    fig, axes = plt.subplots(n_rows, n_columns, figsize=(3.2 * n_columns, 3.0 * n_rows), squeeze=False)
    passed = cells["passed"].to_numpy(dtype=bool)
    for ax, metric in zip(axes.flat, metrics):
        values = cells[metric].to_numpy(dtype=float)
        finite = np.isfinite(values)
        shown, position, logged = _qc_axis(metric, values)
        bins = np.linspace(np.nanmin(shown), np.nanmax(shown) + 1e-9, 50)
        ax.hist([shown[passed & finite], shown[~passed & finite]], bins=bins, stacked=True,
                color=[OKABE_ITO[4], OKABE_ITO[5]],
                label=[f"kept ({passed.sum():,})", f"removed ({(~passed).sum():,})"])
        for side in ("low", "high"):
            bound = bounds.loc[metric, side] if metric in bounds.index else np.nan
            if np.isfinite(bound) and (not logged or bound > 0):
                ax.axvline(float(position(bound)), color="black", linestyle="--", lw=1)
        ax.set_xlabel(("log10 " if logged else "") + QC_TITLES[metric])
        ax.set_ylabel("cells")
        rule = bounds.loc[metric, "rule"] if metric in bounds.index else ""
        ax.set_title(f"{QC_TITLES[metric]}\n({rule})", fontsize=9)
    if scatter:
        ax = axes.flat[len(metrics)]
        x, _, _ = _qc_axis("atac_n_counts", cells["atac_n_counts"])
        y, position, _ = _qc_axis("atac_tss_enrichment", cells["atac_tss_enrichment"])
        for mask, colour, label in ((passed, OKABE_ITO[4], "kept"), (~passed, OKABE_ITO[5], "removed")):
            ax.scatter(x[mask], y[mask], s=4, color=colour, linewidths=0, rasterized=True, label=label)
        bound = bounds.loc["atac_tss_enrichment", "low"] if "atac_tss_enrichment" in bounds.index else np.nan
        if np.isfinite(bound) and bound > 0:
            ax.axhline(float(position(bound)), color="black", linestyle="--", lw=1)
        ax.set_xlabel("log10 ATAC counts per cell")
        ax.set_ylabel("log10 TSS enrichment")
        ax.set_title("TSS enrichment vs depth", fontsize=9)
    for ax in list(axes.flat)[n_panels:]:
        ax.axis("off")
    axes[0][0].legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _qc_axis(metric, values):
    """Values as drawn (log10 for the count metrics and TSS enrichment, floored) and a bound's position."""
    logged = metric in QC_LOG_AXIS
    floor = 1 if metric != "atac_tss_enrichment" else 1e-2

    def shown(x):
        x = np.asarray(x, dtype=float)
        return np.log10(np.maximum(x, floor)) if logged else x

    return shown(values), shown, logged


def qc_by_sample(cells: pd.DataFrame, thresholds: pd.DataFrame, metrics: list, title: str = "",
                 max_dots: int = 1500):
    """One panel per QC metric, one column of it per sample: a box of the sample's incoming cells (whiskers 5th-95th
    percentile), its cells as jittered dots (kept blue, at most ``max_dots`` per sample; removed vermillion, all)
    and its own thresholds as short dashed lines (thresholds without a ``sample`` column: one line across, the
    pooled bounds). Readable from 2 to ~16 samples. Returns the figure."""
    samples = list(dict.fromkeys(cells["sample"].astype(str)))
    own = cells["sample"].astype(str).to_numpy()
    per_sample = "sample" in thresholds.columns
    bounds = thresholds.assign(sample=thresholds["sample"].astype(str)) if per_sample else thresholds
    width = max(2.9, 1.3 + 0.32 * len(samples))
    turn = len(samples) > 5 or sum(len(s) for s in samples) > 2.2 * width * 4  # tick labels at an angle
    n_columns = max(1, min(len(metrics), 5, int(17 // width)))
    n_rows = math.ceil(len(metrics) / n_columns)
    fig, axes = plt.subplots(n_rows, n_columns, figsize=(width * n_columns, 3.1 * n_rows), squeeze=False)
    passed = cells["passed"].to_numpy(dtype=bool)
    rng = np.random.default_rng(0)  # jitter and the thinning of kept dots only
    x = np.arange(len(samples))
    for ax, metric in zip(axes.flat, metrics):
        values, shown, logged = _qc_axis(metric, cells[metric].to_numpy(dtype=float))
        finite = np.isfinite(cells[metric].to_numpy(dtype=float))
        data = [values[(own == s) & finite] for s in samples]
        ax.boxplot([d if len(d) else [np.nan] for d in data], positions=x, widths=0.6, whis=(5, 95),
                   showfliers=False, medianprops={"color": "black"}, boxprops={"color": "#555555"},
                   whiskerprops={"color": "#555555"}, capprops={"color": "#555555"})
        for i, sample in enumerate(samples):
            for mask, colour, cap in ((passed, OKABE_ITO[4], max_dots), (~passed, OKABE_ITO[5], None)):
                idx = np.flatnonzero((own == sample) & finite & mask)
                if cap is not None and len(idx) > cap:
                    idx = np.sort(rng.choice(idx, cap, replace=False))
                ax.scatter(i + rng.uniform(-0.25, 0.25, len(idx)), values[idx], s=3, color=colour, linewidths=0,
                           alpha=0.6 if colour == OKABE_ITO[4] else 0.9, rasterized=True, zorder=3)
        rows = bounds[bounds["metric"] == metric]
        for side in ("low", "high"):
            if per_sample:
                for i, sample in enumerate(samples):
                    bound = rows.loc[rows["sample"] == sample, side]
                    if len(bound) and np.isfinite(bound.iloc[0]) and (not logged or bound.iloc[0] > 0):
                        ax.hlines(shown(bound.iloc[0]), i - 0.4, i + 0.4, color="black", linestyle="--", lw=1.2,
                                  zorder=4)
            elif len(rows) and np.isfinite(rows[side].iloc[0]) and (not logged or rows[side].iloc[0] > 0):
                ax.axhline(shown(rows[side].iloc[0]), color="black", linestyle="--", lw=1, zorder=4)
        ax.set_xticks(x, samples, rotation=45 if turn else 0, ha="right" if turn else "center", fontsize=8)
        ax.set_xlim(-0.6, len(samples) - 0.4)
        ax.set_ylabel(("log10 " if logged else "") + QC_TITLES[metric], fontsize=8)
        rule = rows["rule"].iloc[0] if len(rows) else ""
        scope = "per sample" if per_sample else "pooled"
        note = textwrap.fill(f"({rule}, {scope})", int(11 * width)) if rule and rule != "none" else ""
        ax.set_title(f"{QC_TITLES[metric]}\n{note}".strip(), fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=OKABE_ITO[4], label=f"kept ({passed.sum():,})"),
               Line2D([], [], marker="o", linestyle="", color=OKABE_ITO[5], label=f"removed ({(~passed).sum():,})"),
               Line2D([], [], color="black", linestyle="--", label="threshold")]
    fig.legend(handles=handles, loc="upper right", fontsize=8, frameon=False, bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.98, 0.97))
    return fig
