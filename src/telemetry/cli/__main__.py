"""``python -m telemetry.cli``: the ``rimp`` command."""

import sys

from telemetry.cli import main

sys.exit(main())
