"""The embedding backends: OpenVINO (float and int8) and the choice of this CPU's int8 model, against
sentence-transformers on torch, and no wasted work. Docent's own int8 encoder has its own tests
(test_native_encoder.py)."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from support.shared_data import shared_path
from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_pdf
from retrieval.embed import native, quantize
from retrieval.embed import Embedder, export_folder
from retrieval.embed.cpu import cpu_precision
from retrieval.service import Docent, Source
from retrieval.settings import load_settings

pytest.importorskip("openvino", reason="OpenVINO is not installed")

CPU = cpu_precision()
INT8_XML, INT8_BIN = quantize.INT8_XML, quantize.INT8_BIN
# This CPU's int8 model: OpenVINO's copy with VNNI, Docent's encoder without.
INT8_BACKEND = "openvino-int8" if CPU.vnni else "native-int8"
INT8_REPORT = quantize.REPORT if CPU.vnni else native.REPORT


def _int8_report(folder):
    return quantize.read_report(folder) if CPU.vnni else native.read_report(folder, CPU)


def _texts() -> list[str]:
    try:
        corpus = shared_path("cranfield", "corpus.jsonl")
        return [json.loads(line)["text"] for line in corpus.read_text().splitlines()[:120]]
    except pytest.skip.Exception:
        return [line for page in HANDBOOK_PAGES for line in page] * 3


@pytest.fixture(scope="module")
def embedders(tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    return Embedder(backend="torch"), Embedder(backend="openvino", cache_dir=cache), cache


def _assert_close_to_torch(
    reference: np.ndarray, vectors: np.ndarray, *, min_cosine: float, same_nearest: float
) -> None:
    cosine = (reference * vectors).sum(axis=1)
    assert cosine.mean() >= 0.995 and cosine.min() >= min_cosine, (cosine.mean(), cosine.min())
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # The same neighbours: each text's nearest other text agrees.
    sa, sb = reference @ reference.T, vectors @ vectors.T
    np.fill_diagonal(sa, -1)
    np.fill_diagonal(sb, -1)
    assert (sa.argmax(1) == sb.argmax(1)).mean() >= same_nearest


def test_openvino_vectors_match_torch(embedders):
    reference, fast, _ = embedders
    assert fast.backend == "openvino" and reference.backend == "torch"
    texts = _texts()
    _assert_close_to_torch(reference.embed(texts), fast.embed(texts), min_cosine=0.99, same_nearest=0.95)


def test_texts_of_very_different_lengths_are_batched_apart_and_keep_their_order(embedders):
    from retrieval.embed.openvino import _batches_of_like_length

    reference, fast, _ = embedders
    rows = [f"Dividends paid | {year}: ({300 + year % 100})" for year in range(2010, 2022)]
    question = (
        "Speaking as a research analyst who reads only the cash flow statement: how much did Harbor "
        "Tools hand out to its shareholders as cash dividends in FY2020? Give two decimal places."
    )
    texts = rows[:6] + [question] + rows[6:]
    batches = _batches_of_like_length(texts, 32)
    assert len(batches) == 2 and list(batches[1]) == [6]
    assert sorted(int(i) for b in batches for i in b) == list(range(len(texts)))
    _assert_close_to_torch(reference.embed(texts), fast.embed(texts), min_cosine=0.99, same_nearest=0.5)


@pytest.fixture(scope="module")
def int8(embedders):
    """The int8 backend, made from the float export of the `embedders` fixture."""
    _, _, cache = embedders
    return Embedder(backend="auto", cache_dir=cache)


def test_the_int8_gate_decides_once_and_its_decision_is_used(embedders, int8):
    """This CPU's int8 model (OpenVINO's copy with VNNI, Docent's encoder without) is used when
    it passes its gate, else the float export answers. Either way the decision is the gate's,
    made once, kept in the report, and followed."""
    reference, _, cache = embedders
    folder = export_folder(int8.name, cache)
    report = _int8_report(folder)
    assert report is not None and report["accepted"] == _passes(report) and int8.int8_report == report
    assert (folder / INT8_XML).exists() == (report["accepted"] and CPU.vnni)
    assert int8.model is None  # started from the export: torch not loaded
    texts = _texts()
    if report["accepted"]:
        assert int8.backend == INT8_BACKEND
        _assert_close_to_torch(reference.embed(texts), int8.embed(texts), min_cosine=0.98, same_nearest=0.9)
    else:
        assert int8.backend == "openvino"
    decided = (folder / INT8_REPORT).stat().st_mtime_ns
    again = Embedder(cache_dir=cache)
    assert again.backend == int8.backend and (folder / INT8_REPORT).stat().st_mtime_ns == decided
    np.testing.assert_allclose(again.embed(["harbor fees"]), int8.embed(["harbor fees"]), atol=1e-6)


def _float_export_only(embedders, tmp_path):
    """A model cache holding the float export alone, as before the int8 copy was made."""
    _, fast, cache = embedders
    source, target = export_folder(fast.name, cache), export_folder(fast.name, tmp_path)
    target.mkdir(parents=True)
    for name in ("model.xml", "model.bin"):
        shutil.copy(source / name, target / name)
    return target


def _passes(report: dict) -> bool:
    return report["mean_cosine"] >= report["min_mean_cosine"] and report["speedup_over_float"] >= report["min_speedup"]


def _quick_gate(monkeypatch, min_mean_cosine: float) -> None:
    """Quantization on a few calibration texts, with the gate at min_mean_cosine and any speed
    (a few texts time too briefly to tell)."""
    texts = quantize.calibration_texts()
    monkeypatch.setattr(quantize, "calibration_texts", lambda: texts[:24])
    monkeypatch.setattr(quantize, "CALIBRATION_COUNT", 16)
    monkeypatch.setattr(quantize, "MIN_MEAN_COSINE", min_mean_cosine)
    monkeypatch.setattr(quantize, "MIN_SPEEDUP", 0.0)


def test_an_int8_model_that_fails_its_check_is_not_used(embedders, tmp_path, monkeypatch):
    folder = _float_export_only(embedders, tmp_path)
    _quick_gate(monkeypatch, 1.01)  # no int8 model can pass this
    embedder = Embedder(backend="openvino-int8", cache_dir=tmp_path)
    assert embedder.backend == "openvino"
    report = quantize.read_report(folder)
    assert report["accepted"] is False and report["held_out_texts"] == 8
    assert not (folder / INT8_XML).exists()
    monkeypatch.setattr(quantize, "quantize", lambda *a: pytest.fail("the check is not redone on every start"))
    assert Embedder(backend="openvino-int8", cache_dir=tmp_path).backend == "openvino"  # said why in the log
    monkeypatch.setattr(native, "check", lambda *a: pytest.fail("not measured again"))
    native_report = {**report, "cpu": native.cpu_model_name(), "cpu_vnni": CPU.vnni, "cpu_bf16": CPU.bf16}
    (folder / native.REPORT).write_text(json.dumps({**native_report, "isa_cap": CPU.capped_at}))
    failed = Embedder(backend="native-int8", cache_dir=tmp_path)  # Docent's encoder, failed likewise
    assert failed.backend == "openvino" and "Docent's int8 encoder failed its check" in failed.precision_reason


def test_quantizing_twice_makes_the_same_weights_and_the_report_names_the_cpu(embedders, tmp_path, monkeypatch):
    """The gate's figure varies with the CPU only, never from one run to the next (issue 18, item 12)."""
    _quick_gate(monkeypatch, -1.0)
    reports = []
    for run in ("first", "second"):
        folder = _float_export_only(embedders, tmp_path / run)
        reports.append(quantize.quantize(folder, embedders[1]._tokenize, CPU))
        saved = hashlib.sha256((folder / INT8_BIN).read_bytes()).hexdigest()
        assert saved == reports[-1]["weights_sha256"]
    first, second = reports
    assert first["weights_sha256"] == second["weights_sha256"]
    assert (first["mean_cosine"], first["min_cosine"]) == (second["mean_cosine"], second["min_cosine"])
    assert first["cpu"] and "INT8" in first["cpu_capabilities"] and isinstance(first["cpu_vnni"], bool)


