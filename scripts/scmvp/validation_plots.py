"""Figures of the validation stage (bulk RNA, bulk ATAC, DEG overlap, trajectory); each writes one PNG."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

INPUT_COLORS = {"raw": "#9e9e9e", "scmvp": "#d95f02", "scvi": "#1b9e77", "imputed": "#d95f02"}


def _color(name):
    return INPUT_COLORS.get(name, "#7570b3")


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _grouped_boxes(ax, table: pd.DataFrame, value: str, inputs, groups):
    """Boxes of ``value`` per group (x) and input (colour, side by side)."""
    width = 0.8 / max(1, len(inputs))
    for j, input_name in enumerate(inputs):
        data = [table.loc[(table["label"] == g) & (table["input"] == input_name), value].dropna().to_numpy()
                for g in groups]
        positions = np.arange(len(groups)) + (j - (len(inputs) - 1) / 2) * width
        present = [i for i, d in enumerate(data) if len(d)]
        if not present:
            continue
        boxes = ax.boxplot([data[i] for i in present], positions=positions[present], widths=width * 0.9,
                           patch_artist=True, showfliers=False)
        for patch in boxes["boxes"]:
            patch.set_facecolor(_color(input_name))
        ax.plot([], [], color=_color(input_name), linewidth=8, label=input_name)
    ax.set_xticks(np.arange(len(groups)))
    ax.set_xticklabels(groups, rotation=45, ha="right")
    ax.set_ylabel(value)


def plot_bulk_rna(per_cell: pd.DataFrame, path):
    """Per-cell Pearson and Spearman correlation with bulk, per label (x) and input (colour)."""
    inputs = [i for i in ("raw", "scmvp", "scvi") if i in set(per_cell["input"])]
    groups = sorted(per_cell["label"].astype(str).unique())
    table = per_cell.assign(label=per_cell["label"].astype(str))
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.4 * len(groups) + 3) * 1.6, 4))
    for ax, value in zip(axes, ("pearson", "spearman")):
        _grouped_boxes(ax, table, value, inputs, groups)
        ax.set_title(f"cell vs bulk ({value})")
    axes[0].legend(frameon=False, fontsize=8)
    _save(fig, path)


def plot_bulk_atac(per_cell: pd.DataFrame, path):
    """Per-cell precision (bulk-supported / called peaks) and supported peaks, per input."""
    inputs = [i for i in ("raw", "scmvp") if i in set(per_cell["input"])] or sorted(per_cell["input"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    for ax, value in zip(axes, ("precision", "n_supported")):
        data = [per_cell.loc[per_cell["input"] == i, value].dropna().to_numpy() for i in inputs]
        boxes = ax.boxplot(data, patch_artist=True, showfliers=False)
        for patch, input_name in zip(boxes["boxes"], inputs):
            patch.set_facecolor(_color(input_name))
        ax.set_xticks(np.arange(1, len(inputs) + 1))
        ax.set_xticklabels(inputs)
        ax.set_ylabel(value)
    axes[0].set_title("called peaks supported by bulk")
    axes[1].set_title("bulk-supported peaks per cell")
    _save(fig, path)


def plot_deg(overlap: pd.DataFrame, path):
    """Precision/recall of the top DE genes per label (x) and input (colour); Jaccard with raw without a
    reference."""
    values = ["precision", "recall"] if overlap["precision"].notna().any() else ["jaccard_with_raw"]
    labels = sorted(overlap["label"].astype(str).unique())
    inputs = sorted(overlap["input"].unique(), key=lambda i: (i != "raw", i))
    fig, axes = plt.subplots(1, len(values), figsize=(max(5, 0.9 * len(labels) + 2) * len(values), 4), squeeze=False)
    width = 0.8 / max(1, len(inputs))
    for ax, value in zip(axes[0], values):
        for j, input_name in enumerate(inputs):
            sub = overlap[overlap["input"] == input_name]
            sub = sub.set_index(sub["label"].astype(str))
            heights = [sub[value].get(label, np.nan) for label in labels]
            ax.bar(np.arange(len(labels)) + (j - (len(inputs) - 1) / 2) * width, heights, width=width,
                   color=_color(input_name), label=input_name)
        ax.set_xticks(np.arange(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel(value)
    axes[0][0].legend(frameon=False, fontsize=8)
    _save(fig, path)


def plot_trajectory(summary: pd.DataFrame, cells: pd.DataFrame, path):
    """Bars: Spearman with the reference pseudotime per embedding; scatter: pseudotime vs reference."""
    embeddings = list(summary["embedding"])
    fig, axes = plt.subplots(1, 1 + len(embeddings), figsize=(3.6 * (1 + len(embeddings)), 3.6))
    axes = np.atleast_1d(axes)
    axes[0].bar(embeddings, summary["spearman"], color=["#d95f02" if e == "scmvp" else "#7570b3" for e in embeddings])
    axes[0].set_ylim(min(0, float(np.nanmin(summary["spearman"])) - 0.05) if len(summary) else 0, 1)
    axes[0].set_ylabel("Spearman with reference pseudotime")
    for ax, embedding in zip(axes[1:], embeddings):
        ax.scatter(cells["reference_pseudotime"], cells[f"dpt_{embedding}"], s=4, alpha=0.6)
        ax.set_xlabel("reference pseudotime")
        ax.set_ylabel("diffusion pseudotime")
        ax.set_title(embedding)
    _save(fig, path)
