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

# %% tags=["remove-cell"]
# Outside the featint repository (Colab, Binder): install featint first. Inside it, with
# the project's environment, featint is already importable and this cell does nothing.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("featint") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "featint @ git+https://github.com/featint/featint"], check=True)

# %% [markdown]
# # 10 · Scaling out
#
# DLRM ([chapter 07](07_dlrm.ipynb)) was designed for click logs in which one categorical
# feature can take tens of millions of values {cite}`naumov2019dlrm`. Each value owns a row
# of an embedding table, so the tables, not the MLPs, hold nearly all the parameters, and at
# that size they no longer fit one machine. The answer is to **shard** them: cut the tables
# into pieces and spread the pieces over several processes (several GPUs, usually), while the
# small MLPs are copied to every process and trained data-parallel.
#
# This chapter runs the same DLRM that way with **TorchRec**, PyTorch's library for
# recommendation models: the tables go into an `EmbeddingBagCollection`, the input becomes a
# `KeyedJaggedTensor`, a planner writes a *sharding plan*, and `DistributedModelParallel`
# carries it out across two processes started by `torchrun`. It needs the `scale` extra
# (`make setup-scale`). What to take away is not a better score, nor a faster run (on two CPU
# cores it is slower, and we measure why), but how a model whose tables do not fit is trained
# at all.

# %% tags=["hide-input"]
# %matplotlib inline
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from featint import build_task, load_movielens
from featint.config import current
from featint.evaluate import rank_examples
from featint.models import build_model, count_parameters
from featint.synthetic import synthetic_movielens
from featint.torchrec_dlrm import TorchRecDLRM, from_featint, jagged

