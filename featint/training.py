"""The one way a model is trained for the comparison and for the chapters: :func:`trained`.

A model is trained under the budget every model shares (:class:`featint.config.Budget`:
embedding size, epoch cap, early stopping, batches, negatives) with its own setting, the one
chosen on validation by ``make tune`` (:func:`setting_of`, read from the tuning record that
ships with featint, :mod:`featint.tuning`). :func:`trained` builds the model, starts it from a
trained FM where its setting says so (AFM, NFM), fits it with :func:`featint.train.fit`, and
keeps the result in the model cache; the next call with the same key reads it back. ``featint
compare``, ``make tune`` and every chapter call it, so a chapter's seed-0 model is the
comparison's.

The cache key (:func:`cache_key`, stored as JSON beside the weights) holds everything that
decides the weights: the model, seed, setting and constructor arguments, the training
arguments, the task (protocol, history window, a digest of its arrays), quick mode and its
sizes, the device type, the thread count, the torch and numpy versions, and the code of the
modules training runs through (:data:`TRAINING_SOURCES`, read without comments and
docstrings, so that editing prose does not retrain anything). ``featint cache --list`` shows
the cache and ``--prune`` removes what the current code can no longer read back.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import featint
from featint.config import BUDGET, Budget, Config, current, resolve_device
from featint.evaluate import LABELS
from featint.files import atomic_open, write_json
from featint.models import MODELS, build_model
from featint.task import NextMovieTask
from featint.train import History, fit
from featint.tuning import SPACES, RecordError, chosen_trial, split, tuning_folder

__all__ = ["BUDGET", "Budget", "RecordError", "cache_key", "describe", "fit_args",
           "list_cache", "model_hparams", "prune_cache", "setting_of", "trained"]

#: The package files whose code decides what training produces (paths inside ``featint/``),
#: for every model; a model's key adds its own module (``models/<module>.py``), so that
#: editing one model retrains that model only.
TRAINING_SOURCES = ("data.py", "features.py", "task.py", "layers.py", "models/__init__.py",
                    "train.py", "evaluate.py", "training.py")
KEY_FORMAT = "featint-model-cache/3"


# -- a model's setting -------------------------------------------------------------------------
def setting_of(name: str, folder: str | Path | None = None) -> dict[str, Any]:
    """Model ``name``'s setting chosen on validation (``lr``, ``weight_decay`` and
    constructor arguments; see :mod:`featint.tuning`), from the tuning record in ``folder``
    (default: the one shipped with featint). A model with nothing to tune has ``{}``. A
    missing or out-of-date record is a :class:`RecordError` that says how to make it."""
    if name not in SPACES:
        return {}
    top = chosen_trial(name, folder)
    if top is None:
        where = tuning_folder(folder)
        raise RecordError(
            f"no complete tuning record for {name!r} in {where}: every setting of its search "
            f"space (featint/tuning.py) must have a trial on record. Fix: run `make tune` "
            f"(or `python benchmarks/tune.py --models {name}`), or pass the setting "
            f"explicitly (setting={{...}})")
    return dict(top["setting"])


def model_hparams(name: str, budget: Budget = BUDGET,
                  setting: dict[str, Any] | None = None) -> dict[str, Any]:
    """Constructor arguments of model ``name``: the budget's ``embed_dim`` where the model
    takes one (the linear model has none), then the constructor part of ``setting``
    (default: :func:`setting_of`)."""
    setting = setting_of(name) if setting is None else setting
    params = inspect.signature(MODELS[name].__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    hparams: dict[str, Any] = {}
    if "embed_dim" in params or takes_any:
        hparams["embed_dim"] = budget.embed_dim
    hparams.update(split(setting)[1])
    return hparams


def fit_args(name: str, budget: Budget = BUDGET,
             setting: dict[str, Any] | None = None) -> dict[str, Any]:
    """The arguments of :func:`featint.train.fit` for ``name``: the budget's, then the
    training keys of ``setting`` (default: :func:`setting_of`; ``lr``, ``weight_decay``,
    ``reduction``, ``embedding_l2``: :data:`featint.tuning.FIT_KEYS`) on top."""
    setting = setting_of(name) if setting is None else setting
    args = dict(epochs=budget.epochs, batch_size=budget.batch_size, lr=budget.lr,
                weight_decay=budget.weight_decay, num_negatives=budget.num_negatives,
                patience=budget.patience, monitor=budget.monitor,
                valid_limit=budget.valid_limit)
    args.update(split(setting)[0])
    return args


def describe(budget: Budget = BUDGET) -> str:
    """The budget in one sentence (printed by the CLI, stored in the results)."""
    valid = ("all validation examples" if budget.valid_limit is None else
             f"the same {budget.valid_limit} validation examples")
    return (
        f"every model: embedding size {budget.embed_dim}, at most {budget.epochs} epochs, "
        f"early stopping after {budget.patience} epochs without a better "
        f"{LABELS.get(budget.monitor, budget.monitor)} on {valid} (best epoch restored), "
        f"Adam, batches of {budget.batch_size}, {budget.num_negatives} sampled negatives per "
        f"positive, binary cross-entropy (a sequence model whose literature compares losses "
        f"tries another among its trials); each model's own setting chosen on validation from "
        f"the same number of trials"
    )


# -- the cache key -----------------------------------------------------------------------------
def _code(path: Path) -> str:
    """The code of a Python file without its comments and docstrings (its syntax tree)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def model_source(name: str) -> str:
    """The module of model ``name``, as a path inside ``featint/`` (``models/fm.py``)."""
    return MODELS[name].__module__.removeprefix("featint.").replace(".", "/") + ".py"


