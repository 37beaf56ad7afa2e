"""How the packaged calibration texts (calibration_texts.json.gz, read by quantize.py) were made:

python -m retrieval.embed.calibration --from-pydoc /usr/share/doc/python3.11/html/_sources
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

from ingest import Document, Page, chunk_document
from retrieval.embed.embedder import Embedder
from retrieval.embed.quantize import CALIBRATION_FILE


def build_calibration_texts(sources: Path, out: Path = CALIBRATION_FILE, count: int = 400, seed: int = 7) -> None:
    """How the packaged calibration texts were made: the reStructuredText sources of the Python
    documentation (Debian's python3.11-doc, /usr/share/doc/python3.11/html/_sources), markup
    stripped, chunked as Docent chunks documents, sampled across its parts."""
    counter = Embedder(backend="openvino")
    quota = {
        "tutorial": 60,
        "howto": 60,
        "faq": 40,
        "reference": 40,
        "library": 120,
        "whatsnew": 40,
        "using": 20,
        "extending": 20,
    }
    picked: list[str] = []
    rng = random.Random(seed)
    for part, wanted in quota.items():
        chunks = []
        for path in sorted((sources / part).glob("*.rst.txt")):
            text = path.read_text(errors="replace")
            text = re.sub(r"^\s*\.\. .*$", "", text, flags=re.M)  # directives
            text = re.sub(r"^[=\-~^\"'`#*+]{3,}\s*$", "", text, flags=re.M)  # heading underlines
            text = re.sub(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text)  # roles
            text = re.sub(r"`([^`]*)`_?", r"\1", text)
            paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
            text = "\n\n".join(p for p in paragraphs if len(p) > 40)
            if len(text) < 500:
                continue
            title = path.name.split(".")[0].replace("_", " ")
            document = Document(source=path.name, title=title, kind="text", content_hash="", pages=[Page(1, text)])
            chunks += [
                c.index_text
                for c in chunk_document(document, count_tokens=counter.count_tokens, max_tokens=counter.max_tokens)
            ]
        picked += rng.sample(chunks, min(wanted, len(chunks)))
    rng.shuffle(picked)
    out.write_bytes(gzip.compress(json.dumps(picked[:count]).encode(), mtime=0))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="remake the packaged calibration texts")
    parser.add_argument("--from-pydoc", type=Path, required=True, help="python3.11-doc's html/_sources folder")
    build_calibration_texts(parser.parse_args().from_pydoc)
