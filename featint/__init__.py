"""featint: feature-interaction models for sparse data, explained and compared.

The pieces every notebook uses: :mod:`featint.data` (verified MovieLens 100K),
:mod:`featint.task` (the next-movie task), :mod:`featint.evaluate` (full-ranking metrics and
baselines), :mod:`featint.train` (one ``fit`` for every model), :mod:`featint.layers` (the
shared building blocks) and :mod:`featint.models` (one short module per architecture).
"""

from featint.data import DataError, load_movielens
from featint.task import build_task

__version__ = "0.1.0"
__all__ = ["DataError", "build_task", "load_movielens", "__version__"]
