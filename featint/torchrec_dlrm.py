"""DLRM on TorchRec: chapter 07's model with its embedding tables sharded across processes.

:class:`TorchRecDLRM` is :class:`featint.models.dlrm.DLRM` (the same bottom MLP, dot
interaction, top MLP and ranking) with one change: the sparse fields' embedding tables live in
TorchRec's ``EmbeddingBagCollection`` (one table per field, weighted sum pooling) and are fed a
``KeyedJaggedTensor`` (:func:`jagged`) instead of featint's padded slots. Under
``DistributedModelParallel`` those tables are sharded across processes by a sharding plan; the
MLPs are replicated and trained data-parallel.

Run the training script on two CPU processes (gloo), or on GPUs (NCCL, ``--device cuda``)::

    torchrun --standalone --nproc_per_node 2 -m featint.torchrec_dlrm --steps 60

It prints the sharding plan, checks that the sharded model scores as featint's DLRM with the
same weights, trains, and saves a checkpoint in featint's layout (:func:`to_featint`) that
:class:`~featint.models.dlrm.DLRM` loads. Needs the ``scale`` extra (``make setup-scale``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor

from featint.config import current
from featint.features import Features, Field, Schema
from featint.models.dlrm import DLRM

#: Optimisers TorchRec's fused embedding kernels offer on the CPU (fbgemm's CPU kernels:
#: exact SGD and Adagrad, not Adam): the tables train with Adagrad, the MLPs with Adam.
TABLE_OPTIMIZER = torch.optim.Adagrad
TABLE_LR = 0.05


def jagged(f: Features, fields: Sequence[Field], numbers: Sequence[int]) -> KeyedJaggedTensor:
    """featint's padded slots as TorchRec's jagged input: ``f`` of shape ``(rows, slots)``;
    ``fields[j]`` is the field of number ``numbers[j]`` in ``f.field``. Each field becomes one
    key whose values are the slot indices local to its table (``index - offset``) with the
    slot values as weights, padding (index 0) left out, so a row holds as many values as the
    field has real slots there (a bag of 73 movies, one user, no genre)."""
    values, weights, lengths = [], [], []
    for field, number in zip(fields, numbers, strict=True):
        cols = torch.nonzero(f.field == number).flatten()
        idx, val = f.idx[:, cols], f.val[:, cols]
        real = idx > 0
        lengths.append(real.sum(1))
        values.append((idx - field.offset)[real])  # row by row: the jagged layout
        weights.append(val[real])
    return KeyedJaggedTensor.from_lengths_sync(
        keys=[field.name for field in fields], values=torch.cat(values),
        weights=torch.cat(weights), lengths=torch.cat(lengths))


def tables(fields: Sequence[Field], embed_dim: int,
           device: torch.device | None = None) -> EmbeddingBagCollection:
    """One weighted, sum-pooled table per field. TorchRec initialises a table of ``n`` rows
    uniform in +-sqrt(1/n) by default: the official DLRM's initialisation."""
    return EmbeddingBagCollection(
        tables=[EmbeddingBagConfig(name=f.name, embedding_dim=embed_dim, num_embeddings=f.size,
                                   feature_names=[f.name]) for f in fields],
        is_weighted=True, device=device)


def pooled(out: Any, fields: Sequence[Field]) -> torch.Tensor:
    """The pooled vectors of a collection's output (a ``KeyedTensor``), in the order of
    ``fields``: ``(rows, len(fields), k)``. A sharded collection may return its keys in
    another order (grouped by the process that holds them), so they are taken by name."""
    by_name = out.to_dict()
    return torch.stack([by_name[f.name] for f in fields], dim=-2)


