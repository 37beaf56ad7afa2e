"""Character error rate: the edit distance between a text read by OCR and its transcription,
over the transcription's length, both with their whitespace collapsed (OCR's line breaks and a
transcription's are not errors)."""

from __future__ import annotations

import numpy as np


def character_error_rate(read: str, reference: str) -> float:
    a, b = " ".join(read.split()), " ".join(reference.split())
    if not b:
        return float(bool(a))
    codes = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    steps = np.arange(len(b) + 1)
    row = steps.copy()
    for i, char in enumerate(np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32), start=1):
        substituted = row[:-1] + (codes != char)
        deleted = row[1:] + 1
        current = np.empty_like(row)
        current[0] = i
        current[1:] = np.minimum(substituted, deleted)
        # an insertion carries a cell's cost one step right: a running minimum of cost - position
        current = np.minimum.accumulate(current - steps) + steps
        row = current
    return float(row[-1]) / len(b)