def source_digests(name: str | None = None) -> dict[str, str]:
    """Per entry of :data:`TRAINING_SOURCES` (and, with ``name``, the module of that model),
    a SHA-256 of its code, comments and docstrings left out."""
    root = Path(featint.__file__).parent
    entries = TRAINING_SOURCES + ((model_source(name),) if name in MODELS else ())
    return {entry: hashlib.sha256(_code(root / entry).encode()).hexdigest()[:16]
            for entry in entries}


def task_digest(task: NextMovieTask) -> str:
    """A SHA-256 over the task's arrays (examples, split, features, sequences): two tasks
    with the same counts but other examples or features get different digests."""
    found = getattr(task, "_digest", None)
    if found is None:
        digest = hashlib.sha256(json.dumps(
            [task.protocol, task.window, task.history_fields,
             [asdict(f) for f in task.schema.fields]], sort_keys=True).encode())
        for name in ("user", "t", "target", "split", "ctx_idx", "ctx_val", "ctx_field",
                     "item_idx", "item_val", "item_field", "seq_items", "seq_start"):
            digest.update(np.ascontiguousarray(getattr(task, name)).tobytes())
        found = task._digest = digest.hexdigest()[:16]
    return found


def cache_key(task: NextMovieTask, name: str, seed: int, budget: Budget,
              setting: dict[str, Any], device: str | torch.device,
              config: Config | None = None) -> dict[str, Any]:
    """What decides a trained model, as a JSON-able dict (with the key of the model it
    starts from, if it is pretrained)."""
    config = config or current()
    hparams = model_hparams(name, budget, setting)
    key: dict[str, Any] = {
        "format": KEY_FORMAT, "model": name, "seed": seed, "setting": setting,
        "hparams": hparams, "fit": fit_args(name, budget, setting),
        "task": {"protocol": task.protocol, "window": task.window, "counts": task.counts(),
                 "digest": task_digest(task)},
        "quick": asdict(config.sizes) if config.quick else False,
        "device": torch.device(device).type, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "numpy": np.__version__,
        "source": source_digests(name),
    }
    if hparams.get("pretrain"):
        source = hparams["pretrain"]
        key["pretrain"] = cache_key(task, source, seed, budget, setting_of(source), device,
                                    config)
    return key