def _damage(path: Path) -> None:
    """The file cut short, as a new file in its place: truncating it where it stands would pull
    the pages from under a model that still maps it (SIGBUS, the process gone), which is not
    the damage under test."""
    gc.collect()  # the models opened before let go of their maps
    cut = path.with_name(path.name + ".cut")
    cut.write_bytes(path.read_bytes()[:1000])
    os.replace(cut, path)


def test_a_damaged_int8_model_falls_back_to_float_and_a_damaged_export_is_made_again(
    embedders, tmp_path, caplog, monkeypatch
):
    _, fast, _ = embedders
    target = _float_export_only(embedders, tmp_path)
    _quick_gate(monkeypatch, -1.0)  # an int8 copy on any CPU, to damage
    assert Embedder(backend="openvino-int8", cache_dir=tmp_path).backend == "openvino-int8"
    _damage(target / INT8_BIN)
    with caplog.at_level("WARNING", logger="retrieval.embed"):
        embedder = Embedder(backend="openvino-int8", cache_dir=tmp_path)
    assert embedder.backend == "openvino"
    assert "int8 embedding model" in caplog.text and "damaged" in caplog.text and "Incorrect weights" in caplog.text
    np.testing.assert_allclose(embedder.embed(["harbor fees"]), fast.embed(["harbor fees"]), atol=1e-5)

    for name in (INT8_XML, INT8_BIN, quantize.REPORT):
        (target / name).unlink()
    _damage(target / "model.bin")
    caplog.clear()
    with caplog.at_level("WARNING", logger="retrieval.embed"):
        embedder = Embedder(backend="openvino", cache_dir=tmp_path)
    assert embedder.backend == "openvino" and "exporting it again" in caplog.text
    source = export_folder(fast.name, embedders[2])
    assert (target / "model.bin").stat().st_size == (source / "model.bin").stat().st_size
    np.testing.assert_allclose(embedder.embed(["harbor fees"]), fast.embed(["harbor fees"]), atol=1e-5)


