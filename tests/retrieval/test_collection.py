"""Ingest, search, answers and persistence through the real model and the real engine."""

from __future__ import annotations

import numpy as np
import pytest

from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_manual, make_pdf
from retrieval.search import collapse_near_duplicates
from retrieval.service import Docent, Source
from retrieval.settings import load_settings
from retrieval.index import load
from retrieval.store import Collection, CollectionError
from retrieval.store import collection as collection_module


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_each_search_mode_finds_the_right_page(docent, handbook_collection, mode):
    hits = docent.search(
        "How much does a mooring permit cost per month?", k=3, mode=mode, collection=handbook_collection
    )
    assert hits and hits[0].page == 3
    top = hits[0].to_dict()
    assert {"source", "title", "page", "chunk_id", "score", "text"} <= set(top)
    assert top["title"] == HANDBOOK_TITLE and top["source"].endswith("handbook.pdf")


def test_hybrid_fuses_with_reciprocal_rank_fusion(docent, handbook_collection):
    hits = docent.search("fire drill assembly point", k=4, mode="hybrid", collection=handbook_collection)
    assert hits[0].page == 4
    assert hits[0].score == pytest.approx(2 / 61)  # first in both lists: 1/(60+1) twice


def test_answer_cites_the_page_that_holds_the_fact(docent, handbook_collection):
    answer = docent.ask("When is the fire drill held?", collection=handbook_collection)
    assert answer.answered
    assert "first Thursday of every quarter" in answer.text
    assert answer.citations[0].page == 4 and answer.citations[0].ref == 1
    assert "[1]" in answer.text
    refs = [c.ref for c in answer.citations]
    assert refs == list(range(1, len(refs) + 1))


def test_unrelated_question_is_not_answered(docent, handbook_collection):
    answer = docent.ask("What is the boiling point of liquid nitrogen in kelvin?", collection=handbook_collection)
    assert not answer.answered
    assert answer.citations == []
    assert "do not answer" in answer.text
    assert answer.closest  # what came closest is still shown


def test_chunks_never_exceed_the_models_window(docent, tmp_path):
    sentence = "The harbor master reviews every mooring application, checks insurance papers and signs the permit."
    pdf = make_pdf([[sentence] * 45, [sentence.replace("harbor", "marina")] * 45])
    outcome = docent.ingest([Source("long.pdf", data=pdf)], collection="window")[0]
    assert outcome.status == "added" and outcome.chunks >= 4
    store = docent.collection("window")
    rows = store._db.execute("SELECT context, text FROM chunks").fetchall()
    tokenizer = docent.embedder.tokenizer
    for context, text in rows:
        assert len(tokenizer(f"{context}\n{text}")["input_ids"]) <= docent.embedder.max_tokens


def test_a_pages_text_is_its_passages_without_their_overlaps(docent):
    """What a cited page's link shows (read_page): the page as read, each sentence once, though
    consecutive passages share sentences."""
    from ingest.pdf import load_pdf

    sentences = [f"Berth {n} is assigned to a vessel of {10 + n} meters by the harbor master." for n in range(60)]
    pdf = make_pdf([sentences[:40], sentences[40:]], title="Berths")
    outcome = docent.ingest([Source("berths.pdf", data=pdf)], collection="pages")[0]
    store = docent.collection("pages")
    first_page_chunks = store._db.execute("SELECT count(*) FROM chunks WHERE page = 1").fetchone()[0]
    assert outcome.status == "added" and first_page_chunks >= 3  # so there are overlaps to leave out
    read = load_pdf(pdf, "berths.pdf")
    assert store.page_text("berths.pdf", 1) == read.pages[0].text.strip()
    assert store.page_text("berths.pdf", 2) == read.pages[1].text.strip()
    whole = store.page_text("berths.pdf")
    assert all(whole.count(sentence) == 1 for sentence in sentences)
    assert store.page_text("berths.pdf", 3) == "" and store.page_text("nowhere.pdf") is None


