"""``python -m metarl`` is ``python -m metarl.train``."""

import sys

from .train import main

sys.exit(main())
