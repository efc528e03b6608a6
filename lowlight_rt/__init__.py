"""lowlight-rt: real-time low-light video enhancement.

Data flows one way: a source (file, images, camera, network stream) produces
:class:`~lowlight_rt.frames.Frame` objects in a capture thread, the engine
enhances them, and sinks (MP4 file, image folder, viewer) consume them.
"""

__version__ = "0.1.0"