def test_without_nncf_auto_uses_float_and_int8_says_what_is_missing(embedders, tmp_path, monkeypatch):
    """NNCF makes OpenVINO's int8 copy (CPUs with VNNI); Docent's encoder needs nothing of it."""
    folder = _float_export_only(embedders, tmp_path)
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` raises ImportError
    monkeypatch.setattr(native, "check", lambda folder, model, tokenize, cpu: {**_failed_gate(), "cpu": "x"})
    assert Embedder(cache_dir=tmp_path).backend == "openvino"
    with pytest.raises(ValueError, match="needs NNCF: pip install nncf"):
        Embedder(backend="openvino-int8", cache_dir=tmp_path)
    assert quantize.read_report(folder) is None  # nothing decided: made once NNCF is there


def _failed_gate() -> dict:
    return {
        "accepted": False,
        "mean_cosine": 0.9,
        "min_mean_cosine": 0.995,
        "speedup_over_float": 1.0,
        "min_speedup": 1.1,
    }


def test_the_export_is_cached_and_reused_without_loading_torch(embedders):
    _, fast, cache = embedders
    exported = list(cache.rglob("model.xml"))
    assert len(exported) == 1
    assert stat.S_IMODE(exported[0].parent.stat().st_mode) == 0o755  # readable by the service's user too
    stamp = exported[0].stat().st_mtime_ns
    again = Embedder(backend="openvino", cache_dir=cache)
    assert exported[0].stat().st_mtime_ns == stamp
    assert again.model is None and again.backend == "openvino"  # started from the export alone
    assert (again.dim, again.max_tokens) == (fast.dim, fast.max_tokens)
    assert again.count_tokens("harbor fees and mooring") == fast.count_tokens("harbor fees and mooring")
    np.testing.assert_allclose(again.embed(["harbor fees"]), fast.embed(["harbor fees"]), atol=1e-6)


def test_token_counts_are_the_tokenizers_whatever_it_last_truncated(embedders):
    torch_model, fast, _ = embedders
    long_text = " ".join(_texts())  # thousands of word pieces: counted whole, never cut at 256
    fast.embed([long_text])  # the embedding's tokenizer truncates: the counter must not
    for embedder in (torch_model, fast):
        for text in [long_text, "harbor fees and mooring", "Zürich's 3.5-m² berth — déjà vu", ""]:
            expected = len(embedder.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
            assert embedder.count_tokens(text) == expected
    assert fast.count_tokens(long_text) > fast.max_tokens


def test_a_repeated_question_is_embedded_once(embedders):
    _, fast, _ = embedders
    first = fast.embed_query("What does a mooring permit cost?")
    first[:] = 0  # callers get a copy: the cache cannot be spoiled
    again = fast.embed_query("What does a mooring permit cost?")
    assert np.linalg.norm(again) == pytest.approx(1.0, abs=1e-5)


def test_identical_chunks_are_embedded_once(docent, tmp_path):
    class Counting:
        def __init__(self, inner):
            self.inner, self.embedded = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def embed(self, texts, **kwargs):
            self.embedded += len(texts)
            return self.inner.embed(texts, **kwargs)

    local = Docent(load_settings(home=str(tmp_path / "home")))
    local._embedder = counting = Counting(docent.embedder)
    pdf = make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE)  # the title is part of each indexed text
    first = local.ingest([Source("a.pdf", data=pdf)])[0]
    assert counting.embedded == first.chunks
    # Another file holding the same pages and one more: only the new page's text is embedded.
    longer = make_pdf(
        HANDBOOK_PAGES + [["Appendix. The harbor master answers the radio on channel 12."]], title=HANDBOOK_TITLE
    )
    second = local.ingest([Source("a-with-appendix.pdf", data=longer)])[0]
    assert second.status == "added" and second.chunks == first.chunks + 1
    assert counting.embedded == first.chunks + 1
    hits = local.search("channel 12 radio", k=1, mode="vector")
    assert hits[0].source == "a-with-appendix.pdf"


def test_the_default_on_a_cpu_is_its_int8_model_when_it_passed_its_gate(docent):
    report = _int8_report(export_folder(docent.embedder.name, docent.settings.model_cache))
    assert docent.embedder.backend == (INT8_BACKEND if report and report["accepted"] else "openvino")


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder(backend="tpu")


_CAPPED_CHILD = """
import json, sys
from retrieval.embed import Embedder
embedder = Embedder(cache_dir=sys.argv[1])
texts = json.loads(sys.stdin.read())
print(json.dumps({"backend": embedder.backend, "precision": embedder.precision,
                  "reason": embedder.precision_reason, "vectors": embedder.embed(texts).tolist()}))
"""


def test_on_a_cpu_without_vnni_and_bf16_docents_encoder_answers_and_the_float_model_is_f32(embedders, tmp_path):
    """oneDNN capped at AVX2 runs the kernels an AVX2-only server runs (OpenVINO's int8 copy
    scored 0.9946 there, as on a real AVX2-only EPYC): Docent chooses its own int8 encoder for
    it, makes no OpenVINO int8 copy, the gate decides, and whatever answers matches torch and
    says what it is and why."""
    import os
    import subprocess

    folder = _float_export_only(embedders, tmp_path)
    texts = _texts()[:40]
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    run = subprocess.run(
        [sys.executable, "-c", _CAPPED_CHILD, str(tmp_path)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # the installed package, with its compiled engine, not the source tree's
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    child = json.loads(run.stdout.strip().splitlines()[-1])
    report = json.loads((folder / native.REPORT).read_text())
    assert report["isa_cap"] == "AVX2" and report["cpu_vnni"] is False and report["cpu_bf16"] is False
    assert report["accepted"] == _passes(report) and report["float_precision"] == "f32"
    assert not (folder / INT8_XML).exists() and not (folder / quantize.REPORT).exists()
    assert "no VNNI" in child["reason"] and "no bf16" in child["reason"] and "capped at AVX2" in child["reason"]
    assert f"mean cosine {report['mean_cosine']}" in child["reason"]
    if report["accepted"]:
        assert (child["backend"], child["precision"]) == ("native-int8", native.PRECISION)
    else:
        assert (child["backend"], child["precision"]) == ("openvino", "f32")
    reference = embedders[0].embed(texts)
    cosine = (reference * np.array(child["vectors"], dtype=np.float32)).sum(axis=1)
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.97, (cosine.mean(), cosine.min())


def test_the_embedder_says_which_precision_runs_and_why(embedders, int8):
    _, fast, _ = embedders
    assert fast.precision == CPU.float_precision and "the float model was asked for" in fast.precision_reason
    report = _int8_report(export_folder(int8.name, embedders[2]))
    if report["accepted"]:
        assert int8.precision.startswith("int8") and "passed its check" in int8.precision_reason
    else:
        assert int8.precision == CPU.float_precision and "failed its check" in int8.precision_reason
    assert ("no VNNI" not in int8.precision_reason) == CPU.vnni
