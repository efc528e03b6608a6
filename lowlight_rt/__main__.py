"""``python -m lowlight_rt``: the runtime's command line, headless (files, image folders, ``--no-gui``
recording, ``bench``). The ``lowlight-rt`` command (``python -m lowlight_app``) is the same with
the viewer handed in."""

import sys

from .cli import main

sys.exit(main())
