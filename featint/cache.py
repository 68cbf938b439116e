"""Trained models, kept per machine: a model is trained once, then read back.

:func:`trained` trains a model the one way the comparison trains it (:func:`featint.budget.
train_model`) and keeps its weights and training history in
``$FEATINT_MODEL_CACHE`` (default: the user cache, ``~/.cache/featint/models``). ``featint
compare`` and the chapters both go through it, so a chapter reuses the comparison's seed-0 model
(or trains it, once, for every chapter that needs it) and its numbers are the comparison's.

The file name carries a digest of everything that decides the weights: the model, seed,
constructor arguments, the training arguments of the budget, the protocol and size of the task,
quick mode, the device type, the torch version and the source of the modules training runs
through (task, training, ranking, layers, models). Change any of them and the model is trained
afresh instead of read back stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

import featint
from featint.budget import Budget, model_hparams, train_model
from featint.data import cache_dir
from featint.evaluate import quick
from featint.files import atomic_open
from featint.models import build_model
from featint.task import NextMovieTask
from featint.train import History

ENV_VAR = "FEATINT_MODEL_CACHE"
#: The package files whose code decides what training produces (paths inside ``featint/``).
TRAINING_SOURCES = ("task.py", "train.py", "evaluate.py", "layers.py", "budget.py", "models")


def cache_folder() -> Path:
    """``$FEATINT_MODEL_CACHE``, else ``models/`` in featint's user cache."""
    return Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else cache_dir() / "models"


def source_digest() -> str:
    """SHA-256 over the source of :data:`TRAINING_SOURCES`."""
    root = Path(featint.__file__).parent
    digest = hashlib.sha256()
    for name in TRAINING_SOURCES:
        paths = sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / name]
        for path in paths:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(task: NextMovieTask, name: str, seed: int, budget: Budget,
              hparams: dict[str, Any], device: str | torch.device) -> dict[str, Any]:
    """What decides a trained model, as a JSON-able dict (with the key of the model it
    starts from, if it is pretrained)."""
    key = {"model": name, "seed": seed, "hparams": hparams, "fit": budget.fit_args(name),
           "protocol": task.protocol, "counts": task.counts(), "quick": quick(),
           "device": torch.device(device).type, "torch": torch.__version__,
           "source": source_digest()}
    if hparams.get("pretrain"):
        source = hparams["pretrain"]
        key["pretrain"] = cache_key(task, source, seed, budget, model_hparams(source, budget),
                                    device)
    return key


def trained(
    name: str, task: NextMovieTask, seed: int = 0, budget: Budget | None = None,
    hparams: dict[str, Any] | None = None, device: str | torch.device = "cpu",
    progress: bool = True, folder: str | Path | None = None,
) -> tuple[nn.Module, History]:
    """Model ``name`` trained on ``task`` with ``seed`` under ``budget`` (default: the
    comparison's) with constructor arguments ``hparams`` (default: the budget's setting of
    the model): read from the cache when it holds it, else trained now and stored. Returns the
    model in eval mode on ``device`` and its training history."""
    budget = budget or Budget()
    hparams = model_hparams(name, budget, hparams)
    key = cache_key(task, name, seed, budget, hparams, device)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(folder if folder is not None else cache_folder()) / f"{name}-seed{seed}-{digest}.pt"
    if path.exists():
        stored = torch.load(path, map_location=device, weights_only=True)
        model = build_model(name, task, seed=seed, **hparams).to(device)
        model.load_state_dict(stored["state"])
        if progress:
            print(f"{name} seed {seed}: trained weights read from the model cache")
        return model.eval(), History(**stored["history"])
    model, history, _ = train_model(task, name, seed, budget, device, hparams, progress,
                                    folder)
    with atomic_open(path, "wb") as f:
        torch.save({"state": model.state_dict(), "history": asdict(history)}, f)
    return model.eval(), history
