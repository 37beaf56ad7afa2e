"""Saves turns to a chat until it is killed; run by tests/webapp/test_chats.py.

Prints `saved N` once the turn with question N has been written, so the parent knows what must
have survived the kill. The answers are large, so kills often land inside a write.
"""

from __future__ import annotations

import sys

from webapp.chats import ChatStore
from support.answers import big_answer


def main(home: str, chat_id: str) -> None:
    store = ChatStore(home)
    n = len(store.turns(chat_id))
    while True:
        store.add_turn(chat_id, big_answer(n), "extractive")
        print(f"saved {n}", flush=True)
        n += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
