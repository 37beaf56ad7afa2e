"""The `docent` command as a user runs it: a real process, real files, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval.embed.cpu import cpu_precision
from retrieval.embed.quantize import INT8_XML, MIN_MEAN_COSINE, verdict
from retrieval.index import gpu

from support.cli import DOCENT, run
from support.pdfgen import HANDBOOK_PAGES, make_pdf


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory, handbook_pdf) -> Path:
    home = tmp_path_factory.mktemp("cli-home")
    result = run(home, "ingest", str(handbook_pdf), "--json")
    outcomes = json.loads(result.stdout)
    assert outcomes[0]["status"] == "added" and outcomes[0]["pages"] == 4
    return home


def test_ask_json_cites_the_page_of_the_answer(cli_home, handbook_pdf):
    answer = json.loads(run(cli_home, "ask", "How much does a mooring permit cost?", "--json").stdout)
    assert set(answer) >= {"answer", "citations"}
    first = answer["citations"][0]
    assert first["page"] == 3 and first["source"] == str(handbook_pdf)
    assert "120 euros" in answer["answer"]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_search_json_hits_carry_the_contract_fields(cli_home, mode):
    hits = json.loads(run(cli_home, "search", "lighthouse lamp cleaning", "-k", "3", "--mode", mode, "--json").stdout)
    assert 1 <= len(hits) <= 3
    for hit in hits:
        assert {"source", "title", "page", "chunk_id", "score", "text"} <= set(hit)
    assert hits[0]["page"] == 2


def test_search_and_ask_limited_to_a_source(cli_home, handbook_pdf):
    hits = json.loads(run(cli_home, "search", "lighthouse lamp", "--source", str(handbook_pdf), "--json").stdout)
    assert hits and {h["source"] for h in hits} == {str(handbook_pdf)}
    answer = json.loads(
        run(cli_home, "ask", "How much does a mooring permit cost?", "--source", str(handbook_pdf), "--json").stdout
    )
    assert answer["citations"][0]["page"] == 3
    for command in (["search", "lamp"], ["ask", "lamp?"]):
        result = run(cli_home, *command, "--source", "missing.pdf", check=False)
        assert result.returncode == 2 and "no document named 'missing.pdf'" in result.stderr


def test_list_collections_and_remove(cli_home, handbook_pdf, tmp_path):
    listed = json.loads(run(cli_home, "list", "--json").stdout)
    assert [d["source"] for d in listed] == [str(handbook_pdf)]
    collections = json.loads(run(cli_home, "collections", "--json").stdout)
    assert collections[0]["name"] == "default" and collections[0]["documents"] == 1

    copy = tmp_path / "copy.pdf"
    copy.write_bytes(handbook_pdf.read_bytes())
    run(cli_home, "ingest", str(copy), "-c", "scratch")
    assert json.loads(run(cli_home, "remove", str(copy), "-c", "scratch", "--json").stdout)["removed"] is True
    missing = run(cli_home, "remove", "nothing.pdf", "-c", "scratch", check=False)
    assert missing.returncode == 1 and "no document with source 'nothing.pdf'" in missing.stderr

    kept = json.loads(run(cli_home, "restore", "-c", "scratch", "--json").stdout)
    assert [r["source"] for r in kept] == [str(copy)]
    assert run(cli_home, "restore", str(copy), "-c", "scratch").stdout.strip() == f"restored {copy}"
    assert [d["source"] for d in json.loads(run(cli_home, "list", "-c", "scratch", "--json").stdout)] == [str(copy)]
    again = run(cli_home, "restore", str(copy), "-c", "scratch", check=False)
    assert again.returncode == 1 and f"no removed document '{copy}' is kept in 'scratch'" in again.stderr


def test_collections_are_created_and_deleted_from_the_command_line(cli_home):
    assert run(cli_home, "collections", "create", "empty").stdout.strip() == "created 'empty'"
    assert "empty" in [c["name"] for c in json.loads(run(cli_home, "collections", "--json").stdout)]
    twice = run(cli_home, "collections", "create", "empty", check=False)
    assert twice.returncode == 1 and "collection 'empty' already exists" in twice.stderr
    assert run(cli_home, "collections", "delete", "empty").stdout.strip() == "deleted 'empty'"
    run(cli_home, "ingest", str(make_handbook(cli_home)), "-c", "full")
    refused = run(cli_home, "collections", "delete", "full", check=False)
    assert refused.returncode == 1 and "'full' holds 1 document; add --yes" in refused.stderr
    run(cli_home, "collections", "delete", "full", "--yes")
    gone = run(cli_home, "collections", "delete", "full", check=False)
    assert gone.returncode == 1 and "no collection 'full'" in gone.stderr
    names = [c["name"] for c in json.loads(run(cli_home, "collections", "--json").stdout)]
    assert "empty" not in names and "full" not in names
    bad = run(cli_home, "collections", "create", "../up", check=False)
    assert bad.returncode == 1 and "invalid collection name" in bad.stderr


def make_handbook(home: Path) -> Path:
    path = home.parent / "full-handbook.pdf"
    path.write_bytes(make_pdf(HANDBOOK_PAGES))
    return path


def test_a_folder_ingest_lists_the_files_it_does_not_read(cli_home, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "guide.md").write_text("# Harbor guide\n\nThe fuel dock sells diesel from 6 am.\n")
    (folder / "settings.json").write_text('{"theme": "dark"}')
    result = run(cli_home, "ingest", str(folder), "-c", "folder")
    assert f"added      {folder / 'guide.md'}" in result.stdout
    assert f"skipped    {folder / 'settings.json'}: not a kind of file Docent reads (a .json file;" in result.stdout
    assert "1 of 2 ingested into 'folder', 1 skipped (not a kind of file Docent reads)" in result.stdout


def test_failed_files_are_named_and_the_exit_status_says_so(cli_home, tmp_path, handbook_pdf):
    fake = tmp_path / "fake.pdf"
    fake.write_text("not a pdf at all")
    result = run(cli_home, "ingest", str(fake), str(handbook_pdf), "-c", "mixed", check=False)
    assert result.returncode == 1
    assert f"failed     {fake}: not a PDF file" in result.stdout
    assert "1 of 2 ingested" in result.stdout
    result = run(cli_home, "ingest", str(tmp_path / "absent.pdf"), "-c", "mixed", "--json", check=False)
    assert result.returncode == 1 and json.loads(result.stdout)[0]["error"] == "file not found"


def test_unchanged_file_is_not_ingested_twice_nor_a_copy_of_it(cli_home, handbook_pdf, tmp_path):
    outcome = json.loads(run(cli_home, "ingest", str(handbook_pdf), "--json").stdout)[0]
    assert outcome["status"] == "unchanged"
    copy = tmp_path / "same-handbook.pdf"
    copy.write_bytes(handbook_pdf.read_bytes())
    result = run(cli_home, "ingest", str(copy))
    assert (
        f"duplicate  {copy}: same as {handbook_pdf}, kept once" in result.stdout and "1 of 1 ingested" in result.stdout
    )
    assert [d["source"] for d in json.loads(run(cli_home, "list", "--json").stdout)] == [str(handbook_pdf)]


def test_a_blank_question_or_query_is_refused(cli_home):
    for command in (["ask", "   "], ["search", " \t"]):
        result = run(cli_home, *command, check=False)
        assert result.returncode == 2 and "is empty" in result.stderr and not result.stdout


def test_invalid_settings_are_reported_not_crashed(tmp_path):
    result = subprocess.run(
        [DOCENT, "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCENT_TOP_K": "zero", "DOCENT_HOME": str(tmp_path)},
    )
    assert result.returncode == 2 and "top_k" in result.stderr and "Traceback" not in result.stderr


def test_a_relative_or_tilde_home_is_made_absolute(tmp_path, monkeypatch):
    from retrieval.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert load_settings(home="data").home == tmp_path / "data"
    assert load_settings(home="~/docent").home == tmp_path / "user" / "docent"


def test_prepare_decides_on_the_int8_model_on_a_first_start_and_json_stays_clean(tmp_path):
    """The first start on a machine exports the model and makes its int8 copy, which is used
    only when it passes its gate on this CPU; what was decided, and why, is reported. Its
    progress goes to stderr so that `--json` output is still JSON."""
    cache = tmp_path / "model-cache"
    result = run(tmp_path / "home", "prepare", "--json", env={"DOCENT_MODEL_CACHE": str(cache)})
    info = json.loads(result.stdout)
    report = info["int8"]
    assert Path(info["folder"]).parent == cache
    assert report["min_mean_cosine"] == MIN_MEAN_COSINE
    assert report["accepted"] == (
        report["mean_cosine"] >= MIN_MEAN_COSINE and report["speedup_over_float"] >= report["min_speedup"]
    )
    vnni = cpu_precision().vnni  # this CPU's int8 model: OpenVINO's copy with VNNI, Docent's encoder without
    assert info["backend"] == (("openvino-int8" if vnni else "native-int8") if report["accepted"] else "openvino")
    assert (Path(info["folder"]) / INT8_XML).exists() == (report["accepted"] and vnni)
    assert verdict(report) in info["precision_reason"]
    assert info["search"]["on"] in ("cpu", "gpu") and (info["search"]["on"] == "gpu") == (
        gpu.unavailable_reason() is None
    )
    again = run(tmp_path / "home", "prepare", env={"DOCENT_MODEL_CACHE": str(cache), "DOCENT_GPU_SEARCH": "false"})
    assert f": {info['backend']}, kept in" in again.stdout
    used = "int8 model used" if report["accepted"] else "int8 model not used"
    assert f"{used}: {verdict(report)}, on {report['held_out_texts']} held-out texts" in again.stdout
    assert f"embedding precision: {info['precision']} (this CPU has " in again.stdout
    assert "vector search: on the CPU (DOCENT_GPU_SEARCH is off)" in again.stdout
    assert "answers: extractive: the documents' own words (no model server answered at" in again.stdout


def test_reading_commands_neither_load_the_model_nor_make_a_collection(tmp_path):
    """`list`, `collections` and `remove` answer from the database: the embedding model (seconds
    to load) is not loaded for them, and naming a collection that does not exist creates none."""
    home = tmp_path / "home"
    missing = run(home, "list", "-c", "nosuch", check=False)
    assert missing.returncode == 1 and "no collection 'nosuch'" in missing.stderr
    refused = run(home, "crawl", "http://127.0.0.1:9/", "-c", "site", check=False)  # loopback: refused
    assert refused.returncode != 0 and not (home / "collections" / "nosuch").exists()
    assert not (home / "collections" / "site").exists()
    probe = (
        "import sys\nfrom webapp.cli import main\n"
        f"codes = [main(['--home', {str(home)!r}, *args]) for args in (['list'], ['collections'])]\n"
        "print(codes, 'torch' in sys.modules, 'openvino' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    # -P and another folder: the installed package, not a source checkout beside the tests
    result = subprocess.run(
        [sys.executable, "-P", "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.stdout.strip().splitlines()[-1] == "[0, 0] False False False", result.stdout + result.stderr


def test_the_collection_may_be_named_before_the_command(cli_home):
    """As the user guide writes it: `docent -c NAME list`."""
    before = json.loads(run(cli_home, "-c", "default", "list", "--json").stdout)
    after = json.loads(run(cli_home, "list", "-c", "default", "--json").stdout)
    assert before == after and len(before) == 1
    missing = run(cli_home, "-c", "nowhere", "list", check=False)
    assert missing.returncode == 1 and "no collection 'nowhere'" in missing.stderr


def test_help_says_ingest_takes_every_type_it_reads(cli_home):
    text = " ".join(run(cli_home, "--help").stdout.split())
    assert "add files of every type Docent reads" in text and "Word" in text and "e-mail" in text
