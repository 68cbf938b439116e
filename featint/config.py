"""featint's configuration: one object, built in one place, passed down.

:class:`Config` holds everything that is not a model's own setting: quick mode and its sizes
(:class:`QuickSizes`), the budget every model is trained under (:class:`Budget`), the device,
the thread count and the folders featint reads and writes. :func:`from_env` builds it from
the documented environment variables (:data:`ENVIRONMENT`); this is the only module of featint
that reads ``os.environ``, and no module writes it. Code that needs a setting takes a
``config`` argument, defaulting to :func:`current` (the configuration of the process, built
from the environment on first use); :func:`use` makes another configuration current for a
block, e.g. ``featint compare --quick`` or ``compare(quick=False)`` under ``FEATINT_QUICK=1``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

#: The records shipped with featint as package data: the tuning trials, the comparison's
#: results and the protocol's choices, written by ``make tune``, ``make run`` and
#: ``make window`` and read by training, the statistics and the chapters.
RECORDS = Path(__file__).resolve().parent / "records"

#: Every environment variable featint reads: name -> what it sets. README and CONTRIBUTING
#: show this table (a test checks that they list exactly these).
ENVIRONMENT: dict[str, str] = {
    "FEATINT_DATA_DIR": "the `ml-100k` folder to read (checked by sha256); unset: the user "
                        "cache, then a download",
    "FEATINT_DATA_ROOT": "a folder of MovieLens releases as GroupLens ships them (`ml-1m.zip`, "
                         "`ml-20m.zip`, ...; each checked by its published md5), searched "
                         "before the user cache",
    "FEATINT_QUICK": "`1`: quick mode, a smoke test in seconds (the sizes of "
                     "`featint.config.QuickSizes`); the tests set it",
    "FEATINT_DEVICE": "`auto` (the default: CUDA when available, else the CPU), `cpu` or "
                      "`cuda`: where models train and rank",
    "FEATINT_THREADS": "the number of threads torch uses (default: torch's own choice)",
    "FEATINT_MODEL_CACHE": "the folder of trained models (default `models/` in the user "
                           "cache)",
    "FEATINT_RESULTS": "a comparison folder written by `featint compare` for the chapters to "
                       "read instead of the record shipped with featint",
    "CUBLAS_WORKSPACE_CONFIG": "read, never set: on CUDA, cuBLAS is deterministic only when "
                               "it is `:4096:8` (or `:16:8`) before Python starts; featint "
                               "warns when it is missing",
    "XDG_CACHE_HOME": "the root of the user cache (default `~/.cache`); featint uses "
                      "`featint/` inside it",
    "LOCAL_RANK": "set by `torchrun`, never by hand: which GPU a process of the TorchRec "
                  "script takes (`featint/torchrec_dlrm.py`, chapter 10)",
}
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")
DEVICES = ("cpu", "cuda", "auto")
#: The values of ``CUBLAS_WORKSPACE_CONFIG`` under which cuBLAS is deterministic (CUDA >= 10.2).
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")


def environment_table() -> str:
    """:data:`ENVIRONMENT` as a Markdown table (README and CONTRIBUTING show it; a test
    checks they hold this one)."""
    rows = ["| variable | what it sets |", "|---|---|"]
    rows += [f"| `{name}` | {text} |" for name, text in ENVIRONMENT.items()]
    return "\n".join(rows)


class ConfigError(ValueError):
    """An environment variable or option has a value featint cannot use; the message names
    the variable and the values it takes."""


@dataclass(frozen=True)
class QuickSizes:
    """How small quick mode makes the work: at most ``epochs`` epochs of ``fit_examples``
    fit examples, early stopping on ``valid_examples`` validation examples, and
    ``test_examples`` test examples ranked (each evenly spread over its split)."""

    epochs: int = 2
    fit_examples: int = 4096
    valid_examples: int = 1000
    test_examples: int = 2000

    def describe(self) -> str:
        return (f"at most {self.epochs} epochs on {self.fit_examples} fit examples, "
                f"{self.valid_examples} validation and {self.test_examples} test examples")


@dataclass(frozen=True)
class Budget:
    """What every model of the comparison gets, the same for all: embedding size, epoch cap,
    early stopping (``patience`` epochs without a better validation ``monitor`` on
    ``valid_limit`` evenly spread validation examples, None: all 8,289), Adam with learning
    rate ``lr`` and ``weight_decay`` unless a model's tuned setting says otherwise, batches and
    sampled negatives. ``epochs`` is a cap meant never to bind: early stopping ends every run
    (a run that reaches the cap fewer than ``patience`` epochs after its best has not
    converged, and the comparison says so: :func:`featint.report.capped_runs`).

    :func:`featint.train.fit` takes its defaults from here; each model's own setting (the
    tuning record) is added by :mod:`featint.training`.
    """

    epochs: int = 150
    embed_dim: int = 16
    patience: int = 5
    monitor: str = "mrr"
    lr: float = 5e-3
    weight_decay: float = 0.0
    batch_size: int = 1024
    num_negatives: int = 4
    valid_limit: int | None = 2000


#: The budget of the comparison (and the defaults of ``fit``).
BUDGET = Budget()


@dataclass(frozen=True)
class Config:
    """Everything featint is told from outside a model's setting; see :func:`from_env`."""

    quick: bool = False
    sizes: QuickSizes = field(default_factory=QuickSizes)
    budget: Budget = BUDGET
    device: str = "auto"
    threads: int | None = None
    data_dir: Path | None = None
    data_root: Path | None = None
    cache_root: Path = field(default_factory=lambda: Path.home() / ".cache" / "featint")
    model_cache: Path | None = None
    results: Path | None = None
    cublas_workspace: str | None = None
    local_rank: int = 0

    @property
    def models_folder(self) -> Path:
        """Where trained models are kept: ``model_cache``, else ``models/`` of the cache."""
        return self.model_cache if self.model_cache is not None else self.cache_root / "models"

    def torch_device(self) -> torch.device:
        """:attr:`device` as a torch device (``auto`` resolved here)."""
        return resolve_device(self.device)

    def record(self) -> dict[str, Any]:
        """The configuration as JSON-able values (``results.json`` stores what ran)."""
        out = asdict(self)
        for key in ("data_dir", "data_root", "cache_root", "model_cache", "results",
                    "cublas_workspace", "local_rank"):
            out.pop(key)  # machine paths and process details: not part of what was computed
        return out


