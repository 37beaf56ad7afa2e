"""The app as a person uses it: `docent serve` in a real process, driven in headless Chromium.

Needs Debian's chromium (/usr/bin/chromium, installed by .ci/run) and the playwright package;
skipped, saying why, where either is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port
from pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_pdf

CHROMIUM = os.environ.get("DOCENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-home")
    port = free_port()
    docent = shutil.which("docent", path=str(Path(sys.executable).parent))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")}
    log = (home / "serve.log").open("w+b")  # a file, not a pipe nobody drains
    process = subprocess.Popen(
        [docent, "--home", str(home), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        log.seek(0)
        pytest.fail(f"docent serve did not come up on {url}: {log.read().decode(errors='replace')[-2000:]}")
    yield url
    process.terminate()
    process.wait(timeout=20)
    log.close()


def test_upload_ask_and_open_a_citation_in_a_real_browser(server, tmp_path):
    pdf = tmp_path / "handbook.pdf"
    pdf.write_bytes(make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server)
            page.get_by_text("Docent").first.wait_for(timeout=120_000)  # the model loads on first view
            page.locator("input[type=file]").set_input_files(str(pdf))
            page.get_by_role("button", name="Add 1 file(s)").click()
            page.get_by_text("handbook.pdf: added, 4 pages").wait_for(timeout=120_000)

            box = page.get_by_placeholder("Ask a question about your documents")
            box.fill("How much does a mooring permit cost?")
            box.press("Enter")
            page.get_by_text("120 euros per month").first.wait_for(timeout=60_000)
            citation = page.get_by_text(f"[1] {HANDBOOK_TITLE}, page 3")
            citation.wait_for(timeout=30_000)
            citation.click()
            page.get_by_text("Commercial vessels pay a fee").first.wait_for(timeout=10_000)
            page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)
        finally:
            browser.close()
