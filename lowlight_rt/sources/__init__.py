"""Frame sources: video file, image(s), camera, network stream, and a synthetic live source.

Each runs its own capture thread; see :mod:`lowlight_rt.sources.base` for the interface and
:mod:`lowlight_rt.sources.buffers` for the hand-over to the consumer.
"""

from lowlight_rt.sources.base import Source, SourceInfo, SourceStats
from lowlight_rt.sources.buffers import BoundedFrameQueue, LatestFrameBuffer
from lowlight_rt.sources.camera import CameraSource
from lowlight_rt.sources.factory import open_source, source_kind
from lowlight_rt.sources.fake import FakeLiveSource
from lowlight_rt.sources.file import FileSource
from lowlight_rt.sources.images import IMAGE_EXTENSIONS, ImageSource, is_image_path, read_image
from lowlight_rt.sources.stream import StreamSource

__all__ = [
    "Source", "SourceInfo", "SourceStats", "LatestFrameBuffer", "BoundedFrameQueue",
    "FileSource", "ImageSource", "CameraSource", "StreamSource", "FakeLiveSource",
    "open_source", "source_kind", "IMAGE_EXTENSIONS", "is_image_path", "read_image",
]
