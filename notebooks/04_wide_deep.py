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
# # 04 · Wide & Deep
#
# The factorization machines of [chapter 01](01_fm.ipynb) (and their field-aware and
# attentional variants, [FFM](02_ffm.ipynb) and [AFM](03_afm.ipynb)) *generalise*: every
# feature has a vector, and any two vectors give an interaction weight, even for a pair never
# seen in training. That is their strength on sparse data, and also a weakness the Wide & Deep
# paper {cite}`cheng2016wide` points out: when the real interactions are sparse and specific (this
# movie is watched right after that one, far more than their vectors would say), low-dimensional
# embeddings smooth them away and recommend what is merely similar. A plain linear model over
# *cross-product* features has the opposite profile: it *memorises* exactly the pairs it has
# seen, with one weight each, and knows nothing about the others.
#
# Wide & Deep trains both jointly: a **wide** linear model over raw and crossed features for
# memorisation, and a **deep** MLP over feature embeddings for generalisation, summed into one
# logit. This chapter builds it on the next-movie task, checks its efficient ranking against a
# naive computation, trains it beside FM, and looks at what each part learned.

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
from featint.models.wide_deep import CROSSES, WideDeep, cross_bucket
from featint.train import fit

print("quick mode:", quick(), "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## The model
#
# In the paper's notation, the **wide** component is a generalised linear model
# $y = \mathbf w^\top \mathbf x + b$ over the raw features $\mathbf x$ and their
# cross-product transformations
#
# $$\phi_k(\mathbf x) = \prod_{i=1}^{d} x_i^{c_{ki}}, \qquad c_{ki} \in \{0, 1\},$$
#
# where $c_{ki} = 1$ if feature $i$ is part of cross $k$. For binary features a cross is an
# AND: $\phi_k = 1$ exactly when, say, occupation = doctor *and* genre = Drama. The **deep**
# component is a feed-forward network over dense embeddings of the sparse features,
#
# $$\mathbf a^{(l+1)} = f\big(W^{(l)} \mathbf a^{(l)} + \mathbf b^{(l)}\big), \qquad f = \mathrm{ReLU},$$
#
# with $\mathbf a^{(0)}$ the concatenated embeddings (and real-valued features). Both feed one
# logistic output, and they are trained *jointly*, on the same loss, at the same time:
#
# $$P(Y = 1 \mid \mathbf x) = \sigma\big(\mathbf w_\text{wide}^\top [\mathbf x, \phi(\mathbf x)]
# + \mathbf w_\text{deep}^\top \mathbf a^{(l_f)} + b\big).$$
#
# Joint training is not an ensemble: the wide part only has to fix what the deep part gets
# wrong, so it can stay small (a few crosses rather than every pair). In the book's notation
# (see the notation page) $\mathbf a^{(l)}$ is $\mathbf z_l$, $W^{(l)}, \mathbf b^{(l)}$ are
# $\mathbf W_{l+1}, \mathbf b_{l+1}$, and the embeddings are the $\mathbf v_i$ and field
# embeddings $\mathbf e_f$.
#
# ### The wide part on this task
#
# Here $\mathbf x$ is featint's sparse vector of the context and the candidate movie (user,
# occupation, history, ..., movie, genres, year), and there are four crosses, each joining a
# context feature to a movie feature:

# %%
ml = load_movielens()
task = build_task(ml)
schema = task.schema
fit_ex, test_ex = task.examples("fit"), task.examples("test")
context_slot = {f.name: int(np.flatnonzero(task.ctx_field == n)[0])
                for n, f in enumerate(schema.context_fields) if f.kind == "categorical"}
item_number = {f.name: n for n, f in enumerate(schema.item_fields)}


def cross_features(a: str, b: str, ex: np.ndarray):
    """Global indices of the two sides of cross (a, b) for examples ``ex`` and their target
    movie: context feature (n,), item features (n, slots of b) with values."""
    i_a = task.ctx_idx[ex, context_slot[a]]
    cols = task.item_field == item_number[b]
    return i_a, task.item_idx[task.target[ex]][:, cols], task.item_val[task.target[ex]][:, cols]


bits = 20
rows = []
for a, b in CROSSES:
    i_a, i_b, x_b = cross_features(a, b, fit_ex)
    used = x_b > 0  # the real members of the genre bag, not its padding
    pairs = np.unique((i_a[:, None] * schema.num_features + i_b)[used])
    buckets = cross_bucket(torch.from_numpy(i_a)[:, None], torch.from_numpy(i_b),
                           schema.num_features, bits)[torch.from_numpy(used)]
    rows.append({"cross": f"{a} × {b}",
                 "possible pairs": schema.field(a).size * schema.field(b).size,
                 "pairs in fit targets": len(pairs),
                 "buckets they use": buckets.unique().numel()})
pd.DataFrame(rows).set_index("cross")

# %% [markdown]
# A cross is worth adding only if it joins the two sides: a cross of two *context* features
# (say gender × age) adds the same number to the score of every movie, so it cannot change a
# ranking. Three crosses are coarse (occupation, gender or age against the movie's genres or
# release years: a few hundred pairs, all seen many times); the fourth, last movie × movie,
# is the kind the paper had in mind (*user installed app × impression app*): millions of
# possible pairs, tens of thousands of them seen, each a small fact to memorise. A genre is a
# bag whose members carry the weight $1/\#\text{genres}$, so its cross gets the product of the
# two values, $\phi = x_a x_b$ (still 1 or 0 for two one-hot features).
#
# Rather than a vocabulary of pairs, every cross is **hashed** into one table of $2^{20}$
# weights, as production systems do (no dictionary to build or ship, new pairs cost nothing):
# the pair of global feature indices $(i, j)$ gets the number $p = i\,n + j$ (unique, since
# indices never repeat across fields) and the bucket
#
# $$h(i, j) = \Big\lfloor \frac{(p \cdot 2654435761) \bmod 2^{32}}{2^{32 - 20}} \Big\rfloor,$$
#
# Knuth's multiplicative hash. The table above shows the cost: a few of the pairs share a
# bucket (compare the last two columns). By hand, for the first fit example's occupation and
# its target movie's first genre:

# %%
i_a, i_b, _ = cross_features("occupation", "genre", fit_ex[:1])
i, j = int(i_a[0]), int(i_b[0, 0])
p = i * schema.num_features + j
by_hand = (p * 2654435761 % 2**32) // 2 ** (32 - bits)
print(f"occupation feature {i}, genre feature {j}: pair number {p:,} -> bucket {by_hand:,}")
assert by_hand == cross_bucket(torch.tensor(i), torch.tensor(j), schema.num_features, bits)

# %% [markdown]
# Scoring a context against all 1,682 movies needs, per cross, one bucket per (context, movie)
# pair: a broadcast of the context's feature against every movie's features, then one gather
# from the table, with no loop over movies. (featint computes it once per *distinct* context
# feature, 21 occupations rather than 512 contexts, and copies the rows.)
#
# ### The deep part and its split first layer
#
# $\mathbf a^{(0)}$ joins the context's field embeddings $\mathbf e_f = \sum_{i \in f} x_i
# \mathbf v_i$ (one vector for a categorical field; for the history bag the weighted mean of the
# movies watched), its numeric fields **as values** (mean rating so far, genre shares, genre
# mean ratings: 39 numbers, fed directly as the paper feeds continuous features), and the
# movie's three field embeddings. Ranking all movies with a plain MLP would build
# $\mathbf a^{(0)}$ for every (context, movie) pair and multiply it by $W^{(0)}$: the context
# part of that product would be recomputed 1,682 times. Splitting the matrix by columns,
#
# $$W^{(0)} \mathbf a^{(0)} + \mathbf b^{(0)} = \underbrace{W^{(0)}_c \mathbf a_c +
# \mathbf b^{(0)}}_{\text{once per context}} + \underbrace{W^{(0)}_m \mathbf a_m}_{\text{once per
# movie}},$$
#
# leaves only a broadcast addition per pair before the ReLU; the remaining layers run on
# `(contexts, movies, hidden)` (`featint.layers.ContextItemMLP`). The check: a naive float64
# version, concatenating $\mathbf a^{(0)}$ for every pair and applying the full first layer,
# gives the same scores as the split one.

# %%
check = build_model("wide_deep", task, seed=0).double().eval()
with torch.no_grad():
    for param in check.parameters():  # random weights everywhere, so every term counts
        param.normal_(std=0.1)
ctx = task.context(test_ex[:8])
ctx.val = ctx.val.double()
all_items = torch.arange(task.num_items)
with torch.no_grad():
    e_c = check.embedding.fields(ctx, check.num_ctx_fields)[:, check.embedded].flatten(-2)
    a_c = torch.cat([e_c, check.dense(ctx)], -1)                   # (8, 215)
    a_m = check.embedding.fields(check.items(all_items), 3).flatten(-2)  # (1682, 48)
    # naive: a^(0) = [a_c; a_m] for each of the 8 x 1682 pairs, full W^(0)
    a0 = torch.cat([a_c[:, None].expand(-1, task.num_items, -1),
                    a_m[None].expand(8, -1, -1)], -1)              # (8, 1682, 263)
    W0 = torch.cat([check.deep.context.weight, check.deep.item.weight], 1)
    naive = check.deep.head(a0 @ W0.T + check.deep.context.bias).squeeze(-1)
    split = check.deep(a_c, a_m).squeeze(-1)
print(f"a_c {tuple(a_c.shape)}, a_m {tuple(a_m.shape)}, a^(0) per pair {tuple(a0.shape)}; "
      f"max |naive - split| = {(naive - split).abs().max():.1e}")
assert torch.allclose(naive, split, rtol=0, atol=1e-10)

# %% [markdown]
# What it saves, in float32 on 64 contexts × all movies (single thread, the MLP only):

# %%
model32 = build_model("wide_deep", task, seed=0).eval()
ctx64 = task.context(test_ex[:64])
with torch.no_grad():
    e_c = model32.embedding.fields(ctx64, model32.num_ctx_fields)[:, model32.embedded]
    a_c = torch.cat([e_c.flatten(-2), model32.dense(ctx64)], -1)
    a_m = model32.embedding.fields(model32.items(all_items), 3).flatten(-2)
    W0 = torch.cat([model32.deep.context.weight, model32.deep.item.weight], 1)

    def naive_mlp():
        a0 = torch.cat([a_c[:, None].expand(-1, task.num_items, -1),
                        a_m[None].expand(len(a_c), -1, -1)], -1)
        return model32.deep.head(a0 @ W0.T + model32.deep.context.bias)

    def best_of(fn):
        times = []
        for _ in range(1 if quick() else 3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    t_naive, t_split = best_of(naive_mlp), best_of(lambda: model32.deep(a_c, a_m))
print(f"naive {t_naive * 1e3:.0f} ms, split {t_split * 1e3:.0f} ms "
      f"({t_naive / t_split:.1f}x); first-layer multiply-adds per pair: "
      f"{W0.numel():,} naive vs {W0.shape[0]} split")

# %% [markdown]
# The whole model, `featint/models/wide_deep.py` (the forward pass and the crosses):

# %%
display(Code(inspect.getsource(WideDeep.wide_crosses) + "\n"
             + inspect.getsource(WideDeep.forward), language="python"))

# %% [markdown]
# ### Defaults, and where featint departs from the paper
#
# | | paper (Google Play) | here |
# |---|---|---|
# | deep layers | 1024-512-256, ReLU | **128-64**, ReLU, no dropout |
# | embeddings | 32 per categorical feature | 16 (the book's common $k$) |
# | continuous features | concatenated as values | the same: 39 numeric values |
# | crosses | user installed app × impression app | the four above, hashed into $2^{20}$ weights |
# | optimiser | FTRL with L1 (wide), AdaGrad (deep) | Adam for both, no L1 (featint's shared `fit`) |
# | training | joint, warm-started from the previous model | joint, from scratch, early stopping |
#
# The deep layers are the main deviation. With the first layer split, ranking pays per
# (context, movie) pair for every layer after the first (and the output unit):

# %%
def per_pair_cost(hidden: tuple[int, ...]) -> int:
    """Multiply-adds per (context, movie) pair after the split first layer."""
    return sum(a * b for a, b in zip(hidden, hidden[1:], strict=False)) + hidden[-1]


wd_hidden = tuple(m.out_features for m in model32.deep.modules()
                  if isinstance(m, torch.nn.Linear))[1:-1]  # the model's defaults
cost_here, cost_paper = per_pair_cost(wd_hidden), per_pair_cost((1024, 512, 256))
assert wd_hidden == (128, 64)
print(f"multiply-adds per pair: {cost_here:,} here, {cost_paper:,} with the paper's layers "
      f"({cost_paper / cost_here:.0f}x)")

# %% [markdown]
# That factor would turn the ranking time measured below from seconds into many minutes on a
# laptop CPU, paid again on the validation set after every epoch: the paper ranks a few hundred
# candidates per request, we rank all 1,682 movies for every context. The "pyramid" shape
# (each layer half the previous) is kept. Without L1 the wide weights are not sparse; early
# stopping on validation does the regularising.
#
# ## Training
#
# The book's common settings: $k = 16$, Adam with learning rate $5 \cdot 10^{-3}$, batches of
# 1,024 examples with 4 sampled negatives each, binary cross-entropy, at most 20 epochs with
# early stopping on the validation MRR (patience 3). FM is trained the same way for comparison
# (quick mode: 2 epochs on 4,096 examples).

# %%
models, histories = {}, {}
for name in ("fm", "wide_deep"):
    models[name] = build_model(name, task, seed=0, embed_dim=16)
    print(f"{name}: {count_parameters(models[name]):,} parameters")
    histories[name] = fit(models[name], task, epochs=20, batch_size=1024, lr=5e-3, patience=3,
                          seed=0, progress=False)
wd = models["wide_deep"]
wide_params = wd.linear.weight.weight.numel() + wd.cross_weight.weight.numel()
print(f"wide_deep: {wide_params:,} wide weights (raw + hashed crosses), "
      f"{count_parameters(wd) - wide_params:,} deep")

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
                    ("fm", models["fm"]), ("wide_deep", wd)):
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
# With the paper's layers, the same ranking would take roughly (deep part scaled by the
# ratio of per-pair costs above, an estimate):

# %%
print(f"about {seconds['wide_deep'] * cost_paper / cost_here / 60:.0f} min instead of "
      f"{seconds['wide_deep']:.0f} s for {len(evaluations['wide_deep'].ranks):,} contexts")

# %%
wd_res, pop_res = results["wide_deep"], results["most popular"]
assert all(np.isfinite(v) for v in (wd_res["hr@10"], wd_res["mean_rank"]))
assert 1 <= wd_res["mean_rank"] <= task.num_items
if not quick():
    assert wd_res["hr@10_lo"] > pop_res["hr@10_hi"]
    assert wd_res["mean_rank_hi"] < pop_res["mean_rank_lo"]

# %% [markdown]
# ## What the wide part memorises, what the deep part generalises
#
# Take each test example's pair (last movie watched, target movie) and count how often that
# exact pair was a *positive* in the fit examples: never, once, a few times, often. Two
# questions per group. How far above the average movie does each part of Wide & Deep lift the
# target? (The *lift* of a part is its score for the target minus its mean score over all
# movies, so per-context constants cancel; the parts are the last movie × movie cross, one
# hashed weight, the rest of the wide part, and the deep part.) And how well does the model
# rank, against FM and against the same trained Wide & Deep with that one cross switched off?

# %%
last_slot = context_slot["last_movie"]
last_movie = task.ctx_idx[:, last_slot] - schema.field("last_movie").offset  # movie index
pair_code = last_movie * task.num_items + task.target
fit_count = pd.Series(pair_code[fit_ex]).value_counts()
groups = pd.cut(fit_count.reindex(pair_code, fill_value=0).to_numpy(), [-1, 0, 1, 4, np.inf],
                labels=["never", "once", "2-4 times", "5+ times"])


@torch.no_grad()
def lifts(model: WideDeep, ex: np.ndarray) -> pd.DataFrame:
    """Lift of the target over the mean movie, per part of the logit, for examples ``ex``."""
    out = []
    movie = model.items(all_items)
    for batch in np.array_split(ex, max(1, len(ex) // 256)):
        context = task.context(batch)
        memo = model.cross_weight.weight[cross_bucket(
            context.idx[:, last_slot, None], movie.idx[None, :, 0], model.num_features,
            model.bits), 0]                                              # (batch, movies)
        wide = (model.linear(context)[:, None] + model.linear(movie)
                + model.wide_crosses(context, movie))
        deep = model(context, all_items) - wide
        target = torch.from_numpy(task.target[batch])[:, None]
        out.append(pd.DataFrame({
            name: (part.gather(1, target)[:, 0] - part.mean(1)).numpy()
            for name, part in (("last movie × movie cross", memo),
                               ("rest of wide", wide - memo), ("deep", deep))}))
    return pd.concat(out, ignore_index=True)


# the trained model without its memorising cross: every other weight unchanged
no_memo = copy.deepcopy(wd)
no_memo.crosses = [c for c, names in zip(wd.crosses, CROSSES, strict=True)
                   if names != ("last_movie", "movie")]
evaluations["wide_deep without last movie × movie"] = evaluate(no_memo, task, progress=False)

sample = subsample(test_ex, 500 if quick() else 8000)
lift = lifts(wd, sample).assign(group=groups[sample])
table = lift.groupby("group", observed=False).mean()
table["test examples"] = pd.Series(groups[evaluations["wide_deep"].examples]).value_counts()
hr_names = {"fm": "fm", "wide_deep without last movie × movie": "W&D without the cross",
            "wide_deep": "wide_deep"}
for name, label in hr_names.items():
    ev = evaluations[name]
    table[f"HR@10 {label}"] = pd.Series(ev.ranks <= 10).groupby(
        groups[ev.examples], observed=False).mean()
table.round(3)

# %%
parts = ["last movie × movie cross", "rest of wide", "deep"]
present = table["test examples"] > 0
fig, ax = plt.subplots(1, 3, figsize=(15, 3.8))
x = np.arange(len(table))
labels = [f"{g}\n({c:,} ex.)" for g, c in zip(table.index, table["test examples"], strict=True)]
for a, part, title in ((ax[0], "last movie × movie cross", "Wide: the last movie × movie cross"),
                       (ax[1], "deep", "Deep: the MLP")):
    a.bar(x, table[part], color="C7")
    a.axhline(0, color="black", lw=0.8)
    a.set(xticks=x, xticklabels=labels, ylabel="mean lift of the target (logit)", title=title)
ax[0].set(xlabel="(last movie, target) pair seen as a fit positive")
for n, label in enumerate(hr_names.values()):
    ax[2].bar(x + (n - 1) * 0.27, table[f"HR@10 {label}"], width=0.27, label=label)
ax[2].set(xticks=x, xticklabels=table.index, ylabel="HR@10", title="Test HR@10 by group")
ax[2].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
seen = np.asarray(groups != "never")
hr_seen, hr_never = {}, {}
for name, label in hr_names.items():
    ev = evaluations[name]
    hit, was_seen = ev.ranks <= 10, seen[ev.examples]
    hr_seen[label], hr_never[label] = hit[was_seen].mean(), hit[~was_seen].mean()
print(f"test examples whose pair was seen as a fit positive: {seen[test_ex].mean():.1%}")
print("HR@10 on seen pairs: " + ", ".join(f"{k} {v:.3f}" for k, v in hr_seen.items()))
print("HR@10 on the others: " + ", ".join(f"{k} {v:.3f}" for k, v in hr_never.items()))

# %% [markdown]
# Left: the last movie × movie cross is memorisation in its purest form. For a pair never seen
# as a positive its lift is about zero (slightly negative: pairs drawn as sampled negatives
# were pushed down); for a pair seen once it is clearly positive, and it grows with the count.
# Middle: the deep part lifts the target in every group, seen or not, with no weight of its own
# for the pair; that is generalisation through embeddings (on a larger scale: it also carries
# popularity and the user's taste, and frequent pairs tend to involve popular movies).
#
# Right: what it buys, and what it costs. On the pairs seen in training Wide & Deep beats FM
# clearly, and the advantage is the cross's: the same trained model with that one cross
# switched off falls below FM there. On the pairs never seen, the majority of the test set,
# it is the other way round: without the cross the model is ahead of FM, with it behind. The
# cross pushes up the movies that usually followed the last movie; when the true next movie is
# one of them that is a hit, when it is not they crowd it out. Memorisation pays where the data
# repeat themselves, and the joint model settles the trade-off on the training distribution
# (overall it comes out ahead of FM in this run, see the test results). The crosses with the largest weights, with how
# often they were seen:

# %%
seen_pairs = fit_count.index.to_numpy()
a_idx = seen_pairs // task.num_items + schema.field("last_movie").offset
b_idx = seen_pairs % task.num_items + schema.field("movie").offset
weight = wd.cross_weight.weight.detach()[cross_bucket(
    torch.from_numpy(a_idx), torch.from_numpy(b_idx), wd.num_features, wd.bits), 0].numpy()
top = np.argsort(-weight)[:8]
pd.DataFrame({"last movie": task.titles[seen_pairs[top] // task.num_items],
              "next movie": task.titles[seen_pairs[top] % task.num_items],
              "seen in fit": fit_count.to_numpy()[top], "cross weight": weight[top].round(2)})

# %%
assert np.isfinite(table.loc[present, parts].to_numpy()).all()
if not quick():
    memo = table["last movie × movie cross"]
    assert abs(memo["never"]) < 0.1 < memo["once"]  # about zero unseen, positive once seen
    assert memo["once"] < memo["2-4 times"] < memo["5+ times"]  # and growing with the count
    assert (table["deep"] > 0).all()  # the deep part lifts every group
    assert hr_seen["wide_deep"] > hr_seen["fm"] > hr_seen["W&D without the cross"]
    assert hr_never["W&D without the cross"] > hr_never["fm"] > hr_never["wide_deep"]
    assert wd_res["hr@10"] > results["fm"]["hr@10"]  # overall ahead
    assert seen[test_ex].mean() < 0.5

# %% [markdown]
# ## What Wide & Deep leaves open
#
# The wide part only knows the crosses someone chose: here four, picked by hand from what
# the fields mean, and the paper's single cross came from product knowledge of Google Play.
# Every new data set needs that engineering again, and a useful cross nobody thought of is
# never learned. The deep part, for its part, has to discover low-order interactions (the
# FM's pairwise terms) implicitly, through layers that are not built for products of
# embeddings. The next chapter, [DeepFM](05_deepfm.ipynb), replaces the hand-made wide part
# with an FM that shares the deep part's embeddings: every pairwise interaction, learned, with
# no feature engineering.
