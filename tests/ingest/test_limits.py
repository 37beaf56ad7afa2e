"""What one file may expand to (ingest/limits.py): each case of the last review ends with a
per-file message naming its limit and setting, and what is never read is never held."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from ingest.chunking import MAX_CHARS_PER_TOKEN, _pieces
from ingest.errors import IngestError
from ingest.limits import ExpansionLimits, limits, set_limits
from ingest.sources import load_file
from support.officegen import make_docx

MB = 1 << 20


@pytest.fixture
def tight():
    """Small limits, so each case is made in a moment: the same code runs at any size."""
    before = limits()
    set_limits(
        ExpansionLimits(
            max_file_characters=MB, max_unpacked_bytes=2 * MB, max_image_pixels=1_000_000, max_image_frames=3
        )
    )
    yield
    set_limits(before)


def refusal(name: str, data: bytes) -> str:
    loaded = load_file(name, data, None, 300)
    assert isinstance(loaded, IngestError), f"{name} was read: {loaded}"
    return loaded.reason


RELATED_PICTURE = (
    b'<Relationship Id="rIdPicture" Target="media/image1.jpeg"'
    b' Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"/></Relationships>'
)


def docx_with(part: str, size: int, filler: bytes = b"\0") -> bytes:
    """make_docx()'s file with `part` (replaced or added, and named by the document's
    relationships when it is word/media/image1.jpeg) of `size` bytes, written a MiB at a time."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(make_docx())) as original, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in original.infolist():
            content = original.read(item.filename)
            if item.filename == "word/_rels/document.xml.rels" and part == "word/media/image1.jpeg":
                content = content.replace(b"</Relationships>", RELATED_PICTURE)
            if item.filename != part:
                copy.writestr(item, content)
        info = zipfile.ZipInfo(part)
        info.compress_type = zipfile.ZIP_DEFLATED
        with copy.open(info, "w", force_zip64=True) as target:
            block = (filler * (MB // len(filler) + 1))[:MB]
            for _ in range(size // MB):
                target.write(block)
    return out.getvalue()


def test_an_office_file_whose_text_unpacks_past_the_limit_is_refused_naming_it(tight):
    paragraph = b"<w:p><w:r><w:t>The pump runs at three bar.</w:t></w:r></w:p>"
    body = b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
    data = docx_with("word/document.xml", 4 * MB, body + paragraph * 70_000)
    assert len(data) < MB  # a small file ...
    reason = refusal("big.docx", data)  # ... that unpacks to 4 MiB of XML
    assert "unpacks to more than 2,097,152 bytes" in reason and "DOCENT_MAX_UNPACKED_BYTES" in reason


def test_pictures_and_embedded_files_are_never_unpacked(tmp_path):
    """A 1 MB .docx holding a 256 MiB picture: read in a process of its own, whose peak memory
    shows the picture was never held (the review's 1 GiB part raised the API by 1.8 GB)."""
    path = tmp_path / "photo.docx"
    path.write_bytes(docx_with("word/media/image1.jpeg", 256 * MB))
    assert path.stat().st_size < 2 * MB
    child = (
        "import json, sys\n"
        # VmHWM, not ru_maxrss: the latter keeps the forking test process's size from before exec.
        "def peak_mb():\n"
        "    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "    return int(line.split()[1]) / 1024\n"
        "from ingest.sources import load_file\n"
        "loaded = load_file('photo.docx', None, sys.argv[1], 300)\n"
        "print(json.dumps({'ok': isinstance(loaded, tuple), 'text': loaded[0].pages[0].text if isinstance(loaded, tuple) else str(loaded),"
        " 'peak_mb': peak_mb()}))\n"
    )
    result = json.loads(
        subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True, check=True).stdout
    )
    assert result["ok"] and result["text"].strip(), result
    assert result["peak_mb"] < 250, f"reading it took {result['peak_mb']:.0f} MB: the picture was held"


def test_a_file_with_more_text_than_the_limit_is_refused_naming_it(tight):
    rows = b"\n".join(b"%d,pump,%d bar,north wing" % (n, n % 9) for n in range(60_000))
    reason = refusal("readings.csv", b"id,part,pressure,place\n" + rows)
    assert "characters of text" in reason and "DOCENT_MAX_FILE_CHARACTERS" in reason
    reason = refusal("notes.md", b"# Notes\n\n" + b"The pump runs at three bar. " * 50_000)
    assert "DOCENT_MAX_FILE_CHARACTERS" in reason


def test_an_image_with_too_many_frames_or_pixels_is_refused_naming_the_limit(tight):
    frames = [Image.new("L", (64, 64), 255) for _ in range(5)]
    tiff = io.BytesIO()
    frames[0].save(tiff, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    reason = refusal("scan.tiff", tiff.getvalue())
    assert "it has 5 frames" in reason and "DOCENT_MAX_IMAGE_FRAMES" in reason
    large = io.BytesIO()
    Image.new("L", (2000, 1000), 255).save(large, "PNG")
    reason = refusal("plan.png", large.getvalue())
    assert "2,000,000 pixels (2000 x 1000)" in reason and "DOCENT_MAX_IMAGE_PIXELS" in reason


def test_a_line_of_megabytes_is_never_given_to_the_tokenizer_whole():
    """A one-line 9 MB file: the tokenizer was given the whole line to count (1.7 GB)."""
    line = ",".join(f"v{n % 9973}" for n in range(1_500_000))
    longest = 0

    def count(text: str) -> int:
        nonlocal longest
        longest = max(longest, len(text))
        return max(1, len(text) // 4)

    pieces = _pieces(line, 200, count)
    assert longest <= 200 * MAX_CHARS_PER_TOKEN and pieces[-1][1] == len(line)
