"""Shared media fixtures: tiny clips, damaged copies and image folders generated with PyAV/OpenCV."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import media


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """A session-wide folder for generated media (inputs are never modified by tests)."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media_dir) -> Path:
    """160x96, 30 frames at 30 fps, H.264 + AAC, MP4 (faststart), with a title tag."""
    return media.make_clip(media_dir / "clip.mp4", metadata={"title": "dark test clip"})


@pytest.fixture(scope="session")
def vfr_clip(media_dir) -> Path:
    """Variable frame rate MP4 (irregular pts, time base 1/1000) with AAC."""
    return media.make_clip(media_dir / "vfr.mp4", vfr=True, seed=1)


@pytest.fixture(scope="session")
def odd_clip(media_dir) -> Path:
    """853x481 (odd width and height), 6 frames, with AAC."""
    return media.make_clip(media_dir / "odd.mp4", width=853, height=481, frames=6, seed=2)


@pytest.fixture(scope="session")
def ts_clip(media_dir) -> Path:
    """MPEG-TS (sequential, streamable over plain HTTP), 30 frames, with AAC."""
    return media.make_clip(media_dir / "clip.ts", seed=3)


@pytest.fixture(scope="session")
def two_audio_clip(media_dir) -> Path:
    """MP4 with two AAC streams (eng, fra)."""
    return media.make_clip(media_dir / "two_audio.mp4", frames=20, audio_streams=2, seed=4)


@pytest.fixture(scope="session")
def silent_clip(media_dir) -> Path:
    """MP4 with video only."""
    return media.make_clip(media_dir / "silent.mp4", frames=12, audio=False, seed=5)


@pytest.fixture(scope="session")
def truncated_clip(clip, media_dir) -> Path:
    """``clip`` cut to 70 % of its bytes (the index says 30 frames, fewer are present)."""
    return media.truncate(clip, 0.7, media_dir / "clip_trunc.mp4")


@pytest.fixture(scope="session")
def bitflipped_clip(clip, media_dir) -> Path:
    """``clip`` with 40 bytes inverted inside the coded frames."""
    return media.bitflip(clip, 40, seed=0, dst=media_dir / "clip_flip.mp4")


@pytest.fixture(scope="session")
def random_file(media_dir) -> Path:
    """64 KiB of random bytes named like a video."""
    return media.random_bytes_file(media_dir / "random.mp4")


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Five images (PNG / JPEG, two sizes, one non-ASCII name) in a fresh folder."""
    d = tmp_path / "images"
    media.make_image_folder(
        d, [(64, 48), (64, 48), (50, 30), (64, 48), (33, 21)],
        names=["img2.png", "img10.png", "img1.jpg", "nuit_été_🌙.png", "small.bmp"])
    return d


@pytest.fixture
def one_thread():
    """Run the test with one torch thread (small networks on tiny inputs: threads only cost), then restore."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
