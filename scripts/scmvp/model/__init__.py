"""The scMVP model (PyTorch), implemented from the paper (Li et al., Genome Biology 2022).

Modules: `distributions` (NB / ZIP log-likelihoods, Gaussian and VaDE GMM KL terms), `module` (network),
`data` (sparse CSR minibatching), `trainer` (training loop, checkpoints), `weight_choice` (the ATAC weight
chosen from held-out data), `scmvp` (user class :class:`SCMVP`), `imputation` (chunked writing of imputed.h5mu),
`host_memory` (large buffers kept in the heap while training).

Design choices worth knowing:

* ATAC encoder (`atac_encoder`): `mlp` (default since stop 30) = the sum over a cell's peaks of value x
  per-peak vector (`F.embedding_bag` over the minibatch's nonzeros, so no dense cells x peaks input), then
  LayerNorm, GELU, a linear layer. `attention` is the paper's transformer: peaks sorted by (chrom, start) and
  cut into `n_tokens` contiguous windows; a token is that sum over its window's peaks, + a learned position;
  pre-LN transformer blocks; mean pool. With the product of experts the transformer's expert alone carried
  almost no cell type (tissue: 15-NN accuracy 0.31, the MLP's 0.77) and the MLP clustered better on every
  criterion dataset (bench/RESULTS.md, "Which modality the joint latent uses"). Input values:
  log1p(count / cell total x idf x 1e4) (TF-IDF-like, per cell; idf = log1p(n / (1 + cells with the peak))
  over all cells of the input, validation cells included: an unsupervised statistic of the input, fixed
  before training and saved with the model, so every cell is embedded through the same transform).
* RNA encoder: mask attention over each cell's `top_genes_attended` highest log-normalised genes (unexpressed
  genes masked), learned per-head queries, keys/values = gene embedding + value embedding (linear in the
  expression value, with a per-gene slope for the values).
* Joint posterior (`joint_posterior`): `poe` (default) gives each modality encoder its own Gaussian head and
  takes q(z|x,y) = N(0, I) x q(z|x) x q(z|y) (precisions add, means are precision-weighted), so every cell and
  latent dimension leans on its more confident modality -- what WNN's per-cell modality weights do. `mlp` is
  the paper's network: one hidden layer over both encoders' outputs, then one Gaussian head. poe raised KMeans
  ARI and kNN label transfer on the hard tissue and sci-CAR and ARI on the example (whose kNN fell by 0.0008;
  bench/RESULTS.md, "The product of experts becomes the default").
* Prior: N(0, I) for `warmup_epochs`, then a GMM fitted (sklearn, diagonal) on the warm-up latent means, its
  variances widened by the mean posterior variance; pi, mu_c, log sigma_c^2 then learned by gradient of the
  KL term only (the decoders' guidance uses p(c|z) with the prior's parameters detached: reconstruction moves
  z, not the prior), and (`gmm_em`) after every epoch one EM step on the aggregate posterior of the training
  cells (responsibilities of the latent means; variances = spread of the means + mean posterior variance),
  after which AdamW's moments of the prior's parameters are reset (they belonged to the overwritten values).
  Components left with fewer than `gmm_min_fraction` of the cells are re-seeded by splitting the heaviest
  component: by gradient alone components died one by one (sci-CAR: 1-3 of ~10 left, some seeds collapsed
  to one cluster). With `gmm_split_merge` (default off) the EM step may also split one component whose cells'
  latent means two Gaussians describe better (BIC) and merge the two components cheapest to describe as one
  (scmvp.model.gmm_moves; the decoders' cluster embeddings follow the move).
  `n_components: auto` = number of Leiden clusters (kNN graph, resolution 1) of the warm-up latent.
  No component's variance falls below `gmm_min_variance` (default 0.5 since stop 47; fit, EM and gradient
  steps): without a floor the prior tightens itself (EM shrinks a component to its cells' spread, the KL pulls
  them closer) and squeezes the example simulator's trajectory into clumps that KMeans cuts off the labels'
  split; with the full-weight warm-up the floor also clusters the tissue better (bench/RESULTS.md, "The
  variance floor 0.5 with the watched warm-up becomes the default").
* Optimisation: an epoch has at least `min_steps_per_epoch` steps (further shuffled passes over a small
  dataset), so the schedules counted in epochs (GMM warm-up, KL warm-up, cycle start) get enough optimizer
  steps; batch 32; AdamW with a cosine decay of the learning rate to `final_lr_fraction` x lr at the end.
  Too few steps was the main reason for poor latents on small data (sci-CAR 2.6k cells at batch 128:
  19 steps/epoch; at batch 64 one seed in five still had an unstructured latent when the GMM was fitted
  and ended at ARI 0.61; at batch 32 all five reach 0.63 within 100 s).
* Schedule: the schedule keys are epochs or fractions of `n_epochs` (resolved to epochs by
  `scmvp.model.scmvp.model_config`). Default: 40 epochs, the normal prior and no cycle term for the first half,
  the mixture fitted after epoch 20 (24 where the full-weight warm-up is kept: the settle epochs below) and the
  cycle from epoch 21, no early stopping. A mixture fitted after 2
  epochs (the earlier default) locks in types that have not yet separated -- the tissue's single-modality types,
  the example simulator's close pair in one model seed of five -- and does not let them go; with the late fit
  they have their own components. The cost: sci-CAR's time points, which the early mixture finds (KMeans ARI
  0.72 -> 0.40; bench/RESULTS.md, "The late schedule becomes the default").
* Likelihood weighting: `atac_weight` (default 0.05) scales the ATAC negative log-likelihood. The ATAC
  likelihood sums over ~50k-100k peaks vs ~1-3k genes, so the plain ELBO (1) lets the (noisy, sparse)
  ATAC reconstruction dominate the latent (sci-CAR ARI ~0); scaling per-modality likelihoods is a
  tempered-likelihood choice, not the paper's plain ELBO. The right weight differs by dataset (0.05 on sci-CAR,
  0.3 where types differ mainly in chromatin); `atac_weight_candidates` chooses it from held-out ATAC likelihood
  (`weight_choice`: one model per candidate up to `atac_weight_decision_epoch`, the end of the warm-up by
  default; the largest weight whose held-out ATAC NLL there stays within `atac_weight_tolerance` of the
  smallest's is trained on, the others dropped).
* Warm-up weight (`warmup_atac_weight`, default 1, watched): the ATAC likelihood's weight in the warm-up epochs
  only (under N(0, I), before the mixture is fitted), `atac_weight` after. The warm-up shapes the latent the
  mixture is fitted on: at the full weight there the tissue's large chromatin-only type gets into the latent and
  stays after the switch to 0.05, with the clustering kept; on sci-CAR the latent then loses label transfer. So
  the full-weight warm-up is watched (`warmup_atac_weight_max_rise`, 1 %): once its held-out ATAC NLL climbs more
  than that above its lowest, it is given up and the model trained again at `atac_weight` throughout (one run
  where kept; measured: kept on every simulated tissue run, given up on sci-CAR after epoch 8 and on the example
  simulator after 13-16). `warmup_atac_weight_candidates` instead trains each candidate's warm-up and compares them
  at its end, as the weight choice does for the whole run (bench/RESULTS.md, "The ATAC weight of the warm-up",
  "The warm-up weight given up in one run").
  `warmup_atac_weight_settle_epochs` puts epochs at `atac_weight`, still under N(0, I), between a kept warm-up
  and the mixture's fit: the full-weight warm-up latent has merged types that differ only in RNA (the tissue's
  RNA-only types: 15-NN recall near 0 at its end), which come apart within a few epochs at `atac_weight`; fitted
  there, the mixture gets components for them (simulated tissues: 9-11 instead of 7-10) before it pulls cells to
  its means. Where the warm-up weight is null or given up, the mixture comes after `warmup_epochs` as before.
* Cluster guidance: p(c|z) weights learned cluster embeddings, gated by the decoder state, added to the
  decoders' hidden layer. ZIP dropout logits = per-peak logit + per-cell offset (cheaper than a second
  hidden x peaks head).
* ATAC depth (`atac_depth_covariate`, off by default): the ATAC decoder also reads the cell's standardised log
  ATAC library (mean and sd over every cell the model was built on, as the idf; kept with the model), so the
  ZIP's zero-inflation can follow depth without z encoding it (ATAC counts cut sites: a fragment puts 1-2 counts
  in a peak, so the zeros do not scale with depth as a Poisson's would); imputation decodes at the median library.
* ATAC count splitting (`atac_count_split`, off by default): in training steps the encoders read a binomial
  thinning y_in ~ Binomial(y, f) of each cell's ATAC counts and the ZIP scores y - y_in (at that part's library),
  molecular cross-validation's split: given the rates the two parts' noise is independent, so the autoencoder's
  copy path -- a latent that carries the input's sampling noise to the output -- gains nothing. Validation, latents
  and imputation read every count. At a high ATAC weight (the paper's plain ELBO, 1) it keeps the simulated tissue's
  RNA-only types and raises label transfer on the tissue and sci-CAR; at the default weight it does not help
  (bench/RESULTS.md, "ATAC count splitting").
* Cycle: single-modality encoders q(z|x), q(z|y) are trained at every epoch on the real inputs to match the
  joint posterior (KL(stop_grad q(z|x,y) || q(z|.)), the `align` term); from `cycle_start_epoch` the decoded
  means pass through them and KL(q(z|x,y) || q(z|x_hat)) + KL(q(z|x,y) || q(z|y_hat)) is added (`cycle`).
  Its gradient also moves q(z|x,y) towards what each decoded profile alone encodes (a consensus: types that one
  modality alone tells apart merge); `cycle_moves_joint: false` makes q(z|x,y) a fixed target of that KL.
* Precision (`precision`): bf16 autocast (auto: on CUDA devices with bf16) covers the encoders and hidden
  layers only; the posterior heads, the decoders' output layers and every likelihood/KL term run in float32
  (autocast off), so X_scmvp and the imputed values are float32 computations. The NB log theta is clamped
  to [-10, 8]: above, float32 log_nb cancels (0.5 nats per entry at 14, positive log-probabilities at 20).
* Batches (`batch_key`): the batch one-hot is concatenated to the input of both decoders, as scVI conditions its
  decoder (https://docs.scvi-tools.org/en/1.3.3/api/reference/scvi.module.VAE.html), so p(x | z, s), p(y | z, s)
  carry the library effect; with `encode_batch` (default false, as scVI's `encode_covariates=False`) also to the
  joint encoder's input after the two modality encoders, and to the single-modality posterior heads. The GMM
  prior and the cluster guidance are batch-free. Without batches (or with one) no input column exists: the
  network, its random initialisation and every number are those of the batch-free model. Imputation may decode
  every cell in one reference batch (`impute_reference_batch`); the latent is unaffected by that choice.
* Host memory (`host_memory`): while `SCMVP.train` runs, glibc serves large allocations from the heap and keeps
  freed memory there (mallopt: no mmap, trim threshold 2 GiB; restored and trimmed on exit). The minibatch x peaks
  buffers of a step were each mmapped, page-faulted and unmapped again: 13 % of an epoch at 10k cells x 100k peaks
  on 2 threads, 11 % on 1; training's peak RSS unchanged. Not used for imputation, whose peak RSS it raised by
  ~1.5 GiB (bench/RESULTS.md, "Page faults of large buffers").
* Imputation: RNA = NB means at library 1e4; ATAC = P(y > 0) of the ZIP at the median ATAC library size;
  both dense float32, written chunk by chunk into the output HDF5 (never all cells x peaks in memory).
* Config (`model_config`): the settings given to `SCMVP(...)` are checked against the `model` section of
  config/schemas/config.schema.yaml (the defaults' single source) with the workflow's one-line messages
  (`scmvp.config_check.ConfigError`, a ValueError): an unknown key, a wrong type or a value out of range stops
  there, not inside training.
"""
from .scmvp import SCMVP, model_config, model_defaults

__all__ = ["SCMVP", "model_config", "model_defaults"]