# a notice torch logs when TorchRec first traces; not about this chapter
logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
QUICK = current().quick
print("quick mode:", QUICK, "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## Where the parameters are
#
# The Criteo 1TB click logs {cite}`criteo1tb` hold 24 days of display-ad impressions, each a
# label (clicked or not), 13 integer features and 26 categorical features whose values are
# hashed ids. TorchRec's DLRM example for this data set {cite}`dlrmtorchrec` gives one table
# per categorical feature, with as many rows as the feature has distinct values, and
# $k = 128$; its bottom MLP is 512-256-128 and its top MLP 1024-1024-512-256-1. Counting
# both:

# %%
# the 26 tables of TorchRec's DLRM example: rows = distinct values of each feature
CRITEO_ROWS = [45833188, 36746, 17245, 7413, 20243, 3, 7114, 1441, 62, 29275261,
               1572176, 345138, 10, 2209, 11267, 128, 4, 974, 14, 48937457, 11316796,
               40094537, 452104, 12606, 104, 35]
K, DENSE, BOTTOM, TOP = 128, 13, [512, 256, 128], [1024, 1024, 512, 256, 1]


def mlp_params(sizes: list[int]) -> int:
    """Weights and biases of linear layers ``sizes[0] -> ... -> sizes[-1]``."""
    return sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


vectors = 1 + len(CRITEO_ROWS)  # the bottom MLP's output and one vector per table
top_input = K + vectors * (vectors - 1) // 2  # e_0 and every dot product once
criteo = pd.Series({
    "embedding tables": sum(CRITEO_ROWS) * K,
    "bottom MLP": mlp_params([DENSE, *BOTTOM]),
    "top MLP": mlp_params([top_input, *TOP]),
})
table_gb = criteo["embedding tables"] * 4 / 1e9
mlps_mb = (criteo["bottom MLP"] + criteo["top MLP"]) * 4 / 1e6
print(f"{len(CRITEO_ROWS)} tables, {sum(CRITEO_ROWS):,} rows: {table_gb:.1f} GB in "
      f"float32 ({criteo['embedding tables'] / criteo.sum():.4%} of the parameters); "
      f"the MLPs {mlps_mb:.0f} MB")
assert round(table_gb, 1) == 91.1  # the example's "collective size of embedding tables"
criteo.to_frame("parameters").style.format("{:,}")

# %% [markdown]
# Over 99.98% of the parameters sit in the tables, and three of them have more than 40
# million rows each. Training adds the optimiser's state: Adam keeps two more numbers per
# parameter, which is why large tables are trained with (row-wise) Adagrad or plain SGD,
# one number per row or none. No single GPU of 2022 held 91 GB, so the example trains on 8
# GPUs and gives each a share of the tables.
#
# On MovieLens the same DLRM is small. Its tables (one per sparse field: user, demographics,
# time, the last movie, the history, the movie, its genres and year) against its MLPs:

# %%
ml = load_movielens()
task = build_task(ml)
dlrm = build_model("dlrm", task, seed=0)
in_tables = sum(f.size for f in task.schema.fields if f.kind != "numeric") * 16
ours = pd.Series({"embedding tables": in_tables,
                  "MLPs": count_parameters(dlrm) - task.schema.num_features * 16})
print(f"{ml.release}: tables {ours['embedding tables']:,} parameters, "
      f"{ours['embedding tables'] / ours.sum():.0%} of the model")
assert ours["embedding tables"] / ours.sum() > 0.5
ours.to_frame("parameters").style.format("{:,}")

# %% [markdown]
# MovieLens 100K's tables take a few megabytes; MovieLens 32M's (200,948 users, 87,585
# movies) would still take a few dozen. Nothing here *needs* sharding: the point of running
# it is that the same code, with the same model, scales to tables that do.
#
# ## Sharding plans
#
# Take $P$ processes and tables $t = 1 \dots T$ of $n_t$ rows and $k$ columns. A
# **sharding plan** says, for every table, how it is cut and which process holds each piece:
#
# - **table-wise**: each table whole on one process. Process $p$ holds
#   $k \sum_{t \in S_p} n_t$ numbers for the set $S_p$ of its tables; a lookup is sent to
#   the table's owner, which returns the pooled vector.
# - **row-wise**: every table cut into $P$ blocks of rows, about $k\, n_t / P$ numbers per
#   process and table; each id goes to the owner of its row, and the partial sums of a bag
#   are added up across processes.
# - **column-wise**: every table cut into blocks of columns (of the $k$ coordinates); each
#   owner returns its part of every vector, and the parts are joined.
# - **data-parallel**: every process holds every table, $k \sum_t n_t$ numbers each; no
#   lookup leaves the process, but every step all-reduces the tables' gradients, as for the
#   MLPs.
#
# The MLPs are always data-parallel: each process runs them on its part of the batch and
# the gradients are averaged. So a step is a forward through the tables with one
# all-to-all exchange (ids out, pooled vectors back), the interaction and the MLPs locally,
# the same exchange backwards, and an all-reduce of the MLP gradients. A planner chooses
# the plan from the table sizes, the devices' memory and a cost model (TorchRec 1.8 offers
# table-wise, column-wise and data-parallel on CPUs, and row-wise too on GPUs). Table-wise is
# the simplest, and the largest table sets its limit; the memory of one process under each
# plan for Criteo's tables on 8 processes:

# %% tags=["hide-input"]
def table_wise(rows: list[int], processes: int) -> np.ndarray:
    """Numbers held per process when whole tables go, largest first, to the process that
    holds least so far (a greedy balance)."""
    load = np.zeros(processes)
    for n in sorted(rows, reverse=True):
        load[load.argmin()] += n * K
    return load


P = 8
plans = pd.DataFrame({
    "table-wise": np.sort(table_wise(CRITEO_ROWS, P))[::-1],
    "row-wise": np.full(P, sum(CRITEO_ROWS) * K / P),
    "data-parallel": np.full(P, sum(CRITEO_ROWS) * K),
}) * 4 / 1e9  # GB of float32 weights, before any optimiser state
fig, ax = plt.subplots(figsize=(7.5, 3.2))
plans.T.plot.bar(ax=ax, legend=False, color="tab:blue", edgecolor="white", rot=0)
ax.axhline(40, color="tab:red", ls="--", lw=1)
ax.text(2.45, 41.5, "one 40 GB GPU", color="tab:red", ha="right", fontsize=9)
ax.set_ylabel("GB of table weights per process")
ax.set_title(f"Criteo's DLRM tables on {P} processes: one bar per process")
plt.show()
print(plans.max().round(1).to_string())

# %% [markdown]
# Table-wise leaves the process with the 48.9-million-row table alone with 25 GB while
# others hold little; row-wise gives every process the same $91.1 / 8 = 11.4$ GB; copying
# everything everywhere (data-parallel) does not fit at all. Real plans mix: small tables
# data-parallel (cheap to copy, no lookups to send), large ones row-wise or table-wise.
#
# ## From chapter 07's model to TorchRec's
#
# `featint.torchrec_dlrm.TorchRecDLRM` *is* chapter 07's `DLRM`: it subclasses it and keeps
# the bottom MLP, the dot interaction, the top MLP and the ranking. Three things change.
#
# 1. **The tables.** featint keeps every field's rows as slices of one table; TorchRec wants
#    one table per field, each a weighted, sum-pooled `EmbeddingBagConfig` in an
#    `EmbeddingBagCollection` (one for the context's fields, one for the movie's). Its
#    default initialisation, uniform in $\pm\sqrt{1/n}$, is the official DLRM's.
# 2. **The input.** featint pads every bag to the longest in the batch (index 0, value 0);
#    TorchRec takes a `KeyedJaggedTensor`: per field, the real ids one row after another,
#    their weights, and a length per row. `jagged` converts; for one context:

# %%
reference = build_model("dlrm", task, seed=0).eval()
model = TorchRecDLRM(task.schema, task.item_features()).eval()
model.load_state_dict(from_featint(reference.state_dict(), task.schema))
one = task.examples("test")[:1]
kjt = jagged(task.context(one), model.context_fields, model.context_numbers)
history = kjt["history"]
print(f"{len(kjt.keys())} keys: {', '.join(kjt.keys())}")
print(f"history: {int(history.lengths()[0])} movies (t = {task.t[one][0]}), weights "
      f"{history.weights()[0]:.4f} = 1/{int(history.lengths()[0])}; padded, featint's "
      f"batch had {task.context(one).idx.shape[1]} slots")
assert int(history.lengths()[0]) == min(task.t[one][0], task.window or task.t[one][0])

# %% [markdown]
# 3. **Where the movies' vectors come from.** featint computes every movie's field vectors
#    once per step and looks up the candidates; with sharded tables only the candidates'
#    rows are asked for, so TorchRec's model pools the candidates' fields directly. Same
#    numbers, other work.
#
# With the same weights (copied with `from_featint`), the two models must give the same
# scores: to the candidates of training and to every movie when ranking.

# %%
ex = task.examples("test")[:64]
rng = np.random.default_rng(0)
candidates = torch.from_numpy(np.column_stack([task.target[ex],
                                               task.sample_negatives(ex, 4, rng)]))
everything = torch.arange(task.num_items)
with torch.no_grad():
    gap = (model(task.context(ex), candidates)
           - reference(task.context(ex), candidates)).abs().max().item()
    gap_all = (model(task.context(ex), everything.expand(len(ex), -1))
               - reference(task.context(ex), everything)).abs().max().item()
print(f"largest score difference: candidates {gap:.1e}, all movies {gap_all:.1e}")
assert gap < 1e-5 and gap_all < 1e-5

# %% [markdown]
# ## Two processes
#
# `python -m featint.torchrec_dlrm` is a training script for `torchrun`: every process
# builds the same task and featint's DLRM from seed 0, makes the TorchRec model, shards it
# table-wise with TorchRec's planner (`--sharding` chooses another plan), copies featint's
# weights into the shards it holds, checks the scores against featint's DLRM, and trains:
# each step's batch is split between the processes, the tables learn with Adagrad fused
# into their backward pass (fbgemm's CPU kernels have SGD and Adagrad, not Adam) and the
# MLPs with Adam, chapter 07's learning rate and L2. At the end the processes put the
# tables together into featint's layout (`to_featint`), save the checkpoint and rank test
# examples with the sharded model. We launch it here as a subprocess, once on two processes
# and once on one, with the same global batch:

# %%
DATASET = "synthetic" if QUICK else "ml-100k"  # quick mode: featint's synthetic set
STEPS, BATCH = (20, 256) if QUICK else (80, 1024)
job_task = build_task(synthetic_movielens(seed=0)) if QUICK else task
runs = Path(tempfile.mkdtemp(prefix="featint-torchrec-"))


def launch(processes: int) -> dict:
    """``featint.torchrec_dlrm`` under ``torchrun`` on ``processes`` CPU processes of
    one thread each (on a machine shared with other work, a process's second thread
    waits for a busy core, and the run slows down badly)."""
    out = runs / f"p{processes}"
    threads = 1
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         "--nproc_per_node", str(processes), "-m", "featint.torchrec_dlrm",
         "--dataset", DATASET, "--steps", str(STEPS), "--batch-size", str(BATCH),
         "--out", str(out)],
        capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    report = json.loads((out / "report.json").read_text())
    report["stdout"], report["threads"] = done.stdout, threads
    return report


