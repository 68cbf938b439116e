"""The CUDA path: `--device cuda` trains and ranks end to end, with torch's deterministic
algorithms on. Where no GPU is present only the set-up is checked (what featint asks of
torch); the end-to-end tests run where CUDA is available."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featint import config
from featint.config import from_env, prepare, use
from featint.evaluate import rank_examples
from featint.models import MODELS, build_model
from featint.train import fit

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_prepare_turns_on_deterministic_algorithms_on_cuda_only(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms",
                        lambda mode, **kw: calls.append((mode, kw)))
    prepare("cpu")
    assert calls == []  # the CPU kernels are deterministic already; nothing changes
    with pytest.warns(UserWarning, match="CUBLAS_WORKSPACE_CONFIG=:4096:8"):
        prepare("cuda", from_env({}))
    assert calls == [(True, {"warn_only": True})]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # set as it should be: no warning
        prepare(torch.device("cuda"), from_env({"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}))


def test_the_cublas_setting_is_read_by_the_configuration_only():
    assert "CUBLAS_WORKSPACE_CONFIG" in config.ENVIRONMENT
    assert from_env({"CUBLAS_WORKSPACE_CONFIG": ":16:8"}).cublas_workspace == ":16:8"
    assert "cublas_workspace" not in from_env({}).record()  # a machine setting, not a result


@needs_cuda
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_and_ranks_on_cuda(name, synthetic_task):
    """The same model, trained briefly on the GPU and moved to the CPU, ranks as it ranks on
    the GPU (float tolerance: another order of sums)."""
    with use(quick=True):
        model = build_model(name, synthetic_task, seed=0)
        fit(model, synthetic_task, epochs=1, device="cuda", progress=False, verbose=False)
    examples = synthetic_task.examples("test")
    on_gpu = rank_examples(model, synthetic_task, examples, device="cuda")
    on_cpu = rank_examples(model.cpu(), synthetic_task, examples)
    assert np.mean(np.abs(on_gpu - on_cpu) <= 1.0) > 0.99


@needs_cuda
def test_two_cuda_runs_are_bitwise_equal_when_cublas_is_set(synthetic_task):
    if from_env().cublas_workspace not in config.CUBLAS_DETERMINISTIC:
        pytest.skip("CUBLAS_WORKSPACE_CONFIG is not set to a deterministic value")
    states = []
    for _ in range(2):
        with use(quick=True):
            model = build_model("dlrm", synthetic_task, seed=0)
            fit(model, synthetic_task, epochs=1, device="cuda", progress=False,
                verbose=False)
        states.append({k: v.cpu() for k, v in model.state_dict().items()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
