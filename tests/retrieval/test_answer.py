"""The checks around every answer backend: relevance gate, citation renumbering and validation."""

from __future__ import annotations

import prompts
from retrieval.answer import Answerer, format_passages
from retrieval.models import Hit


def _hit(n: int, similarity: float = 0.8) -> Hit:
    return Hit(
        source=f"doc{n}.pdf",
        title=f"Doc {n}",
        page=n,
        chunk_id=n,
        score=1.0 / n,
        text=f"Passage {n}.",
        similarity=similarity,
    )


class ScriptedBackend:
    """Streams fixed pieces, as an LLM would: markers may be split across pieces."""

    name = "scripted"

    def __init__(self, pieces):
        self.pieces = pieces
        self.seen = None

    def stream(self, question, passages):
        self.seen = list(passages)
        yield from self.pieces


def test_markers_are_renumbered_in_order_of_first_use_even_when_split_across_pieces():
    backend = ScriptedBackend(["Fact A [", "3]. Fact B [1", "]. Fact C [3][1]."])
    stream = Answerer(backend).stream("q", [_hit(1), _hit(2), _hit(3)])
    text = "".join(stream)
    assert text == "Fact A [1]. Fact B [2]. Fact C [1][2]."
    answer = stream.answer
    assert [(c.ref, c.page) for c in answer.citations] == [(1, 3), (2, 1)]
    assert answer.text == text and answer.answered


def test_a_marker_naming_no_given_passage_is_dropped_never_invented():
    backend = ScriptedBackend(["Claim [7]. Real [2]. Zero [0]."])
    answer = Answerer(backend).answer("q", [_hit(1), _hit(2)])
    assert answer.text == "Claim . Real [1]. Zero ."
    assert [c.page for c in answer.citations] == [2]


def test_weak_passages_are_not_given_to_the_backend_and_nothing_is_answered():
    backend = ScriptedBackend(["should not run [1]"])
    hits = [_hit(1, similarity=0.1), _hit(2, similarity=0.05)]
    answer = Answerer(backend, min_relevance=0.3).answer("q", hits)
    assert backend.seen is None
    assert not answer.answered and answer.citations == []
    assert answer.text == prompts.render("no_answer")
    assert [h.page for h in answer.closest] == [1, 2]


def test_an_answer_without_any_citation_is_marked_as_not_backed():
    stream = Answerer(ScriptedBackend(["I think so."])).stream("q", [_hit(1)])
    streamed = "".join(stream)
    answer = stream.answer
    assert not answer.answered and answer.citations == []
    assert streamed == answer.text == "I think so.\n\n" + prompts.render("uncited")


def test_an_empty_answer_says_the_documents_do_not_answer():
    answer = Answerer(ScriptedBackend([])).answer("q", [_hit(1)])
    assert not answer.answered and answer.text == prompts.render("no_answer")


def test_prompt_templates_render_with_numbered_passages():
    system = prompts.render("answer_system", no_answer=prompts.render("no_answer"))
    assert "[1], [2]" in system and prompts.render("no_answer") in system
    user = prompts.render("answer_user", passages=format_passages([_hit(1), _hit(2)]), question="Why?")
    assert "[1] Doc 1, page 1\nPassage 1." in user and "[2] Doc 2, page 2" in user and user.endswith("Question: Why?")


def test_a_question_the_documents_do_not_hold_is_refused_and_one_they_hold_is_answered(docent, handbook_collection):
    # The handbook is about a harbor: its passages are the closest there are to any question,
    # but a question whose words it never uses is not answered from them.
    for question in ("What is the salary of the harbor master?", "How deep is the water at the harbor entrance?"):
        refused = docent.ask(question, collection=handbook_collection)  # its passages are 0.32-0.42 close
        assert not refused.answered and refused.closest, refused.text
        assert "do not answer" in refused.text
    answered = docent.ask("How much does it cost to moor a private boat?", collection=handbook_collection)
    assert answered.answered and "120 euros" in answered.text, answered.text


def test_the_gate_weighs_the_words_that_name_things_not_those_that_ask():
    answerer = Answerer(ScriptedBackend(["x [1]"]))
    passage = Hit(
        source="r.pdf", title="Report", page=1, chunk_id=1, score=1.0, text="Berth fees | 2022: 40", similarity=0.3
    )
    assert answerer.holds_question("What was the percentage change in berth fees over the years?", [passage])
    assert not answerer.holds_question("What were the crane hire and towage revenues?", [passage])
    sure = Hit(source="r.pdf", title="Report", page=1, chunk_id=2, score=1.0, text="Mooring costs", similarity=0.7)
    assert answerer.holds_question("How much does it cost to moor a private boat?", [sure])
