"""Docent in Slack: `docent slack` answers where the team talks (slack_bolt, Socket Mode, so the
server needs no public address).

A mention of the app in a channel, or a direct message to it, is answered in its thread from the
collection mapped to that channel (DOCENT_SLACK_CHANNELS; other channels and direct messages:
the default collection), with the citations under the answer linking to the app's page view
(DOCENT_APP_URL) or to the cited web page. A reply in a thread the app has answered in is a
follow-up: the thread's earlier questions and answers are the conversation it is rewritten from.

Who asks is who reads: the asker's Slack e-mail address (users.info, scope users:read.email)
names their Docent user, so collection access holds in Slack as in the app; someone Docent
does not know, or who may not read the channel's collection, gets a polite refusal and nothing
of the documents. With sign-in off (DOCENT_AUTH=none) everyone acts as the local admin, as in
the app, and the server says so when it starts.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time

from retrieval.models import Answer
from webapp.access import LOCAL, AccessControl, AuthenticationFailed, Principal
from webapp.references import references, without_references
from webapp.session import HISTORY_TURNS, NotFound, UserSession

log = logging.getLogger(__name__)

MENTION = re.compile(r"<@[A-Z0-9]+>")
SOURCES_LINE = "*Sources*"
MAX_TEXT = 39_000  # Slack cuts a message's text at 40,000 characters
IDENTITY_SECONDS = 300.0  # how long an asker's e-mail address is kept before users.info again
HELP = "Ask me a question about the team's documents, e.g. _@Docent how much does a mooring permit cost?_"


def slack_escape(text: str) -> str:
    """Text as Slack shows it literally: its three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(answer: Answer, collection: str, app_url: str | None) -> str:
    """The answer in Slack's mrkdwn, with its sources under it, each a link where it has one."""
    body = re.sub(r"\*\*(.+?)\*\*", r"*\1*", slack_escape(answer.text.strip()))  # Markdown bold to mrkdwn
    lines = []
    for ref, label, link, source in references(answer.citations, collection, app_url):
        label = slack_escape(label).replace("|", "¦")
        named = f"<{link}|{label}>" if link else label
        shown = f" ({slack_escape(source)})" if source else ""
        lines.append(f"[{ref}] {named}{shown}")
    sources = f"\n\n{SOURCES_LINE}\n" + "\n".join(lines) if lines else ""
    return body[: MAX_TEXT - len(sources)] + sources


