"""The app as a person uses it: `docent serve` in a real process, driven in headless Chromium.

Needs Debian's chromium (/usr/bin/chromium, installed by .ci/run) and the playwright package;
skipped, saying why, where either is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from support.cli import DOCENT, environment_with
from support.net import free_port
from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_manual, make_pdf

CHROMIUM = os.environ.get("DOCENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@contextlib.contextmanager
def _serving(home: Path, port: int | None = None, **env_extra: str):
    """`docent serve` on a free port of 127.0.0.1, stopped on leaving; yields its URL."""
    port = port or free_port()
    env = environment_with(**env_extra)
    log = (home / "serve.log").open("w+b")  # a file, not a pipe nobody drains
    process = subprocess.Popen(
        [DOCENT, "--home", str(home), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
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
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@contextlib.contextmanager
def _browser_at(url: str, requests: list[str] | None = None):
    """A headless Chromium page opened at url, closed on leaving; requests collects the URL of
    every request the page makes, from the first."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            if requests is not None:
                page.on("request", lambda request: requests.append(request.url))
            page.goto(url)
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-home")
    with _serving(home) as url:
        yield url, home


def _upload_and_ask(page, pdf: Path):
    """Adds the handbook, asks about the mooring fee, and returns the first citation once shown."""
    page.locator("input[type=file]").set_input_files(str(pdf))
    page.get_by_role("button", name="Add 1 file(s)").click()
    page.get_by_text("handbook.pdf: added, 4 pages").wait_for(timeout=120_000)
    # The page redraws once the job has ended (its document list): a question is asked after that,
    # as a person would, not in the same instant.
    page.wait_for_timeout(1500)
    box = page.get_by_placeholder("Ask a question about your documents")
    box.fill("How much does a mooring permit cost?")
    box.press("Enter")
    page.get_by_text("120 euros per month").first.wait_for(timeout=120_000)  # two busy cores: be patient
    citation = page.get_by_text(f"[1] {HANDBOOK_TITLE}, page 3", exact=True)  # the label, not the copy block
    citation.wait_for(timeout=30_000)
    return citation


def test_upload_ask_and_open_a_citation_in_a_real_browser(server, tmp_path):
    url, _ = server
    pdf = tmp_path / "handbook.pdf"
    pdf.write_bytes(make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))
    with _browser_at(url) as page:
        page.get_by_text("Docent").first.wait_for(timeout=120_000)  # the model loads on first view
        citation = _upload_and_ask(page, pdf)
        citation.click()
        page.get_by_text("Commercial vessels pay a fee").first.wait_for(timeout=10_000)
        page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)


INJECTED_TITLE = "![i](http://tracker.example/title.png) :material/warning: see https://evil.example/login"


def test_no_request_leaves_for_a_host_named_only_in_a_document(docent, tmp_path):
    """A document's title and text are drawn as written: Markdown in them (an image here) is not
    followed, in the sidebar, the answer, the citation or its passage; Streamlit's icon codes
    are not drawn as icons, and addresses in them are not live links."""
    from webapp.app.render import unlinked

    from retrieval.service import Docent, Source
    from retrieval.settings import load_settings

    home = tmp_path / "home"
    own = Docent(load_settings(home=str(home)))
    own._embedder = docent.embedder
    pages = [
        ["Harbour rules for the marina."],
        [
            "A mooring permit costs 120 euros per month, see ![map](http://tracker.example/map.png) for the berths"
            " :material/warning: or write to harbour@evil.example or www.evil.example."
        ],
    ]
    assert own.ingest([Source("rules.pdf", data=make_pdf(pages, title=INJECTED_TITLE))])[0].status == "added"
    own.close()
    requests: list[str] = []
    with _serving(home) as url, _browser_at(url, requests) as page:
        title = unlinked(INJECTED_TITLE)  # as written, with invisible joiners
        page.get_by_text(title).first.wait_for(timeout=120_000)
        box = page.get_by_placeholder("Ask a question about your documents")
        box.fill("How much does a mooring permit cost?")
        box.press("Enter")
        page.get_by_text("120 euros per month").first.wait_for(timeout=60_000)
        page.get_by_text(f"[1] {title}, page 2", exact=True).click()
        page.get_by_text(unlinked("![map](http://tracker.example/map.png)")).first.wait_for(timeout=10_000)
        page.wait_for_timeout(2000)  # time for any image request to leave
        links = [a.get_attribute("href") or "" for a in page.locator("a").all()]
        icons = [icon.inner_text() for icon in page.locator('[data-testid="stIconMaterial"]').all()]
    assert requests and not [r for r in requests if "tracker.example" in r]
    assert not [link for link in links if "evil.example" in link or "tracker.example" in link], links
    assert "warning" not in icons, icons


