"""``python -m chaos.entry <retrainer args>``: the real CLI, with ``faulty://`` registered.

The campaign starts every command through this module, so any of them can be pointed at the
fault-injecting filesystem (``RETRAINER_ARTIFACTS_URL=faulty:///...``); without that variable
it is exactly ``python -m retrainer``.
"""

from __future__ import annotations

from chaos.faultyfs import register

register()

if __name__ == "__main__":
    from retrainer.cli import main

    main()
