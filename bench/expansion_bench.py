"""Small files that expand without limit, uploaded to a real `docent api` process on 127.0.0.1
(issue 34): what each costs the server, and what it is told.

    python bench/expansion_bench.py [--out bench/results] [--only NAME ...]

Each case is the last review's, at its size: a 1 MB .docx holding a 1 GiB picture; a .docx
holding 100 MB of text; a one-line CSV of 10 MB; a CSV of 100 MB; a TIFF of 20 frames of 81
megapixels; a .md of 190 MB; a workbook of 5 million shared strings. Each is uploaded on its own
(`POST /collections/default/files?wait=true`) to a server that has already loaded its model and
taken one small file; the server's resident memory (and its parsing workers', apart) is sampled
every 20 ms. Bar: the server grows by at most 500 MB during any case. Writes
bench/results/expansion.md and expansion.json.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import httpx
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from hardening_bench import rss_mb, start_api  # noqa: E402
from report import cpu_name, write_report  # noqa: E402
from support.officegen import make_docx, make_xlsx  # noqa: E402

MB = 1 << 20
BAR_MB = 500
WORDS = "pump valve boiler pressure north wing rule stays shut below bar crane hoist winch the of and".split()


def prose(size: int, seed: int, line_words: int = 12) -> bytes:
    rng = random.Random(seed)
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(line_words))
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines).encode()[:size]


def zip_with(original: bytes, part: str, writer, relationship: bytes | None = None) -> bytes:
    """original (an Office file) with `part` written by writer(file), a block at a time."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in source.infolist():
            content = source.read(item.filename)
            if relationship and item.filename.endswith("_rels/document.xml.rels"):
                content = content.replace(b"</Relationships>", relationship + b"</Relationships>")
            if item.filename != part:
                copy.writestr(item, content)
        info = zipfile.ZipInfo(part)
        info.compress_type = zipfile.ZIP_DEFLATED
        with copy.open(info, "w", force_zip64=True) as target:
            writer(target)
    return out.getvalue()


def docx_picture() -> bytes:
    relation = (
        b'<Relationship Id="rIdPicture" Target="media/image1.jpeg"'
        b' Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"/>'
    )
    zeros = b"\0" * MB
    return zip_with(make_docx(), "word/media/image1.jpeg", lambda f: [f.write(zeros) for _ in range(1024)], relation)


