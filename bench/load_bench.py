"""The API under load: 50 clients searching at once, first alone, then while one client ingests.

    python bench/load_bench.py [--cranfield ../shared/data/cranfield] [--clients 50] [--seconds 30]

`docent api` runs as its own process on 127.0.0.1 with sign-in on (every request carries an
API key). The collection holds the first 1,000 Cranfield abstracts (ingested once, cached in
bench/data/load-home). The clients send hybrid searches (each question made unique, so every
one is embedded: no answer comes from the query cache) for --seconds, twice:
  alone:        only the searching clients;
  under ingest: the same, while one more client uploads the other Cranfield abstracts as PDFs,
                20 files per request, waiting for each batch to be stored before the next.
Reports search throughput, p50/p95/p99 latency and failed requests for each phase, the
chunks the ingest stored, and p95 under ingest over p95 alone (the bar: at most 3).
Writes bench/results/load.md and load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BASE_DOCS = 1000
BATCH = 20


def prepare_home(cranfield: Path, home: Path) -> list[dict]:
    """The data home with the first BASE_DOCS abstracts stored; returns the rest."""
    from retrieval.evaluate import load_eval_set
    from retrieval.service import Docent
    from retrieval.settings import load_settings

    documents = load_eval_set(cranfield).documents
    marker = home / f"ingested-{BASE_DOCS}"
    if not marker.exists():
        shutil.rmtree(home, ignore_errors=True)
        docent = Docent(load_settings(home=str(home)))
        print(f"ingesting {BASE_DOCS} Cranfield abstracts into {home} (once)…", flush=True)
        docent.ingest_documents(documents[:BASE_DOCS])
        docent.close()
        marker.touch()
    return [{"title": d.title, "text": d.pages[0].text} for d in documents[BASE_DOCS:]]


def make_key(home: Path) -> str:
    from webapp.access import AccessControl
    from retrieval.settings import load_settings

    access = AccessControl(load_settings(home=str(home), auth="password"))
    access.set_user("loadtest", "editor", [], "unused-password")
    key = access.create_api_key("loadtest", "load bench")[1]
    access.close()
    return key


def start_api(home: Path, port: int) -> subprocess.Popen:
    docent = shutil.which("docent", path=str(Path(sys.executable).parent))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")} | {"DOCENT_AUTH": "password"}
    log = open(home / "api.log", "wb")
    process = subprocess.Popen(
        [docent, "--home", str(home), "api", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"docent api did not start: {(home / 'api.log').read_text()[-2000:]}")


def pdfs_for(abstracts: list[dict], round_: int) -> list[tuple[str, bytes]]:
    sys.path.insert(0, str(HERE.parent / "tests"))  # tests/support
    from support.pdfgen import make_pdf

    files = []
    for n, doc in enumerate(abstracts):
        lines = textwrap.wrap(f"(revision {round_}) {doc['text']}", 90)
        files.append(
            (
                f"cranfield-{round_}-{n}.pdf",
                make_pdf([lines[i : i + 40] for i in range(0, len(lines), 40)], title=doc["title"][:80]),
            )
        )
    return files


async def search_clients(base: str, key: str, queries: list[str], clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(10**9))
    stop_at = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            n = next(counter)
            query = f"{queries[n % len(queries)]} ({n})"  # unique: embedded every time
            started = time.perf_counter()
            try:
                reply = await http.post(f"{base}/collections/default/search", json={"query": query, "k": 10})
                ok = reply.status_code == 200 and reply.json()["hits"]
                if not ok:
                    failures.append(f"{reply.status_code}: {reply.text[:200]}")
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits) as http:
        began = time.monotonic()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.monotonic() - began
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "failed": len(failures),
        "failures": failures[:5],
        "throughput_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


async def ingest_client(base: str, key: str, abstracts: list[dict], stop: asyncio.Event) -> dict:
    import httpx

    stored = chunks = failed = 0
    round_ = 0
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=600) as http:
        while not stop.is_set():
            files = pdfs_for(abstracts, round_)
            for start in range(0, len(files), BATCH):
                if stop.is_set():
                    break
                batch = [("files", (name, data, "application/pdf")) for name, data in files[start : start + BATCH]]
                reply = await http.post(f"{base}/collections/default/files?wait=true", files=batch)
                if reply.status_code != 200:
                    failed += 1
                    continue
                for outcome in reply.json()["outcomes"]:
                    stored += outcome["status"] in ("added", "replaced")
                    chunks += outcome["chunks"]
            round_ += 1
    return {"documents_stored": stored, "chunks_stored": chunks, "failed_requests": failed}


async def under_ingest(base: str, key: str, queries: list[str], abstracts: list[dict], clients: int, seconds: float):
    stop = asyncio.Event()
    ingest = asyncio.create_task(ingest_client(base, key, abstracts, stop))
    await asyncio.sleep(2)  # the ingest is under way before the clock starts
    searches = await search_clients(base, key, queries, clients, seconds)
    stop.set()
    return searches, await ingest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cranfield", type=Path, default=HERE.parent.parent / "shared" / "data" / "cranfield")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if not (args.cranfield / "corpus.jsonl").exists():
        raise SystemExit(f"no Cranfield at {args.cranfield} (pass --cranfield)")

    home = HERE / "data" / "load-home"
    abstracts = prepare_home(args.cranfield, home)
    queries = [
        json.loads(line)["text"] for line in (args.cranfield / "queries.jsonl").read_text().splitlines() if line.strip()
    ]
    work = Path(tempfile.mkdtemp(prefix="docent-load-"))
    shutil.copytree(home, work / "home")  # every run starts from the same 1,000 documents
    key = make_key(work / "home")
    server = start_api(work / "home", args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        asyncio.run(search_clients(base, key, queries, args.clients, 5))  # warm-up
        alone = asyncio.run(search_clients(base, key, queries, args.clients, args.seconds))
        print("alone:", alone, flush=True)
        loaded, ingest = asyncio.run(under_ingest(base, key, queries, abstracts, args.clients, args.seconds))
        print("under ingest:", loaded, ingest, flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    ratio = loaded["p95_ms"] / alone["p95_ms"]
    result = {
        "clients": args.clients,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "alone": alone,
        "under_ingest": loaded,
        "ingest": ingest,
        "p95_ratio": round(ratio, 2),
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(result, indent=2))
    rows = [("alone", alone), ("while one client ingests", loaded)]
    table = "\n".join(
        f"| {name} | {r['requests']} | {r['failed']} | {r['throughput_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} |"
        for name, r in rows
    )
    (out / "load.md").write_text(
        f"# API under load: {args.clients} clients searching for {args.seconds:.0f} s, {os.cpu_count()} CPUs\n\n"
        "| phase | searches | failed | per second | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|---|\n"
        f"{table}\n\nThe ingest stored {ingest['documents_stored']} documents ({ingest['chunks_stored']} chunks) during "
        f"the loaded phase; {ingest['failed_requests']} ingest requests failed.\n\n"
        f"p95 under ingest / p95 alone: **{ratio:.2f}** (bar: at most 3)\n"
    )
    print((out / "load.md").read_text())


if __name__ == "__main__":
    main()