def test_reingest_unchanged_does_nothing_and_changed_replaces(docent, tmp_path):
    pdf = make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE)
    first = docent.ingest([Source("manual.pdf", data=pdf)], collection="versions")[0]
    store = docent.collection("versions")
    before = store.chunk_count()
    again = docent.ingest([Source("manual.pdf", data=pdf)], collection="versions")[0]
    assert (first.status, again.status) == ("added", "unchanged")
    assert store.chunk_count() == before

    changed_pages = [list(p) for p in HANDBOOK_PAGES]
    changed_pages[2][1] = "A mooring permit for a private boat costs 95 euros per month."
    replaced = docent.ingest([Source("manual.pdf", data=make_pdf(changed_pages))], collection="versions")[0]
    assert replaced.status == "replaced"
    assert store.chunk_count() == before
    texts = " ".join(h.text for h in docent.search("mooring permit cost", k=10, collection="versions"))
    assert "95 euros" in texts and "120 euros" not in texts
    assert len(docent.documents(collection="versions")) == 1


def test_a_bad_file_in_a_batch_does_not_stop_the_rest(docent):
    outcomes = docent.ingest(
        [
            Source("fake.pdf", data=b"this is plain text, not a PDF"),
            Source("good.pdf", data=make_pdf(HANDBOOK_PAGES)),
            Source("missing.pdf", path=None),
        ],
        collection="batch",
    )
    assert [o.status for o in outcomes] == ["failed", "added", "failed"]
    assert "not a PDF" in outcomes[0].error
    assert [d.source for d in docent.documents(collection="batch")] == ["good.pdf"]


def test_remove_takes_a_document_out_of_every_index(docent):
    docent.ingest([Source("a.pdf", data=make_pdf(HANDBOOK_PAGES))], collection="removal")
    assert docent.search("lighthouse fog signal", k=5, mode="keyword", collection="removal")
    assert docent.remove("a.pdf", collection="removal")
    assert not docent.remove("a.pdf", collection="removal")
    for mode in ("vector", "keyword", "hybrid"):
        assert docent.search("lighthouse fog signal", k=5, mode=mode, collection="removal") == []


def test_a_removal_is_undone_as_it_was_without_embedding_again(docent, monkeypatch):
    docent.ingest([Source("a.pdf", data=make_pdf(HANDBOOK_PAGES))], collection="undo")
    store = docent.collection("undo")
    before = docent.search("lighthouse fog signal", k=3, mode="hybrid", collection="undo")
    (document,) = store.documents()
    assert docent.remove("a.pdf", collection="undo")
    assert docent.search("lighthouse fog signal", k=3, mode="hybrid", collection="undo") == []
    assert [(r.source, r.chunks) for r in store.removed_documents()] == [("a.pdf", document.chunks)]
    assert (store.folder / "files" / document.content_hash).is_file()  # its file is kept with the copy
    with monkeypatch.context() as patched:
        patched.setattr(docent.embedder, "embed", lambda *a, **k: pytest.fail("a restore embeds nothing"))
        docent.restore("a.pdf", collection="undo")
    after = docent.search("lighthouse fog signal", k=3, mode="hybrid", collection="undo")
    assert [(h.text, h.page, h.score) for h in after] == [(h.text, h.page, h.score) for h in before]
    assert store.removed_documents() == [] and store.original_file("a.pdf") is not None
    with pytest.raises(CollectionError, match="no removed document 'a.pdf'"):
        docent.restore("a.pdf", collection="undo")
    # Added again after a removal: the removed copy does not replace it.
    docent.remove("a.pdf", collection="undo")
    docent.ingest([Source("a.pdf", data=make_pdf(HANDBOOK_PAGES[:1]))], collection="undo")
    with pytest.raises(CollectionError, match="added to 'undo' again since"):
        docent.restore("a.pdf", collection="undo")
    assert [d.pages for d in store.documents()] == [1]


def test_only_the_latest_removals_are_kept(docent, monkeypatch):
    monkeypatch.setattr(collection_module, "KEEP_REMOVED", 2)
    docent.ingest([Source(f"{n}.pdf", data=make_manual(f"M{n}", 1)) for n in range(3)], collection="kept")
    for n in range(3):
        docent.remove(f"{n}.pdf", collection="kept")
    store = docent.collection("kept")
    assert [r.source for r in store.removed_documents()] == ["2.pdf", "1.pdf"]
    assert len(list((store.folder / "files").iterdir())) == 2  # the forgotten one's file is pruned


