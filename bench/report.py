"""What every bench writes: its figures as JSON and a Markdown table under bench/results/,
with the CPU they were measured on."""

from __future__ import annotations

import json
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def write_report(out: Path, stem: str, figures: dict, title: str, header: list[str], rows: list[list]) -> str:
    """Writes out/stem.json and out/stem.md (a title line and a table); returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(figures, indent=2))
    lines = [f"# {title}\n", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(text)
    return text
