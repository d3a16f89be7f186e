"""``python -m chaos``: run the campaign (see :mod:`chaos.campaign`)."""

from __future__ import annotations

import sys

from chaos.campaign import main

sys.exit(main())