def test_the_same_file_from_two_paths_is_kept_once(docent, tmp_path):
    data = make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE)
    first, second, third = (tmp_path / name for name in ("report.pdf", "copy-of-report.pdf", "again.pdf"))
    for path in (first, second, third):
        path.write_bytes(data)
    outcomes = docent.ingest([Source(str(first), path=first), Source(str(second), path=second)], collection="dups")
    assert [(o.status, o.duplicate_of) for o in outcomes] == [("added", None), ("duplicate", str(first))]
    outcomes = docent.ingest([Source(str(third), path=third)], collection="dups")  # in a later ingest too
    assert [(o.ok, o.status, o.duplicate_of) for o in outcomes] == [(True, "duplicate", str(first))]
    assert [d.source for d in docent.documents(collection="dups")] == [str(first)]
    hits = docent.search("lighthouse fog signal", k=5, mode="keyword", collection="dups")
    assert len({h.text for h in hits}) == len(hits)
    # An update of a held source to another's content is an update, not a duplicate.
    docent.ingest([Source("other.pdf", data=make_pdf(HANDBOOK_PAGES[:2]))], collection="dups")
    (outcome,) = docent.ingest([Source("other.pdf", data=data)], collection="dups")
    assert outcome.status == "replaced"


def test_near_duplicate_passages_are_collapsed_into_the_best(docent):
    revised = [list(page) for page in HANDBOOK_PAGES]
    revised[1][1] = revised[1][1].replace("every four hours", "every three hours")  # one word differs
    docent.ingest(
        [Source("v1.pdf", data=make_pdf(HANDBOOK_PAGES)), Source("v2.pdf", data=make_pdf(revised))],
        collection="versions-near",
    )
    for mode in ("vector", "hybrid"):
        hits = docent.search("lighthouse keeper fog signal", k=4, mode=mode, collection="versions-near")
        pages = [(h.source, h.page) for h in hits]
        assert sorted(h.page for h in hits) == [1, 2, 3, 4], pages  # each page once, and k filled
    # Only page 2 holds these words: one hit, though both versions have it.
    hits = docent.search("lighthouse keeper fog signal", k=4, mode="keyword", collection="versions-near")
    assert [h.page for h in hits] == [2]


def test_collapsing_keeps_the_best_and_skips_only_repeats():
    texts = {
        1: "The lamp is cleaned each Monday morning before sunrise by the keeper.",
        2: "The lamp is cleaned each Monday morning before sunrise by the keeper!",
        3: "Spare bulbs are stored in the locked cabinet on the second floor.",
        4: "The lamp is cleaned each Tuesday evening after sunset by the pilot.",
    }
    ranked = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)]
    assert collapse_near_duplicates(ranked, texts, 3) == [(1, 0.9), (3, 0.7), (4, 0.6)]
    assert collapse_near_duplicates(ranked, texts, 1) == [(1, 0.9)]


def test_a_restart_sees_the_same_collection(docent, docent_home, handbook_collection):
    before = docent.search("spare bulbs cabinet", k=3, collection=handbook_collection)
    restarted = Docent(load_settings(home=str(docent_home)))
    restarted._embedder = docent.embedder  # same model; saves loading it again
    after = restarted.search("spare bulbs cabinet", k=3, collection=handbook_collection)
    assert [(h.chunk_id, h.page) for h in after] == [(h.chunk_id, h.page) for h in before]
    assert after[0].page == 2


@pytest.fixture()
def handbook_folder(docent, tmp_path):
    """The handbook in a collection folder of the test's own: (folder, store, reopen), where
    reopen() opens the folder again as another process (or a restart) would."""
    embedder = docent.embedder
    folder = tmp_path / "collection"

    def reopen() -> Collection:
        return Collection(folder, model_name=embedder.name, dim=embedder.dim)

    store = reopen()
    docent._collections["in-folder"] = store
    try:
        docent.ingest([Source("h.pdf", data=make_pdf(HANDBOOK_PAGES))], collection="in-folder")
        yield folder, store, reopen
    finally:
        docent._collections.pop("in-folder", None)