two = launch(2)
print(two["plan"])

# %% [markdown]
# The plan lists, per table, its sharding type, its compute kernel (`fused`: lookups and
# the optimiser step in one fbgemm kernel) and the rank that holds it, then each shard's
# offsets and size. Every table went whole to one of the two processes, about half the
# rows each. The training, and the check it starts with:

# %%
print(f"sharded model, same weights: largest score difference {two['score_gap']:.1e}")
assert two["score_gap"] < 1e-5
losses = np.array(two["losses"])
early, late = losses[:5].mean(), losses[-10:].mean()
print(f"loss: {early:.3f} over the first 5 steps, {late:.3f} over the last 10")
assert late < early

# %% [markdown]
# The checkpoint holds whole tables in featint's layout, so chapter 07's `DLRM` loads it
# and ranks the test examples the sharded model ranked: the same ranks.

# %%
checkpoint = torch.load(runs / "p2" / "dlrm.pt", weights_only=True)
back = build_model("dlrm", job_task, seed=1, **checkpoint["hparams"])
back.load_state_dict(checkpoint["state"])
found = np.load(runs / "p2" / "ranks.npz")
ranks = rank_examples(back, job_task, found["examples"])
same = np.mean(ranks == found["ranks"])
print(f"{len(ranks)} test examples: {same:.1%} ranked the same; mean rank "
      f"{ranks.mean():.1f} (featint) against {found['ranks'].mean():.1f} (sharded)")
