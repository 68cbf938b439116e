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
# # 07 · DLRM
#
# The previous chapters came from research on sparse prediction; the Deep Learning
# Recommendation Model (DLRM) {cite}`naumov2019dlrm` comes from industry. Facebook published
# it as a reference design for personalisation and as a benchmark for the hardware that runs
# such models, where huge embedding tables make the memory traffic and a few MLPs make the
# arithmetic. Its design answers three practical questions the earlier models leave open:
#
# - **dense features.** Real systems have counts, ratios and averages beside categorical ids.
#   FM gives a real-valued feature one vector scaled by its value; DLRM sends all the dense
#   features through their own MLP (the *bottom* MLP) to a vector the size of an embedding.
# - **which interactions, at what cost.** FM interacts every pair of non-zero *features*,
#   so a history of 300 movies brings 45,000 pairs inside the bag alone. DLRM pools each
#   *field* into one vector first and takes the dot products between fields: the FM idea at
#   field level, a fixed number of pairs.
# - **what to do with them.** The dot products are not summed, as in FM, or pooled, as in
#   NFM ([chapter 06](06_nfm.ipynb)): each one is an input of the *top* MLP, which learns how
#   much each pair of fields matters and how they combine.
#
# The seed article of this project described a simplified DLRM that concatenates the vectors
# instead of taking dot products; featint has both, `dlrm` and `dlrm_simplified`, and this
# chapter compares them.

# %%
# %matplotlib inline
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Code, display

from featint import build_task, load_movielens
from featint.baselines import Popularity, RandomScores
from featint.evaluate import evaluate, leaderboard, quick
from featint.models import build_model, count_parameters
from featint.models.dlrm import DLRM
from featint.task import Features
from featint.train import fit

