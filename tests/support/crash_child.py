"""Ingests numbered PDFs into a data home until it is killed; run by test_crash_safety.py.

Prints `writing SOURCE HASH` before each document and `committed SOURCE HASH` once its write has
returned, so the parent knows what must survive and what may have. Saves the index files every
few changes, so kills land in saves as well.
Every third document replaces an earlier one, so kills land in replacements too.
"""

from __future__ import annotations

import hashlib
import sys

import retrieval.store.indexes
from support.pdfgen import make_pdf
from retrieval.service import Docent, Source
from retrieval.settings import load_settings


def pages(n: int, version: int) -> list[list[str]]:
    return [
        [f"Crash manual {n}, version {version}, page {p}."]
        + [f"Item {n}.{p}.{s}: gauge {n * 97 + s} reads {version + s} units in section {p}." for s in range(10)]
        for p in range(1, 4)
    ]


def main(home: str, start: int) -> None:
    retrieval.store.indexes.SAVE_EVERY_CHANGES = 7
    docent = Docent(load_settings(home=home))
    n = start
    while True:
        if n % 3 == 2 and n > 2:
            source, number, version = f"crash-{n - 2}.pdf", n - 2, n  # a new version of an earlier file
        else:
            source, number, version = f"crash-{n}.pdf", n, 0
        data = make_pdf(pages(number, version))
        digest = hashlib.sha256(data).hexdigest()
        print(f"writing {source} {digest}", flush=True)
        outcome = docent.ingest([Source(source, data=data)], collection="crash")[0]
        if not outcome.ok:
            print(f"failed {source} {outcome.error}", flush=True)
            sys.exit(1)
        print(f"committed {source} {digest}", flush=True)
        n += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
