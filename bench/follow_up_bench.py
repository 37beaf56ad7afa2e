"""Whether a question is a follow-up, on real conversations: TREC CAsT 2019-2020's turns after
each conversation's first, labelled follow-up or not, split in halves by conversation (half A
was looked at while writing the rule, half B was not), and the project's own 75 turns.

    python bench/follow_up_bench.py [--shared ../shared/data]

Prints precision and recall of `is_follow_up` for each; writes bench/results/follow_ups.md and .json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from report import write_report
from retrieval.answer.conversation import is_follow_up
from retrieval.evaluate import half_of

HERE = Path(__file__).resolve().parent


def precision_recall(turns: list[tuple[str, list[str], bool]]) -> tuple[float, float]:
    said = [(label, is_follow_up(question, earlier)) for question, earlier, label in turns]
    hits = sum(label and guess for label, guess in said)
    return hits / max(sum(guess for _, guess in said), 1), hits / max(sum(label for label, _ in said), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared" / "data")
    args = parser.parse_args()
    cast = [json.loads(line) for line in (args.shared / "trec-cast-dev" / "follow_ups.jsonl").open()]
    cast = [t for t in cast if t["history"]]
    own = [json.loads(line) for line in (HERE.parent / "tests" / "data" / "follow_ups.jsonl").open()]
    sets = {
        f"TREC CAsT half {half}": [
            (t["question"], t["history"], t["follow_up"]) for t in cast if half_of(t["conversation"]) == half
        ]
        for half in ("A", "B")
    }
    sets["the project's turns"] = [(t["question"], [t["previous"]], t["follow_up"]) for t in own]
    figures = {
        name: dict(zip(("precision", "recall"), precision_recall(turns)), turns=len(turns))
        for name, turns in sets.items()
    }
    rows = [[name, f["turns"], f"{f['precision']:.3f}", f"{f['recall']:.3f}"] for name, f in figures.items()]
    print(
        write_report(
            HERE / "results",
            "follow_ups",
            figures,
            "Follow-up questions told apart",
            ["set", "turns", "precision", "recall"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
