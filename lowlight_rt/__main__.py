"""``python -m lowlight_rt`` is the same as the ``lowlight-rt`` command."""

import sys

from .cli import main

sys.exit(main())
