"""Repository-wide pytest set-up: tests never need a screen, a GPU or ../shared."""

import os

# Qt runs offscreen in tests (the viewer tests use pytest-qt); a real window is only for manual runs.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Two cores shared by decode, inference and encode threads: keep BLAS from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")