def digest_of(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# -- training ----------------------------------------------------------------------------------
def _train(task: NextMovieTask, name: str, seed: int, budget: Budget, setting: dict[str, Any],
           device: str | torch.device, progress: bool, folder: Path | None,
           config: Config) -> tuple[nn.Module, History]:
    """Build model ``name`` from ``seed`` and fit it; a model whose setting says
    ``pretrain="fm"`` starts from the trained FM of the same seed and budget (from the
    cache)."""
    hparams = model_hparams(name, budget, setting)
    model = build_model(name, task, seed=seed, **hparams)
    if hparams.get("pretrain"):
        source, _ = trained(hparams["pretrain"], task, seed, budget, device=device,
                            progress=progress, folder=folder, config=config)
        model.load_pretrained(source)
    history = fit(model, task, **fit_args(name, budget, setting), seed=seed, device=device,
                  progress=progress, verbose=progress, config=config)
    return model, history


def trained(
    name: str, task: NextMovieTask, seed: int = 0, budget: Budget | None = None,
    setting: dict[str, Any] | None = None, device: str | torch.device | None = None,
    progress: bool = True, folder: str | Path | None = None, config: Config | None = None,
) -> tuple[nn.Module, History]:
    """Model ``name`` trained on ``task`` with ``seed`` under ``budget`` (default: the
    configuration's) with ``setting`` (default: its tuned setting, :func:`setting_of`): read
    from the model cache in ``folder`` (default: the configuration's) when it holds it, else
    trained now on ``device`` (default: the configuration's) and stored there with its key.
    Returns the model in eval mode on the CPU, where chapters inspect it (``.to(device)``
    to rank on a GPU, as the comparison does), and its training history."""
    config = config or current()
    budget = budget or config.budget
    setting = setting_of(name) if setting is None else dict(setting)
    device = torch.device(device if device is not None else resolve_device(config.device))
    key = cache_key(task, name, seed, budget, setting, device, config)
    folder = Path(folder) if folder is not None else config.models_folder
    stem = f"{name}-seed{seed}-{digest_of(key)}"
    path = folder / f"{stem}.pt"
    if path.exists():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(name, task, seed=seed, **key["hparams"])
        model.load_state_dict(stored["state"])
        if progress:
            print(f"{name} seed {seed}: trained weights read from the model cache")
        return model.eval(), History(**stored["history"])
    model, history = _train(task, name, seed, budget, setting, device, progress, folder,
                            config)
    with atomic_open(path, "wb") as f:
        torch.save({"state": model.state_dict(), "history": asdict(history)}, f)
    write_json(folder / f"{stem}.json", {**key, "created": time.strftime("%Y-%m-%d %H:%M:%S")})
    return model.eval(), history


# -- the cache itself --------------------------------------------------------------------------
@dataclass
class CacheEntry:
    """One trained model in the cache: its files, key and whether the current code, versions
    and thread count would produce the same key (``current``: it can be read back now)."""

    weights: Path
    key: dict[str, Any] | None
    size: int
    current: bool

    @property
    def label(self) -> str:
        return self.weights.stem


def list_cache(folder: str | Path | None = None) -> list[CacheEntry]:
    """Every model in the cache ``folder`` (default: the configuration's), oldest first. An
    entry is current when its key's code digests and versions are this installation's."""
    folder = Path(folder) if folder is not None else current().models_folder
    now = {"torch": torch.__version__, "numpy": np.__version__, "format": KEY_FORMAT}
    entries = []
    for weights in sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime):
        meta = weights.with_suffix(".json")
        key = json.loads(meta.read_text()) if meta.exists() else None
        fresh = (key is not None and all(key.get(k) == v for k, v in now.items())
                 and key.get("model") in MODELS
                 and key.get("source") == source_digests(key["model"]))
        entries.append(CacheEntry(weights, key, weights.stat().st_size + (
            meta.stat().st_size if meta.exists() else 0), fresh))
    return entries


def prune_cache(folder: str | Path | None = None) -> list[CacheEntry]:
    """Remove every entry of the cache that is not current (another code, torch or numpy
    version, or written before keys were stored); returns what was removed."""
    removed = [e for e in list_cache(folder) if not e.current]
    for entry in removed:
        entry.weights.unlink(missing_ok=True)
        entry.weights.with_suffix(".json").unlink(missing_ok=True)
    return removed
