"""``python -m featint``: the same command as ``featint`` (see :mod:`featint.cli`)."""

import sys

from featint.cli import main

sys.exit(main())
