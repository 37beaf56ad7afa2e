"""`docent eval`: the metrics by hand, a page-question set on a made PDF, and Cranfield."""

from __future__ import annotations

import json
import math

import pytest

from support.shared_data import shared_path
from retrieval.evaluate import load_eval_set, ndcg_at, recall_at, reciprocal_rank
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
