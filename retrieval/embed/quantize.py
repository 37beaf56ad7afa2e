"""An int8 copy of the exported embedding model, made once and kept only when its vectors hold.

Post-training static quantization with NNCF: SmoothQuant (alpha 0.8 on the matmuls, which moves
the activation outliers of BERT-like models into the weights; NNCF's default 0.95 lost more),
then per-tensor int8 activations and per-channel int8 weights, calibrated on real text packaged
with Docent (`calibration_texts.json.gz`: chunks of the Python documentation, made by
`python -m retrieval.embed.calibration --from-pydoc DIR`; the Python documentation's text is under the
PSF licence). On a CPU with VNNI the matrix products run
about twice as fast as in bf16.

The gate: the int8 vectors of held-out packaged chunks must keep a mean cosine of at least
MIN_MEAN_COSINE to those of the float model; otherwise the int8 copy is thrown away, the
report says why, and Docent stays on the float model (a report is kept either way, so the
check is not redone on every start).

Quantization is deterministic: the same texts in the same order, every calibration batch used
(no sampling), so one CPU makes byte-identical weights and the same figure every time
(`bench/int8_spread.py`: five runs, spread 0). What varies is the CPU the gate runs on: with
VNNI (or AMX) int8 products are exact 32-bit sums; without, they take a path whose 16-bit
intermediates can saturate, and the same weights score lower (0.9974 with AVX-512 VNNI, 0.9946
on an AVX2-only EPYC). The report names the CPU and the weights' hash so the two can be told apart.
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

from retrieval.embed.openvino import OpenVinoModel

log = logging.getLogger(__name__)

CALIBRATION_FILE = Path(__file__).with_name("calibration_texts.json.gz")
CALIBRATION_COUNT = 300  # the rest of the packaged texts are held out for the gate
MIN_MEAN_COSINE = 0.995
SMOOTH_QUANT_ALPHA = 0.8
INT8_XML, REPORT = "model-int8.xml", "int8.json"

Tokenize = Callable[[list[str]], dict]


def calibration_texts() -> list[str]:
    return json.loads(gzip.decompress(CALIBRATION_FILE.read_bytes()))


def read_report(folder: Path) -> dict | None:
    try:
        return json.loads((folder / REPORT).read_text())
    except (OSError, ValueError):
        return None


def quantize(folder: Path, tokenize: Tokenize) -> dict:
    """Writes folder/model-int8.xml from folder/model.xml when it passes the gate, and always
    folder/int8.json (the report). Both appear whole or not at all."""
    import nncf
    import openvino as ov

    started = time.perf_counter()
    log.warning("making the int8 embedding model once (about a minute); later starts reuse it")
    core = ov.Core()
    model = core.read_model(str(folder / "model.xml"))
    names = {port.get_any_name() for port in model.inputs}
    texts = calibration_texts()
    calibration, held_out = texts[:CALIBRATION_COUNT], texts[CALIBRATION_COUNT:]
    batches = [_inputs(tokenize(calibration[i : i + 8]), names) for i in range(0, len(calibration), 8)]
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars; stdout may be `--json` output
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(batches),
            advanced_parameters=nncf.AdvancedQuantizationParameters(
                smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA)
            ),
        )
    reference = OpenVinoModel(folder / "model.xml", {"INFERENCE_PRECISION_HINT": "f32"})
    candidate = OpenVinoModel(quantized)
    cosine = (candidate.embed(held_out, tokenize, 16) * reference.embed(held_out, tokenize, 16)).sum(axis=1)
    report = {
        "accepted": bool(cosine.mean() >= MIN_MEAN_COSINE),
        "mean_cosine": round(float(cosine.mean()), 6),
        "min_cosine": round(float(cosine.min()), 6),
        "min_mean_cosine": MIN_MEAN_COSINE,
        "held_out_texts": len(held_out),
        "calibration_texts": len(calibration),
        "smooth_quant_alpha": SMOOTH_QUANT_ALPHA,
        "nncf": nncf.__version__,
        "cpu": core.get_property("CPU", "FULL_DEVICE_NAME"),
        "cpu_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
        "cpu_vnni": _has_vnni(),
        "weights_sha256": _weights_hash(quantized, ov),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _write(folder, quantized if report["accepted"] else None, report, ov)
    if report["accepted"]:
        log.warning("int8 embedding model ready: mean cosine %.4f to the float model", report["mean_cosine"])
    else:
        log.warning(
            "int8 embedding model rejected (mean cosine %.4f < %.3f to the float model%s); using the float model",
            report["mean_cosine"],
            MIN_MEAN_COSINE,
            "" if report["cpu_vnni"] else " on a CPU without VNNI, whose int8 products lose more",
        )
    return report


def _has_vnni() -> bool:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return any(f in flags.split() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


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
            os.replace(staging / INT8_XML.replace(".xml", ".bin"), folder / INT8_XML.replace(".xml", ".bin"))
            os.replace(staging / INT8_XML, folder / INT8_XML)
        (staging / REPORT).write_text(json.dumps(report, indent=2))
        os.replace(staging / REPORT, folder / REPORT)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
