"""The Streamlit app through streamlit.testing.v1.AppTest: upload, ask, see citations."""

from __future__ import annotations

import re

import json
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from streamlit.testing.v1 import AppTest

import webapp
from support.net import free_port
from support.officegen import make_docx
from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_manual, make_pdf

APP = str(Path(webapp.__file__).with_name("app") / "main.py")
TIMEOUT = 180  # the first run loads the embedding model


def shown(markdown: str) -> str:
    """What a reader sees of Markdown the app escaped (document text is drawn as written; the
    word joiners that keep addresses and icon codes inert are invisible)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def start_app(tmp_path, monkeypatch, **env: str) -> AppTest:
    monkeypatch.setenv("DOCENT_HOME", str(tmp_path / "home"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    wait_until_prepared(at)
    # The page starts with its title: nothing else (Streamlit "magic" output, say) comes first.
    assert at.main.children[0].type == "title" and at.title[0].value.endswith("Docent")
    return at


def preparing(at: AppTest) -> bool:
    return any("Preparing Docent" in i.value for i in at.info)


def wait_until_prepared(at: AppTest) -> list[str]:
    """Reruns the page (as its once-a-second refresh does) while the embedding model is being
    prepared; returns what the page said meanwhile."""
    said, deadline = [], time.monotonic() + TIMEOUT
    while preparing(at) and time.monotonic() < deadline:
        said += [m.value for m in at.markdown]
        time.sleep(0.3)
        at.run()
    assert not at.exception, at.exception
    assert not preparing(at), "the embedding model was not ready in time"
    return said


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture()
def app(tmp_path, monkeypatch):
    return start_app(tmp_path, monkeypatch)


def upload(at: AppTest, files: list[tuple[str, bytes]], *, wait: bool = True) -> None:
    at.file_uploader(key=f"uploads-{at.session_state['upload-round']}").set_value(
        [(name, data, "application/pdf") for name, data in files]
    )
    at.run()
    at.button(key="add").click()
    at.run()
    assert not at.exception, at.exception
    if wait:
        wait_for_ingest(at)


def wait_for_ingest(at: AppTest) -> None:
    """Reruns the page (as its once-a-second refresh does in a browser) until the job has ended."""
    deadline = time.monotonic() + TIMEOUT
    while [b for b in at.button if b.key == "stop-ingest"] and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
    at.run()
    assert not at.exception, at.exception


def test_a_first_start_shows_what_is_being_prepared_until_the_chat_is_ready(tmp_path, monkeypatch):
    """A machine with no prepared model: the page says which step runs and for how long from the
    first request (the float export only, to keep this test short; the int8 step shows the same way)."""
    monkeypatch.setenv("DOCENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCENT_MODEL_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("DOCENT_EMBEDDING_BACKEND", "openvino")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    assert preparing(at) and not at.chat_input
    said = wait_until_prepared(at)
    steps = [line for line in said if "so far (usually" in line]
    assert any("Converting the embedding model to OpenVINO" in line for line in steps), said[-5:]
    assert any("✓ Loading the embedding model" in line for line in said)
    assert at.chat_input and (tmp_path / "models").is_dir()


def test_upload_then_ask_shows_an_answer_with_its_citations(app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    assert any("handbook.pdf: added, 4 pages" in shown(s.value) for s in app.success)
    assert any(HANDBOOK_TITLE in shown(m.value) for m in app.sidebar.markdown)

    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert not app.exception, app.exception
    assistant = [m for m in app.chat_message if m.name == "assistant"][0]
    assert "120 euros per month" in shown(assistant.markdown[0].value)
    labels = [shown(e.label) for e in app.expander]
    assert labels[0] == f"[1] {HANDBOOK_TITLE}, page 3"
    assert "120 euros" in shown(app.expander[0].markdown[0].value)


def test_office_files_and_scans_go_in_through_the_uploader_and_are_cited_where_they_are(app):
    notice = Image.new("RGB", (2000, 500), "white")
    ImageDraw.Draw(notice).text(
        (100, 200), "The fuel dock is closed on Sundays.", fill="black", font=ImageFont.load_default(size=64)
    )
    scan = BytesIO()
    notice.save(scan, format="PNG")
    upload(app, [("handbook.docx", make_docx()), ("notice.png", scan.getvalue())])
    assert any("handbook.docx: added" in shown(s.value) for s in app.success)
    assert any("notice.png: added" in shown(s.value) for s in app.success)

    app.chat_input[0].set_value("How much did a mooring permit cost in 2022?").run()
    assistant = [m for m in app.chat_message if m.name == "assistant"][0]
    assert "Mooring permit | 2022: 120 euros" in shown(assistant.markdown[0].value)
    assert shown(app.expander[0].label) == "[1] Harbor Handbook › Mooring fees › Fees by year (handbook.docx)"

    app.chat_input[0].set_value("When is the fuel dock closed?").run()
    labels = [shown(e.label) for e in app.expander]
    assert "notice › read by OCR (notice.png)" in " ".join(labels)


def test_bad_upload_is_reported_and_the_good_one_goes_in(app):
    upload(app, [("broken.pdf", b"not a pdf"), ("good.pdf", make_pdf(HANDBOOK_PAGES))])
    assert any("broken.pdf: not a PDF file" in shown(e.value) for e in app.error)
    assert any("good.pdf: added" in shown(s.value) for s in app.success)


def test_a_removal_asks_first_and_can_be_undone(app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    remove = [b for b in app.sidebar.button if b.key and b.key.startswith("remove-")]
    assert len(remove) == 1
    remove[0].click().run()
    assert any("Remove handbook.pdf and its passages?" in shown(w.value) for w in app.sidebar.warning)
    app.button(key="confirm-remove-no").click().run()  # kept
    assert [b for b in app.sidebar.button if b.key and b.key.startswith("remove-")]
    remove[0].click().run()
    app.button(key="confirm-remove-yes").click().run()
    assert not app.exception, app.exception
    assert not [b for b in app.sidebar.button if b.key and b.key.startswith("remove-")]
    assert any("No documents yet" in shown(c.value) for c in app.sidebar.caption)
    assert any("Removed handbook.pdf" in shown(i.value) for i in app.sidebar.info)
    app.button(key="undo-remove-button").click().run()
    assert any("Restored handbook.pdf" in shown(s.value) for s in app.sidebar.success)
    assert any(HANDBOOK_TITLE in shown(m.value) for m in app.sidebar.markdown)
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assistant = [m for m in app.chat_message if m.name == "assistant"][0]
    assert "120 euros per month" in shown(assistant.markdown[0].value)


def test_with_sign_in_off_collections_are_made_and_deleted_in_the_app(app):
    app.text_input(key="new-collection").set_value("manuals")  # typed, no Enter: the form takes it
    app.button(key="create-collection").click().run()
    assert not app.exception, app.exception
    assert app.sidebar.selectbox(key="collection").options == ["default", "manuals"]
    assert app.sidebar.selectbox(key="collection").value == "manuals"
    assert not [t for t in app.text_input if t.key in ("user-name", "new-collection-access")]  # no users to manage
    app.button(key="delete-collection").click().run()
    app.button(key="confirm-delete-yes").click().run()
    assert app.sidebar.selectbox(key="collection").options == ["default"]
    assert any("Deleted 'manuals'" in shown(s.value) for s in app.sidebar.success)


def test_a_blank_question_is_refused_with_a_message(app):
    app.chat_input[0].set_value("   ").run()
    assert not app.exception, app.exception
    assert any("blank one has nothing to search for" in w.value for w in app.warning)
    assert not app.chat_message


def test_asking_an_empty_collection_says_so(app):
    app.chat_input[0].set_value("Anything?").run()
    assistant = [m for m in app.chat_message if m.name == "assistant"][0]
    assert "no documents in this collection" in shown(assistant.markdown[0].value)


def test_a_citation_shows_its_page_and_offers_the_pdf(app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert not app.get("image")
    app.toggle(key="page-0-1").set_value(True).run()
    assert not app.exception, app.exception
    assert len(app.get("image")) == 1
    assert any(b.proto.label == "Download the PDF" for b in app.get("download_button"))
    # The cited sentence is highlighted in the passage.
    assert (
        ":orange-background[A mooring permit for a private boat costs 120 euros per month\\.]"
        in app.expander[0].markdown[0].value
    )


def test_a_follow_up_shows_what_was_searched(app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    app.chat_input[0].set_value("When is the fire drill held?").run()
    app.chat_input[0].set_value("And where do all staff gather?").run()
    assert not app.exception, app.exception
    assert any(
        shown(c.value) == "Searched for: When is the fire drill held? Where do all staff gather?" for c in app.caption
    )
    assistant = [m for m in app.chat_message if m.name == "assistant"][-1]
    assert "assembly point" in shown(assistant.markdown[-1].value)


def test_a_backend_that_is_down_is_reported_and_the_passages_shown(tmp_path, monkeypatch):
    at = start_app(tmp_path, monkeypatch, DOCENT_LLM="openai", DOCENT_OPENAI_BASE_URL=closed_port_url())
    upload(at, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    at.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert not at.exception, at.exception
    assert any("cannot reach the LLM server" in shown(e.value) for e in at.error)
    assert at.expander and shown(at.expander[0].label) == f"{HANDBOOK_TITLE}, page 3"


def test_the_backend_and_fusion_can_be_chosen_in_the_app(tmp_path, monkeypatch):
    nothing_there = f"127.0.0.1:{free_port()}"
    app = start_app(tmp_path, monkeypatch, DOCENT_OPENAI_BASE_URL=closed_port_url(), DOCENT_LLM_PROBE=nothing_there)
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    said = [shown(c.value) for c in app.sidebar.caption if c.value.startswith("Answers:")]
    assert said == [
        f"Answers: extractive: the documents' own words (no model server answered at {nothing_there};"
        " start one, e.g. `ollama serve`, and it is used within 30 s)"
    ]
    app.selectbox(key="fusion").set_value("convex").run()
    # The model is loaded by now: which precision embeds, and why, is said too.
    embedding = [shown(c.value) for c in app.sidebar.caption if c.value.startswith("Embedding:")]
    assert len(embedding) == 1 and " (this CPU has " in embedding[0], embedding
    app.slider(key="alpha").set_value(0.8).run()
    app.selectbox(key="llm").set_value("openai").run()
    assert not app.exception, app.exception
    # Nothing listens at the configured server: the failure is told and the passages shown.
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert app.error and "cannot reach the LLM server" in app.error[0].value
    app.selectbox(key="llm").set_value("extractive").run()
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assistant = [m for m in app.chat_message if m.name == "assistant"][-1]
    assert "120 euros per month" in shown(assistant.markdown[0].value)


def test_a_site_is_crawled_from_the_app_with_live_progress(tmp_path, monkeypatch):
    import time

    from support.website import MODULES, Site, SiteServer

    server = SiteServer(Site())
    try:
        at = start_app(tmp_path, monkeypatch, DOCENT_ALLOWED_HOSTS="127.0.0.1", DOCENT_FETCH_TIMEOUT="1")
        at.text_input(key="crawl_url").set_value(server.base).run()
        at.button(key="crawl").click().run()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            at.run()
            if any("finished" in shown(c.value) for c in at.sidebar.caption):
                break
            time.sleep(0.5)
        assert not at.exception, at.exception
        captions = [shown(c.value) for c in at.sidebar.caption]
        errors = [shown(e.value) for e in at.sidebar.error]
        assert any(f"Crawl of {server.base}: finished" in c for c in captions), (captions, errors)
        assert any(f"reading the sitemaps of {server.base}/" in c for c in captions), captions  # the way it took
        assert any(f"**{len(MODULES)}** stored" in shown(m.value) for m in at.sidebar.markdown)
        failures = [e for e in at.sidebar if e.type == "dataframe"]
        assert failures and any("500" in reason for reason in failures[0].value["reason"])
        at.run()
        assert any(f"{server.base}/library/csv.html" in shown(m.value) for m in at.sidebar.markdown)
    finally:
        server.close()


def test_search_only_in_limits_the_answer_to_the_chosen_documents(app):
    harbour = [[line.replace("lighthouse", "harbour office") for line in page] for page in HANDBOOK_PAGES]
    upload(
        app, [("first.pdf", make_pdf(HANDBOOK_PAGES, title="First")), ("second.pdf", make_pdf(harbour, title="Second"))]
    )
    chooser = app.sidebar.multiselect[0]
    assert chooser.label == "Search only in" and set(chooser.options) == {"first.pdf", "second.pdf"}
    chooser.set_value(["second.pdf"]).run()
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert not app.exception, app.exception
    cited = [shown(e.label).lower() for e in app.expander if shown(e.label).startswith("[")]
    assert cited and all("second" in label and "first" not in label for label in cited)


def test_stop_keeps_the_finished_files_and_says_how_far_it_got(app):
    names = ("alpha", "bravo", "charlie", "delta")
    upload(app, [(f"{n}.pdf", make_manual(n, 60)) for n in names], wait=False)
    deadline = time.monotonic() + TIMEOUT
    while not app.success and time.monotonic() < deadline:  # the first file is in
        time.sleep(0.2)
        app.run()
    app.button(key="stop-ingest").click().run()
    wait_for_ingest(app)
    stopped = [shown(w.value) for w in app.warning if shown(w.value).startswith("Stopped:")]
    added = [shown(s.value) for s in app.success]
    assert stopped == [f"Stopped: {len(added)} of 4 file(s) were added; the rest were not."], (stopped, added)
    assert 1 <= len(added) < 4 and added[0].startswith("alpha.pdf: added")
    listed = [shown(m.value) for m in app.sidebar.markdown if ".pdf ·" in shown(m.value)]
    assert len(listed) == len(added)  # whole files only: the one in progress was not stored


def test_an_ingest_goes_on_when_the_tab_is_closed_and_shows_again_in_a_new_one(tmp_path, monkeypatch):
    first = start_app(tmp_path, monkeypatch)
    upload(first, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))], wait=False)
    del first  # the tab is gone; the job belongs to the server
    second = AppTest.from_file(APP, default_timeout=TIMEOUT)
    second.run()
    wait_for_ingest(second)
    assert any("handbook.pdf: added, 4 pages" in shown(s.value) for s in second.success)
    assert any(HANDBOOK_TITLE in shown(m.value) for m in second.sidebar.markdown)


# ---- sign-in, roles and collection access ----------------------------------------------------------


@pytest.fixture()
def team_home(tmp_path, docent):
    """An editor, a reader, and a collection 'payroll' only the finance group may see."""
    from webapp.access import AccessControl, hash_password
    from retrieval.service import Docent, Source
    from retrieval.settings import load_settings

    home = tmp_path / "home"
    users = {
        "ed": {"role": "editor", "password_hash": hash_password("ed-pw")},
        "rita": {"role": "reader", "password_hash": hash_password("rita-pw")},
        "fiona": {"role": "reader", "groups": ["finance"], "password_hash": hash_password("fiona-pw")},
    }
    settings = load_settings(home=str(home), auth="password", users=users)
    own = Docent(settings)
    own._embedder = docent.embedder
    own.ingest([Source("handbook.pdf", data=make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    own.ingest(
        [Source("payroll.pdf", data=make_pdf([["The payroll budget for next year is 4.2 million euros."]]))],
        collection="payroll",
    )
    own.close()
    AccessControl(settings).set_collection_access("payroll", [], ["finance"])
    return home, {"DOCENT_AUTH": "password", "DOCENT_USERS": json.dumps(users)}


def sign_in(tmp_path, monkeypatch, env: dict, name: str, password: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DOCENT_HOME", str(tmp_path / "home"))
    at.run()
    assert not at.chat_input and not at.file_uploader  # nothing before signing in
    at.text_input(key="sign-in-name").set_value(name)
    at.text_input(key="sign-in-password").set_value(password)
    next(b for b in at.button if b.label == "Sign in").click().run()
    wait_until_prepared(at)
    return at


def test_a_wrong_password_does_not_sign_in(tmp_path, monkeypatch, team_home):
    _, env = team_home
    at = sign_in(tmp_path, monkeypatch, env, "rita", "wrong")
    assert any("wrong user name or password" in shown(e.value) for e in at.error)
    assert not at.chat_input


def test_a_reader_can_ask_but_not_add_or_remove(tmp_path, monkeypatch, team_home):
    _, env = team_home
    at = sign_in(tmp_path, monkeypatch, env, "rita", "rita-pw")
    assert any("Signed in as **rita** (reader)" in shown(c.value) for c in at.sidebar.caption)
    assert not at.get("file_uploader") and not [b for b in at.button if b.key in ("add", "crawl")]
    assert not [b for b in at.button if b.key and b.key.startswith("remove-")]
    assert any(HANDBOOK_TITLE in shown(m.value) for m in at.sidebar.markdown)
    at.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert "120 euros per month" in shown([m for m in at.chat_message if m.name == "assistant"][0].markdown[0].value)


def test_a_collection_outside_a_users_access_is_not_offered_or_cited(tmp_path, monkeypatch, team_home):
    _, env = team_home
    rita = sign_in(tmp_path, monkeypatch, env, "rita", "rita-pw")
    assert rita.sidebar.selectbox(key="collection").options == ["default"]
    rita.chat_input[0].set_value("What is the payroll budget?").run()
    assert "4.2 million" not in json.dumps([shown(m.markdown[0].value) for m in rita.chat_message if m.markdown])
    fiona = sign_in(tmp_path, monkeypatch, env, "fiona", "fiona-pw")
    assert fiona.sidebar.selectbox(key="collection").options == ["default", "payroll"]
    fiona.sidebar.selectbox(key="collection").set_value("payroll").run()
    fiona.chat_input[0].set_value("What is the payroll budget?").run()
    assert "4.2 million" in shown([m for m in fiona.chat_message if m.name == "assistant"][0].markdown[0].value)


def test_a_citations_link_from_elsewhere_opens_its_page_for_those_who_may_read_it(tmp_path, monkeypatch, team_home):
    """The address a Slack answer or an OpenAI-style client links a citation to (webapp/references.py)."""
    _, env = team_home
    for key, value in {**env, "DOCENT_HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(key, value)

    def opened(name: str, password: str, query: dict[str, str]) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.query_params.update(query)
        at.run()
        at.text_input(key="sign-in-name").set_value(name)
        at.text_input(key="sign-in-password").set_value(password)
        next(b for b in at.button if b.label == "Sign in").click().run()
        wait_until_prepared(at)
        assert not at.exception, at.exception
        return at

    rita = opened("rita", "rita-pw", {"collection": "default", "source": "handbook.pdf", "page": "3"})
    assert [shown(h.value) for h in rita.subheader] == [f"{HANDBOOK_TITLE}, page 3"]
    assert len(rita.get("image")) == 1 and not rita.chat_input
    assert any("120 euros per month" in shown(m.value) for m in rita.markdown)
    next(b for b in rita.button if b.label == "Back to the chat").click().run()
    assert rita.chat_input and "source" not in rita.query_params
    secret = opened("rita", "rita-pw", {"collection": "payroll", "source": "payroll.pdf", "page": "1"})
    assert any("no collection 'payroll'" in shown(e.value) for e in secret.error)
    assert "4.2 million" not in json.dumps([shown(m.value) for m in secret.markdown])
    fiona = opened("fiona", "fiona-pw", {"collection": "payroll", "source": "payroll.pdf", "page": "1"})
    assert any("4.2 million" in shown(m.value) for m in fiona.markdown)


def test_an_editor_adds_and_removes_and_signs_out(tmp_path, monkeypatch, team_home):
    _, env = team_home
    at = sign_in(tmp_path, monkeypatch, env, "ed", "ed-pw")
    upload(at, [("second.pdf", make_manual("second", 2))])
    assert any("second.pdf: added" in shown(s.value) for s in at.success)
    remove = [b for b in at.sidebar.button if b.key and b.key.startswith("remove-")]
    assert len(remove) == 2
    next(b for b in at.button if b.key == "sign-out").click().run()
    assert not at.chat_input and at.text_input(key="sign-in-name")


def test_an_admin_creates_a_limited_collection_and_a_user_who_then_sees_it(tmp_path, monkeypatch, team_home):
    from webapp.access import hash_password

    _, env = team_home
    users = json.loads(env["DOCENT_USERS"]) | {"ada": {"role": "admin", "password_hash": hash_password("ada-pw")}}
    env = env | {"DOCENT_USERS": json.dumps(users)}
    ada = sign_in(tmp_path, monkeypatch, env, "ada", "ada-pw")
    assert ada.sidebar.selectbox(key="collection").options == ["default", "payroll"]  # admins see everything
    ada.text_input(key="new-collection").set_value("board")
    ada.text_input(key="new-collection-access").set_value("@directors")
    ada.button(key="create-collection").click().run()
    assert not ada.exception, ada.exception
    assert ada.sidebar.selectbox(key="collection").value == "board"
    ada.text_input(key="user-name").set_value("bo")
    ada.selectbox(key="user-role").set_value("reader")
    ada.text_input(key="user-groups").set_value("directors")
    ada.text_input(key="user-password").set_value("bo-pw").run()
    ada.button(key="save-user").click().run()
    assert any("Saved bo" in shown(s.value) for s in ada.sidebar.success)

    bo = sign_in(tmp_path, monkeypatch, env, "bo", "bo-pw")
    assert bo.sidebar.selectbox(key="collection").options == ["board", "default"]
    # Removed by the admin: signed out at the next click.
    ada.text_input(key="user-name").set_value("bo").run()
    ada.button(key="remove-user").click().run()
    bo.run()
    assert not bo.chat_input and bo.text_input(key="sign-in-name")
    rita = sign_in(tmp_path, monkeypatch, env, "rita", "rita-pw")
    assert "board" not in rita.sidebar.selectbox(key="collection").options
    assert not [e for e in rita.sidebar.expander if shown(e.label).startswith("Manage")]  # not for readers


# ---- saved chats, sharing and feedback ------------------------------------------------------------


def reopen(tmp_path, monkeypatch, query: dict[str, str], **env: str) -> AppTest:
    """The same address opened again in a new browser session (a reload, or another browser)."""
    monkeypatch.setenv("DOCENT_HOME", str(tmp_path / "home"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    wait_until_prepared(at)
    return at


def answers_of(at: AppTest) -> list[str]:
    return [shown(m.markdown[0].value) for m in at.chat_message if m.name == "assistant" and m.markdown]


def test_a_reload_brings_the_chat_back_with_its_citations_and_the_list_keeps_it(tmp_path, monkeypatch, app):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    app.chat_input[0].set_value("When is the fire drill held?").run()
    assert not app.exception, app.exception
    chat_id = app.query_params["chat"]
    assert [shown(b.label) for b in app.sidebar.button if b.key.startswith("open-chat-")] == [
        "How much does a mooring permit cost?"
    ]

    again = reopen(tmp_path, monkeypatch, {"chat": chat_id})
    assert [shown(m.markdown[0].value) for m in again.chat_message if m.name == "user"] == [
        "How much does a mooring permit cost?",
        "When is the fire drill held?",
    ]
    assert "120 euros per month" in answers_of(again)[0] and "fire drill" in answers_of(again)[1].lower()
    assert shown(again.expander[0].label) == f"[1] {HANDBOOK_TITLE}, page 3"
    assert "120 euros" in shown(again.expander[0].markdown[0].value)
    copy = next(e for e in again.expander if e.label == "Copy answer as Markdown")
    assert f"[1] {HANDBOOK_TITLE}, page 3 (handbook.pdf)" in copy.code[0].value
    # A follow-up in the reopened chat has the earlier turns as context.
    again.chat_input[0].set_value("And where do all staff gather?").run()
    assert any(shown(c.value).startswith("Searched for: When is the fire drill held?") for c in again.caption)

    # A new chat starts empty; the old one stays in the list and opens again with a click.
    again.button(key="new-chat").click().run()
    assert "chat" not in again.query_params and not again.chat_message
    again.button(key=f"open-chat-{chat_id}").click().run()
    assert len(answers_of(again)) == 3
    again.text_input(key=f"chat-title-{chat_id}").set_value("Harbour rules").run()
    again.button(key="rename-chat").click().run()
    assert [shown(b.label) for b in again.sidebar.button if b.key.startswith("open-chat-")] == ["Harbour rules"]
    again.button(key="delete-chat").click().run()
    assert not [b for b in again.sidebar.button if b.key.startswith("open-chat-")] and not again.chat_message


def test_a_chat_whose_document_was_removed_still_opens_and_says_so(app, tmp_path, monkeypatch):
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    chat_id = app.query_params["chat"]
    remove = next(b for b in app.sidebar.button if b.key and b.key.startswith("remove-"))
    remove.click().run()
    next(b for b in app.sidebar.button if b.key and b.key.startswith("confirm-remove")).click().run()
    assert not app.exception, app.exception
    again = reopen(tmp_path, monkeypatch, {"chat": chat_id})
    assert any("were removed since" in shown(i.value) for i in again.info)
    assert shown(again.expander[0].label).endswith("(no longer in the collection)")
    assert "120 euros per month" in answers_of(again)[0]


def rate_an_answer(app, thumbs: int, comment: str) -> str:
    """Asks about the handbook, gives the answer a thumbs up (1) or down (0) with a comment;
    returns the comment field's key."""
    upload(app, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    app.chat_input[0].set_value("How much does a mooring permit cost?").run()
    app.feedback[0].set_value(thumbs).run()
    turn_key = next(t.key for t in app.text_input if t.key and t.key.startswith("comment-"))
    app.text_input(key=turn_key).set_value(comment)
    app.button(key=turn_key.replace("comment-", "send-comment-")).click().run()
    assert not app.exception, app.exception
    return turn_key


def test_feedback_on_an_answer_is_saved_and_listed_for_the_admin(app, tmp_path, monkeypatch):
    turn_key = rate_an_answer(app, 1, "Right, and quick")

    again = reopen(tmp_path, monkeypatch, {"chat": app.query_params["chat"]})
    assert again.feedback[0].value == 1 and again.text_input(key=turn_key).value == "Right, and quick"
    rows = next(d for d in again.sidebar.dataframe if "rating" in d.value.columns).value
    assert list(rows["question"]) == ["How much does a mooring permit cost?"]
    assert list(rows["comment"]) == ["Right, and quick"] and list(rows["rating"]) == ["👍"]
    export = next(b for b in again.get("download_button") if b.proto.label.startswith("Export 'default'"))
    assert export.proto.label.endswith("(1)")


def test_a_chat_is_private_and_a_shared_one_opens_read_only_for_those_with_access(tmp_path, monkeypatch, team_home):
    _, env = team_home
    rita = sign_in(tmp_path, monkeypatch, env, "rita", "rita-pw")
    rita.chat_input[0].set_value("How much does a mooring permit cost?").run()
    chat_id = rita.query_params["chat"]
    fiona = sign_in(tmp_path, monkeypatch, env, "fiona", "fiona-pw")
    fiona.selectbox(key="collection").set_value("payroll").run()
    fiona.chat_input[0].set_value("What is the payroll budget?").run()
    payroll_chat = fiona.query_params["chat"]

    # Not shared: ed reaches neither by address.
    ed = reopen(tmp_path, monkeypatch, {"chat": chat_id}, **env)
    for name, value in (("sign-in-name", "ed"), ("sign-in-password", "ed-pw")):
        ed.text_input(key=name).set_value(value)
    next(b for b in ed.button if b.label == "Sign in").click().run()
    assert any("not yours to open" in w.value for w in ed.sidebar.warning) and not answers_of(ed)

    rita.toggle(key=f"chat-shared-{chat_id}").set_value(True).run()
    assert f"?chat={chat_id}" in next(c.value for c in rita.sidebar.code)
    fiona.toggle(key=f"chat-shared-{payroll_chat}").set_value(True).run()
    for chat, reader_sees in ((chat_id, True), (payroll_chat, False)):  # rita's, and one over payroll
        ed = reopen(tmp_path, monkeypatch, {"chat": chat}, **env)
        for name, value in (("sign-in-name", "ed"), ("sign-in-password", "ed-pw")):
            ed.text_input(key=name).set_value(value)
        next(b for b in ed.button if b.label == "Sign in").click().run()
        if reader_sees:
            assert "120 euros per month" in answers_of(ed)[0]
            assert any("rita shared this chat with you" in shown(c.value) for c in ed.caption)
            assert not ed.chat_input  # read only
        else:
            assert not answers_of(ed) and "4.2 million" not in json.dumps([m.value for m in ed.markdown])


def test_the_admin_sees_and_exports_thumbs_down_answers_with_their_comments(app, tmp_path, monkeypatch):
    rate_an_answer(app, 0, "Cites the wrong page")
    again = reopen(tmp_path, monkeypatch, {})
    again.get("segmented_control")[0].set_value("👎 only").run()
    rows = next(d for d in again.sidebar.dataframe if "rating" in d.value.columns).value
    assert list(rows["rating"]) == ["👎"] and list(rows["comment"]) == ["Cites the wrong page"]
    assert "120 euros" in rows["answer"][0]
    export = next(b for b in again.get("download_button") if b.proto.label.startswith("Export 'default' thumbs-down"))
    assert export.proto.label.endswith("(1)") and not export.proto.disabled


def test_the_answer_to_copy_names_the_slide_of_a_passage_that_has_no_page():
    from retrieval.models import Answer, Hit
    from webapp.app.render import answer_markdown

    slide = Hit("review.pptx", "Quarterly review", None, 1, 1.0, "Crane lift: 40 euros", "Slide 2: Prices", ref=1)
    page = Hit("handbook.pdf", "Harbor Handbook", 3, 2, 1.0, "120 euros", ref=2)
    text = answer_markdown(
        Answer("What do they cost?", "A lift is 40 euros [1], a permit 120 [2].", [slide, page], True)
    )
    assert "[1] Quarterly review, Slide 2: Prices (review.pptx)" in text
    assert "[2] Harbor Handbook, page 3 (handbook.pdf)" in text


def test_the_app_process_serves_its_own_metrics_where_told(tmp_path, monkeypatch):
    from prometheus_client.parser import text_string_to_metric_families

    port = free_port()
    at = start_app(tmp_path, monkeypatch, DOCENT_APP_METRICS_ADDRESS=f"127.0.0.1:{port}")

    def scrape() -> dict:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    before = scrape()
    upload(at, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    at.chat_input[0].set_value("How much does a mooring permit cost?").run()
    after = scrape()
    asked = ("docent_ask_duration_seconds_count", ())
    assert after[asked] - before.get(asked, 0) == 1
    assert after[("docent_collection_documents", (("collection", "default"),))] == 1
    assert after[("docent_embedding_model_loaded", ())] == 1


def test_each_user_has_an_allowance_of_questions_a_minute(tmp_path, monkeypatch):
    at = start_app(tmp_path, monkeypatch, DOCENT_RATE_LIMIT_PER_MINUTE="1")
    upload(at, [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))])
    at.chat_input[0].set_value("How much does a mooring permit cost?").run()
    assert "120 euros" in answers_of(at)[0]
    at.chat_input[0].set_value("When is the fire drill held?").run()
    assert any("Too many questions: at most 1 a minute each" in w.value for w in at.warning)
    assert len(answers_of(at)) == 1