class SlackDocent:
    """What the app does with a message; slack_bolt only delivers them (see build_app)."""

    def __init__(self, docent, access: AccessControl, jobs, chats, settings, bot_user_id: str):
        self.docent, self.access, self.jobs, self.chats = docent, access, jobs, chats
        self.settings, self.bot_user_id = settings, bot_user_id
        self._emails: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def collection_for(self, channel: str) -> str:
        return self.settings.slack_channels.get(channel, self.settings.collection)

    def on_mention(self, event: dict, client) -> None:
        self._respond(event, client, only_in_my_threads=False)

    def on_message(self, event: dict, client) -> None:
        """A direct message; or a reply in a thread, answered when the app took part in it (a
        message that mentions the app comes as a mention too, and is answered once)."""
        if event.get("subtype") or event.get("bot_id") or event.get("user") in (None, self.bot_user_id):
            return
        if f"<@{self.bot_user_id}>" in event.get("text", ""):
            return
        direct = event.get("channel_type") == "im"
        if direct or event.get("thread_ts", event.get("ts")) != event.get("ts"):
            self._respond(event, client, only_in_my_threads=not direct)

    def _respond(self, event: dict, client, *, only_in_my_threads: bool) -> None:
        channel, asked_at = event["channel"], event["ts"]
        thread = event.get("thread_ts") or asked_at
        history: list[tuple[str, str]] = []
        if event.get("thread_ts"):
            replies = client.conversations_replies(channel=channel, ts=event["thread_ts"], limit=200)["messages"]
            if only_in_my_threads and not any(self._mine(m) for m in replies):
                return
            history = self._history(replies, before=asked_at)
        elif only_in_my_threads:
            return

        def reply(text: str) -> None:
            client.chat_postMessage(
                channel=channel, thread_ts=thread, text=text, unfurl_links=False, unfurl_media=False
            )

        question = MENTION.sub("", event.get("text", "")).strip()
        if not question:
            return reply(HELP)
        asker = event.get("user", "")
        try:
            principal = self._principal(client, asker)
        except AuthenticationFailed as exc:
            log.info("slack: refused %s: %s", asker, exc)
            return reply(
                f"Sorry <@{asker}>, I can only answer Docent's users, and {slack_escape(str(exc))}."
                " Ask a Docent admin to add you with your Slack e-mail address."
            )
        collection = self.collection_for(channel)
        session = UserSession(self.docent, self.access, self.jobs, principal, self.chats)
        try:
            answer = session.ask(question, collection=collection, history=history[-HISTORY_TURNS:])
        except NotFound:
            return reply(f"Sorry <@{asker}>, you may not read the documents this channel answers from.")
        except Exception:
            log.exception("slack: answering in %s failed", channel)
            return reply(
                "Sorry, something went wrong while answering; the Docent admin can find it in the server's log."
            )
        reply(slack_message(answer, collection, self.settings.app_url))

    def _mine(self, message: dict) -> bool:
        return message.get("user") == self.bot_user_id

    def _history(self, messages: list[dict], *, before: str) -> list[tuple[str, str]]:
        """The thread's earlier (question, answer) pairs: each of the app's answers with the
        message before it."""
        pairs, asked = [], None
        for message in sorted(messages, key=lambda m: float(m["ts"])):
            if float(message["ts"]) >= float(before):
                break
            if self._mine(message):
                if asked:
                    pairs.append((asked, without_references(message.get("text", ""), SOURCES_LINE).strip()))
                asked = None
            elif not message.get("bot_id"):
                asked = MENTION.sub("", message.get("text", "")).strip() or None
        return pairs

    def _principal(self, client, slack_user: str) -> Principal:
        if not self.access.enabled:
            return LOCAL
        return self.access.principal_for_email(self._email(client, slack_user), "slack")

    def _email(self, client, slack_user: str) -> str:
        with self._lock:
            known = self._emails.get(slack_user)
        if known and time.monotonic() - known[1] < IDENTITY_SECONDS:
            return known[0]
        profile = client.users_info(user=slack_user)["user"].get("profile", {})
        email = profile.get("email") or ""
        if not email:
            raise AuthenticationFailed("Slack does not show me your e-mail address (the app needs users:read.email)")
        with self._lock:
            self._emails[slack_user] = (email, time.monotonic())
        return email


def build_app(settings, docent, access, jobs, chats):
    """The slack_bolt app's Socket Mode handler, on Slack's Web API at settings.slack_api_url, and
    who the app is there (auth.test)."""
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk import WebClient

    client = WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)
    identity = client.auth_test()
    app = App(client=client, logger=log)
    slack = SlackDocent(docent, access, jobs, chats, settings, identity["user_id"])
    app.event("app_mention")(lambda event, client: slack.on_mention(event, client))
    app.event("message")(lambda event, client: slack.on_message(event, client))
    handler = SocketModeHandler(app, settings.slack_app_token.get_secret_value(), logger=log)
    return handler, identity


def serve_slack(settings) -> int:
    """`docent slack`: connects to Slack over Socket Mode and answers until stopped."""
    from retrieval.service import Docent
    from webapp.chats import open_chats
    from webapp.jobs import JobManager
    from webapp.logs import configure_logging

    missing = [n for n in ("slack_bot_token", "slack_app_token") if getattr(settings, n) is None]
    if missing:
        names = " and ".join(f"DOCENT_{n.upper()}" for n in missing)
        print(f"docent slack: set {names} (docs/integrations.md says where Slack shows them)", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    access = AccessControl(settings)
    if not access.enabled:
        log.warning("sign-in is off (auth = none): everyone in the Slack workspace asks as the local admin")
    docent = Docent(settings)
    try:
        docent.load_model()  # before the first question, not during it
        handler, identity = build_app(settings, docent, access, JobManager(settings.home), open_chats(settings))
        log.info("docent slack: connected as %s to %s", identity.get("user"), identity.get("team"))
        handler.start()  # blocks: answers in its own threads until the process is stopped
    finally:
        docent.close()
    return 0
