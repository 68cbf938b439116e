# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · DeepFM
#
# Two models so far, two gaps. The FM of [chapter 01](01_fm.ipynb) learns every pairwise
# interaction from the raw features, but nothing beyond pairs. Wide & Deep
# ([chapter 04](04_wide_deep.ipynb)) adds an MLP for higher-order patterns, but its wide part
# only knows the crosses someone engineered by hand. DeepFM {cite}`guo2017deepfm` puts an FM
# where Wide & Deep had its wide part and lets it share **one embedding table** with the deep
# part: the FM component learns the low-order (pairwise) interactions, the deep component the
# high-order ones, both from the same raw fields, trained together from scratch, with no
# feature engineering and no pre-training (FNN, an earlier model, initialised an MLP from a
# separately trained FM).

# %%
# %matplotlib inline
import copy
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Code, display

from featint import build_task, load_movielens
from featint.baselines import Popularity, RandomScores
from featint.evaluate import evaluate, leaderboard, quick, subsample
from featint.models import build_model, count_parameters
from featint.models.deepfm import DeepFM
from featint.train import fit

print("quick mode:", quick(), "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## The model
#
# For a sample $\mathbf x$ with $m$ fields, DeepFM predicts
#
# $$\hat y = \mathrm{sigmoid}(y_{FM} + y_{DNN}).$$
#
# The **FM component** is exactly the factorization machine, in the paper's notation
#
# $$y_{FM} = \langle w, x \rangle + \sum_{j_1=1}^{d} \sum_{j_2=j_1+1}^{d} \langle V_{j_1},
# V_{j_2} \rangle\, x_{j_1} \cdot x_{j_2}$$
#
# (plus a global bias), with a latent vector $V_i \in \mathbb R^k$ for every feature $i$.
#
# The **deep component** reads the same vectors. The embedding of field $f$ is
# $\mathbf e_f = \sum_{i \in f} x_i V_i$: for a one-hot field, the $V_i$ of its one feature;
# for the history bag or the genres, the weighted mean of the members' vectors; for a numeric
# field, the values times their vectors (the paper's treatment of continuous fields). Then
#
# $$a^{(0)} = [\mathbf e_1, \mathbf e_2, \ldots, \mathbf e_m], \qquad
# a^{(l+1)} = \sigma\big(W^{(l)} a^{(l)} + b^{(l)}\big), \qquad
# y_{DNN} = W^{|H|+1} a^{|H|} + b^{|H|+1},$$
#
# with $\sigma$ = ReLU, $|H|$ hidden layers, and a linear output unit: the sigmoid is applied
# once, to the sum. (In the book's notation page: $V_i = \mathbf v_i$, $a^{(0)} = \mathbf z_0$,
# $a^{(l)} = \mathbf z_l$, $W^{(l)} = \mathbf W_{l+1}$.) Seen from the deep component, $V$ is the weight matrix from the sparse
# input to the embedding layer, so every gradient the MLP sends back trains the FM's vectors
# too, and the reverse.
#
# On the next-movie task the $m = 17$ fields are the 14 context fields (user, age, ..., history,
# the three numeric ones) and the movie's 3 (movie, genres, year). The model,
# `featint/models/deepfm.py`, is FM's pieces plus one `ContextItemMLP`:

# %%
ml = load_movielens()
task = build_task(ml)
test_ex = task.examples("test")
display(Code(inspect.getsource(DeepFM), language="python"))

# %% [markdown]
# The FM part is computed per side as in [chapter 01](01_fm.ipynb): the context alone, the
# movie alone, and all context-movie pairs as one dot product. The deep part splits its first
# layer, $W^{(0)} a^{(0)} + b^{(0)} = (W^{(0)}_c a_c + b^{(0)}) + W^{(0)}_m a_m$, with
# $a_c = [\mathbf e_1, \ldots, \mathbf e_{14}]$ computed once per context and $a_m = [\mathbf
# e_{15}, \mathbf e_{16}, \mathbf e_{17}]$ once per movie, so ranking all 1,682 movies costs a
# broadcast addition per pair before the remaining layers (see [chapter 04](04_wide_deep.ipynb)).
#
# ### Two checks in float64
#
# **DeepFM contains FM.** With the deep component's output layer set to zero, $y_{DNN} = 0$ and
# DeepFM must be the FM with the same $w_0$, $w$ and $V$: copy them into featint's `fm` model
# and compare, on all movies and on sampled candidates.

# %%
deepfm64 = build_model("deepfm", task, seed=0).double().eval()
with torch.no_grad():
    for param in deepfm64.parameters():  # random weights everywhere, so every term counts
        param.normal_(std=0.1)
fm64 = build_model("fm", task, seed=1).double().eval()
shared = {k: v for k, v in deepfm64.state_dict().items() if not k.startswith("dnn.")}
fm64.load_state_dict(shared)  # strict: exactly FM's parameters, w0, linear, embedding
print("copied into FM:", sorted(shared))

ctx = task.context(test_ex[:64])
ctx.val = ctx.val.double()
all_items = torch.arange(task.num_items)
candidates = torch.from_numpy(np.random.default_rng(0).integers(0, task.num_items, (64, 5)))
with torch.no_grad():
    before = (deepfm64(ctx, all_items) - fm64(ctx, all_items)).abs().max()
    deepfm64.dnn.output.weight.zero_()
    deepfm64.dnn.output.bias.zero_()
    gap_all = (deepfm64(ctx, all_items) - fm64(ctx, all_items)).abs().max()
    gap_cand = (deepfm64(ctx, candidates) - fm64(ctx, candidates)).abs().max()
print(f"max |DeepFM - FM|: {before:.3f} with the DNN on; {gap_all:.1e} (all movies) and "
      f"{gap_cand:.1e} (candidates) with its output layer at zero")
assert before > 1e-3 and gap_all < 1e-10 and gap_cand < 1e-10

# %% [markdown]
# **The split first layer is the MLP on the concatenation.** A naive version builds
# $a^{(0)} = [\mathbf e_1, \ldots, \mathbf e_{17}]$ for each of 8 contexts × 1,682 movies and
# applies the full $W^{(0)}$; it must give the deep component's scores.

# %%
check = build_model("deepfm", task, seed=0).double().eval()
with torch.no_grad():
    for param in check.parameters():
        param.normal_(std=0.1)
    ctx8 = task.context(test_ex[:8])
    ctx8.val = ctx8.val.double()
    a_c = check.embedding.fields(ctx8, check.num_ctx_fields).flatten(-2)         # (8, 224)
    a_m = check.embedding.fields(check.items(all_items), 3).flatten(-2)          # (1682, 48)
    a0 = torch.cat([a_c[:, None].expand(-1, task.num_items, -1),
                    a_m[None].expand(8, -1, -1)], -1)                            # (8, 1682, 272)
    W0 = torch.cat([check.dnn.context.weight, check.dnn.item.weight], 1)
    naive = check.dnn.head(a0 @ W0.T + check.dnn.context.bias).squeeze(-1)
    split = check.dnn(a_c, a_m).squeeze(-1)
    # and y_DNN inside the model: DeepFM minus the same model with y_DNN switched off
    y_all = check(ctx8, all_items)
    check.dnn.output.weight.zero_()
    check.dnn.output.bias.zero_()
    y_dnn = y_all - check(ctx8, all_items)
print(f"a^(0) per pair {tuple(a0.shape)}: max |naive - split| = {(naive - split).abs().max():.1e}, "
      f"max |naive - y_DNN in DeepFM| = {(naive - y_dnn).abs().max():.1e}")
assert torch.allclose(naive, split, rtol=0, atol=1e-10)
assert torch.allclose(naive, y_dnn, rtol=0, atol=1e-10)

# %% [markdown]
# ### Defaults, and where featint departs from the paper
#
# | | paper | here |
# |---|---|---|
# | deep layers | 400-400-400, ReLU | **64-64-64**, ReLU |
# | dropout | 0.5 | 0.5 (after every hidden layer, as in the paper) |
# | shape | constant width (best in their study) | constant width, 3 layers |
# | optimiser | Adam | Adam, learning rate $5 \cdot 10^{-3}$ (the book's common setting) |
# | embeddings | shared by FM and DNN, learned from scratch | the same, $k = 16$ |
#
# (The paper's "dropout" is the probability of *keeping* a unit; at 0.5 the two readings
# agree. Its hyper-parameter study found keep probabilities 0.6–0.9 best.)
#
# Width is the deviation. Every layer after the (split) first one, and the output unit, is
# paid once per (context, movie) pair when ranking all movies:

# %%
def per_pair_cost(hidden: tuple[int, ...]) -> int:
    """Multiply-adds per (context, movie) pair after the split first layer."""
    return sum(a * b for a, b in zip(hidden, hidden[1:], strict=False)) + hidden[-1]


dfm_hidden = tuple(m.out_features for m in check.dnn.modules()
                   if isinstance(m, torch.nn.Linear))[1:-1]  # the model's defaults
cost_here, cost_paper = per_pair_cost(dfm_hidden), per_pair_cost((400, 400, 400))
cost_wd = per_pair_cost((128, 64))  # chapter 04's Wide & Deep
assert dfm_hidden == (64, 64, 64) and cost_here == cost_wd
print(f"multiply-adds per pair: {cost_here:,} here (Wide & Deep's 128-64: {cost_wd:,}), "
      f"{cost_paper:,} with the paper's 400-400-400 ({cost_paper / cost_here:.0f}x)")

# %% [markdown]
# That factor would turn the ranking time measured below from seconds into many minutes, paid
# again on the validation set after every epoch. Three layers of 64 cost the same per pair as
# Wide & Deep's 128-64 and keep the paper's depth and constant shape.
#
# ## Training
#
# The book's common settings for both models: $k = 16$, Adam with learning rate
# $5 \cdot 10^{-3}$, batches of 1,024 examples with 4 sampled negatives, binary
# cross-entropy, at most 20 epochs, early stopping on the validation MRR (patience 3). FM is
# trained here too, the same way, for the comparison (quick mode: 2 epochs on 4,096 examples).

# %%
models, histories = {}, {}
for name in ("fm", "deepfm"):
    models[name] = build_model(name, task, seed=0, embed_dim=16)
    print(f"{name}: {count_parameters(models[name]):,} parameters")
    histories[name] = fit(models[name], task, epochs=20, batch_size=1024, lr=5e-3, patience=3,
                          seed=0, progress=False)
deepfm = models["deepfm"]
print(f"deepfm: {count_parameters(deepfm.dnn):,} of them in the deep component")

# %% [markdown]
# ## Test results
#
# The test set against all movies, beside random scores, most-popular and FM. The ranking
# time is that of `evaluate` for the whole test split (every context against all 1,682
# movies, plus the bootstrap), on the threads shown at the top.

# %%
evaluations, seconds = {}, {}
for name, model in (("random", RandomScores(seed=0)), ("most popular", Popularity(task)),
                    ("fm", models["fm"]), ("deepfm", deepfm)):
    start = time.perf_counter()
    evaluations[name] = evaluate(model, task, progress=False)
    seconds[name] = time.perf_counter() - start
results = {name: ev.row() for name, ev in evaluations.items()}
for name, history in histories.items():
    results[name].update(params=count_parameters(models[name]), epochs=len(history.epochs))
    per_epoch = np.mean([row["seconds"] for row in history.epochs])
    print(f"{name}: best epoch {history.best_epoch} of {len(history.epochs)}, "
          f"{per_epoch:.1f} s per training epoch, test ranking {seconds[name]:.1f} s "
          f"for {len(evaluations[name].ranks):,} contexts")
leaderboard(results)

# %% [markdown]
# With the paper's layers, the same ranking would take roughly (deep part scaled by the ratio
# of per-pair costs above, an estimate):

# %%
print(f"about {seconds['deepfm'] * cost_paper / cost_here / 60:.0f} min instead of "
      f"{seconds['deepfm']:.0f} s for {len(evaluations['deepfm'].ranks):,} contexts")

# %%
dfm_res, pop_res = results["deepfm"], results["most popular"]
assert all(np.isfinite(v) for v in (dfm_res["hr@10"], dfm_res["mean_rank"]))
assert 1 <= dfm_res["mean_rank"] <= task.num_items
if not quick():
    assert dfm_res["hr@10_lo"] > pop_res["hr@10_hi"]
    assert dfm_res["mean_rank_hi"] < pop_res["mean_rank_lo"]

# %% [markdown]
# ## Which component does the work?
#
# The logit of DeepFM is a sum, so it splits exactly: $y_{FM}$ is DeepFM with its output layer
# at zero, $y_{DNN}$ the rest. For a sample of test contexts, two questions per component:
# how much does it vary across the 1,682 movies (a component that gives every movie the same
# score does not rank anything), and how far above the average movie does it lift the true
# next movie? Beside them, the training curves of DeepFM and FM.

# %%
@torch.no_grad()
def components(model: DeepFM, ex: np.ndarray) -> pd.DataFrame:
    """Per example: spread over movies and lift of the target, for y_FM and y_DNN."""
    fm_only = copy.deepcopy(model).eval()  # the same model with y_DNN switched off
    fm_only.dnn.output.weight.zero_()
    fm_only.dnn.output.bias.zero_()
    out = []
    for batch in np.array_split(ex, max(1, len(ex) // 256)):
        context = task.context(batch)
        y_fm = fm_only(context, all_items)
        y_dnn = model(context, all_items) - y_fm
        target = torch.from_numpy(task.target[batch])[:, None]
        row = {}
        for name, y in (("FM", y_fm), ("DNN", y_dnn)):
            row[f"spread {name}"] = y.std(1).numpy()
            row[f"lift {name}"] = (y.gather(1, target)[:, 0] - y.mean(1)).numpy()
        out.append(pd.DataFrame(row))
    return pd.concat(out, ignore_index=True)


parts = components(deepfm, subsample(test_ex, 1000 if quick() else 5000))
parts.describe().loc[["mean", "50%", "std"]].round(3)

# %%
fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
for name, history in histories.items():
    epochs = pd.DataFrame(history.epochs).set_index("epoch")
    ax[0].plot(epochs.index, epochs["valid_mrr"], "o-", label=name)
ax[0].set(xlabel="epoch", ylabel="MRR", title="Validation MRR while training")
ax[0].xaxis.get_major_locator().set_params(integer=True)
ax[0].legend()
bins = np.linspace(0, parts[["spread FM", "spread DNN"]].to_numpy().max(), 40)
for name in ("FM", "DNN"):
    ax[1].hist(parts[f"spread {name}"], bins=bins, alpha=0.6, label=f"$y_{{{name}}}$")
ax[1].set(xlabel="std of the component over all movies", ylabel="test contexts",
          title="How much each component ranks")
ax[1].legend()
ax[2].scatter(parts["lift FM"], parts["lift DNN"], s=3, alpha=0.3)
ax[2].axhline(0, color="grey", lw=0.8)
ax[2].axvline(0, color="grey", lw=0.8)
lim = np.percentile(np.abs(parts[["lift FM", "lift DNN"]].to_numpy()), 99.5)
ax[2].set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal",
          xlabel="lift of the target by $y_{FM}$", ylabel="lift of the target by $y_{DNN}$",
          title="Who lifts the true next movie?")
fig.tight_layout()
plt.show()

# %%
shares = {"y_DNN spreads wider than y_FM": (parts["spread DNN"] > parts["spread FM"]).mean(),
          "y_FM lifts the target": (parts["lift FM"] > 0).mean(),
          "y_DNN lifts the target": (parts["lift DNN"] > 0).mean()}
for what, share in shares.items():
    print(f"{what}: {share:.0%} of the test contexts")
assert np.isfinite(parts.to_numpy()).all()
if not quick():
    assert (parts[["lift FM", "lift DNN"]].mean() > 0).all()  # both components help on average
    assert parts["spread DNN"].mean() > 2 * parts["spread FM"].mean()
    assert min(shares.values()) > 0.5

# %% [markdown]
# Both components rank, and on average both lift the true next movie above the average one, but
# on different scales. After training, the DNN's scores spread over the movies several times
# wider than the FM's, in most contexts, and it gives most of the target's lift; the FM part is
# a smaller push in the same direction for most examples. So the low-order part did not make
# the MLP redundant, nor the reverse. Shared embeddings mean the two are not independent
# experts: the FM term shapes the vectors the MLP reads, and the MLP's gradients move the
# vectors the FM multiplies.
#
# ## What DeepFM leaves open
#
# The deep component still sees the embeddings only through a concatenation: it has to learn
# with generic layers that *products* of embeddings matter, while the FM part, which knows it,
# sums those products into a single number. NFM {cite}`he2017nfm`
# ([chapter 06](06_nfm.ipynb)) keeps the products as a vector (Bi-Interaction pooling) and
# feeds *that* to the MLP; DLRM {cite}`naumov2019dlrm` ([chapter 07](07_dlrm.ipynb)) feeds the
# MLP the dot products of every pair of fields.
