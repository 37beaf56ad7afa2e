"""A first start: the embedding model is prepared in the background from the first request
(converted to OpenVINO and given an int8 copy, once per machine: minutes on a busy 2-core
server), and every tab shows which step runs, for how long, and what it usually takes, instead
of a blank page."""

from __future__ import annotations

import logging
import threading
import time

import streamlit as st

from retrieval.embed import STAGES
from retrieval.service import Docent
from retrieval.settings import load_settings

log = logging.getLogger(__name__)

# How long each step usually takes on 2 cores (bench/int8_spread.py and first starts measured).
USUALLY = {
    "load": "a few seconds",
    "export": "about half a minute",
    "int8": "about a minute on an idle 2-core machine, up to 5 minutes on a busy one",
    "native": "about 15 seconds",
}


class ModelPreparation:
    """Makes the server's one Docent and loads its embedding model on a thread of its own."""

    def __init__(self, home: str):
        self.home = home
        self.started = self.stage_started = time.monotonic()
        self.stages: list[str] = []
        self.docent: Docent | None = None
        self.error: str | None = None
        threading.Thread(target=self._run, name="prepare-model", daemon=True).start()

    @property
    def stage(self) -> str | None:
        return self.stages[-1] if self.stages else None

    def _begin(self, stage: str) -> None:
        self.stages.append(stage)
        self.stage_started = time.monotonic()
        if stage != "load":
            log.warning("first start: %s", STAGES[stage])

    def _run(self) -> None:
        try:
            docent = Docent(load_settings(home=self.home))
            docent.load_model(on_stage=self._begin)
            self.docent = docent
        except Exception as exc:  # noqa: BLE001 - shown on the page; the server stays up
            log.exception("the embedding model could not be prepared")
            self.error = f"{type(exc).__name__}: {exc}"


def wait_for_model(preparation: ModelPreparation) -> None:
    """Draws the preparation's progress, redrawn every second; the page reloads once it is ready."""
    st.title("📚 Docent")
    st.fragment(_progress, run_every=1.0)(preparation)
    st.stop()


def _progress(preparation: ModelPreparation) -> None:
    if preparation.docent is not None:
        st.rerun(scope="app")
    if preparation.error is not None:
        st.error(f"The embedding model could not be prepared: {preparation.error}")
        st.caption("The server's log has the details; restart the server to try again.")
        return
    now = time.monotonic()
    st.info("Preparing Docent before its first answer. This page goes on by itself when it is ready.")
    for stage in preparation.stages[:-1]:
        st.markdown(f"✓ {_sentence(STAGES[stage])}")
    if preparation.stage is not None:
        stage = preparation.stage
        st.markdown(
            f"**… {_sentence(STAGES[stage])}**: {_duration(now - preparation.stage_started)} so far"
            f" (usually {USUALLY[stage]})."
        )
    st.caption(f"{_duration(now - preparation.started)} since the server's first request.")


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
