"""`docent slack` against a local stand-in of Slack (its Web API and Socket Mode, see
support/slack_standin.py): a mention is answered in its thread with cited links to the app's
page view, a reply in that thread is a follow-up, a direct message is answered, and someone
Docent does not know, or who may not read the channel's collection, is refused politely with
nothing of the documents."""

from __future__ import annotations

import subprocess

import pytest

from retrieval.models import Answer, Hit
from support.cli import DOCENT, environment_with, run
from support.slack_standin import BOT_USER, SlackStandIn
from webapp.slack import slack_message

SECRET = "4.2 million"
APP = "https://docent.example.com"
EMAILS = {"UADA": "Ada@Example.com", "URITA": "rita@example.com", "USTRANGER": "stranger@example.com"}


@pytest.fixture(scope="module")
def slack(team, tmp_path_factory):
    standin = SlackStandIn(EMAILS)
    settings = team.environment(
        DOCENT_SLACK_BOT_TOKEN="xoxb-test",
        DOCENT_SLACK_APP_TOKEN="xapp-test",
        DOCENT_SLACK_API_URL=standin.api_url,
        DOCENT_SLACK_CHANNELS='{"CPAYROLL": "payroll"}',
        DOCENT_APP_URL=APP,
    )
    log = (tmp_path_factory.mktemp("slack") / "slack.log").open("w+b")
    process = subprocess.Popen(
        [DOCENT, "--home", str(team.home), "slack"], env=environment_with(**settings), stdout=log, stderr=log
    )
    try:
        standin.wait_connected()
        yield standin
    finally:
        process.terminate()
        process.wait(timeout=30)
        standin.close()
        log.seek(0)
        print(log.read().decode(errors="replace")[-3000:])  # shown when a test failed


def test_a_mention_is_answered_in_its_thread_and_a_reply_there_is_a_follow_up(slack):
    asked = slack.say("CHARBOUR", "URITA", f"<@{BOT_USER}> How much does a mooring permit cost?")
    (answer,) = slack.wait_for_posts(1)
    assert answer["channel"] == "CHARBOUR" and answer["thread_ts"] == asked
    link = f"{APP}/?collection=default&source=handbook.pdf&page=3"
    assert "120 euros" in answer["text"] and f"[1] <{link}|Harbor Operations Handbook, page 3>" in answer["text"]
    slack.say("CHARBOUR", "URITA", "And for commercial vessels?", thread_ts=asked, mention=False)
    follow_up = slack.wait_for_posts(2)[-1]
    assert follow_up["thread_ts"] == asked and "8 euros per meter per day" in follow_up["text"]


def test_access_holds_in_slack(slack):
    before = len(slack.posts)
    slack.say("CPAYROLL", "URITA", f"<@{BOT_USER}> What is the payroll budget?")
    refused = slack.wait_for_posts(before + 1)[-1]
    assert "may not read" in refused["text"] and SECRET not in refused["text"]
    slack.say("CHARBOUR", "USTRANGER", f"<@{BOT_USER}> What is the payroll budget?")
    stranger = slack.wait_for_posts(before + 2)[-1]
    assert "stranger@example.com is not a Docent user" in stranger["text"] and SECRET not in stranger["text"]
    slack.say("CPAYROLL", "UADA", f"<@{BOT_USER}> What is the payroll budget?")  # e-mail in other letter case
    answered = slack.wait_for_posts(before + 3)[-1]
    assert SECRET in answered["text"] and "payroll.pdf" in answered["text"]


def test_a_direct_message_is_answered_and_chatter_is_left_alone(slack):
    before = len(slack.posts)
    slack.say("CHARBOUR", "URITA", "lunch at noon?", mention=False)  # not to the app, not in its thread
    asked = slack.say("DRITA", "URITA", "When is the fire drill held?", direct=True)
    answer = slack.wait_for_posts(before + 1)[-1]
    assert answer["channel"] == "DRITA" and answer["thread_ts"] == asked
    assert "first Thursday" in answer["text"]
    assert len(slack.wait_for_posts(before + 1)) == before + 1


def test_slack_text_is_escaped_and_bold_is_slacks():
    hit = Hit("https://example.com/a?b=1&c=2", "Fees <2024> | all", None, 0, 1.0, "x", ref=1)
    text = slack_message(Answer("q", "It costs **120 euros** & more [1]", [hit], True), "default", None)
    assert text.startswith("It costs *120 euros* &amp; more [1]")
    assert "[1] <https://example.com/a?b=1&c=2|Fees &lt;2024&gt; ¦ all>" in text


def test_docent_slack_says_which_tokens_it_needs(tmp_path):
    result = run(tmp_path / "home", "slack", check=False)
    assert result.returncode == 2
    assert "DOCENT_SLACK_BOT_TOKEN and DOCENT_SLACK_APP_TOKEN" in result.stderr
