"""A local stand-in for Slack, for `docent slack`'s tests: the Web API methods the app calls
(auth.test, apps.connections.open, users.info, conversations.replies, chat.postMessage) on an
HTTP server of 127.0.0.1, and Socket Mode's WebSocket, over which it delivers events as Slack
does (an `events_api` envelope the app must acknowledge). It records what the app sends and
keeps each channel's messages, so a thread's history is what the app itself posted."""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

BOT_USER, BOT_ID = "UDOCENT", "BDOCENT"


class SlackStandIn:
    def __init__(self, emails: dict[str, str]):
        """emails: Slack user id -> the e-mail address users.info shows."""
        self.emails = emails
        self.posts: list[dict] = []  # chat.postMessage calls, in order
        self.acks: set[str] = set()  # envelope ids the app acknowledged
        self.messages: dict[str, list[dict]] = {}  # channel -> its messages
        self._clock = itertools.count(1)
        self._changed = threading.Condition()
        self._sockets: list = []
        self._ws = serve(self._socket, "127.0.0.1", 0)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        for target in (self._ws.serve_forever, self._http.serve_forever):
            threading.Thread(target=target, daemon=True).start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/api/"

    def close(self) -> None:
        self._http.shutdown()
        self._ws.shutdown()

    # ---- what a test does ---------------------------------------------------------------------

    def wait_connected(self, timeout: float = 120) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._sockets, timeout):
                raise TimeoutError("the app never opened its Socket Mode connection")

    def say(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        mention: bool = True,
        direct: bool = False,
    ) -> str:
        """A user writes in a channel (or a thread of it); Slack sends the app the events it
        subscribes to: app_mention when the app is mentioned, message always. Returns its ts."""
        ts = self._ts()
        message = {"type": "message", "user": user, "text": text, "ts": ts, "channel": channel}
        if thread_ts:
            message["thread_ts"] = thread_ts
        self._keep(channel, message)
        kind = "im" if direct else "channel"
        if mention and not direct:
            self._deliver({**message, "type": "app_mention"})
        self._deliver({**message, "channel_type": kind})
        return ts

    def wait_for_posts(self, count: int, timeout: float = 120) -> list[dict]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.posts) >= count, timeout):
                raise TimeoutError(f"the app posted {len(self.posts)} message(s), not {count}: {self.posts}")
            return list(self.posts)

    # ---- Slack's side ---------------------------------------------------------------------------

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._clock):06d}"

    def _keep(self, channel: str, message: dict) -> None:
        with self._changed:
            self.messages.setdefault(channel, []).append(message)

    def _deliver(self, event: dict) -> None:
        envelope_id = f"envelope-{next(self._clock)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": {
                "token": "unused",
                "team_id": "T0TEAM",
                "api_app_id": "A0DOCENT",
                "type": "event_callback",
                "event_id": f"Ev{next(self._clock)}",
                "event_time": int(time.time()),
                "event": event,
            },
        }
        with self._changed:
            socket = self._sockets[-1]
        socket.send(json.dumps(envelope))

    def _socket(self, connection) -> None:
        connection.send(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "standin"}}))
        with self._changed:
            self._sockets.append(connection)
            self._changed.notify_all()
        try:
            for raw in connection:
                acked = json.loads(raw).get("envelope_id")
                if acked:
                    with self._changed:
                        self.acks.add(acked)
                        self._changed.notify_all()
        except ConnectionClosed:  # the app stopped
            pass

    def _web_api(self, method: str, params: dict) -> dict:
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
                "user": "docent",
                "team": "Harbour",
                "team_id": "T0TEAM",
                "url": "https://harbour.slack.com/",
            }
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://127.0.0.1:{self._ws.socket.getsockname()[1]}/link"}
        if method == "users.info":
            email = self.emails.get(params.get("user", ""))
            profile = {"email": email} if email else {}
            return {"ok": True, "user": {"id": params.get("user"), "profile": profile}}
        if method == "conversations.replies":
            with self._changed:
                messages = self.messages.get(params["channel"], [])
                thread = [m for m in messages if m.get("thread_ts", m["ts"]) == params["ts"]]
            return {"ok": True, "messages": thread, "has_more": False}
        if method == "chat.postMessage":
            message = {
                "type": "message",
                "user": BOT_USER,
                "bot_id": BOT_ID,
                "text": params["text"],
                "ts": self._ts(),
                "thread_ts": params.get("thread_ts"),
                "channel": params["channel"],
            }
            self._keep(params["channel"], message)
            with self._changed:
                self.posts.append(params)
                self._changed.notify_all()
            return {"ok": True, "channel": params["channel"], "ts": message["ts"], "message": message}
        return {"ok": False, "error": "unknown_method"}

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                if self.headers.get("content-type", "").startswith("application/json"):
                    params = json.loads(body or "{}")
                else:
                    params = dict(parse_qsl(body))
                reply = json.dumps(standin._web_api(self.path.rsplit("/", 1)[-1], params)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler
