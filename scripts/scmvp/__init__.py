"""scmvp: the importable package behind the scMVP Snakemake pipeline.

Sub-modules: io (readers of every paired technology), preprocessing (QC, TF-IDF/LSI, HVG),
simulate (the embedded example), model (the scMVP network, trainer and user class), metrics,
baselines, validation, cre, plots.
"""

__version__ = "0.1.0"
