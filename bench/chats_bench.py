"""Saved chats at size: one user with 1,000 chats of 20 turns each (every answer citing five
passages of about 1,200 characters, as real answers do), over a collection that holds the cited
documents.

    python bench/chats_bench.py [--home build/bench-chats-home] [--chats 1000] [--turns 20]
        [--label NAME]

Times, through webapp.session.UserSession as the app and the API call it: saving a turn; the
sidebar's list (the 30 most recent chats of the collection) and the API's list (100 chats);
opening a chat (its turns, and whether each cited document is still in the collection) and
encoding it as the API sends it; and the whole app page drawn with a 20-turn chat open
(Streamlit's AppTest, server side, the model already loaded). The store is made once and reused
by later runs. Writes bench/results/chats[-LABEL].md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np

from report import cpu_name, write_report
from ingest import Document, Page
from retrieval.models import Answer, Hit
from retrieval.service import Docent
from retrieval.settings import load_settings
from webapp.access import LOCAL, AccessControl
from webapp.chats import ChatStore
from webapp.jobs import JobManager
from webapp.session import UserSession

HERE = Path(__file__).resolve().parent
DOCUMENTS = 20
PASSAGE = (
    "The harbour master issues mooring permits for private boats at 120 euros per month, payable in advance; "
    "commercial vessels pay a fee set each year by the port authority, and berths are given in the order "
    "applications arrive. "
)


def answer(n: int, turn: int) -> Answer:
    hits = [
        Hit(
            f"manual-{(n + p) % DOCUMENTS}.pdf",
            f"Manual {(n + p) % DOCUMENTS}",
            p + 1,
            n * 100 + p,
            0.5,
            (PASSAGE * 6)[:1200],
            similarity=0.6,
            ref=p + 1,
            highlights=[(0, 120)],
        )
        for p in range(5)
    ]
    text = " ".join(f"Statement {s} of answer {turn} in chat {n} [{s + 1}]." for s in range(5))
    return Answer(f"Question {turn} of chat {n}: how much does a mooring permit cost?", text, hits, answered=True)


def percentiles(ms: list[float]) -> dict:
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "max": float(max(ms))}


def timed(call, times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("build/bench-chats-home"))
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    home = args.home.resolve()

    docent = Docent(load_settings(home=str(home), llm="extractive"))
    if len(docent.documents()) < DOCUMENTS:
        docent.ingest_documents(
            [
                Document(f"manual-{d}.pdf", f"Manual {d}", "pdf", f"hash-{d}", [Page(1, PASSAGE * 4)])
                for d in range(DOCUMENTS)
            ]
        )
    store = ChatStore(home)
    user = UserSession(docent, AccessControl(docent.settings), JobManager(home), LOCAL, store)
    save_ms = []
    have = len(store.list(LOCAL.name, "default", limit=args.chats))
    for n in range(have, args.chats):
        chat = store.create(LOCAL.name, "default")
        for turn in range(args.turns):
            started = time.perf_counter()
            store.add_turn(chat.id, answer(n, turn), "extractive")
            save_ms.append((time.perf_counter() - started) * 1000)
    chats = store.list(LOCAL.name, "default", limit=args.chats)
    rng = random.Random(0)
    picks = [rng.choice(chats).id for _ in range(200)]
    open_ms = []
    for chat_id in picks:
        started = time.perf_counter()
        opened = user.chat(chat_id)
        json.dumps(opened.to_dict())
        open_ms.append((time.perf_counter() - started) * 1000)
    figures = {
        "cpu": cpu_name(),
        "chats": len(chats),
        "turns_per_chat": args.turns,
        "database_mb": round(sum(f.stat().st_size for f in home.glob("chats.sqlite3*")) / 2**20, 1),
        "save_turn_ms": percentiles(save_ms) if save_ms else None,
        "sidebar_list_ms": percentiles(timed(lambda: user.chats("default", limit=30), 200)),
        "api_list_ms": percentiles(timed(lambda: [c.to_dict() for c in user.all_chats(limit=100)], 200)),
        "open_chat_ms": percentiles(open_ms),
        "page_with_chat_open_ms": page_times(home, picks[0]),
    }
    rows = [
        [what, f"{figures[key]['p50']:.2f}", f"{figures[key]['p95']:.2f}", f"{figures[key]['max']:.2f}"]
        for what, key in (
            ("save a turn (5 citations)", "save_turn_ms"),
            ("sidebar list (30 most recent)", "sidebar_list_ms"),
            ("API list (100 chats)", "api_list_ms"),
            ("open a 20-turn chat (+ JSON)", "open_chat_ms"),
            ("app page with a 20-turn chat open", "page_with_chat_open_ms"),
        )
        if figures[key]
    ]
    title = (
        f"Saved chats: {figures['chats']:,} chats of {args.turns} turns ({figures['database_mb']} MB),"
        f" {figures['cpu']}, {os.cpu_count()} cores"
    )
    print(
        write_report(
            args.out,
            "chats" + (f"-{args.label}" if args.label else ""),
            figures,
            title,
            ["operation", "p50 ms", "p95 ms", "max ms"],
            rows,
        )
    )
    docent.close()


def page_times(home: Path, chat_id: str, runs: int = 10) -> dict:
    """The app's script run with the chat open, timed after a first run that loads the model."""
    from streamlit.testing.v1 import AppTest

    import webapp

    os.environ["DOCENT_HOME"] = str(home)
    at = AppTest.from_file(str(Path(webapp.__file__).with_name("app") / "main.py"), default_timeout=600)
    at.query_params["chat"] = chat_id
    at.run()
    while any("Preparing Docent" in i.value for i in at.info):
        time.sleep(0.5)
        at.run()
    assert not at.exception, at.exception
    assert len([m for m in at.chat_message if m.name == "assistant"]) > 0, "the chat did not open"
    return percentiles(timed(at.run, runs))


if __name__ == "__main__":
    main()
