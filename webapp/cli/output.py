"""How the commands print: a hit's place, a passage shortened to a line, a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path


def where(hit) -> str:
    """ "Title (file.pdf, p. 3)", "Title (scan.pdf, p. 2, read by OCR)", "Title (deck.pptx, Slide 7: Prices)"."""
    if hit.page is not None:
        parts = [Path(hit.source).name, f"p. {hit.page}"] + ([hit.section] if hit.section else [])
    else:
        parts = [hit.source] + ([hit.section] if hit.section and hit.section != hit.title else [])
    return f"{hit.title} ({', '.join(parts)})"


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ProgressBar:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self):
        self.label = ""
        self.active = sys.stderr.isatty()
        self.drawn = False
        self.started: float | None = None

    def update(self, stage: str, done: int, total: int) -> None:
        if not self.active:
            return
        import time

        if stage == "reading":  # the file is being parsed: nothing to count yet
            sys.stderr.write(f"\r{self.label} reading\033[K")
            sys.stderr.flush()
            self.drawn = True
            return
        now = time.monotonic()
        if self.started is None:
            self.started = now
        width = 30
        filled = int(width * done / max(total, 1))
        rate = done / (now - self.started) if now > self.started and done else 0.0
        pace = f" {rate:.1f}/s, {(total - done) / rate:.0f} s left" if rate else ""
        sys.stderr.write(f"\r{self.label} {stage} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{pace}\033[K")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            self.drawn = False
        self.started = None
