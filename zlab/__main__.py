"""``python -m zlab``: the same as the ``zlab`` command."""

import sys

from .cli import main

sys.exit(main())
