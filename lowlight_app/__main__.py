"""``python -m lowlight_app`` is the ``lowlight-rt`` command (viewer included)."""

import sys

from . import main

sys.exit(main())