def test_damaged_or_stale_index_files_are_rebuilt_from_the_database(docent, handbook_folder, caplog):
    folder, store, reopen = handbook_folder
    query = docent.embedder.embed_query("fog signal log")
    expected = store.vector_search(query, 3)
    store.close()
    old_keywords = (folder / "keywords.idx").read_bytes()

    (folder / "vectors.idx").write_bytes(b"DOCENTIX but then garbage")
    with caplog.at_level("INFO", logger="retrieval.store.indexes"):
        reopened = reopen()
    assert any(
        "vectors.idx cannot be used" in r.getMessage() and "rebuilding it from the database" in r.getMessage()
        for r in caplog.records
    ), caplog.text
    assert reopened.vector_search(query, 3) == expected
    assert (folder / "vectors.idx").read_bytes()[:8] == b"DOCENTIX"

    # An index file from before the last write catches up on open.
    reopened.remove_document("h.pdf")
    reopened.close()
    (folder / "keywords.idx").write_bytes(old_keywords)
    again = reopen()
    assert again.keyword_search(["fog"], 3) == []
    again.close()

    # A missing index file is rebuilt too, and the log says so.
    (folder / "vectors.idx").unlink()
    caplog.clear()
    with caplog.at_level("INFO", logger="retrieval.store.indexes"):
        rebuilt = reopen()
    assert any("rebuilding vectors.idx" in r.getMessage() for r in caplog.records), caplog.text
    assert (folder / "vectors.idx").exists() and len(rebuilt.indexes.vectors) == rebuilt.chunk_count()
    rebuilt.close()


def test_opening_with_another_model_is_an_error(tmp_path):
    Collection(tmp_path / "c", model_name="model-a", dim=4).close()
    with pytest.raises(CollectionError, match="model-a.*model-b"):
        Collection(tmp_path / "c", model_name="model-b", dim=4)


def test_wrong_embedding_dimension_is_refused_before_anything_is_written(tmp_path):
    store = Collection(tmp_path / "c", model_name="m", dim=4)
    from ingest import chunk_document, load_pdf

    doc = load_pdf(make_pdf(HANDBOOK_PAGES), source="x.pdf")
    chunks = chunk_document(doc)
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        store.write_document(doc, chunks, np.zeros((len(chunks), 5), dtype=np.float32), [[] for _ in chunks])
    assert store.documents() == []
    store.close()


def test_invalid_collection_name_is_refused(docent):
    with pytest.raises(CollectionError, match="invalid collection name"):
        docent.collection("../escape")


def test_index_files_behind_the_database_catch_up_from_the_change_log(docent, handbook_folder):
    folder, store, reopen = handbook_folder
    # Index files are written in batches, not after every document: these are behind.
    assert load(folder / "vectors.idx").checkpoint < store.indexes.vectors.checkpoint
    query = docent.embedder.embed_query("fog signal log")
    # Another process (or this one after a kill) opens the folder: it replays the log.
    reopened = reopen()
    assert reopened.vector_search(query, 3) == store.vector_search(query, 3)
    assert reopened.keyword_search(["fog"], 3) == store.keyword_search(["fog"], 3)
    reopened.close()
    store.close()  # closing writes the files up to date
    assert load(folder / "vectors.idx").checkpoint == store.indexes.vectors.checkpoint


def test_a_collection_from_before_chunk_hashes_is_migrated(handbook_folder):
    _, store, reopen = handbook_folder
    expected = store._db.execute("SELECT id, text_hash FROM chunks ORDER BY id").fetchall()
    store._db.execute("DROP INDEX chunks_by_text")
    store._db.execute("ALTER TABLE chunks DROP COLUMN text_hash")  # the table as an earlier build wrote it
    store.close()
    migrated = reopen()
    assert migrated._db.execute("SELECT id, text_hash FROM chunks ORDER BY id").fetchall() == expected
    migrated.close()


