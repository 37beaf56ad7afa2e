"""Two attacks on a real `docent api` process on 127.0.0.1, with their bars (issue 18).

    python bench/hardening_bench.py [--out bench/results]

1. Unauthenticated bodies: three clients at once each send a 300 MB JSON body without a key.
   The server's resident memory is sampled every 20 ms from its start to the last answer; bar:
   the peak stays within 100 MB of the idle server.
2. A dripping page: a crawl of a site whose one page sends a byte every 5 s. The crawl is
   cancelled as soon as the page's fetch is in flight; bar: the job ends within the fetch's total
   deadline (DOCENT_FETCH_TOTAL_TIMEOUT, set to 20 s here) plus 2 s of the cancel. Then the same
   crawl is left to run: the page must fail by its deadline (plus 2 s), naming it.

Writes bench/results/hardening.md and hardening.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from report import cpu_name

MB = 1 << 20
BODY_MB = 300
CLIENTS = 3
MEMORY_BAR_MB = 100
TOTAL_DEADLINE_S = 20.0
DRIP_EVERY_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_api(home: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    docent = shutil.which("docent", path=str(Path(sys.executable).parent)) or "docent"
    process = subprocess.Popen(
        [docent, "--home", str(home), "api", "--port", str(port)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")}, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2).read()
            return process, base
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("docent api did not come up")


def send_body(port: int, size: int, replies: list) -> None:
    """POSTs size bytes of JSON with no key, as fast as the server takes them; records the status."""
    block = b" " * MB
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(
            f"POST /collections/default/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        sent = 0
        try:
            while sent < size:
                s.sendall(block)
                sent += len(block)
        except OSError:
            pass  # the server answered and closed: what it should do
        s.settimeout(30)
        try:
            status = s.recv(200).split(b" ")[1].decode()
        except (OSError, IndexError):
            status = "no answer"
        replies.append((status, sent // MB))


def memory_attack(tmp: Path) -> dict:
    process, base = start_api(tmp / "memory-home", {"DOCENT_AUTH": "password"})
    try:
        time.sleep(3)
        idle = rss_mb(process.pid)
        samples, replies, done = [], [], threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(rss_mb(process.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        port = int(base.rsplit(":", 1)[1])
        started = time.perf_counter()
        clients = [threading.Thread(target=send_body, args=(port, BODY_MB * MB, replies)) for _ in range(CLIENTS)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        seconds = time.perf_counter() - started
        time.sleep(0.5)
        done.set()
        sampler.join()
        peak = max(samples)
        return {
            "idle_mb": round(idle, 1),
            "peak_mb": round(peak, 1),
            "growth_mb": round(peak - idle, 1),
            "bar_mb": MEMORY_BAR_MB,
            "passed": peak - idle <= MEMORY_BAR_MB,
            "replies": [{"status": s, "mb_sent_before_refusal": m} for s, m in replies],
            "seconds": round(seconds, 2),
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


class DrippingSite(BaseHTTPRequestHandler):
    """A sitemap naming one page, and that page sent one byte every DRIP_EVERY_S seconds."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        host = self.headers["Host"]
        if self.path == "/sitemap.xml":
            body = (
                '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<url><loc>http://{host}/slow.html</loc></url></urlset>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/robots.txt":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(DRIP_EVERY_S)
            except OSError:
                pass


def call(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    method = "POST" if data is not None or path.endswith("/cancel") else "GET"
    request = urllib.request.Request(
        base + path, data=data, headers={"Content-Type": "application/json"}, method=method
    )
    try:
        return json.loads(urllib.request.urlopen(request, timeout=30).read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None


def crawl_attack(tmp: Path) -> dict:
    site = ThreadingHTTPServer(("127.0.0.1", 0), DrippingSite)
    site.daemon_threads = True
    threading.Thread(target=site.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{site.server_address[1]}/sitemap.xml"
    env = {"DOCENT_ALLOWED_HOSTS": "127.0.0.1", "DOCENT_FETCH_TOTAL_TIMEOUT": str(TOTAL_DEADLINE_S)}
    process, base = start_api(tmp / "crawl-home", env)
    try:
        results = {}
        for cancel in (True, False):
            job = call(base, "/collections/default/crawls", {"url": root})
            while call(base, f"/jobs/{job['id']}").get("discovered", 0) < 1:
                time.sleep(0.1)
            time.sleep(2 * DRIP_EVERY_S if cancel else 0)  # the page's fetch is in flight, dripping
            started = time.monotonic()
            if cancel:
                call(base, f"/jobs/{job['id']}/cancel")
            while (state := call(base, f"/jobs/{job['id']}"))["state"] in ("running", "cancelling"):
                time.sleep(0.1)
            ended = time.monotonic() - started
            key = "cancelled" if cancel else "left_to_run"
            results[key] = {
                "state": state["state"],
                "seconds_to_end": round(ended, 2),
                "bar_seconds": TOTAL_DEADLINE_S + 2,
                "passed": ended <= TOTAL_DEADLINE_S + 2,
                "failed_pages": state.get("failed", []),
            }
        return results
    finally:
        process.terminate()
        process.wait(timeout=30)
        site.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        memory = memory_attack(Path(scratch))
        print(json.dumps(memory, indent=2), flush=True)
        crawl = crawl_attack(Path(scratch))
        print(json.dumps(crawl, indent=2), flush=True)
    summary = {"cpu": cpu_name(), "memory": memory, "crawl": crawl}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hardening.json").write_text(json.dumps(summary, indent=2))
    c, l = crawl["cancelled"], crawl["left_to_run"]
    lines = [
        "# Hardening bars (issue 18)",
        "",
        f"CPU: {summary['cpu']}. Command: `python bench/hardening_bench.py`.",
        "",
        "| attack | measured | bar | passed |",
        "|---|---:|---:|:---|",
        f"| {CLIENTS} x {BODY_MB} MB bodies, no key | +{memory['growth_mb']} MB over idle ({memory['idle_mb']} MB)"
        f" | +{MEMORY_BAR_MB} MB | {memory['passed']} |",
        f"| cancelled crawl of a page dripping 1 byte / {DRIP_EVERY_S:.0f} s | ended {c['seconds_to_end']} s after"
        f" cancel ({c['state']}) | {c['bar_seconds']} s | {c['passed']} |",
        f"| the same crawl left to run | ended {l['seconds_to_end']} s after the page started ({l['state']})"
        f" | {l['bar_seconds']} s | {l['passed']} |",
        "",
        f"Replies to the bodies: {', '.join(r['status'] for r in memory['replies'])}.",
    ]
    (args.out / "hardening.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
