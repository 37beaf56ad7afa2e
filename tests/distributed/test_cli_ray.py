"""`docent --ray ADDRESS ...` as a user runs it: real processes joining the suite's cluster."""

from __future__ import annotations

import json

import pytest

from support.cli import run
from support.docstrings import docstring_documents

pytestmark = pytest.mark.ray


def test_the_cli_ingests_searches_answers_and_reports_the_cluster(ray_cluster, tmp_path):
    home, folder = tmp_path / "home", tmp_path / "files"
    folder.mkdir()
    for document in docstring_documents(("heapq", "json", "csv", "textwrap")):
        (folder / document.source).write_text("\n\n".join(p.text for p in document.pages))
    on_ray = ("--ray", ray_cluster.address)
    env = {"DOCENT_RAY_SHARD_CPUS": "0.1", "DOCENT_RAY_EMBED_ACTORS": "1"}

    outcomes = json.loads(run(home, *on_ray, "ingest", str(folder), "--json", env=env).stdout)
    assert sorted(o["status"] for o in outcomes) == ["added"] * 4

    hits = json.loads(run(home, *on_ray, "search", "push an item onto a heap", "-k", "3", "--json", env=env).stdout)
    assert hits[0]["source"].endswith("heapq.txt") and hits[0]["text"]

    answer = json.loads(run(home, *on_ray, "ask", "How do I wrap text to a width?", "--json", env=env).stdout)
    assert answer["citations"] and answer["missing_shards"] == []
    assert any(c["source"].endswith("textwrap.txt") for c in answer["citations"])

    status = json.loads(run(home, *on_ray, "cluster", "status", "--json", env=env).stdout)
    assert len([n for n in status["nodes"] if n["alive"]]) >= 2
    shards = [s for s in status["shards"] if s["collection"] == "default"]
    assert [s["health"] for s in shards] == ["ok", "ok"]
    assert sum(s["documents"] for s in shards) == 4

    assert "default" in run(home, *on_ray, "collections", env=env).stdout
    again = json.loads(run(home, *on_ray, "ingest", str(folder), "--json", env=env).stdout)
    assert {o["status"] for o in again} == {"unchanged"}

    alone = run(home, "search", "heap", check=False)  # without the cluster: said plainly
    assert alone.returncode == 1 and "sharded on a Ray cluster" in alone.stderr and "--ray" in alone.stderr
    wrong = run(home, "--ray", "127.0.0.1:1", "list", check=False, env=env)
    assert wrong.returncode != 0 and "cannot reach the Ray cluster" in wrong.stderr

    listed = run(home, "collections").stdout  # without the cluster: named, with what to do
    assert "default" in listed and "--ray" in listed
    kept = run(home, "collections", "delete", "default", "--yes", check=False)  # its shards run on the cluster
    assert kept.returncode != 0 and "--ray" in kept.stderr and (home / "collections" / "default").is_dir()
    run(home, *on_ray, "collections", "delete", "default", "--yes", env=env)
    status = json.loads(run(home, *on_ray, "cluster", "status", "--json", env=env).stdout)
    assert not [s for s in status["shards"] if s["collection"] == "default"]
    assert not (home / "collections" / "default").exists()
