"""The relevance gate on data: each question of a set about single files (TAT-QA's form: a
question, the file it is about) asked twice, with the search limited to its own file and to
another file of the set, through the real answer pipeline (extractive backend). A good gate
answers the first and refuses the second, showing the closest passages.

    python bench/answer_gate_bench.py --home HOME [--collection tatqa]
        [--questions ../shared/data/tatqa-dev/questions.jsonl] [--label NAME]

HOME's collection must hold the set's files, as `docent --home HOME eval -c tatqa SET` ingests
them. The other file is the one seven places on in the set's sorted list of files (fixed, so
runs compare). Reported for the whole set and each half (by file, as `docent eval` splits it).
Writes bench/results/answer_gate[-LABEL].md and .json.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from report import cpu_name, write_report
from retrieval.evaluate import load_eval_set
from retrieval.service import Docent
from retrieval.settings import load_settings

HERE = Path(__file__).resolve().parent
OTHER_OFFSET = 7  # the other file: this many places on in the sorted list of the set's files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--collection", default="tatqa")
    parser.add_argument("--questions", type=Path, default=HERE.parents[1] / "shared/data/tatqa-dev/questions.jsonl")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    docent = Docent(load_settings(home=str(args.home), llm="extractive"))
    questions = load_eval_set(args.questions)
    if not questions.scopes:
        raise SystemExit(f"{args.questions}: not a set of questions each about one file")
    files = sorted(set(questions.scopes.values()))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # half -> asked, own answered, other refused
    for qid, question in questions.queries.items():
        own = questions.scopes[qid]
        other = files[(files.index(own) + OTHER_OFFSET) % len(files)]
        answered_own = docent.ask(question, collection=args.collection, sources=[own]).answered
        refused_other = not docent.ask(question, collection=args.collection, sources=[other]).answered
        for half in ("all", questions.halves.get(qid, "all")):
            counts[half][0] += 1
            counts[half][1] += answered_own
            counts[half][2] += refused_other

    s = docent.settings
    result = {
        "cpu": cpu_name(),
        "set": str(args.questions),
        "settings": {
            "min_relevance": s.min_relevance,
            "answer_term_share": s.answer_term_share,
            "sure_relevance": s.sure_relevance,
        },
        "halves": {
            h: {"questions": n, "answered_own": a / n, "refused_other": r / n} for h, (n, a, r) in counts.items()
        },
    }
    label = f" ({args.label})" if args.label else ""
    title = (
        f"Relevance gate{label}: {args.questions.name}, each question asked of its own file and of another; "
        f"closeness floor {s.min_relevance}, term share {s.answer_term_share}, sure closeness {s.sure_relevance}"
    )
    rows = [
        [half, n, f"{a / n:.1%}", f"{r / n:.1%}"]
        for half, (n, a, r) in sorted(counts.items(), key=lambda item: item[0] != "all")
    ]
    stem = f"answer_gate-{args.label}" if args.label else "answer_gate"
    print(
        write_report(
            args.out, stem, result, title, ["questions", "asked", "own file: answered", "other file: refused"], rows
        )
    )


if __name__ == "__main__":
    main()
