"""
The facts of a user turn in the user's own words: a short answer kept whole, a bare
yes or no tied to the question it answers, and statements of a few words.
"""

from __future__ import annotations

import re

from ._words import ASKING, NOT_NAMES, WORD, compact

__all__ = [
    "ANSWER_WORDS",
    "SENTENCE_WORDS",
    "YES_NO",
    "answer_of",
    "answers",
    "is_question",
    "replied",
    "statements",
    "topic",
]

#: A turn that starts with a yes or a no.
YES_NO = re.compile(
    r"^\W*(yes|yeah|yep|yup|sure|no|nope|nah|ok|okay|correct|right)\b", re.IGNORECASE
)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n")

#: The most words a user turn may have to be kept whole as an answer.
ANSWER_WORDS = 6

#: The fewest and the most words of a user's statement kept whole as a fact.
SENTENCE_WORDS = (3, 24)


def answers(user: str, question: str) -> list[tuple[str, str]]:
    """
    A short user turn kept whole (kind ``answer``), and a bare yes or no tied to the
    question it answers (kind ``reply``: "extra towels? no").
    """
    reply, answer = answer_of(user)
    if reply is None:
        return answer
    return replied(topic(question), reply)


def answer_of(user: str) -> tuple[str | None, list[tuple[str, str]]]:
    """
    What a user turn answers, whatever was asked: the yes or no it starts with (None if
    none), and otherwise the short turn kept whole (kind ``answer``), if it is one.
    """
    words = WORD.findall(user)
    if not words:
        return None, []
    yes_no = YES_NO.match(user)
    if yes_no is not None:
        return yes_no.group(1).lower(), []
    if len(words) > ANSWER_WORDS or is_question(user):
        return None, []
    content = [w for w in words if w.lower() not in NOT_NAMES]
    if not content or (len(content) < 2 and len(words) > 1):
        return None, []
    return None, [(user.strip().strip(".!?,;:").strip(), "answer")]


def topic(question: str) -> str:
    """
    What a bare yes or no to ``question`` (the last exchange) is about: the last three
    content words of its last question ("extra towels"), or "" if it asks nothing.
    """
    asked = [q for q in re.split(r"(?<=[?])\s*", question) if q.endswith("?")]
    return " ".join(compact(asked[-1]).split()[-3:]) if asked else ""


def replied(about: str, reply: str) -> list[tuple[str, str]]:
    """
    The bare ``reply`` (yes or no) tied to the question it answers (kind ``reply``).
    """
    return [(about + "? " + reply, "reply")] if about else []


def is_question(text: str) -> bool:
    """
    Whether ``text`` asks rather than answers: it ends with a question mark or starts
    with a question word or an auxiliary ("what station...", "is this a direct bus").
    """
    words = WORD.findall(text)
    return text.rstrip().endswith("?") or bool(words) and words[0].lower() in ASKING


def statements(user: str) -> list[str]:
    """
    The user's statements of a few words, each whole ("my head is killing me"):
    what they describe in their own words, as a tool call may take it.
    """
    out: list[str] = []
    for sentence in _SENTENCE.split(user):
        n = len(WORD.findall(sentence))
        if SENTENCE_WORDS[0] <= n <= SENTENCE_WORDS[1] and not is_question(sentence):
            out.append(sentence.strip().strip(".!;,").strip())
    return out
