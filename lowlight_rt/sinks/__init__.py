"""Frame sinks: H.264 video file, image folder / file, and in-memory sinks for the viewer."""

from lowlight_rt.sinks.base import Sink
from lowlight_rt.sinks.images import ImageFileSink, ImageFolderSink, write_image
from lowlight_rt.sinks.memory import LatestFrameSink, NullSink
from lowlight_rt.sinks.video import VideoFileSink, check_output_path

__all__ = [
    "Sink", "VideoFileSink", "check_output_path", "ImageFolderSink", "ImageFileSink", "write_image",
    "LatestFrameSink", "NullSink",
]
