"""What one file may expand to while it is read, so a small file cannot take the server's memory
(a 1 MB .docx holding a 1 GiB part, a TIFF of twenty 81-megapixel frames, 100 MB of text).

The limits are the deployment's settings (DOCENT_MAX_*); the ingest sets them in its own process
and in its parsing workers (ingest/workers.py) before any file is read, and the loaders read
them here. A file past one is refused with a message naming the limit and its setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.errors import IngestError


@dataclass(frozen=True)
class ExpansionLimits:
    max_file_characters: int = 64 << 20  # text of one file (a 50 MB text file passes)
    max_unpacked_bytes: int = 64 << 20  # an Office file's XML parts (pictures and embedded files are never read)
    max_image_pixels: int = 100_000_000  # one image, or one frame or page of it (A4 at 600 dpi: 35 M)
    max_image_frames: int = 1000  # frames (pages) of one image file


_current = ExpansionLimits()


def limits() -> ExpansionLimits:
    return _current


def set_limits(new: ExpansionLimits) -> None:
    global _current
    _current = new


def too_much(found: str, limit: int, setting: str) -> str:
    """The refusal's wording: "it holds 71,303,168 characters of text: more than this server
    reads from one file (67,108,864: DOCENT_MAX_FILE_CHARACTERS)"."""
    return f"{found}: more than this server reads from one file ({limit:,}: DOCENT_{setting})"


def check_characters(name: str, characters: int) -> None:
    """Raises the IngestError that refuses a file of more characters of text than it may hold."""
    cap = _current.max_file_characters
    if characters > cap:
        raise IngestError(name, too_much(f"it holds {characters:,} characters of text", cap, "MAX_FILE_CHARACTERS"))
