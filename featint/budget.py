"""The budget every model of the comparison gets, and the one way a model is trained for it.

:class:`Budget` holds what is the same for every model (embedding size, epoch cap, early
stopping, optimiser, batches, negatives) and the settings chosen per model on validation
(``settings``: read from the trials of :mod:`featint.tuning`). :func:`train_model` builds and
fits a model under it; the comparison (:mod:`featint.compare`) and the chapters (through
:mod:`featint.cache`) both call it, so a chapter's seed-0 model is the comparison's.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from featint.evaluate import LABELS
from featint.models import MODELS, build_model
from featint.task import NextMovieTask
from featint.train import History, fit
from featint.tuning import chosen, split


@dataclass(frozen=True)
class Budget:
    """What every model gets: the same for all, except each model's ``settings`` (learning
    rate, weight decay, constructor arguments), chosen on validation from the same number of
    trials per model (:mod:`featint.tuning`; by default read from ``results/tuning``).

    The validation set is ranked after every epoch for early stopping; ``valid_limit`` of its
    8,289 examples (a fixed, evenly spread subsample; None: all) keep that affordable for the
    models whose ranking is slow (AFM ranks the test set in about 25-30 s on 2 cores).
    ``epochs`` is a cap meant never to bind: early stopping ends every run of the comparison
    (at 15, 7 of 9 models were still improving when stopped; a run whose best epoch is the
    cap has not converged, and the comparison says so).
    """

    epochs: int = 50
    embed_dim: int = 16
    patience: int = 5
    monitor: str = "mrr"
    lr: float = inspect.signature(fit).parameters["lr"].default
    weight_decay: float = inspect.signature(fit).parameters["weight_decay"].default
    batch_size: int = inspect.signature(fit).parameters["batch_size"].default
    num_negatives: int = inspect.signature(fit).parameters["num_negatives"].default
    loss: str = inspect.signature(fit).parameters["loss"].default
    valid_limit: int | None = 2000
    settings: dict[str, dict[str, Any]] = field(default_factory=chosen)

    def lr_for(self, name: str) -> float:
        """The learning rate of model ``name``."""
        return self.settings.get(name, {}).get("lr", self.lr)

    def hparams_for(self, name: str) -> dict[str, Any]:
        """The constructor arguments that ``settings`` gives model ``name``."""
        return split(self.settings.get(name, {}))[1]

    def fit_args(self, name: str) -> dict[str, Any]:
        """The arguments of :func:`featint.train.fit` that this budget sets for ``name``: the
        same for every model, except what its setting says (learning rate, weight decay, and,
        for a model whose literature compares losses, the loss and the negatives)."""
        setting = self.settings.get(name, {})
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr_for(name),
                    weight_decay=setting.get("weight_decay", self.weight_decay),
                    num_negatives=setting.get("num_negatives", self.num_negatives),
                    loss=setting.get("loss", self.loss),
                    patience=self.patience, monitor=self.monitor, valid_limit=self.valid_limit)

    def describe(self) -> str:
        """The budget in one sentence (printed by the CLI, stored in the results)."""
        valid = ("all validation examples" if self.valid_limit is None else
                 f"the same {self.valid_limit} validation examples")
        own_loss = sorted(name for name, setting in self.settings.items()
                          if {"loss", "num_negatives"} & set(setting))
        loss = "binary cross-entropy"
        if own_loss:  # a model whose literature compares losses tunes them (SASRec)
            loss += f" (loss and negatives tuned as settings for {', '.join(own_loss)})"
        return (
            f"every model: embedding size {self.embed_dim}, at most {self.epochs} epochs, early "
            f"stopping after {self.patience} epochs without a better "
            f"{LABELS.get(self.monitor, self.monitor)} on {valid} (best epoch restored), Adam, "
            f"batches of {self.batch_size}, {self.num_negatives} sampled negatives per "
            f"positive, {loss}; learning rate, weight decay and model settings "
            f"chosen per model on validation, the same number of trials for every model"
        )


def model_hparams(name: str, budget: Budget, extra: dict[str, Any] | None = None) -> dict:
    """Constructor arguments of model ``name``: the budget's ``embed_dim`` where the model
    takes one (the linear model has none), then ``extra`` (default: the budget's setting of
    the model, :meth:`Budget.hparams_for`) on top."""
    params = inspect.signature(MODELS[name].__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    hparams: dict[str, Any] = {}
    if "embed_dim" in params or takes_any:
        hparams["embed_dim"] = budget.embed_dim
    hparams.update(budget.hparams_for(name) if extra is None else extra)
    return hparams


def train_model(
    task: NextMovieTask, name: str, seed: int = 0, budget: Budget | None = None,
    device: str | torch.device = "cpu", hparams: dict[str, Any] | None = None,
    progress: bool = True, folder: str | None = None,
) -> tuple[nn.Module, History, dict[str, Any]]:
    """Build model ``name`` from ``seed`` and fit it under ``budget`` (default: the
    comparison's) with constructor arguments ``hparams`` (default: the budget's setting): the
    one way a model is trained for the comparison and for the chapters. A model built with
    ``pretrain="fm"`` starts from the FM of the same seed and budget (AFM, NFM; the model
    cache in ``folder``, default its usual place, supplies it). Returns the model, its
    training history and its constructor arguments."""
    budget = budget or Budget()
    hparams = model_hparams(name, budget, hparams)
    model = build_model(name, task, seed=seed, **hparams)
    if hparams.get("pretrain"):
        from featint.cache import trained  # the cache trains through this module

        source, _ = trained(hparams["pretrain"], task, seed, budget, device=device,
                            progress=progress, folder=folder)
        model.load_pretrained(source)
    history = fit(model, task, **budget.fit_args(name), seed=seed, device=device,
                  progress=progress, verbose=progress)
    return model, history, hparams