def test_create_takes_the_name_as_typed_and_the_uploader_empties_after_adding(server, tmp_path):
    """Two rough edges a new user hit: Create did nothing until Enter had been pressed in the name
    field, and the uploader kept listing the files it had already handed over."""
    url, home = server
    pdf = tmp_path / "pumps.pdf"
    pdf.write_bytes(make_manual("Pumps", 2))
    with _browser_at(url) as page:
        page.get_by_text("Docent").first.wait_for(timeout=120_000)
        page.get_by_text("Manage collections").click()
        page.get_by_placeholder("handbooks").fill("typed-only")  # no Enter, no leaving the field
        page.get_by_role("button", name="Create").click()
        page.get_by_text("Created 'typed-only'").wait_for(timeout=30_000)
        assert (home / "collections" / "typed-only").is_dir()
        page.locator("input[type=file]").set_input_files(str(pdf))
        page.get_by_text("pumps.pdf").first.wait_for(timeout=10_000)  # listed by the uploader
        page.get_by_role("button", name="Add 1 file(s)").click()
        page.get_by_text("pumps.pdf: added, 2 pages").wait_for(timeout=120_000)
        page.wait_for_timeout(1000)
        assert page.get_by_role("button", name="Add 1 file(s)").count() == 0
        uploader = page.locator('[data-testid="stFileUploader"]').first
        assert "pumps.pdf" not in uploader.inner_text()  # the uploader is empty again


def _documents_in(home: Path) -> list[str]:
    """The sources the server's default collection holds, read as another process would."""
    database = home / "collections" / "default" / "docent.sqlite3"
    if not database.exists():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
        try:
            return [row[0] for row in db.execute("SELECT source FROM documents ORDER BY id")]
        except sqlite3.OperationalError:  # the schema is being created
            return []


def test_stop_while_adding_keeps_the_finished_files(server, tmp_path):
    url, home = server
    names = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
    paths = []
    for name in names:
        paths.append(tmp_path / f"{name}.pdf")
        paths[-1].write_bytes(make_manual(name, 120))
    with _browser_at(url) as page:
        page.get_by_text("Docent").first.wait_for(timeout=120_000)
        before = set(_documents_in(home))
        page.locator("input[type=file]").set_input_files([str(x) for x in paths])
        page.get_by_role("button", name="Add 6 file(s)").click()
        deadline = time.monotonic() + 180
        while not set(_documents_in(home)) - before and time.monotonic() < deadline:
            time.sleep(0.1)
        page.get_by_role("button", name="Stop adding").click()  # the first file is in
        page.get_by_text("Stopped:").first.wait_for(timeout=60_000)
        added = [s for s in _documents_in(home) if s not in before]
        assert 1 <= len(added) < len(names), added
        assert added == [f"{n}.pdf" for n in names[: len(added)]]  # whole files, in order
        page.get_by_text(f"Stopped: {len(added)} of 6 file(s) were added").wait_for(timeout=10_000)


def test_sign_in_upload_ask_and_sign_out(tmp_path):
    from webapp.access import hash_password

    users = {"ed": {"role": "editor", "password_hash": hash_password("a long pass phrase")}}
    pdf = tmp_path / "handbook.pdf"
    pdf.write_bytes(make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))
    with _serving(tmp_path, DOCENT_AUTH="password", DOCENT_USERS=json.dumps(users)) as url, _browser_at(url) as page:
        page.get_by_label("User name", exact=True).fill("ed")
        page.get_by_label("Password", exact=True).fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("wrong user name or password").wait_for(timeout=30_000)
        page.get_by_label("Password", exact=True).fill("a long pass phrase")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Signed in as").wait_for(timeout=120_000)  # the model loads on first view

        _upload_and_ask(page, pdf)

        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
        assert page.get_by_placeholder("Ask a question about your documents").count() == 0