def docx_text() -> bytes:
    head = b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
    paragraph = b"<w:p><w:r><w:t>" + prose(400, 1) + b"</w:t></w:r></w:p>"

    def write(f) -> None:
        f.write(head)
        for _ in range(100 * MB // len(paragraph)):
            f.write(paragraph)
        f.write(b"</w:body></w:document>")

    return zip_with(make_docx(), "word/document.xml", write)


def one_line_csv() -> bytes:
    rng = random.Random(2)
    values = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    return ",".join(rng.choice(values) for _ in range(1_700_000)).encode()[: 10 * MB] + b"\n"


def large_csv() -> bytes:
    rng = random.Random(3)
    rows = [b"id,part,place,pressure,note"]
    total = 0
    while total < 100 * MB:
        row = b"%d,%s,%s,%d,%s" % (len(rows), rng.choice(WORDS).encode(), rng.choice(WORDS).encode(), rng.randint(0, 99),
                                   " ".join(rng.choice(WORDS) for _ in range(6)).encode())  # fmt: skip
        rows.append(row)
        total += len(row) + 1
    return b"\n".join(rows)


def large_tiff() -> bytes:
    frames = [Image.new("1", (9000, 9000), 1) for _ in range(20)]  # 81 megapixels each, blank
    out = io.BytesIO()
    frames[0].save(out, "TIFF", save_all=True, append_images=frames[1:], compression="group4")
    return out.getvalue()


def large_markdown() -> bytes:
    block = b"## Section\n\n" + prose(4000, 4) + b"\n\n"
    return b"# Notes\n\n" + block * (190 * MB // len(block))


def shared_strings_xlsx() -> bytes:
    count = 5_000_000

    def write(f) -> None:
        f.write(
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="http://schemas.openxml'
            b'formats.org/spreadsheetml/2006/main" count="%d" uniqueCount="%d">' % (count, count)
        )
        for n in range(count):
            f.write(b"<si><t>value %d</t></si>" % n)
        f.write(b"</sst>")

    return zip_with(make_xlsx(6), "xl/sharedStrings.xml", write)


CASES = {
    "docx-1GiB-picture": ("photo.docx", docx_picture),
    "docx-100MB-text": ("long.docx", docx_text),
    "csv-one-line-10MB": ("line.csv", one_line_csv),
    "csv-100MB": ("readings.csv", large_csv),
    "tiff-20x81MP": ("scan.tiff", large_tiff),
    "md-190MB": ("notes.md", large_markdown),
    "xlsx-5M-shared-strings": ("strings.xlsx", shared_strings_xlsx),
}


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return found


def upload(base: str, pid: int, name: str, data: bytes) -> dict:
    baseline, peak, workers_peak, done = rss_mb(pid), 0.0, 0.0, threading.Event()

    def sample() -> None:
        nonlocal peak, workers_peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            workers_peak = max([workers_peak, *(rss_mb(c) for c in children(pid))])
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        reply = httpx.post(f"{base}/collections/default/files?wait=true", files=[("files", (name, data))], timeout=3600)
    finally:
        done.set()
        sampler.join()
    outcome = reply.json().get("outcomes", [{}])[0] if reply.status_code == 200 else {"error": reply.text[:300]}
    time.sleep(2)
    return {
        "status": outcome.get("status", reply.status_code),
        "message": outcome.get("error") or f"{outcome.get('chunks')} passages",
        "seconds": round(time.monotonic() - started - 2, 1),
        "server_growth_mb": round(peak - baseline, 1),
        "server_after_mb": round(rss_mb(pid) - baseline, 1),
        "workers_peak_mb": round(workers_peak, 1),
        "file_mb": round(len(data) / MB, 1),
    }


def wrapped_text(size: int) -> bytes:
    """Plain text wrapped at about 70 characters, paragraphs between blank lines."""
    paragraph = b"\n".join(prose(70, n) for n in range(6)) + b"\n\n"
    return (paragraph * (size // len(paragraph) + 1))[:size]


def read_then_cancel(base: str, data: bytes, cancel_after: float | None) -> dict:
    """Uploads a large text file as a job; the seconds until it is read and chunked (its job
    counts passages to embed), then the seconds a cancel takes to end it. cancel_after: cancel
    that long after the upload, while the file is still being read, instead."""
    started = time.monotonic()
    job = httpx.post(f"{base}/collections/default/files", files=[("files", ("big.txt", data))], timeout=600).json()
    read_at = None
    while time.monotonic() - started < 600:
        state = httpx.get(f"{base}/jobs/{job['id']}", timeout=30).json()
        if cancel_after is not None and time.monotonic() - started >= cancel_after:
            break
        if state.get("unit") != "reading" and (state.get("chunks_total") or 0) > 0:
            read_at = time.monotonic() - started
            break
        if state["state"] not in ("running", "cancelling"):
            raise SystemExit(f"the 50 MB text was not embedded: {state.get('outcomes') or state.get('error')}")
        time.sleep(0.1)
    asked = time.monotonic()
    httpx.post(f"{base}/jobs/{job['id']}/cancel", timeout=30)
    while httpx.get(f"{base}/jobs/{job['id']}", timeout=30).json()["state"] not in ("cancelled", "finished", "failed"):
        time.sleep(0.05)
    return {
        "read_and_chunked_s": None if read_at is None else round(read_at, 1),
        "cancel_s": round(time.monotonic() - asked, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--only", nargs="*", default=None, help="cases by name; text-50MB: the read and cancel timing")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="docent-expansion-"))
    # 50 MB of text makes more passages than DOCENT_MAX_FILE_CHUNKS lets in by default: raised, so
    # it is embedded (and its cancel is timed while it is).
    process, base = start_api(home, {"DOCENT_MAX_FILE_CHUNKS": "200000"})
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/ready", timeout=5).read()
                break
            except OSError:
                time.sleep(0.5)
        upload(base, process.pid, "warm-up.md", b"# Warm up\n\n" + prose(5000, 9))  # workers and tokenizer in
        figures = {}
        if not args.only or "text-50MB" in args.only:
            text = wrapped_text(50 * MB)
            figures["text-50MB"] = {
                "read": read_then_cancel(base, text, None),
                "cancelled_while_read": read_then_cancel(base, text, 2.0),
            }
            print("text-50MB", json.dumps(figures["text-50MB"]), flush=True)
        for case, (name, make) in CASES.items():
            if args.only and case not in args.only:
                continue
            data = make()
            figures[case] = upload(base, process.pid, name, data)
            print(case, json.dumps(figures[case]), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=60)
    timed = figures.pop("text-50MB", None)
    rows = [
        [case, f["file_mb"], f["status"], f["message"][:160], f["seconds"], f["server_growth_mb"], f["server_after_mb"],
         f["workers_peak_mb"], "yes" if f["server_growth_mb"] <= BAR_MB else "**no**"]
        for case, f in figures.items()
    ]  # fmt: skip
    text = write_report(
        args.out,
        "expansion",
        {"cpu": cpu_name(), "cases": figures, "text-50MB": timed},
        f"Files that expand, uploaded to docent api ({cpu_name()})",
        [
            "case",
            "file MB",
            "outcome",
            "message",
            "s",
            "server peak +MB",
            "server after +MB",
            "worker peak MB",
            "<= 500 MB",
        ],
        rows,
    )
    if timed:
        text += (
            f"\n50 MB of wrapped text: read and chunked in {timed['read']['read_and_chunked_s']} s, then cancelled in"
            f" {timed['read']['cancel_s']} s while embedding; cancelled in {timed['cancelled_while_read']['cancel_s']} s"
            " while it was still being read.\n"
        )
        (args.out / "expansion.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