print("quick mode:", quick(), "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## The model
#
# Following the paper: the dense features $\mathbf x_d$ go through the bottom MLP,
# $\mathbf z = \mathrm{MLP}_{bot}(\mathbf x_d) \in \mathbb R^k$. A sparse field $f$ is an
# embedding lookup: with $\mathbf a_f$ its one-hot (or, for a bag, weighted multi-hot) vector
# and $W_f$ its table, $\mathbf e_f = W_f^\top \mathbf a_f \in \mathbb R^k$. Write
# $\mathbf t_0 = \mathbf z$ and $\mathbf t_1, \ldots, \mathbf t_F$ for the field vectors. The
# **dot interaction** keeps the processed dense vector and every pair's dot product, each pair
# once and no vector with itself (the strict lower triangle of $T T^\top$):
#
# $$R = \big[\mathbf z,\ (\mathbf t_i^\top \mathbf t_j)_{0 \le j < i \le F}\big],
# \qquad \hat y = \mathrm{MLP}_{top}(R),$$
#
# and a sigmoid turns $\hat y$ into a probability (featint keeps the logit and trains with
# binary cross-entropy on logits, the same thing). The **concatenation** variant of the seed
# article uses $R = [\mathbf t_0, \mathbf t_1, \ldots, \mathbf t_F]$ and leaves every
# interaction to the top MLP.
#
# On the next-movie task the dense features are the three numeric context fields (the user's
# mean rating so far, genre shares, genre mean ratings); every other field is sparse. All
# sizes come from the task's schema:

# %%
ml = load_movielens()
task = build_task(ml)
dlrm = build_model("dlrm", task, seed=0)
rows = []
for f in task.schema.fields:
    role = "dense" if f.kind == "numeric" else "sparse"
    rows.append({"field": f.name, "side": f.side, "kind": f.kind, "size": f.size, "role": role})
fields = pd.DataFrame(rows).set_index("field")
f_c, f_m = 1 + len(dlrm.ctx_sparse), dlrm.num_item_fields
print(f"dense vector: {dlrm.num_dense} values -> bottom MLP "
      f"{[m.out_features for m in dlrm.bottom if isinstance(m, torch.nn.Linear)]}")
print(f"vectors: z + {f_c - 1} sparse context fields = {f_c} context vectors, "
      f"{f_m} movie vectors; {(f_c + f_m) * (f_c + f_m - 1) // 2} pairs")
print(f"top MLP input: {dlrm.top[0].in_features} = k + pairs; "
      f"concatenation variant: {build_model('dlrm_simplified', task).top[0].in_features} "
      f"= {f_c + f_m} vectors x k")
fields.transpose()

# %% [markdown]
# ## Ranking every movie
#
# Of the 105 dot products, those among the 12 context vectors do not depend on the movie and
# those among the 3 movie vectors do not depend on the context; only the $12 \times 3$
# context-movie dots do. featint lists $R$ in that order, a permutation of the paper's (the
# top MLP does not care about the order of its inputs):
#
# $$R = [\,\underbrace{\mathbf z,\ \text{dots inside } T_c}_{\mathbf r_c}\ |\
# \underbrace{\text{dots inside } T_m}_{\mathbf r_m}\ |\ (\mathbf t_m^\top \mathbf t_c)_{m,
# c}\,].$$
#
# The first layer of the top MLP, $W = [W_c \,|\, W_m \,|\, W_x]$, then splits as
#
# $$W R + \mathbf b = \underbrace{W_c \mathbf r_c + \mathbf b}_{\text{per context}} +
# \underbrace{W_m \mathbf r_m}_{\text{per movie}} + \sum_{m, c} W_x[\cdot, m, c]\,
# \mathbf t_m^\top \mathbf t_c,$$
#
# and the last sum is linear in each $\mathbf t_m$: with $U[h, m] = \sum_c W_x[h, m, c]\,
# \mathbf t_c$, built once per context, it is $\langle \operatorname{vec} T_m, U[h]\rangle$,
# so for all 1,682 movies it is one matrix product per context. Only the rest of the top MLP
# runs on every (context, movie) pair. For the concatenation variant $W_x$ is empty. The whole
# model, `featint/models/dlrm.py`:

# %%
display(Code(inspect.getsource(DLRM), language="python"))

# %% [markdown]
# Check, in float64 with every weight random: the DLRM equation written out naively, one
# field and one pair at a time in the paper's lower-triangle order, then reordered and fed to
# the top MLP as one plain network, agrees with both item forms of the model.

# %%
def dlrm_naive(model, task, ex, movies):
    """The logit for each example and movie, from the definitions: (len(ex), len(movies))."""
    V = model.embedding.embedding.weight
    ctx_fields, item_fields = task.schema.context_fields, task.schema.item_fields

    def field_vector(f, idx, val):  # e_f = sum of x_j v_j over the field's non-zeros
        return sum((v * V[i] for i, v in zip(idx, val, strict=True)
                    if f.offset <= i < f.offset + f.size), torch.zeros(V.shape[1]).double())

    out = torch.zeros(len(ex), len(movies), dtype=torch.float64)
    for r, e in enumerate(ex):
        c = task.context(np.array([e]))
        idx, val = c.idx[0].tolist(), c.val[0].double().tolist()
        dense = [v for f in ctx_fields if f.kind == "numeric" for j in range(f.size)
                 for i, v in zip(idx, val, strict=True) if i == f.offset + j]
        z = model.bottom(torch.tensor([dense], dtype=torch.float64))[0]
        t_ctx = [z] + [field_vector(f, idx, val) for f in ctx_fields if f.kind != "numeric"]
        for col, m in enumerate(movies):
            m_idx, m_val = task.item_idx[m].tolist(), task.item_val[m].astype(float).tolist()
            T = t_ctx + [field_vector(f, m_idx, m_val) for f in item_fields]
            if model.interaction == "cat":
                R = torch.cat(T)
            else:
                dots = {(i, j): T[i] @ T[j] for i in range(len(T)) for j in range(i)}  # i > j
                n_c = len(t_ctx)
                order = ([(int(j), int(i)) for i, j in zip(model.ctx_i, model.ctx_j, strict=True)]
                         + [(n_c + int(j), n_c + int(i))
                            for i, j in zip(model.item_i, model.item_j, strict=True)]
                         + [(n_c + mm, cc) for mm in range(len(T) - n_c) for cc in range(n_c)])
                assert sorted(order) == sorted(dots)  # the same pairs, reordered
                R = torch.cat([z, torch.stack([dots[p] for p in order])])
            out[r, col] = model.top(R[None])[0, 0]
    return out


torch.manual_seed(1)
ex = task.examples("test")[:3]
movies = [0, 49, 180, 1000]
context = task.context(ex)
context = Features(context.idx, context.val.double(), context.field)
for name in ("dlrm", "dlrm_simplified"):
    check = build_model(name, task, seed=0).double().eval()
    with torch.no_grad():
        for p in check.parameters():
            p.normal_(std=0.2)
        check.embedding.embedding.weight[0].zero_()
        naive = dlrm_naive(check, task, ex, movies)
        every = check(context, torch.arange(task.num_items))
        some = check(context, torch.tensor([movies] * len(ex)))
    assert torch.allclose(every[:, movies], naive, rtol=0, atol=1e-10)
    assert torch.allclose(some, naive, rtol=0, atol=1e-10)
    print(f"{name}: max |model - naive| = {(every[:, movies] - naive).abs().max().item():.1e}")

# %% [markdown]
# ### What a pair costs
#
# At ranking time the embedding lookups, the bottom MLP and the dots inside each side are
# paid once per context or once per movie. What is paid for every (context, movie) pair is the
# cross part of the first layer ($\operatorname{vec} T_m$ against $U$: $F_m k$ multiply-adds
# per hidden unit) and the rest of the top MLP. FM pays one dot product of size $k$. With the
# official Criteo widths (512-256) instead of featint's (64-32):

# %%
def multiply_adds_per_pair(model):
    """Multiply-adds of a DLRM per (context, movie) pair when ranking all movies."""
    first, *rest = [m for m in model.top if isinstance(m, torch.nn.Linear)]
    cross = model.num_item_fields * first.weight.shape[0] * model.embedding.embedding.embedding_dim
    return (cross if model.interaction == "dot" else 0) + sum(m.weight.numel() for m in rest)


cost = {"fm": build_model("fm", task).embedding.embedding.embedding_dim}
for label, name, top in (("dlrm", "dlrm", (64, 32)), ("dlrm_simplified", "dlrm_simplified", (64, 32)),
                         ("dlrm, top 512-256", "dlrm", (512, 256))):
    cost[label] = multiply_adds_per_pair(build_model(name, task, top=top))
pairs_per_test = len(task.examples("test")) * task.num_items
pd.DataFrame({"multiply-adds per pair": cost,
              "per test set (billions)": {k: v * pairs_per_test / 1e9 for k, v in cost.items()}})

# %% [markdown]
# ## Defaults, and where featint deviates
#
# The paper's benchmark configurations and the official code
# (`facebookresearch/dlrm`, `dlrm_s_pytorch.py`, `bench/dlrm_s_criteo_kaggle.sh`), against
# featint:
#
# | | paper / official code (Criteo Kaggle) | featint |
# |---|---|---|
# | embedding size $k$ | 16 | 16 |
# | bottom MLP | 13-512-256-64-16, ReLU after every layer | 39-64-32-16, ReLU after every layer |
# | top MLP | 367-512-256-1 (input: 16 + 351 dots) | 121-64-32-1 (input: 16 + 105 dots) |
# | interaction | dots of all pairs, no self pairs (`arch-interaction-itself` off), concatenated with $\mathbf z$; `cat` as an option | the same, dots reordered (context, movie, cross); `dlrm_simplified` for `cat` |
# | multi-hot fields | `EmbeddingBag`, sum | weighted sum with the task's weights: the mean for the history and genre bags |
# | initialisation | tables $\mathcal U(\pm\sqrt{1/n})$; layers $\mathcal N(0, 2/(\text{in}+\text{out}))$, biases $\mathcal N(0, 1/\text{out})$ | the same |
# | loss, optimiser | BCE, SGD (lr 0.1), batches of 128 | BCE with 4 sampled negatives, Adam (lr $5\cdot10^{-3}$), batches of 1,024: the book's protocol |
#
# The MLPs are about eight times narrower than the Criteo configuration. Criteo Kaggle has
# 45 million examples and the model scores one (user, ad) pair per request; here there are
# 70,581 training examples and every evaluation scores 1,682 movies per context, so the top
# MLP runs 34 million times for the test set, and the table above shows what the official
# widths would cost per pass over it.
#
# ## Training
#
# The book's common settings: $k = 16$, Adam with learning rate $5 \cdot 10^{-3}$, batches of
# 1,024 examples with 4 sampled negatives each, binary cross-entropy, at most 20 epochs with
# early stopping on the validation MRR (patience 3). FM is trained the same way (quick mode:
# 2 epochs on 4,096 examples).

# %%
models, histories = {}, {}
for name in ("fm", "dlrm", "dlrm_simplified"):
    models[name] = build_model(name, task, seed=0, embed_dim=16)
    print(f"{name}: {count_parameters(models[name]):,} parameters")
    histories[name] = fit(models[name], task, epochs=20, batch_size=1024, lr=5e-3, patience=3,
                          seed=0, progress=False)

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
for name, history in histories.items():
    epochs = pd.DataFrame(history.epochs).set_index("epoch")
    ax[0].plot(epochs.index, epochs["loss"], "o-", label=name)
    ax[1].plot(epochs.index, epochs["valid_mrr"], "o-", label=name)
ax[0].set(xlabel="epoch", ylabel="BCE", title="Training loss")
ax[1].set(xlabel="epoch", ylabel="MRR", title="Validation MRR (all-movie ranking)")
for a in ax:
    a.legend()
    a.xaxis.get_major_locator().set_params(integer=True)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Test results
#
# The test set against all movies, beside random scores, the most-popular baseline and FM.
# The ranking time is that of `evaluate` for the whole test split (every context against all
# 1,682 movies, plus the bootstrap), on the threads shown at the top.

# %%
evaluations, seconds = {}, {}
for name, model in (("random", RandomScores(seed=0)), ("most popular", Popularity(task)),
                    *models.items()):
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

# %%
dlrm_res, pop_res = results["dlrm"], results["most popular"]
for name in ("dlrm", "dlrm_simplified"):
    assert all(np.isfinite(v) for v in (results[name]["hr@10"], results[name]["mean_rank"]))
    assert 1 <= results[name]["mean_rank"] <= task.num_items
if not quick():
    assert dlrm_res["hr@10_lo"] > pop_res["hr@10_hi"]
    assert dlrm_res["mean_rank_hi"] < pop_res["mean_rank_lo"]

# %% [markdown]
# Read the curves and the table together. The dot-product DLRM fits the training data much
# more closely than FM (its training loss is far lower) and leads FM on validation MRR from
# the first epochs, but the lead does not carry over to the test period, and its mean rank,
# which the targets ranked far down dominate, is clearly worse than FM's; on validation it
# also rises again while the MRR still improves. It learns the (field, field) patterns of the
# training period well, and they say less about the movies users turn to weeks later. The
# concatenation variant starts slowly, since its top MLP must discover the pairwise
# structure that the dot products hand to the other, and ends close to FM.

# %%
if not quick():
    fm_res, cat_res = results["fm"], results["dlrm_simplified"]
    dot_h, fm_h, cat_h = histories["dlrm"], histories["fm"], histories["dlrm_simplified"]
    assert dot_h.epochs[-1]["loss"] < fm_h.epochs[-1]["loss"]
    assert all(d["valid_mrr"] > f["valid_mrr"] for d, f in zip(dot_h.epochs[:8], fm_h.epochs[:8],
                                                                strict=True))
    assert dot_h.best["valid_mrr"] > fm_h.best["valid_mrr"]
    assert dlrm_res["mrr"] < fm_res["mrr_hi"]  # no test gain over FM
    assert dlrm_res["mean_rank_lo"] > fm_res["mean_rank_hi"]
    assert dot_h.epochs[-1]["valid_mean_rank"] > min(e["valid_mean_rank"] for e in dot_h.epochs)
    assert cat_h.epochs[2]["valid_mrr"] < dot_h.epochs[2]["valid_mrr"]
    assert cat_res["hr@10_lo"] < fm_res["hr@10_hi"] and fm_res["hr@10_lo"] < cat_res["hr@10_hi"]

# %% [markdown]
# ## Which pairs of fields does DLRM use?
#
# Every dot product $\mathbf t_i^\top \mathbf t_j$ has its own column of the top MLP's first
# layer. How much a pair can move the first hidden layer is the size of that column times the
# typical size of the dot: $\lVert W_{\cdot,(i,j)} \rVert_2 \cdot \operatorname{std}(\mathbf
# t_i^\top \mathbf t_j)$, measured here over test contexts with their target movies. A
# rough reading (the later layers can still amplify or cancel), but it shows where the
# trained model looks. The pairs below the white line involve the movie and so differ from
# movie to movie; the pairs among context vectors are the same for every movie of a context,
# yet they still shape the ranking, because the ReLUs of the top MLP let them switch the
# movie terms on and off.

# %%
dlrm = models["dlrm"]
ex = task.examples("test")[:: 10 if quick() else 2]
with torch.no_grad():
    z, t_c, t_m = dlrm.vectors(task.context(ex), torch.from_numpy(task.target[ex])[:, None])
    T = torch.cat([t_c, t_m[:, 0]], dim=1)  # (examples, 15, k), z first
    dots = T @ T.mT                          # (examples, 15, 15)
    w_c, w_m, w_x = dlrm.top[0].weight.detach().split(dlrm.parts, dim=-1)
n_c, n = t_c.shape[1], T.shape[1]
column = torch.zeros(n, n)  # ||W column|| of each pair, both triangles
for cols, (i, j) in ((w_c[:, z.shape[-1]:], (dlrm.ctx_i, dlrm.ctx_j)),
                     (w_m, (n_c + dlrm.item_i, n_c + dlrm.item_j))):
    column[i, j] = column[j, i] = cols.norm(dim=0)
cross = w_x.norm(dim=0).reshape(n - n_c, n_c)
column[n_c:, :n_c], column[:n_c, n_c:] = cross, cross.T
influence = (column * dots.std(0)).numpy()
influence[np.triu_indices(n)] = np.nan  # the lower triangle holds every pair once
names = ["z (dense)"] + [task.schema.context_fields[int(i)].name for i in dlrm.ctx_sparse] \
    + [f.name for f in task.schema.item_fields]

fig, ax = plt.subplots(figsize=(7.5, 6.5))
im = ax.imshow(influence, cmap="viridis")
ax.set(xticks=range(n), xticklabels=names, yticks=range(n), yticklabels=names,
       title=r"DLRM: $\|W_{\cdot,(i,j)}\|_2 \cdot \mathrm{std}(t_i^\top t_j)$ per field pair")
ax.tick_params(axis="x", labelrotation=90)
ax.axhline(n_c - 0.5, color="white", lw=1)
ax.axvline(n_c - 0.5, color="white", lw=1)
fig.colorbar(im, ax=ax, shrink=0.8)
plt.show()
pairs_table = pd.Series({f"{names[i]} · {names[j]}": influence[i, j]
                         for i in range(n) for j in range(i)}).sort_values(ascending=False)
pairs_table.head(8).round(3).to_frame("influence")

# %% [markdown]
# ## What DLRM leaves open
#
# DLRM interacts *fields*, not features: the history bag enters as one averaged vector, so
# the dot with the candidate movie says how close the movie is to the user's average taste,
# not to the nearest movie in the history. Every pair of fields is a dot product in one shared
# $k$-dimensional space, as in FM, and the top MLP sees only these 105 numbers and $\mathbf z$.
# What this costs and buys against the other models, on the same task and protocol, is the
# subject of the comparison chapter.
