"""Follow-up questions made standalone before retrieval.

"And in 2022?" retrieves nothing by itself. With an LLM backend the question is rewritten by
the model from the conversation (prompts/rewrite_question.txt); without one, or when the model
fails or answers with something that is not a question, a rule does it: a follow-up that swaps
a number or year takes the previous question with the new number, and any other follow-up is
searched together with the previous question.

Whether a question is a follow-up is decided by whether it names its own subject. A subject is a
name ("Hanseatic League", "BM25", "401(k) plan", "\\endhead"), a rare word ("melatonin", by its
frequency in English, wordfreq), or a compound of two words or more ("heat pumps", "the fire
drill"); words that only say of what kind or how good a thing is ("the main types", "good
sources") name nothing. A question that starts by continuing ("and ...", "what about ...", also
after a remark: "Sounds good. What about ...?") or corrects the last one ("I meant ...") leans
on the conversation; so does a comparison that names one side ("How does the Model Y compare?"),
"what kind ...?" with no "of ...", and one that points back ("is it curable?", "who issues them?") before
naming anything (a pronoun points back unless a name or a rare word stands before it, in an
earlier clause where the pronoun is "it", "they", "them" or "him": no pronoun refers to a name in
its own clause), and one that names nothing of its own: "What are the main risks?" asks about
the conversation's subject without saying it. So does one that asks only what a thing of
everyday words is ("What are the installation costs?", "Tell me about the warranty terms") in a
conversation that never said those words; one that names such a thing doing something ("When is
the boiler serviced?"), or says the conversation's words again, stands alone.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import prompts
from retrieval.answer.base import BackendError
from retrieval.keywords import keyword_terms

_FOLLOW_UP_START = re.compile(
    r"^\s*(and|but|also|or|so|then|what about|how about|what if|and what about|and how about|same for"
    r"|i mean|i meant)\b[\s,]*",
    re.I,
)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
# A comparison names two things; with one named, the other is the conversation's.
_COMPARES = re.compile(r"\b(?:compar(?:e|es|ed|ing|ison|isons)|differ(?:s|ed|ence|ences)?|vs|versus)\b", re.I)
_TWO_THINGS = re.compile(r"\b(?:and|or|vs|versus|each other|one another)\b", re.I)
# "What kind ...?" with no "of ..." asks for a kind of what was named before.
_CLASSIFIERS = {"type", "types", "kind", "kinds", "sort", "sorts", "variety", "varieties"}
_CONTRACTION = re.compile(r"['’](?:s|m|re|ve|ll|d)$")  # "I'm", "what's": the word before it
_NEGATED = re.compile(r"n['’]t$")  # "don't", "isn't": an auxiliary, like "do" and "is"
# Words that point back to something named earlier. "there" only where it is not existential;
# "one" is a number or "a" ("one LinnSequencer disk"), "ones" points back.
_REFERRING = {"it", "its", "they", "them", "their", "this", "that", "these", "those", "he", "she", "him", "his", "her"}
_REFERRING |= {"ones", "there"}
_EXISTENTIAL = {"is", "are", "was", "were", "be", "been"}
_PERSONAL = {"it", "they", "them", "him"}
_CLAUSE_BREAK = re.compile(
    r"[,;]|\b(?:and|or|but|if|when|because|so|after|before|while|until|since|although|though|unless|once"
    r"|whereas|who|which|that|where)\b",
    re.I,
)
# Words that name nothing a search could find: question words, auxiliaries, prepositions (all of
# them: "differences between" is no compound), and the generic asks of a follow-up ("give an
# example", "more detail", "explain").
_GENERIC = set(
    """a an the is are was were be been being am do does did done can could should would will may might must
    shall have has had i you we me my your our us what which who whom whose when where why how of in on at to
    for from with by about as into onto than and or but not no if so any some here please more detail details
    example examples give tell explain mean means meaning work works else other way same also too then much
    many long often again before after up down out over just very really there own each every such one
    between among against during through across within without besides beside via vs versus toward towards
    under above below behind beyond near along around upon per despite except""".split()
)
# Words that say what kind, how good, how many or which in order a thing is, not which thing:
# "the main types", "good sources", "the two versions", "the first step".
_MODIFIERS = set(
    """important good best better main typical popular different similar common modern natural major key other
    new big small general specific certain various several many few much more most less least own same such whole
    real true famous known used like both two three four five six seven eight nine ten first second third last
    next previous latest""".split()
)
# A question that asks only what a thing is or whether there is one ("What are the installation
# costs?", "Is there a warranty card?"), not what happens to it ("When is the boiler serviced?").
_ASKS_WHAT = re.compile(
    r"^\s*(?:(?:what|which)\s+(?:is|are|was|were)\b|(?:is|are)\s+there\b|(?:tell|show)\s+me\b|describe\b"
    r"|explain\b|list\b)",
    re.I,
)
# The same words as keyword terms, for telling whether a question repeats the conversation's words.
_GENERIC_TERMS = frozenset(keyword_terms(" ".join(_GENERIC | _MODIFIERS)))
RARE_WORD = 3.5  # a word rarer than this in English (Zipf scale: once per ~3 million words) names a subject
_NUMBER = re.compile(r"\b\d[\d.,]*\b")
_TOKEN = re.compile(r"[\w\\.:\-/'’]+")

Turn = tuple[str, str]  # (the standalone question asked, the answer given)


def is_follow_up(question: str, earlier: Sequence[str] = ()) -> bool:
    """Whether a question leans on the conversation for its subject (see the module's note),
    given the conversation's earlier questions. Held to precision >= 0.95 and recall >= 0.8 on
    tests/data/follow_ups.jsonl."""
    if _continuation(question) is not None:
        return True  # also after a remark: "Sounds good. What about the second option?"
    found = _tokens_at(question)
    tokens = [t for t, _ in found]
    subjects = _subjects(tokens)
    back = _points_back(tokens)
    if back is not None and not any(
        start < back and named and _may_refer_to(question, found, start, back) for start, _, named in subjects
    ):
        return True  # "it" before a name of its own: "who issues them?", "where do staff gather during it?"
    if len(subjects) == 1 and _COMPARES.search(question) and not _TWO_THINGS.search(question):
        return True  # "How does the Model Y compare?": the other side is the conversation's
    if any(named for _, _, named in subjects):
        return False
    if subjects and earlier and _ASKS_WHAT.match(question):
        return not _names_again(question, earlier)
    return not subjects


def _continuation(question: str) -> str | None:
    """The question from its sentence that starts by continuing the conversation ("and ...",
    "what about ...") on, a remark before it left out; None when no sentence does."""
    sentences = _SENTENCE_END.split(question.strip())
    for i, sentence in enumerate(sentences):
        if _FOLLOW_UP_START.match(sentence):
            return " ".join(sentences[i:])
    return None


def _names_again(question: str, earlier: Sequence[str]) -> bool:
    """Whether a question whose subject is made of everyday words says one of the conversation's
    words again ("What are the running costs of heat pumps?" after "How do heat pumps work?"):
    then it is about what it says; otherwise what it asks for is the conversation's subject's
    ("What are the installation costs?" after the same)."""
    said = {term for text in earlier for term in keyword_terms(text)}
    return any(term in said for term in keyword_terms(question) if term not in _GENERIC_TERMS)


def _tokens_at(question: str) -> list[tuple[str, int]]:
    """The question's words, each with where it starts."""
    found = [(raw.group().strip(".:-/'’?,"), raw.start()) for raw in _TOKEN.finditer(question)]
    return [(t, at) for t, at in found if t]


def _may_refer_to(question: str, tokens: list[tuple[str, int]], start: int, back: int) -> bool:
    """Whether the pointing word at `back` may refer to the subject at `start`. A personal
    pronoun does not refer to a name in its own clause ("Why did Marie Curie keep it in a
    drawer?", "How did Magellan's crew survive them?": it is something named before); in a
    later clause it may ("What is Lyme disease and how is it treated?")."""
    if tokens[back][0].lower() not in _PERSONAL:
        return True
    return bool(_CLAUSE_BREAK.search(question, tokens[start][1], tokens[back][1]))


def _points_back(tokens: list[str]) -> int | None:
    """Where the first word that points back to something named earlier stands, if any."""
    words = [_CONTRACTION.sub("", t.lower()) for t in tokens]
    for i, word in enumerate(words):
        if word in _CLASSIFIERS and i and words[i - 1] in ("what", "which") and words[i + 1 : i + 2] != ["of"]:
            return i  # "Which kind suits a small garden?": a kind of what was named before
        if word not in _REFERRING:
            continue
        if word == "there" and (
            i == 0 or words[i - 1] in _EXISTENTIAL or (i + 1 < len(words) and words[i + 1] in _EXISTENTIAL)
        ):
            continue  # "is there a limit", "there are"
        return i
    return None


def _subjects(tokens: list[str]) -> list[tuple[int, str, bool]]:
    """The question's own subjects: (where each starts, its words, whether it holds a name or
    a rare word)."""
    subjects: list[tuple[int, str, bool]] = []
    run: list[int] = []

    def close() -> None:
        while run and _describes(tokens[run[-1]]):
            run.pop()  # a run names a thing when it ends with one: "popular hiking trails", not "oxygen transported"
        while run and tokens[run[0]].lower() in _MODIFIERS:
            run.pop(0)
        if not run:
            return
        if all(tokens[i].isdigit() for i in run):
            return  # a number alone ("compare with 2019") is no subject
        named = any(_names_something(tokens[i], first=i == 0) or tokens[i].isdigit() for i in run)
        rare = any(_frequency(tokens[i].lower()) < RARE_WORD for i in run)
        if named or rare or len(run) >= 2:
            subjects.append((run[0], " ".join(tokens[i] for i in run), named or rare))

    for i, token in enumerate(tokens):
        word = _CONTRACTION.sub("", token.lower())
        if word in _GENERIC or word in _REFERRING or _NEGATED.search(word):
            close()
            run = []
        else:
            run.append(i)
    close()
    return subjects


def _describes(token: str) -> bool:
    """A word that says of what kind or how a thing is, or what it does, rather than what it is."""
    word = token.lower()
    return word in _MODIFIERS or (bool(re.search(r"(?:ed|ing|ly)$", word)) and _frequency(word) >= RARE_WORD)


@lru_cache(maxsize=4096)
def _frequency(word: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def _names_something(token: str, *, first: bool) -> bool:
    """A name-like token: a code or option name (\\endhead, json.loads, --noout), letters with
    digits (BM25, FY2016, 3M), or a capitalised word that does not start the question."""
    if re.fullmatch(r"[a-z]+(?:-[a-z]+)+", token):
        return False  # a hyphenated word ("long-term") is a word: its rarity says whether it names
    if re.search(r"[\\_.:/]|\w-\w", token) or token.startswith("-"):
        return True
    if re.search(r"\d", token) and re.search(r"[A-Za-z]", token):
        return True
    return not first and len(token) > 1 and token[0].isupper()


def rule_based_rewrite(question: str, history: Sequence[Turn]) -> str:
    if not history or not is_follow_up(question, [asked for asked, _ in history]):
        return question
    previous = history[-1][0].strip()
    # A remark before the sentence that continues ("Thanks, that helps. And in 2022?") is no part
    # of what to search for.
    rest = _FOLLOW_UP_START.sub("", _continuation(question) or question).strip()
    new_numbers = _NUMBER.findall(rest)
    old_numbers = _NUMBER.findall(previous)
    if new_numbers and old_numbers and len(rest.split()) <= 4:
        # "What was the revenue in 2021?" + "and in 2022?" -> "What was the revenue in 2022?"
        head, sep, tail = previous.rpartition(old_numbers[-1])
        return f"{head}{new_numbers[0]}{tail}"
    return f"{previous} {rest[:1].upper()}{rest[1:]}"


def standalone_question(question: str, history: Sequence[Turn], backend=None) -> str:
    """The question to search for, given the conversation so far (oldest turn first)."""
    if not history:
        return question
    complete = getattr(backend, "complete", None)
    if complete is not None:
        transcript = "\n".join(f"User: {q}\nAssistant: {a[:500]}" for q, a in history[-3:])
        try:
            rewritten = complete(
                [{"role": "user", "content": prompts.render("rewrite_question", history=transcript, question=question)}]
            )
        except BackendError:
            rewritten = ""
        rewritten = rewritten.strip().splitlines()[0].strip(" \"'") if rewritten.strip() else ""
        if 3 <= len(rewritten.split()) <= 60:
            return rewritten
    return rule_based_rewrite(question, history)
