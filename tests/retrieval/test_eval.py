"""`docent eval`: the metrics by hand, a page-question set on a made PDF, and Cranfield."""

from __future__ import annotations

import json
import math

import pytest

from support.shared_data import shared_path
from retrieval.evaluate import half_of, load_eval_set, ndcg_at, recall_at, reciprocal_rank
from support.cli import run

RUNS = {"vector", "keyword", "hybrid-leaders", "hybrid-rrf", "hybrid-convex", "default"}


def test_metrics_match_their_definitions():
    grades = {"a": 3, "b": 1}
    ranking = ["x", "a", "y", "b"]
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    ideal = 3 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranking, grades) == pytest.approx(dcg / ideal)
    assert recall_at(ranking, grades, 2) == 0.5 and recall_at(ranking, grades, 10) == 1.0
    assert reciprocal_rank(ranking, grades) == 0.5
    assert ndcg_at(["x"], {}) == 0.0


def test_eval_of_page_questions_on_a_pdf(tmp_path, handbook_pdf):
    (tmp_path / "handbook.pdf").write_bytes(handbook_pdf.read_bytes())
    questions = [
        {"question": "How often must the fog signal be logged?", "source": "handbook.pdf", "page": 2},
        {"question": "What does a mooring permit cost?", "source": "handbook.pdf", "page": 3},
        {"question": "When is the fire drill?", "source": "handbook.pdf", "page": 4},
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in questions))
    result = run(tmp_path / "home", "eval", str(path), "--json", "--plot", str(tmp_path / "plot.png"))
    figures = json.loads(result.stdout)
    assert set(figures) == RUNS
    assert figures["hybrid-rrf"]["page_hit@1"] == 1.0 and figures["default"]["file_hit@5"] == 1.0
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_measures_answers_against_gold_answers(tmp_path, handbook_pdf):
    (tmp_path / "handbook.pdf").write_bytes(handbook_pdf.read_bytes())
    questions = [
        {"question": "What does a mooring permit cost?", "source": "handbook.pdf", "page": 3, "answer": "120 euros"},
        {"question": "When is the fire drill held?", "source": "handbook.pdf", "pages": [4], "page": 4,
         "answer": "on the first Thursday of every quarter"},
        {"question": "How often must the fog signal be logged?", "source": "handbook.pdf", "page": 2,
         "answer": "every 7 minutes"},
    ]  # fmt: skip
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in questions))
    figures = json.loads(run(tmp_path / "home", "eval", str(path), "--json", "--plot", str(tmp_path / "p.png")).stdout)
    answers = figures["answers"]
    assert answers["questions"] == 3 and answers["backend"].startswith("extractive")
    assert [q["states_gold"] for q in answers["per_question"]] == [True, True, False]  # the gold fog figure is wrong
    assert answers["gold_in_answer"] == 2 / 3 and answers["first_citation_evidence"] == 1.0


def test_eval_of_questions_each_about_one_file_scores_answers_by_kind_and_half(tmp_path):
    # TAT-QA's form: no pages, each question asked of its own file, gold spans or a number.
    (tmp_path / "docs").mkdir()
    for name, rows in (("north.html", ("Pilotage", "1,200", "1,000")), ("south.html", ("Towage", "800", "850"))):
        table = "".join(f"<td>{cell}</td>" for cell in rows)
        (tmp_path / "docs" / name).write_text(
            "<html><body><p>Harbor income in thousands, by service.</p><table>"
            f"<tr><th></th><th>2022</th><th>2021</th></tr><tr>{table}</tr></table></body></html>"
        )
    questions = [
        {"question": "What was pilotage in 2022?", "source": "docs/north.html", "answer": ["1,200"], "answer_type": "span"},
        {"question": "What was the change in pilotage from 2021 to 2022?", "source": "docs/north.html",
         "answer": 200, "answer_type": "arithmetic"},
        {"question": "What was the change in towage from 2021 to 2022?", "source": "docs/south.html",
         "answer": -50, "answer_type": "arithmetic"},
    ]  # fmt: skip
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in questions))
    figures = json.loads(run(tmp_path / "home", "eval", str(path), "--json").stdout)
    answers = figures["answers"]
    assert set(figures) == {"answers"}  # no pages: no retrieval runs
    assert answers["gold_in_answer"] == 1.0 and (answers["worked_stated"], answers["worked_right"]) == (2, 2)
    assert answers["by_kind"]["arithmetic"]["worked_right"] == 2 and answers["by_kind"]["span"]["worked_stated"] == 0
    halves = {q["id"]: q["half"] for q in answers["per_question"]}
    assert halves["1"] == halves["2"] == half_of("docs/north.html") and halves["3"] == half_of("docs/south.html")
    assert sum(h["questions"] for h in answers["by_half"].values()) == 3


def test_the_halves_of_a_set_never_change():
    assert [half_of(f"docs/report-{n:03d}.html") for n in range(8)] == [
        half_of(f"docs/report-{n:03d}.html") for n in range(8)
    ]
    assert {half_of(f"doc-{n}") for n in range(20)} == {"A", "B"}
    assert half_of("docs/report-000-3ffd9053.html") == "B"


def test_every_evidence_page_of_a_question_counts(tmp_path):
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4")
    line = {"question": "What was the operating cash flow?", "source": "report.pdf", "page": 59, "pages": [59, 63]}
    (tmp_path / "set.jsonl").write_text(json.dumps(line) + "\n")
    eval_set = load_eval_set(tmp_path / "set.jsonl")
    pdf = (tmp_path / "report.pdf").resolve()
    assert eval_set.qrels == {"1": {f"{pdf}#59": 1, f"{pdf}#63": 1}}


def test_eval_refuses_a_malformed_set(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "no source"}\n')
    result = run(tmp_path / "home", "eval", str(path), check=False)
    assert result.returncode == 1 and "needs question, source and page" in result.stderr


def test_eval_on_cranfield_reports_every_run(tmp_path):
    folder = shared_path("cranfield")
    result = run(tmp_path / "home", "eval", str(folder), "--json", "--plot", str(tmp_path / "cranfield.png"))
    figures = json.loads(result.stdout)
    assert set(figures) == RUNS
    for row in figures.values():
        assert set(row) == {"ndcg@10", "recall@10", "recall@100", "mrr"}
        assert 0.2 < row["ndcg@10"] < 1 and row["recall@10"] <= row["recall@100"]
