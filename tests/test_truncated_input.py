"""A file whose data ends before its stated duration: one warning in the summary says where it ended."""

from __future__ import annotations

import os
import re

import pytest

from lowlight_rt.cli import main
from lowlight_rt.sources import open_source
from tests import media

ENDED = re.compile(r"warning\s+input ended at (\d+\.\d\d) s of (\d+\.\d\d) s \(the file is cut short")


@pytest.fixture(scope="module")
def three_seconds(tmp_path_factory):
    """160x96, 90 frames at 30 fps (3.00 s) with AAC, MP4 with its index at the front."""
    return media.make_clip(tmp_path_factory.mktemp("trunc") / "three.mp4", frames=90, seed=21)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_truncated_file_warns_where_it_ended(capsys, tmp_path, suffix, three_seconds):
    full = three_seconds if suffix == ".mp4" else media.make_clip(tmp_path / f"three{suffix}", frames=90, seed=21)
    cut = media.truncate(full, 0.6, tmp_path / f"cut{suffix}")
    out = tmp_path / "out.mp4"
    code = main(["--input", os.fspath(cut), "--out", os.fspath(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "input ended at" in line]
    assert len(warnings) == 1, err
    m = ENDED.search(warnings[0])
    assert m, warnings[0]
    reached, stated = float(m.group(1)), float(m.group(2))
    assert stated == pytest.approx(3.0, abs=0.05)
    times, _ = media.read_video_pts(out)
    assert 0.5 < reached < 2.5
    assert reached == pytest.approx(float(times[-1]) + 1 / 30, abs=0.02)  # the end of the last frame kept


@pytest.mark.parametrize("fixture", ["clip", "vfr_clip", "ts_clip", "silent_clip", "two_audio_clip", "odd_clip"])
def test_complete_files_get_no_warning(capsys, request, tmp_path, fixture):
    src = request.getfixturevalue(fixture)
    code = main(["--input", os.fspath(src), "--out", os.fspath(tmp_path / "out.mp4")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "input ended at" not in err and "warning" not in err, err


def test_source_reports_it_only_after_a_straight_pass(three_seconds, tmp_path):
    cut = media.truncate(three_seconds, 0.6, tmp_path / "cut.mp4")
    source = open_source(cut)
    try:
        frames = list(source)
    finally:
        source.stop()
    assert source.ended_early is not None
    reached, stated = source.ended_early
    assert reached == pytest.approx(len(frames) / 30, abs=0.02) and stated == pytest.approx(3.0, abs=0.05)
    assert len(source.summary_notes()) == 1
