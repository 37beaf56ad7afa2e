"""An int8 copy of the exported embedding model, made once and kept only when its vectors hold.

Post-training static quantization with NNCF: SmoothQuant (alpha 0.8 on the matmuls, which moves
the activation outliers of BERT-like models into the weights; NNCF's default 0.95 lost more),
then per-tensor int8 activations and per-channel int8 weights, calibrated on real text packaged
with Docent (`calibration_texts.json.gz`: chunks of the Python documentation, made by
`python -m retrieval.embed.calibration --from-pydoc DIR`; the Python documentation's text is under the
PSF licence). On a CPU with VNNI the copy embeds faster than the bf16 float model (1.29x on
the held-out texts on a 2-core AVX-512 EPYC).

The gate: the int8 vectors of held-out packaged chunks must keep a mean cosine of at least
MIN_MEAN_COSINE to those of the float model, and embed them at least MIN_SPEEDUP times as fast
as the float model does on this CPU; otherwise the int8 copy is thrown away, the report says
why, and Docent stays on the float model (a report is kept either way, so the check is not
redone on every start). The speed is measured once, when the copy is made.

Quantization is deterministic: the same texts in the same order, every calibration batch used
(no sampling), so one CPU makes byte-identical weights and the same figure every time
(`bench/int8_spread.py`: five runs, spread 0). What varies is the CPU the gate runs on: with
VNNI (or AMX) int8 products are exact 32-bit sums; without, they take a path whose 16-bit
intermediate sums can saturate, and the same weights score lower (0.9974 with AVX-512 VNNI,
0.9946 on an AVX2-only EPYC, and 0.9946 here with ONEDNN_MAX_CPU_ISA=AVX2; NNCF's 7-bit
"overflow fix" on every layer passed on quality there but ran at 0.64x f32's speed). So this copy
is made for CPUs with VNNI; a CPU without gets Docent's own int8 encoder (native.py), held to the
same gate (`gate` below).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from retrieval.embed.cpu import CpuPrecision
from retrieval.embed.openvino import OpenVinoModel

log = logging.getLogger(__name__)

CALIBRATION_FILE = Path(__file__).with_name("calibration_texts.json.gz")
CALIBRATION_COUNT = 300  # the rest of the packaged texts are held out for the gate
MIN_MEAN_COSINE = 0.995
# ... and it must be this much faster than the float model on this CPU (int8 kernels can be
# slower than f32's: NNCF's 7-bit copy ran at 0.64x without VNNI).
MIN_SPEEDUP = 1.1
SMOOTH_QUANT_ALPHA = 0.8
INT8_XML, INT8_BIN, REPORT = "model-int8.xml", "model-int8.bin", "int8.json"

Tokenize = Callable[[list[str]], dict]


def calibration_texts() -> list[str]:
    return json.loads(gzip.decompress(CALIBRATION_FILE.read_bytes()))


def read_report(folder: Path) -> dict | None:
    try:
        return json.loads((folder / REPORT).read_text())
    except (OSError, ValueError):
        return None


def quantize(folder: Path, tokenize: Tokenize, cpu: CpuPrecision) -> dict:
    """Writes the int8 copy of folder/model.xml when it passes the gate, and always its report.
    Both appear whole or not at all."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import OverflowFix

    started = time.perf_counter()
    log.warning("making the int8 embedding model once (about a minute); later starts reuse it")
    core = ov.Core()
    model = core.read_model(str(folder / "model.xml"))
    names = {port.get_any_name() for port in model.inputs}
    calibration = calibration_texts()[:CALIBRATION_COUNT]
    batches = [_inputs(tokenize(calibration[i : i + 8]), names) for i in range(0, len(calibration), 8)]
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars; stdout may be `--json` output
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(batches),
            advanced_parameters=nncf.AdvancedQuantizationParameters(
                overflow_fix=OverflowFix.FIRST_LAYER,
                smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA),
            ),
        )
    report = gate(OpenVinoModel(quantized), folder, tokenize, cpu)
    report.update(
        calibration_texts=len(calibration),
        smooth_quant_alpha=SMOOTH_QUANT_ALPHA,
        overflow_fix="first layer",
        nncf=nncf.__version__,
        cpu=core.get_property("CPU", "FULL_DEVICE_NAME"),
        cpu_capabilities=list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
        cpu_vnni=cpu.vnni,
        cpu_bf16=cpu.bf16,
        isa_cap=cpu.capped_at,
        weights_sha256=_weights_hash(quantized, ov),
        seconds=round(time.perf_counter() - started, 1),
    )
    _write(folder, quantized if report["accepted"] else None, report, ov)
    if report["accepted"]:
        log.warning("int8 embedding model ready: mean cosine %.4f to the float model", report["mean_cosine"])
    else:
        log.warning("int8 embedding model rejected (%s; %s); using the float model", verdict(report), cpu.describe())
    return report