def test_a_growing_collection_moves_to_hnsw_and_keeps_finding_pages(docent, tmp_path, monkeypatch):
    import retrieval.store.indexes as store_module
    from retrieval.index import FlatIndex, HNSWIndex

    folder = tmp_path / "growing"
    store = Collection(folder, model_name=docent.embedder.name, dim=docent.embedder.dim)
    docent._collections["growing"] = store
    try:
        docent.ingest([Source("one.pdf", data=make_pdf(HANDBOOK_PAGES))], collection="growing")
        first = len(store.indexes.vectors)
        assert isinstance(store.indexes.vectors, FlatIndex) and first > 0
        monkeypatch.setattr(store_module, "HNSW_FROM_CHUNKS", first + 1)  # one more document crosses it
        second = [[line.replace("lighthouse", "harbour office") for line in page] for page in HANDBOOK_PAGES]
        docent.ingest([Source("two.pdf", data=make_pdf(second))], collection="growing")
        docent.search("anything", k=1, collection="growing")  # catches up: the index changes kind here
        assert isinstance(store.indexes.vectors, HNSWIndex) and len(store.indexes.vectors) > first
        hits = docent.search("How much does a mooring permit cost per month?", k=3, mode="vector", collection="growing")
        assert hits[0].page == 3
        store.flush()
        reopened = Collection(folder, model_name=docent.embedder.name, dim=docent.embedder.dim)
        assert isinstance(reopened.indexes.vectors, HNSWIndex) and isinstance(load(folder / "vectors.idx"), HNSWIndex)
        reopened.close()
    finally:
        docent._collections.pop("growing", None)
        store.close()


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_a_source_filter_goes_into_the_engine_and_still_finds_k(docent, mode):
    # Worded apart enough that search does not collapse one document's pages into the other's.
    second = [
        [f"At the second harbour: {line.replace('lighthouse', 'harbour office')}" for line in page]
        for page in HANDBOOK_PAGES
    ]
    docent.ingest(
        [Source("first.pdf", data=make_pdf(HANDBOOK_PAGES)), Source("second.pdf", data=make_pdf(second))],
        collection="filtered",
    )
    everywhere = docent.search("mooring permit cost", k=4, mode=mode, collection="filtered")
    assert {h.source for h in everywhere} == {"first.pdf", "second.pdf"}
    for only in ("first.pdf", "second.pdf"):
        hits = docent.search("mooring permit cost", k=4, mode=mode, collection="filtered", sources=[only])
        assert hits and {h.source for h in hits} == {only} and hits[0].page == 3
        if mode != "keyword":  # keyword search returns only chunks holding a query term
            assert len(hits) == 4
    assert docent.search("mooring permit cost", k=4, mode=mode, collection="filtered", sources=["nowhere.pdf"]) == []
    answer = docent.ask("How much does a mooring permit cost per month?", collection="filtered", sources=["second.pdf"])
    assert answer.citations and {c.source for c in answer.citations} == {"second.pdf"}


class _Interrupted(BaseException):
    """What Streamlit raises inside a run when the user clicks Stop (a BaseException)."""


def test_an_ingest_stopped_mid_file_keeps_the_finished_files_and_nothing_of_the_next(docent):
    harbour = [[line.replace("lighthouse", "harbour office") for line in page] for page in HANDBOOK_PAGES]
    calls = []

    def progress(stage, done, total):
        calls.append(stage)
        if len(docent.documents(collection="stopped")) == 1 and stage == "embedding":
            raise _Interrupted()

    files = [
        Source("done.pdf", data=make_pdf(HANDBOOK_PAGES)),
        Source("cut.pdf", data=make_pdf(harbour)),
        Source("never.pdf", data=make_pdf(HANDBOOK_PAGES[:2])),
    ]
    with pytest.raises(_Interrupted):
        docent.ingest(files, collection="stopped", progress=progress)
    assert [d.source for d in docent.documents(collection="stopped")] == ["done.pdf"]
    hits = docent.search("mooring permit cost", k=20, mode="keyword", collection="stopped")
    assert hits and {h.source for h in hits} == {"done.pdf"}  # no chunk of the file cut off
    # the next ingest goes on normally and skips what is already there
    outcomes = docent.ingest(files, collection="stopped")
    assert [o.status for o in outcomes] == ["unchanged", "added", "added"]


def test_the_data_home_is_private_and_an_open_one_is_closed_with_a_log_line(tmp_path, caplog):
    """The access database, the collections and the kept files are for Docent's own user."""
    import stat

    new = tmp_path / "new-home"
    Docent(load_settings(home=str(new))).close()
    assert stat.S_IMODE(new.stat().st_mode) == 0o700
    old = tmp_path / "old-home"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    with caplog.at_level("WARNING", logger="retrieval.settings"):
        Docent(load_settings(home=str(old))).close()
    assert stat.S_IMODE(old.stat().st_mode) == 0o700 and "was open to other users (mode 755)" in caplog.text