assert same > 0.99

# %% [markdown]
# ## One process against two, measured
#
# The same script on one process (all the tables on it, `world_size` 1) and on two, with
# the same global batch and one thread per process; throughput is over the steps after a
# warm-up of five:

# %%
one_process = launch(1)
speed = pd.DataFrame({
    "processes": [1, 2],
    "threads each": [one_process["threads"], two["threads"]],
    "examples / s": [one_process["examples_per_second"], two["examples_per_second"]],
}).set_index("processes")
ratio = speed.loc[2, "examples / s"] / speed.loc[1, "examples / s"]
print(f"two processes: {ratio:.2f} x the throughput of one, on {os.cpu_count()} cores")
speed.style.format({"examples / s": "{:,.0f}"})

# %% tags=["hide-input"]
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
for report, label in ((one_process, "1 process"), (two, "2 processes")):
    left.plot(report["losses"], label=label, lw=1)
left.set_xlabel("step")
left.set_ylabel("training loss (mean over the batch)")
left.legend(frameon=False)
left.set_title("the same model learns the same way")
right.bar(["1 process", "2 processes"], speed["examples / s"], color="tab:blue")
right.set_ylabel("training examples per second")
right.set_title(f"{os.cpu_count()} CPU cores, shared")
plt.tight_layout()
plt.show()

# %% tags=["remove-input"]
word = ("slower than one" if ratio < 0.9 else "no faster than one" if ratio < 1.1
        else f"{ratio:.1f} times as fast as one")
display(Markdown(
    f"Two processes ran {word} here ({ratio:.2f} times its throughput), with twice the "
    "cores. They share the same arithmetic between them and add work that one process "
    "never does. Every step, the ids of a batch travel to the process that holds their "
    "table and the pooled vectors come back (an all-to-all exchange through gloo over "
    "the loopback), the gradients of the MLPs are all-reduced, and each process pays "
    "its own Python and launch overhead for every one of the many small operations of "
    "a step, which at this size cost more than the arithmetic they share. On a CPU, "
    "sharding buys memory, not speed: two processes can hold twice the tables."))

# %% [markdown]
# On GPUs the balance is different. Each GPU holds its shard of the tables in its own fast
# memory and runs its part of the batch in parallel with the others, and NCCL moves the
# vectors between GPUs over NVLink: the MLPs' arithmetic and the table lookups both scale
# with the number of devices, and only the exchange grows. TorchRec's DLRM example reports
# for Criteo, with the same global batch of 16,384: about 740,000 examples per second on 1
# A100, 1.46 million on 4 and 1.67 million on 8 {cite}`dlrmtorchrec`. More GPUs, more
# throughput, far from linear once the exchange dominates; and a model whose tables exceed
# one GPU's memory has no one-GPU figure at all.
#
# The same script on GPUs, one process per GPU, NCCL instead of gloo (and
# `CUBLAS_WORKSPACE_CONFIG=:4096:8` for reproducible matrix products):
#
# ```bash
# CUBLAS_WORKSPACE_CONFIG=:4096:8 torchrun --standalone --nproc_per_node 8 \
#     -m featint.torchrec_dlrm --device cuda --dataset ml-1m --batch-size 8192 \
#     --sharding row_wise --out runs/ml-1m
# ```
#
# Every process builds the whole task here (2.5 GB for MovieLens 1M): only the model is
# sharded, not the data. At Criteo's scale each process reads its own part of the logs.
# (This book was built on a CPU: the GPU command has not been run here.)
#
# ## Summary
#
# - In a DLRM the embedding tables hold nearly all the parameters: 91.1 GB against 10 MB
#   of MLPs in TorchRec's Criteo example. They are why a model no longer fits one device.
# - A sharding plan cuts each table table-wise, row-wise or column-wise, or copies it
#   (data-parallel); the MLPs are always data-parallel. A lookup then means an all-to-all
#   exchange of ids and vectors.
# - TorchRec's DLRM is chapter 07's with per-field `EmbeddingBagCollection` tables and
#   `KeyedJaggedTensor` inputs; with the same weights it gives the same scores, and its
#   checkpoint, tables put together, loads back into featint's `DLRM`.
# - On two CPU cores two processes are not faster than one: the same arithmetic, plus the
#   exchange. Sharding pays on many GPUs, and first of all in memory.
#
# ## Exercises
#
# **1. By hand: four processes.** Criteo's tables on $P = 4$ processes: how much does each
# hold under row-wise sharding? Under table-wise sharding, which table alone decides the
# largest share, and what is it? How much more memory does each process need under
# row-wise sharding if the tables train with Adam instead of row-wise Adagrad (one number
# per row)?
#
# :::{admonition} Solution
# :class: dropdown
#
# Row-wise: $91.1 / 4 \approx 22.8$ GB each. Table-wise: no process can hold less than the
# largest table, $48{,}937{,}457 \times 128 \times 4 \approx 25.1$ GB, and the greedy
# balance puts it alone on one process (the `table_wise` function above gives the loads).
# Adam keeps two numbers per weight, $2 \times 22.8 = 45.6$ GB more per process; row-wise
# Adagrad keeps one per row, $44.5$ million rows $\times 4$ bytes $\approx 0.18$ GB.
# :::
#
# **2. Code: another plan.** Run the script with `--sharding column_wise` on two processes
# and read the plan: how many shards does the user table have, and which of its 16 columns
# does each hold?

