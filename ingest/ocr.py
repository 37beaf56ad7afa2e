"""Text read from images by OCR: RapidOCR, which runs the PP-OCR models with ONNX Runtime and
ships them inside its wheel (nothing is downloaded, so it installs with `pip install .` and
runs offline), with its lines put back in reading order.

Chosen over Tesseract 5.3 (Debian's tesseract-ocr) by `bench/ocr_bench.py` on two cores: on the
scanned two-column brochure `ocrmypdf_linn.pdf` at 300 dpi RapidOCR reads a page in 5.8 s at a
character error rate of 3.1%, Tesseract in 14.5 s at 1.1% (the transcription was itself made by
OCR, which favours Tesseract's spellings); on its rotated and skewed copy RapidOCR errs 8.3%,
Tesseract 37.6%. RapidOCR is 2.5 times as fast, reads turned pages, and installs through the
project's own files (pip) on a fresh machine; Tesseract needs a system package.
"""

from __future__ import annotations

import hashlib
import threading
from io import BytesIO
from statistics import median

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ingest.errors import IngestError
from ingest.limits import limits, too_much
from ingest.models import Document, Page, title_from_name
from ingest.text import clean_page_text

OCR_DPI = 300
MARK = "read by OCR"  # the section of an OCR'd page: citations say so

_engine = None
_engine_lock = threading.Lock()
_threads = -1  # ONNX Runtime's own choice (every core); see use_one_thread


def use_one_thread() -> None:
    """OCR on one thread in this process: for the file workers, which run beside each other and
    the embedding. There ONNX Runtime's second thread mostly spins waiting for cores the others
    hold (on two cores, 22.8 s of CPU against 17.9 s on one thread for the same five pages)."""
    global _threads
    _threads = 1


def ocr_problem() -> str | None:
    """Why OCR cannot run here (the engine or OpenCV's system libraries missing), or None."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"the OCR engine cannot be imported ({exc}); pip install rapidocr-onnxruntime, and libgl1"
    return None


def ocr_available() -> bool:
    return ocr_problem() is None


def read_image(image) -> str:
    """The text of a page image (a PIL image), in reading order: lines top to bottom, two
    columns one after the other, a blank line where a paragraph ends."""
    with _engine_lock:  # one engine per process; ONNX Runtime uses the cores itself
        result, _ = _get_engine()(np.asarray(image.convert("RGB")))
    if not result:
        return ""
    return _reading_order([_Line(box, text) for box, text, _ in result if text.strip()])


def _get_engine():
    global _engine
    if _engine is None:
        from rapidocr_onnxruntime import RapidOCR

        _engine = RapidOCR(intra_op_num_threads=_threads, inter_op_num_threads=_threads)
    return _engine


class _Line:
    def __init__(self, box, text: str):
        xs, ys = [p[0] for p in box], [p[1] for p in box]
        self.x0, self.x1, self.y0, self.y1 = min(xs), max(xs), min(ys), max(ys)
        self.text = text.strip()

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def _reading_order(lines: list[_Line]) -> str:
    """Lines wider than half the text's width (titles, single-column text) cut the page into
    bands; within a band, the left column is read before the right."""
    left, right = min(l.x0 for l in lines), max(l.x1 for l in lines)
    middle = (left + right) / 2
    wide = sorted((l for l in lines if l.x1 - l.x0 > 0.55 * (right - left)), key=lambda l: l.y0)
    narrow = [l for l in lines if l not in wide]
    ordered: list[_Line] = []
    top = float("-inf")
    for cut in wide + [None]:
        bottom = cut.y0 if cut is not None else float("inf")
        band = [l for l in narrow if top <= l.y0 < bottom]
        for column in (
            [l for l in band if (l.x0 + l.x1) / 2 < middle],
            [l for l in band if (l.x0 + l.x1) / 2 >= middle],
        ):
            ordered += sorted(column, key=lambda l: (l.y0, l.x0))
        if cut is not None:
            ordered.append(cut)
            top = cut.y0
    return _joined(ordered)


def _joined(lines: list[_Line]) -> str:
    """Lines on one row joined with a space, rows with a line break, and a blank line where the
    gap to the next row is over a line's height (a paragraph ends)."""
    typical = median(l.height for l in lines) or 1.0
    out, previous = [], None
    for line in lines:
        if previous is None:
            out.append(line.text)
        elif abs(line.y0 - previous.y0) < 0.5 * typical and line.x0 > previous.x0:
            out.append(" " + line.text)
        else:
            out.append("\n\n" if line.y0 - previous.y1 > typical else "\n")
            out.append(line.text)
        previous = line
    return "".join(out)


OCR_MAX_SIDE = 4096  # pixels; a 9000 x 9000 frame took 1.2 GB as RGB and OCR's arrays


def _for_ocr(frame: Image.Image) -> Image.Image:
    """The frame, scaled down when a side is longer than OCR_MAX_SIDE (still about 270 dpi for
    an A4 page scanned at 600): the OCR engine scales its input down to detect text anyway."""
    if max(frame.size) <= OCR_MAX_SIDE:
        return frame
    scale = OCR_MAX_SIDE / max(frame.size)
    small = frame.convert("L") if frame.mode in ("1", "P") else frame
    return small.resize((max(1, round(frame.width * scale)), max(1, round(frame.height * scale))), Image.LANCZOS)


def load_image(name: str, data: bytes) -> Document:
    """A PNG, JPEG or TIFF (each of a TIFF's pages) read by OCR into a Document."""
    problem = ocr_problem()
    if problem is not None:
        raise IngestError(name, f"an image is read by OCR, and {problem}")
    cap = limits()
    try:
        image = Image.open(BytesIO(data))
        frames = getattr(image, "n_frames", 1)
        if frames > cap.max_image_frames:
            raise IngestError(name, too_much(f"it has {frames:,} frames", cap.max_image_frames, "MAX_IMAGE_FRAMES"))
        pages = []
        # One frame at a time, each read by OCR before the next is decoded: a TIFF's frames are
        # never all held at once.
        for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
            pixels = frame.width * frame.height
            if pixels > cap.max_image_pixels:
                found = f"its page {number} has {pixels:,} pixels ({frame.width} x {frame.height})"
                raise IngestError(name, too_much(found, cap.max_image_pixels, "MAX_IMAGE_PIXELS"))
            text = clean_page_text(read_image(_for_ocr(frame)))
            if text.strip():
                where = f"page {number}, {MARK}" if frames > 1 else MARK
                pages.append(Page(number=len(pages) + 1, text=text, section=where))
    except (UnidentifiedImageError, OSError) as exc:
        raise IngestError(name, f"the image is damaged and cannot be read ({exc})") from None
    if not pages:
        raise IngestError(name, "OCR found no writing in the image")
    return Document(
        source=name,
        title=title_from_name(name),
        kind="image",
        content_hash=hashlib.sha256(data).hexdigest(),
        pages=pages,
        size_bytes=len(data),
    )