def _sign_in(page, name: str, password: str) -> None:
    page.get_by_label("User name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for(timeout=120_000)


def test_a_chat_survives_a_reload_stays_private_and_opens_read_only_once_shared(tmp_path):
    from webapp.access import hash_password

    users = {
        "ed": {"role": "editor", "password_hash": hash_password("ed pass phrase")},
        "rita": {"role": "reader", "password_hash": hash_password("rita pass phrase")},
    }
    pdf = tmp_path / "handbook.pdf"
    pdf.write_bytes(make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))
    with _serving(tmp_path, DOCENT_AUTH="password", DOCENT_USERS=json.dumps(users)) as url, _browser_at(url) as page:
        _sign_in(page, "ed", "ed pass phrase")
        _upload_and_ask(page, pdf)
        box = page.get_by_placeholder("Ask a question about your documents")
        box.fill("When is the fire drill held?")
        box.press("Enter")
        page.get_by_text("Copy answer as Markdown").nth(1).wait_for(timeout=60_000)  # the second turn, saved
        chat_url = page.url
        assert "?chat=" in chat_url

        page.reload()  # the session (and sign-in) is gone; the address still names the chat
        _sign_in(page, "ed", "ed pass phrase")
        page.get_by_text("120 euros per month").first.wait_for(timeout=30_000)
        page.get_by_text(f"[1] {HANDBOOK_TITLE}, page 3", exact=True).first.wait_for(timeout=30_000)
        page.get_by_text("When is the fire drill held?").first.wait_for(timeout=30_000)

        other = page.context.browser.new_page()
        other.goto(chat_url)
        _sign_in(other, "rita", "rita pass phrase")
        other.get_by_text("not yours to open").wait_for(timeout=30_000)
        assert other.get_by_text("120 euros per month").count() == 0

        page.get_by_text("This chat", exact=True).click()
        page.get_by_text("Share with everyone who may read").click()
        page.get_by_text("Link to this chat").wait_for(timeout=30_000)
        other.goto(chat_url)
        _sign_in(other, "rita", "rita pass phrase")
        other.get_by_text("ed shared this chat with you").wait_for(timeout=30_000)
        other.get_by_text("120 euros per month").first.wait_for(timeout=30_000)
        assert other.get_by_placeholder("Ask a question about your documents").count() == 0


def test_sign_in_through_the_companys_identity_provider(tmp_path):
    """auth = "oidc": Streamlit's st.login against an OpenID Connect provider on 127.0.0.1."""
    pytest.importorskip("joserfc", reason="joserfc (which Authlib brings) is not installed")
    from support.oidc_provider import OidcProvider

    provider = OidcProvider("docent", "client-secret", "ada@example.com")
    port = free_port()
    streamlit_dir = tmp_path / ".streamlit"  # `docent serve` runs in the data home
    streamlit_dir.mkdir()
    (streamlit_dir / "secrets.toml").write_text(
        f'[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "a cookie secret for this test only, long enough"\n'
        f'client_id = "docent"\nclient_secret = "client-secret"\nserver_metadata_url = "{provider.metadata_url}"\n'
    )
    users = {"ada@example.com": {"role": "editor"}}
    try:
        with (
            _serving(tmp_path, port=port, DOCENT_AUTH="oidc", DOCENT_USERS=json.dumps(users)) as url,
            _browser_at(url) as page,
        ):
            page.get_by_role("button", name="Sign in with your company account").click()
            page.get_by_text("Signed in as").wait_for(timeout=120_000)
            assert "ada@example.com" in page.get_by_text("Signed in as").inner_text()
            page.locator("input[type=file]").wait_for(state="attached", timeout=60_000)  # an editor may add files

            # Someone the provider knows but Docent does not is refused, by name.
            provider.email = "mallory@example.com"
            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="Sign in with your company account").click()
            page.get_by_text("mallory@example.com is not a Docent user").wait_for(timeout=60_000)
            assert page.get_by_placeholder("Ask a question about your documents").count() == 0
    finally:
        provider.close()
