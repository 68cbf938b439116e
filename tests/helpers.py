"""Helpers shared by the model-specific tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from featint.models import build_model
from featint.task import Features


def context64(task, ex, sequence_length: int | None = None) -> Features:
    """The context features of examples ``ex`` with float64 values (and, with
    ``sequence_length``, the ordered prefix a sequence model reads)."""
    c = task.context(np.asarray(ex), sequence_length=sequence_length)
    return Features(c.idx, c.val.double(), c.field, c.seq)


def perturbed(task, name: str, seed: int = 0, scale: float = 0.3, **hparams) -> nn.Module:
    """Model ``name`` in float64 and eval mode with every parameter and BatchNorm running
    statistic random (a fresh model has zero tables, which would hide a wrong index); the
    padding rows of embeddings stay zero, as training keeps them."""
    model = build_model(name, task, seed=seed, **hparams).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
        for m in model.modules():
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model.eval()


def load_script(path):
    """A script of ``benchmarks/`` imported as a module (they are not a package); it is
    registered in ``sys.modules`` first, as an import would, so its dataclasses work."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