def _flag(name: str, text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={text!r} is not a yes/no value; use 1 or 0")


def from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """The configuration the environment variables of :data:`ENVIRONMENT` describe (default:
    this process's), with ``overrides`` (field -> value, e.g. from command-line flags) on
    top. Malformed values are a :class:`ConfigError` that names the variable."""
    env = os.environ if environ is None else environ
    device = env.get("FEATINT_DEVICE", "auto").strip().lower() or "auto"
    if device not in DEVICES:
        raise ConfigError(f"FEATINT_DEVICE={device!r} is not a device featint knows; use one "
                          f"of {', '.join(DEVICES)}")
    threads = None
    if env.get("FEATINT_THREADS", "").strip():
        try:
            threads = int(env["FEATINT_THREADS"])
        except ValueError:
            threads = 0
        if threads < 1:
            raise ConfigError(f"FEATINT_THREADS={env['FEATINT_THREADS']!r} must be a whole "
                              f"number of at least 1")
    root = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    values: dict[str, Any] = dict(
        quick=_flag("FEATINT_QUICK", env.get("FEATINT_QUICK", "")),
        device=device,
        threads=threads,
        data_dir=Path(env["FEATINT_DATA_DIR"]).expanduser() if env.get("FEATINT_DATA_DIR")
        else None,
        data_root=Path(env["FEATINT_DATA_ROOT"]).expanduser()
        if env.get("FEATINT_DATA_ROOT") else None,
        cache_root=Path(root) / "featint",
        model_cache=Path(env["FEATINT_MODEL_CACHE"]).expanduser()
        if env.get("FEATINT_MODEL_CACHE") else None,
        results=Path(env["FEATINT_RESULTS"]).expanduser() if env.get("FEATINT_RESULTS")
        else None,
        cublas_workspace=env.get("CUBLAS_WORKSPACE_CONFIG") or None,
        local_rank=int(env.get("LOCAL_RANK") or 0),
    )
    values.update(overrides)
    return Config(**values)


_current: list[Config] = []


def current() -> Config:
    """The configuration in force: the innermost :func:`use` block's, else the one the
    environment describes now (read at each call, so a changed variable takes effect)."""
    return _current[-1] if _current else from_env()


@contextlib.contextmanager
def use(config: Config | None = None, **changes: Any) -> Iterator[Config]:
    """Make ``config`` (default: the current one) with ``changes`` the current configuration
    inside the block; the previous one is back afterwards."""
    active = replace(config or current(), **changes)
    depth = len(_current)
    _current.append(active)
    try:
        yield active
    finally:
        del _current[depth:]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without CUDA is an error that
    says so."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but CUDA is not available here; use "
                         "device cpu or auto (FEATINT_DEVICE, --device)")
    return resolved


def prepare(device: str | torch.device, config: Config | None = None) -> None:
    """Set torch up for work on ``device``. On CUDA: torch's deterministic algorithms
    (``warn_only``: an operation without a deterministic CUDA kernel warns instead of
    failing; ``index_add``, ``scatter_add_`` and the backward of ``index_select``, which
    featint's layers use, have one) and no cuDNN autotuning; a warning when
    ``CUBLAS_WORKSPACE_CONFIG`` (``config``'s, default :func:`current`) does not make cuBLAS
    deterministic, since it must be set before the process starts. On CPU nothing changes:
    featint's CPU kernels give the same numbers run after run."""
    if torch.device(device).type != "cuda":
        return
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    workspace = (config or current()).cublas_workspace
    if workspace not in CUBLAS_DETERMINISTIC:
        import warnings

        warnings.warn(f"CUBLAS_WORKSPACE_CONFIG is {workspace!r}: cuBLAS matrix products on "
                      f"CUDA are not deterministic, so reruns differ in the last bits. Start "
                      f"Python with CUBLAS_WORKSPACE_CONFIG={CUBLAS_DETERMINISTIC[0]}",
                      stacklevel=2)


def environment_snapshot(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The thread variables of the numerical libraries as they were set (recorded beside
    results: they change speed, and float sums taken in another order)."""
    env = os.environ if environ is None else environ
    return {"omp_num_threads": env.get("OMP_NUM_THREADS"),
            "mkl_num_threads": env.get("MKL_NUM_THREADS")}
