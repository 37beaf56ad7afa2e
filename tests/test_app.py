"""The Streamlit app through streamlit.testing.v1.AppTest: upload, ask, see citations."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import webapp
from conftest import free_port
from pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_pdf

APP = str(Path(webapp.__file__).with_name("app.py"))
TIMEOUT = 180  # the first run loads the embedding model


def start_app(tmp_path, monkeypatch, **env: str) -> AppTest:
    monkeypatch.setenv("DOCENT_HOME", str(tmp_path / "home"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    # The page starts with its title: nothing else (Streamlit "magic" output, say) comes first.
    assert at.main.children[0].type == "title" and at.title[0].value.endswith("Docent")
    return at


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture()
def app(tmp_path, monkeypatch):
    return start_app(tmp_path, monkeypatch)


def upload(at: AppTest, files: list[tuple[str, bytes]]) -> None:
    at.file_uploader(key="uploads").set_value([(name, data, "application/pdf") for name, data in files])
    at.run()
    at.button(key="add").click()
    at.run()
    assert not at.exception, at.exception


def test_upload_then_ask_shows_an_answer_with_its_citations(app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    assert any("handbook.pdf: added, 4 pages" in s.value for s in app.success)
    assert any(HANDBOOK_TITLE in m.value for m in app.sidebar.markdown)

    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert not app.exception, app.exception
    assistant = [m for m in app.chat_message if m.name == "assistant"][0]
    assert "120 euros per month" in assistant.markdown[0].value
    labels = [e.label for e in app.expander]
    assert labels[0] == f"[1] {HANDBOOK_TITLE}, page 3"
    assert "120 euros" in app.expander[0].markdown[0].value


def test_bad_upload_is_reported_and_the_good_one_goes_in(app):
    upload(app, [("broken.pdf", b"not a pdf"), ("good.pdf", make_pdf(HANDBOOK_PAGES))])
    assert any("broken.pdf: not a PDF file" in e.value for e in app.error)
    assert any("good.pdf: added" in s.value for s in app.success)


def test_a_document_can_be_removed(app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    remove = [b for b in app.sidebar.button if b.key and b.key.startswith("remove-")]
    assert len(remove) == 1
    remove[0].click()
    app.run()
    assert not [b for b in app.sidebar.button if b.key and b.key.startswith("remove-")]
    assert any("No documents yet" in c.value for c in app.sidebar.caption)


def test_asking_an_empty_collection_says_so(app):
    app.chat_input[0].set_value("Anything?").run()
    assistant = [m for m in app.chat_message if m.name == "assistant"][0]
    assert "no documents in this collection" in assistant.markdown[0].value


def test_a_citation_shows_its_page_and_offers_the_pdf(app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert not app.get("image")
    app.toggle(key="page-0-1").set_value(True).run()
    assert not app.exception, app.exception
    assert len(app.get("image")) == 1
    assert any(b.proto.label == "Download the PDF" for b in app.get("download_button"))
    # The cited sentence is highlighted in the passage.
    assert ":orange-background[A mooring permit for a private boat costs 120 euros per month\\.]" in app.expander[0].markdown[0].value


def test_a_follow_up_shows_what_was_searched(app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    app.chat_input[0].set_value("When is the fire drill held?").run()
    app.chat_input[0].set_value("And where do all staff gather?").run()
    assert not app.exception, app.exception
    assert any(c.value == "Searched for: When is the fire drill held? Where do all staff gather?" for c in app.caption)
    assistant = [m for m in app.chat_message if m.name == "assistant"][-1]
    assert "assembly point" in assistant.markdown[-1].value


def test_a_backend_that_is_down_is_reported_and_the_passages_shown(tmp_path, monkeypatch):
    at = start_app(tmp_path, monkeypatch, DOCENT_LLM="openai", DOCENT_OPENAI_BASE_URL=closed_port_url())
    upload(at, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    at.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert not at.exception, at.exception
    assert any("cannot reach the LLM server" in e.value for e in at.error)
    assert at.expander and at.expander[0].label == f"{HANDBOOK_TITLE}, page 3"


def test_the_backend_and_fusion_can_be_chosen_in_the_app(tmp_path, monkeypatch):
    app = start_app(tmp_path, monkeypatch, DOCENT_OPENAI_BASE_URL=closed_port_url())
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    app.selectbox(key="fusion").set_value("convex").run()
    app.slider(key="alpha").set_value(0.8).run()
    app.selectbox(key="llm").set_value("openai").run()
    assert not app.exception, app.exception
    # Nothing listens at the configured server: the failure is told and the passages shown.
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert app.error and "cannot reach the LLM server" in app.error[0].value
    app.selectbox(key="llm").set_value("extractive").run()
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assistant = [m for m in app.chat_message if m.name == "assistant"][-1]
    assert "120 euros per month" in assistant.markdown[0].value


def test_a_site_is_crawled_from_the_app_with_live_progress(tmp_path, monkeypatch):
    import time

    from website import MODULES, Site, SiteServer

    server = SiteServer(Site())
    try:
        at = start_app(tmp_path, monkeypatch, DOCENT_ALLOWED_HOSTS="127.0.0.1", DOCENT_FETCH_TIMEOUT="1")
        at.text_input(key="crawl_url").set_value(server.base).run()
        at.button(key="crawl").click().run()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            at.run()
            if any("finished" in c.value for c in at.sidebar.caption):
                break
            time.sleep(0.5)
        assert not at.exception, at.exception
        captions = [c.value for c in at.sidebar.caption]
        errors = [e.value for e in at.sidebar.error]
        assert any(f"Crawl of {server.base}: finished" in c for c in captions), (captions, errors)
        assert any(f"**{len(MODULES)}** stored" in m.value for m in at.sidebar.markdown)
        failures = [e for e in at.sidebar if e.type == "dataframe"]
        assert failures and any("500" in reason for reason in failures[0].value["reason"])
        at.run()
        assert any(f"{server.base}/library/csv.html" in m.value for m in at.sidebar.markdown)
    finally:
        server.close()


def test_search_only_in_limits_the_answer_to_the_chosen_documents(app):
    harbour = [[line.replace("lighthouse", "harbour office") for line in page] for page in HANDBOOK_PAGES]
    upload(app, [("first.pdf", make_pdf(HANDBOOK_PAGES, title="First")), ("second.pdf", make_pdf(harbour, title="Second"))])
    chooser = app.sidebar.multiselect[0]
    assert chooser.label == "Search only in" and set(chooser.options) == {"first.pdf", "second.pdf"}
    chooser.set_value(["second.pdf"]).run()
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert not app.exception, app.exception
    cited = [e.label.lower() for e in app.expander if e.label.startswith("[")]
    assert cited and all("second" in label and "first" not in label for label in cited)


def test_adding_files_offers_stop_and_a_stopped_run_reports_how_far_it_got(app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    assert "ingest_running" not in app.session_state  # a finished run leaves no trace (and no Stop button)
    assert not [b for b in app.button if b.key == "stop-ingest"]
    # A run that was adding files and got cut off (what a Stop click does) leaves its count behind.
    app.session_state["ingest_running"] = {"done": 1, "total": 3}
    app.run()
    assert any("Stopped: 1 of 3 file(s) were added" in w.value for w in app.warning)
    assert any("handbook.pdf: added" in s.value for s in app.success)  # the finished file is still reported