def gate(candidate, folder: Path, tokenize: Tokenize, cpu: CpuPrecision) -> dict:
    """The gate's figures for an int8 model (anything with OpenVinoModel's embed): its vectors of
    the held-out packaged texts against the f32 float export's, and its speed against the float
    model this CPU would otherwise run."""
    held_out = calibration_texts()[CALIBRATION_COUNT:]
    reference = OpenVinoModel(folder / "model.xml", {"INFERENCE_PRECISION_HINT": "f32"})
    float_model = reference if cpu.float_precision == "f32" else OpenVinoModel(folder / "model.xml")
    int8_vectors, int8_seconds = _timed_embed(candidate, held_out, tokenize)
    cosine = (int8_vectors * reference.embed(held_out, tokenize, 16)).sum(axis=1)
    speedup = _timed_embed(float_model, held_out, tokenize)[1] / int8_seconds
    return {
        "accepted": bool(cosine.mean() >= MIN_MEAN_COSINE and speedup >= MIN_SPEEDUP),
        "mean_cosine": round(float(cosine.mean()), 6),
        "min_cosine": round(float(cosine.min()), 6),
        "min_mean_cosine": MIN_MEAN_COSINE,
        "speedup_over_float": round(speedup, 2),
        "float_precision": cpu.float_precision,
        "min_speedup": MIN_SPEEDUP,
        "held_out_texts": len(held_out),
    }


def verdict(report: dict) -> str:
    """What the gate measured, against what it asks: "mean cosine 0.9974 to the float model (at
    least 0.995), 1.52x its speed (at least 1.1x)"."""
    said = f"mean cosine {report['mean_cosine']} to the float model (at least {report['min_mean_cosine']})"
    if "speedup_over_float" in report:  # reports made before speed was measured lack it
        said += f", {report['speedup_over_float']}x its speed (at least {report['min_speedup']}x)"
    return said


def _timed_embed(model, texts: list[str], tokenize: Tokenize) -> tuple:
    """(vectors, seconds), after a warm-up batch (the first inference compiles kernels)."""
    model.embed(texts[:16], tokenize, 16)
    started = time.perf_counter()
    vectors = model.embed(texts, tokenize, 16)
    return vectors, time.perf_counter() - started


def _weights_hash(model, ov) -> str:
    """sha256 of the int8 weights as they would be saved (the same for the same quantization)."""
    with tempfile.TemporaryDirectory() as scratch:
        ov.save_model(model, str(Path(scratch) / "m.xml"), compress_to_fp16=False)
        return hashlib.sha256((Path(scratch) / "m.bin").read_bytes()).hexdigest()


def _inputs(encoded: dict, names: set[str]) -> dict:
    return {k: v for k, v in encoded.items() if k in names}


def _write(folder: Path, model, report: dict, ov) -> None:
    """The int8 files are staged beside the float model and renamed in; the report goes last,
    so a report that says accepted always has its model."""
    staging = Path(tempfile.mkdtemp(prefix=".int8-", dir=folder))
    try:
        if model is not None:
            ov.save_model(model, str(staging / INT8_XML), compress_to_fp16=False)
            os.replace(staging / INT8_BIN, folder / INT8_BIN)
            os.replace(staging / INT8_XML, folder / INT8_XML)
        (staging / REPORT).write_text(json.dumps(report, indent=2))
        os.replace(staging / REPORT, folder / REPORT)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