# %% tags=["hide-input"]
out = runs / "column_wise"
done = subprocess.run(
    [sys.executable, "-m", "torch.distributed.run", "--standalone",
     "--nproc_per_node", "2", "-m", "featint.torchrec_dlrm", "--dataset", "synthetic",
     "--steps", "6",
     "--sharding", "column_wise", "--out", str(out)],
    capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
assert done.returncode == 0, done.stderr[-2000:]
report = json.loads((out / "report.json").read_text())
user_rows = [line for line in report["plan"].splitlines()
             if line.strip().startswith("user ")]
print("\n".join(user_rows))
shards = [line for line in user_rows if "rank:" in line]
assert len(shards) == 2 and report["score_gap"] < 1e-5

# %% [markdown]
# Column-wise sharding cuts the user table into two shards of 8 columns (offsets
# `[0, 0]` and `[0, 8]`), one per process: every lookup of a user asks both processes, each
# returns half of the vector, and the halves are joined. The scores are still featint's.
# (The script asks the planner for shards of $k / P$ columns: TorchRec's default minimum
# width would have left a 16-column table whole.)
#
# **3. Think: which tables to copy.** The planner may choose data-parallel for a table of
# 7 rows (the age groups) even when asked nothing. Why is copying a tiny table cheaper than
# sharding it, and for which tables would copying be a mistake?
#
# :::{admonition} Solution
# :class: dropdown
#
# A copied table needs no lookup exchange: every process reads its own copy, and only its
# gradient (7 rows here) is all-reduced with the MLPs', a few hundred numbers. A sharded
# table costs an all-to-all of ids and vectors for every batch, whatever its size. Copying
# is a mistake when the table is large: the memory is paid $P$ times, and the all-reduce
# sends the whole table's gradient every step, most of it zeros for rows no one looked up.
# :::
#
# %% tags=["remove-cell"]
shutil.rmtree(runs)  # the runs' checkpoints and reports, read above

# %% [markdown]
# ## Paper vs. here
#
# | | {cite:t}`naumov2019dlrm` | here |
# |---|---|---|
# | parallelism | model parallelism for the embedding tables, data parallelism for the MLPs; a personalised all-to-all moves the vectors | the same, by TorchRec's `DistributedModelParallel` with a planner's plan (table-wise here) |
# | data | click logs (Criteo) | MovieLens 100K (quick mode: featint's synthetic set), next-movie task |
# | devices | GPUs and CPUs of a data centre | two processes on two shared CPU cores (gloo) |
# | tables | up to tens of millions of rows per table | at most 1,682 rows |
# | optimiser | SGD | tables: Adagrad (fbgemm's CPU kernels have no Adam); MLPs: Adam, as chapter 07 |
# | what is shown | that the model can be trained at scale | that the sharded model is the same model, and what sharding costs |
#
# The paper's point was the hardware: a model bound by memory capacity and bandwidth
# (the tables) and by arithmetic (the MLPs) at once. Two CPU processes show the mechanism
# (a plan, an exchange, the same numbers) but none of the speed.
