"""Docent as an OpenAI-compatible model, driven by the real `openai` client against `docent api`:
one model per readable collection, answers whole and streamed with their citations, a follow-up
understood from the conversation, and a collection the key may not read refused as a missing
model, with nothing of it said."""

from __future__ import annotations

import openai
import pytest

QUESTION = "How much does a mooring permit cost?"
SECRET = "4.2 million"


def client(team_api: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{team_api}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def reader(team, team_api) -> openai.OpenAI:
    return client(team_api, team.keys["rita@example.com"])


def test_each_readable_collection_is_a_model(team, team_api, reader):
    assert [m.id for m in reader.models.list()] == ["docent:default"]
    admin = client(team_api, team.keys["ada@example.com"])
    assert sorted(m.id for m in admin.models.list()) == ["docent:default", "docent:payroll"]
    assert admin.models.retrieve("docent:payroll").owned_by == "docent"


def test_a_whole_answer_cites_its_page_in_the_text_and_as_data(reader):
    reply = reader.chat.completions.create(
        model="docent:default",
        messages=[{"role": "system", "content": "You are helpful."}, {"role": "user", "content": QUESTION}],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    text = choice.message.content
    assert "120 euros" in text and "[1]" in text
    link = "https://docent.example.com/?collection=default&source=handbook.pdf&page=3"
    assert f"\n- [1] [Harbor Operations Handbook, page 3](<{link}>) (handbook.pdf)" in text
    (citation,) = choice.model_extra["citations"]
    assert citation["ref"] == 1 and citation["source"] == "handbook.pdf" and citation["page"] == 3
    assert citation["url"] == link and "120 euros" in citation["text"]
    assert choice.model_extra["docent"]["answered"] is True
    assert reply.usage.total_tokens == 0  # no model counted tokens (docs/integrations.md)


def test_a_streamed_answer_arrives_in_chunks_ending_with_its_citations(reader):
    stream = reader.chat.completions.create(
        model="docent:default",
        messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2
    text = "".join(pieces)
    assert "120 euros" in text and "**Sources**" in text and "handbook.pdf" in text
    last = [c for c in chunks if c.choices][-1].choices[0]
    assert last.finish_reason == "stop" and last.model_extra["citations"][0]["page"] == 3
    assert chunks[-1].usage is not None and not chunks[-1].choices


def test_the_second_question_of_a_conversation_is_a_follow_up(reader):
    first = reader.chat.completions.create(model="docent:default", messages=[{"role": "user", "content": QUESTION}])
    conversation = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And for commercial vessels?"},
    ]
    second = reader.chat.completions.create(model="docent:default", messages=conversation)
    choice = second.choices[0]
    assert "8 euros per meter per day" in choice.message.content
    rewritten = choice.model_extra["docent"]["rewritten"]
    assert rewritten and "mooring" in rewritten.lower() and "Sources" not in rewritten


def test_a_collection_the_key_may_not_read_is_a_missing_model(team, team_api, reader):
    with pytest.raises(openai.NotFoundError) as refused:
        reader.chat.completions.create(
            model="docent:payroll", messages=[{"role": "user", "content": "What is the payroll budget?"}]
        )
    assert "docent:payroll" in refused.value.message and SECRET not in str(refused.value.body)
    assert refused.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        reader.models.retrieve("docent:payroll")
    with pytest.raises(openai.NotFoundError):  # not "docent:<collection>"
        reader.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.AuthenticationError):
        client(team_api, "docent_not_a_key").models.list()


def test_a_conversation_must_end_with_a_users_question(reader):
    with pytest.raises(openai.BadRequestError) as refused:
        reader.chat.completions.create(
            model="docent:default",
            messages=[{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Hello"}],
        )
    assert "last message" in refused.value.message