class TorchRecDLRM(DLRM):
    """:class:`~featint.models.dlrm.DLRM` whose sparse fields' tables are TorchRec's: the
    context fields' in ``context_tables``, the movie's in ``item_tables``. The same
    constructor arguments (``device``: where the tables are made, ``"meta"`` to make them
    only when sharded); the same call ``model(context, items)``."""

    def __init__(self, schema: Schema, items: Features, embed_dim: int = 16,
                 device: torch.device | str | None = None, **hparams: Any) -> None:
        self.table_device = torch.device(device) if device is not None else None
        super().__init__(schema, items, embed_dim, **hparams)

    def _tables(self, schema: Schema, embed_dim: int) -> None:
        ctx = schema.context_fields
        self.context_numbers = [n for n, f in enumerate(ctx) if f.kind != "numeric"]
        self.context_fields = [ctx[n] for n in self.context_numbers]
        self.item_fields = list(schema.item_fields)
        self.embed_dim = embed_dim
        self.context_tables = tables(self.context_fields, embed_dim, self.table_device)
        self.item_tables = tables(self.item_fields, embed_dim, self.table_device)

    def _init_tables(self, schema: Schema) -> None:
        pass  # TorchRec's own initialisation is the official one (:func:`tables`)

    def vectors(self, context: Features, items: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """As :meth:`DLRM.vectors`: ``z`` ``(batch, k)``; ``T_c`` ``(batch, F_c, k)``, ``z``
        first; ``T_m`` ``(*items.shape, F_m, k)``, here for the candidates only (the tables
        may live on other processes: only the rows asked for travel)."""
        z = self.bottom(self.dense(context))
        e_c = pooled(self.context_tables(jagged(context, self.context_fields,
                                                self.context_numbers)), self.context_fields)
        t_c = torch.cat([z.unsqueeze(-2), e_c], dim=-2)
        wanted = self.items(items)  # (*items.shape, item slots)
        flat = Features(wanted.idx.reshape(-1, wanted.idx.shape[-1]),
                        wanted.val.reshape(-1, wanted.val.shape[-1]), wanted.field)
        e_m = pooled(self.item_tables(jagged(flat, self.item_fields,
                                             range(len(self.item_fields)))), self.item_fields)
        return z, t_c, e_m.view(*items.shape, *e_m.shape[-2:])


# -- checkpoints in both layouts -----------------------------------------------------------------
def table_key(side: str, name: str) -> str:
    return f"{side}_tables.embedding_bags.{name}.weight"


def from_featint(state: dict[str, torch.Tensor], schema: Schema) -> dict[str, torch.Tensor]:
    """A :class:`~featint.models.dlrm.DLRM` state dict in :class:`TorchRecDLRM`'s layout:
    each sparse field's slice of the one table becomes its own table."""
    weight = state["embedding.embedding.weight"]
    out = {k: v for k, v in state.items() if not k.startswith("embedding.")}
    for f in schema.fields:
        if f.kind != "numeric":
            side = "context" if f.side == "context" else "item"
            out[table_key(side, f.name)] = weight[f.offset:f.offset + f.size].clone()
    return out


def to_featint(state: dict[str, torch.Tensor], schema: Schema) -> dict[str, torch.Tensor]:
    """A :class:`TorchRecDLRM` state dict (full tables) in featint's DLRM layout: the tables
    stacked into the one table at their fields' offsets; the padding row and the rows of the
    numeric features, which DLRM never looks up, are zero."""
    k = next(v for key, v in state.items() if "_tables." in key).shape[1]
    weight = torch.zeros(schema.num_features, k)
    out = {key: v for key, v in state.items() if "_tables." not in key}
    for f in schema.fields:
        if f.kind != "numeric":
            side = "context" if f.side == "context" else "item"
            weight[f.offset:f.offset + f.size] = state[table_key(side, f.name)]
    out["embedding.embedding.weight"] = weight
    return out


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state of a (sharded) model with every table whole, on the CPU. Every process
    must call it (a sharded table is gathered from the processes that hold its shards)."""
    out = {}
    with warnings.catch_warnings():  # TorchRec 1.8 still hands out torch's ShardedTensor
        warnings.filterwarnings("ignore", "Please use DTensor", FutureWarning)
        for key, value in model.state_dict().items():
            key = key.removeprefix("module.")
            if hasattr(value, "local_shards"):  # a ShardedTensor, gathered on every process
                whole = torch.zeros(tuple(value.metadata().size), dtype=value.dtype)
                for shard in value.local_shards():
                    rows, cols = shard.metadata.shard_offsets
                    n, m = shard.tensor.shape
                    whole[rows:rows + n, cols:cols + m] = shard.tensor.detach().cpu()
                if dist.is_initialized():
                    dist.all_reduce(whole)  # each entry lives on one process, 0 elsewhere
                out[key] = whole
            else:
                out[key] = value.detach().cpu().clone()
    return out


def load_full_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy a state with whole tables into a (sharded) model: each process writes the part
    of every table it holds."""
    with torch.no_grad():
        for key, value in model.state_dict().items():
            source = state[key.removeprefix("module.")]
            if hasattr(value, "local_shards"):
                for shard in value.local_shards():
                    rows, cols = shard.metadata.shard_offsets
                    n, m = shard.tensor.shape
                    shard.tensor.copy_(source[rows:rows + n, cols:cols + m])
            else:
                value.copy_(source)


# -- the training script -------------------------------------------------------------------------
def shard(model: TorchRecDLRM, device: torch.device, sharding: str
          ) -> tuple[nn.Module, Any]:
    """``model`` under ``DistributedModelParallel``: every table sharded ``sharding`` wise
    (``"table_wise"``, ``"column_wise"``, ``"data_parallel"``; ``"row_wise"`` on CUDA only,
    TorchRec 1.8's CPU sharder does not offer it) by TorchRec's planner; returns the sharded
    model and the plan."""
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.distributed.planner import (
        EmbeddingShardingPlanner,
        ParameterConstraints,
        Topology,
    )
    from torchrec.optim import apply_optimizer_in_backward

    for collection in (model.context_tables, model.item_tables):
        apply_optimizer_in_backward(TABLE_OPTIMIZER, collection.parameters(), {"lr": TABLE_LR})
    names = [f.name for f in (*model.context_fields, *model.item_fields)]
    world = dist.get_world_size()
    # column-wise: shards as narrow as the processes need (TorchRec's default minimum width
    # would leave a 16-column table whole)
    narrow = {"min_partition": max(1, model.embed_dim // world)} if sharding == "column_wise" \
        else {}
    planner = EmbeddingShardingPlanner(
        topology=Topology(world_size=world, compute_device=device.type),
        constraints={n: ParameterConstraints(sharding_types=[sharding], **narrow)
                     for n in names})
    plan = planner.collective_plan(model, pg=dist.GroupMember.WORLD)
    return DistributedModelParallel(model, device=device, plan=plan), plan


def load_task(dataset: str, protocol: int | None = None):
    """The task every process builds alike: featint's small synthetic data, or a release."""
    from featint.data import load_movielens
    from featint.synthetic import synthetic_movielens
    from featint.task import PROTOCOL, build_task

    ml = (synthetic_movielens(seed=0) if dataset == "synthetic"
          else load_movielens(release=dataset))
    return build_task(ml, protocol or PROTOCOL)


def main(argv: Sequence[str] | None = None) -> int:
    """Train :class:`TorchRecDLRM` across the processes ``torchrun`` started."""
    from featint.evaluate import rank_of_target, subsample
    from featint.models import build_model
    from featint.train import length_bucketed_batches
    from featint.training import fit_args, model_hparams

    parser = argparse.ArgumentParser(prog="featint.torchrec_dlrm", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--dataset", default="synthetic",
                        help="synthetic (featint's small set, default) or a release: ml-100k")
    parser.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="examples per step over all processes (default 256)")
    parser.add_argument("--sharding", default="table_wise",
                        choices=("table_wise", "row_wise", "column_wise", "data_parallel"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: gloo; cuda: one GPU per process, NCCL")
    parser.add_argument("--rank-examples", type=int, default=200,
                        help="test examples ranked by the trained sharded model (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="write report.json, the checkpoint dlrm.pt and ranks.npz here")
    args = parser.parse_args(argv)
    if args.sharding == "row_wise" and args.device != "cuda":
        parser.error("--sharding row_wise needs --device cuda: TorchRec 1.8 shards tables "
                     "row-wise on GPUs only (on a CPU: table_wise, column_wise, "
                     "data_parallel)")

    cuda = args.device == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{current().local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    say = print if rank == 0 else (lambda *a, **k: None)

    task = load_task(args.dataset)
    hparams = model_hparams("dlrm")
    reference = build_model("dlrm", task, seed=args.seed, **hparams)  # chapter 07's model
    model = TorchRecDLRM(task.schema, task.item_features(), **hparams)
    model.load_state_dict(from_featint(reference.state_dict(), task.schema))
    sharded, plan = shard(model.to(device), device, args.sharding)
    load_full_state(sharded, from_featint(reference.state_dict(), task.schema))
    say(f"{world} processes, {args.device}; the sharding plan:\n{plan}", flush=True)

    # 1. the same weights score the same: a batch of test contexts and candidates
    rng = np.random.default_rng(args.seed)
    check = task.examples("test")[:64]
    candidates = torch.from_numpy(np.column_stack(
        [task.target[check], task.sample_negatives(check, 4, rng)]))
    sharded.eval()
    with torch.no_grad():
        got = sharded(task.context(check).to(device), candidates.to(device)).cpu()
        want = reference.eval()(task.context(check), candidates)
    score_gap = torch.tensor((got - want).abs().max().item())
    dist.all_reduce(score_gap, op=dist.ReduceOp.MAX)
    say(f"same weights, largest score difference from featint's DLRM: {score_gap.item():.2e}")

    # 2. train: each step's batch split over the processes, 4 sampled negatives per example
    args_fit = fit_args("dlrm")
    from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
    from torchrec.optim.optimizers import in_backward_optimizer_filter

    dense = KeyedOptimizerWrapper(
        dict(in_backward_optimizer_filter(sharded.named_parameters())),
        lambda params: torch.optim.Adam(params, lr=args_fit["lr"],
                                        weight_decay=args_fit["weight_decay"]))
    optimizer = CombinedOptimizer([sharded.fused_optimizer, dense])
    labels = torch.zeros(5, device=device)
    labels[0] = 1.0
    losses, seen, started = [], 0, None
    sharded.train()
    epoch = 0
    batches: list[np.ndarray] = []
    for step in range(args.steps):
        if not batches:
            epoch += 1
            batch_rng = np.random.default_rng([args.seed, epoch])
            batches = length_bucketed_batches(batch_rng.permutation(task.examples("fit")),
                                              task.t, args.batch_size, batch_rng)
        ex = batches.pop(0)
        negatives = task.sample_negatives(ex, 4, np.random.default_rng([args.seed, step]))
        mine = slice(rank * len(ex) // world, (rank + 1) * len(ex) // world)
        ex, negatives = ex[mine], negatives[mine]
        items = torch.from_numpy(np.column_stack([task.target[ex], negatives])).to(device)
        logits = sharded(task.context(ex).to(device), items)
        loss = F.binary_cross_entropy_with_logits(logits, labels.expand_as(logits))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        losses.append(mean.item() / world)
        if step == 4:  # after a warm-up: time the rest
            if cuda:
                torch.cuda.synchronize(device)
            started, seen = time.perf_counter(), 0
        seen += len(ex)
        if rank == 0 and (step % 10 == 0 or step == args.steps - 1):
            print(f"step {step:3d}  loss {losses[-1]:.4f}", flush=True)
    if cuda:
        torch.cuda.synchronize(device)
    total = torch.tensor(float(seen))
    dist.all_reduce(total)
    seconds = time.perf_counter() - started if started else float("nan")
    rate = total.item() / seconds
    say(f"throughput: {rate:,.0f} training examples per second over {world} processes "
        f"(steps 5 to {args.steps - 1})")

    # 3. whole tables back in featint's layout; the sharded model ranks some test examples
    state = to_featint(full_state(sharded), task.schema)
    sharded.eval()
    examples = subsample(task.examples("test"), args.rank_examples)
    part = examples[rank::world]
    all_items = torch.arange(task.num_items, device=device).expand(len(part), -1)
    with torch.no_grad():
        scores = sharded(task.context(part).to(device), all_items).float()
        ranks = rank_of_target(scores, torch.from_numpy(task.target[part]).to(device),
                               task.seen_before(part).to(device)).cpu().numpy()
    gathered = [None] * world
    dist.all_gather_object(gathered, ranks)
    if rank == 0 and args.out is not None:
        ordered_ranks = np.empty(len(examples))
        for r, found in enumerate(gathered):
            ordered_ranks[r::world] = found
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save({"state": state, "hparams": hparams, "dataset": args.dataset,
                    "seed": args.seed}, args.out / "dlrm.pt")
        np.savez(args.out / "ranks.npz", examples=examples, ranks=ordered_ranks)
        report = {"world_size": world, "device": args.device, "sharding": args.sharding,
                  "plan": str(plan), "dataset": args.dataset, "steps": args.steps,
                  "batch_size": args.batch_size, "score_gap": score_gap.item(),
                  "losses": losses, "examples_per_second": rate,
                  "table_optimizer": f"{TABLE_OPTIMIZER.__name__} lr {TABLE_LR}",
                  "dense_optimizer": f"Adam lr {args_fit['lr']}",
                  "torch_threads": torch.get_num_threads()}
        (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out / 'report.json'}, the checkpoint dlrm.pt and ranks.npz")
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
