# `make run` and `make test` do all set-up on a fresh machine: a virtual environment in
# .venv, the CPU build of torch (pinned: an unpinned torch pulls a multi-GB CUDA build),
# then Docent itself, whose pip install compiles the native engine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8501
API_PORT ?= 8000

.PHONY: bench-ann bench-keywords bench-load bench-million install install-test run api test test-python sanitize bench clean gpu-check

$(BIN)/.torch-installed:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install torch==2.13.0
	touch $@

install: $(BIN)/.torch-installed
	$(BIN)/python -m pip install .

# llama.cpp (the tests' local model) is built for any x86-64 with AVX2, not for this CPU: its
# native build uses AMX where the CPU lists it, and crashed in decode on a virtual machine whose
# Sapphire Rapids CPU lists AMX (a segmentation fault in tests/retrieval/test_llm.py). It is built
# apart and never taken from pip's wheel cache, which may hold a native build (pip keys a built
# wheel by its source, not by CMAKE_ARGS).
install-test: $(BIN)/.torch-installed
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --no-cache-dir "llama-cpp-python[server]>=0.3"
	$(BIN)/python -m pip install ".[test]"

# The Dockerfile does these same steps (see it); `make api` is its `docent api` command.
run: install
	$(BIN)/docent serve --host $(HOST) --port $(PORT)

api: install
	$(BIN)/docent api --host $(HOST) --port $(API_PORT)

test: install-test
	$(MAKE) test-python sanitize

test-python:
	$(BIN)/pytest

# The engine's C++ tests under AddressSanitizer and UndefinedBehaviorSanitizer.
sanitize:
	cmake -S native -B build/sanitize -DCMAKE_BUILD_TYPE=Debug -DDOCENT_SANITIZE=ON -DDOCENT_PYTHON=OFF -DDOCENT_TESTS=ON -DDOCENT_CUDA=OFF
	cmake --build build/sanitize --parallel 2
	cd build/sanitize && ctest --output-on-failure

SHARED ?= ../shared/data

# Keyword search's pruning against exhaustive scoring, bm25s and tantivy at 100,000 and 1,000,000
# documents (about 4 GB of memory and 15 minutes on two cores).
bench-keywords: install
	$(BIN)/python -m pip install ".[bench]"
	$(BIN)/python bench/keyword_pruning_bench.py

# A million chunks in one collection through the app's own store and search: ingest rate, disk,
# memory and search latency (about 12 GB of disk, 7 GB of memory and 40 minutes on two cores).
bench-million: install
	$(BIN)/python bench/million_bench.py

bench: install
	$(BIN)/python -m pip install ".[bench]"
	$(BIN)/python bench/bm25_bench.py
	$(BIN)/python bench/eval_bench.py --cranfield $(SHARED)/cranfield --financebench $(SHARED)/financebench-dev/eval.jsonl

# The vector engine against Faiss, hnswlib and USearch on GloVe (../shared) and 100,000 MiniLM
# embeddings of the Python documentation (needs `apt-get install python3.11-doc`; embedded once
# and cached in bench/data/): tables and plots in bench/results/.
bench-ann: install
	$(BIN)/python -m pip install ".[bench]"
	$(BIN)/python bench/ann_bench.py
	$(BIN)/python bench/index_choice_bench.py

# The HTTP API under 50 searching clients, alone and while one client ingests (Cranfield
# from ../shared): bench/results/load.md.
bench-load: install
	$(BIN)/python -m pip install ".[bench]"
	$(BIN)/python bench/load_bench.py --cranfield $(SHARED)/cranfield

clean:
	rm -rf build $(VENV)

# On a machine with an NVIDIA GPU: build with the GPU engine, run the GPU tests and the GPU
# benchmark, with that machine's own Python (see the script's header).
gpu-check:
	bash bench/gpu_check.sh
