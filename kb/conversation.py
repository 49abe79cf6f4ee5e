"""Conversations: a follow-up becomes a standalone question before routing and retrieval.

"When did she last review it?" means nothing to a retriever. Before a follow-up is
routed, it is made to stand on its own:

- with a generative backend, by one short rewrite call (the prompt is in
  `kb.backends.prompts.rewrite_prompt`), cached per backend and conversation, so a client
  that re-sends the same conversation does not pay for it twice. A rewrite that
  brings nothing of the conversation into the question is not trusted (see
  `trusted`); the recent user turns are used instead;
- with the offline extractive reader, which cannot write: when the follow-up refers
  back with a pronoun and the previous question has a subject ("What does prod-admin
  access allow?" then "How long can it last?"), by putting that subject in place of
  the pronoun (`with_subject`); otherwise by a retrieval query made of the recent
  user turns, latest last ("Who maintains the on-call rotation? When
  did she last review it?"), when the follow-up leans on them (`needs_context`: it
  refers back, continues, or is a word or two); a question that does not is taken
  as a new topic and asked as written.

Before anything else, the conversation is checked (`check_turns`): it must end on the
user's turn, and every user turn is held to the question limit, so nothing over its
bounds reaches a rewrite call; the rewrite transcript (`TRANSCRIPT_CHARS`) and cache
(`REWRITE_CACHE_BYTES`) are bounded too.

The first question of a conversation is used as written. The answer carries the
question that was actually routed (`Answer.standalone_question`), so a client can
show it next to the route.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from kb.backends import AnswerBackend
from kb.backends.base import is_refusal
from kb.backends.prompts import rewrite_prompt
from kb.core.errors import InvalidRequestError
from kb.core.text import content_words

Role = Literal["user", "assistant"]
Method = Literal["as_is", "rewrite", "subject", "recent_turns"]

RECENT_USER_TURNS = 3  # the extractive reader's query: this many user turns, latest last
TRANSCRIPT_TURNS = 6  # turns the rewrite call sees
ASSISTANT_CHARS = 400  # an assistant turn is cut to this many characters in the transcript
TRANSCRIPT_CHARS = 8_000  # the rewrite transcript keeps its latest lines within this
REWRITE_CACHE_BYTES = 4_000_000  # the rewrite cache holds at most this much text
SOURCES_MARK = "\n\nSources:\n"  # the list the chat endpoint appends to its answers
# Words by which a follow-up refers back to the conversation, and its usual openings.
REFERENCE_WORDS = frozenset(
    "it its itself he him his she her hers they them their theirs this these those "
    "former latter".split()
)
CONTINUATIONS = frozenset(["and", "but", "also", "then", "so", "what about", "how about"])
_WORD = re.compile(r"[a-z]+")
# "What does prod-admin access allow?": the words between the auxiliary and the end.
_SUBJECT = re.compile(
    r"^\s*(?:what|who|whom|which|where|when|why|how(?: \w+)?)\s+"
    r"(does|do|did|can|could|must|should|will|would|is|are|was|were|has|have)\s+"
    r"(?P<subject>[^?]+?)\s*\??\s*$",
    re.IGNORECASE,
)
_VERB_AFTER = frozenset("does do did can could must should will would".split())
_PRONOUN = re.compile(r"\b(?:it|its|they|them|their|this|that)\b(?!\s*(?:is|are)\b\s*\?)")


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Standalone:
    """The question routing and retrieval use, and how it was made from the last turn."""

    question: str
    last: str
    method: Method


def user_turns(turns: Sequence[Turn]) -> list[str]:
    return [turn.content.strip() for turn in turns if turn.role == "user" and turn.content.strip()]


def recent_turns_query(turns: Sequence[Turn], max_chars: int) -> str:
    """The last user turn, preceded by up to RECENT_USER_TURNS - 1 earlier ones while
    the whole stays within `max_chars`."""
    questions = user_turns(turns)
    query = questions[-1]
    for earlier in reversed(questions[-RECENT_USER_TURNS:-1]):
        longer = f"{earlier} {query}"
        if len(longer) > max_chars:
            break
        query = longer
    return query


def needs_context(question: str) -> bool:
    """Whether a question leans on the conversation: it refers back (it, its, she,
    they, this, those...), continues ("And elsewhere?", "What about Sieve?") or has
    at most one word of content. Without a model to judge, a question that does none of
    these is taken as a new topic and asked as written."""
    words = _WORD.findall(question.lower())
    if not words:
        return False
    if any(word in REFERENCE_WORDS for word in words):
        return True
    if words[0] in CONTINUATIONS or " ".join(words[:2]) in CONTINUATIONS:
        return True
    return len(content_words(question)) <= 1


def check_turns(turns: Sequence[Turn], max_chars: int) -> None:
    """Refuse, before any work, a conversation whose last message is not the user's or
    any of whose user turns is longer than a question may be (each was a question)."""
    if not any(turn.role == "user" for turn in turns):
        raise InvalidRequestError(
            "The conversation has no user message: the last user message is the question."
        )
    if turns[-1].role != "user":
        raise InvalidRequestError(
            "The conversation ends with an assistant message: end it with the user's "
            "question (the last message must have role 'user')."
        )
    for number, turn in enumerate(turns, start=1):
        if turn.role == "user" and len(turn.content.strip()) > max_chars:
            raise InvalidRequestError(
                f"User message {number} of the conversation has {len(turn.content.strip()):,} "
                f"characters; the limit is {max_chars:,} (KB_MAX_QUESTION_CHARS) for every "
                "user message. Shorten it."
            )


def subject_of(question: str) -> str:
    """The subject of a question asked with an auxiliary: "What does prod-admin access
    allow?" -> "prod-admin access", "How long is the review window?" -> "the review
    window"; '' when the question has no such form."""
    match = _SUBJECT.match(question)
    if not match:
        return ""
    words = match.group("subject").split()
    if match.group(1).lower() in _VERB_AFTER and len(words) >= 2:
        words = words[:-1]  # "... does X allow": the last word is the verb
    return " ".join(words)


def with_subject(follow_up: str, previous: str) -> str:
    """The follow-up with its pronoun ("How long can it last?") replaced by the
    previous question's subject ("How long can prod-admin access last?"); '' when the
    follow-up has no pronoun or the previous question no subject."""
    subject = subject_of(previous)
    match = _PRONOUN.search(follow_up.lower())
    if not subject or not match:
        return ""
    replacement = f"{subject}'s" if match.group(0) in ("its", "their") else subject
    return follow_up[: match.start()] + replacement + follow_up[match.end() :]


def transcript(turns: Sequence[Turn]) -> str:
    """The conversation before the last user turn, as the rewrite call reads it: one
    `User:` / `Assistant:` line each, an assistant's `Sources:` list dropped, and at most
    TRANSCRIPT_CHARS characters (the latest lines kept)."""
    lines: list[str] = []
    size = 0
    for turn in reversed(list(turns[:-1])[-TRANSCRIPT_TURNS:]):
        text = turn.content.split(SOURCES_MARK, 1)[0].strip()
        if turn.role == "assistant":
            text = text[:ASSISTANT_CHARS]
        line = f"{'User' if turn.role == 'user' else 'Assistant'}: {' '.join(text.split())}"
        size += len(line) + 1
        if size > TRANSCRIPT_CHARS:
            break
        lines.append(line)
    return "\n".join(reversed(lines))


class RewriteCache:
    """Rewrites by (backend, conversation), least recently used dropped first once the
    text it holds (keys and rewrites) passes `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _cost(key: tuple[str, str, str], value: str) -> int:
        return sum(len(part.encode("utf-8", "surrogatepass")) for part in (*key, value))

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str, str], value: str) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= self._cost(key, old)
            self._items[key] = value
            self.bytes += self._cost(key, value)
            while self.bytes > self.max_bytes and self._items:
                dropped, text = self._items.popitem(last=False)
                self.bytes -= self._cost(dropped, text)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


def standalone_question(
    turns: Sequence[Turn], backend: AnswerBackend, max_chars: int, rewrites: RewriteCache
) -> Standalone:
    """The last user turn made to stand on its own (see the module docstring). The
    conversation is checked first (`check_turns`): nothing over its bounds reaches a
    model."""
    check_turns(turns, max_chars)
    last = turns[-1].content
    if not last.strip() or len(user_turns(turns)) == 1:
        return Standalone(last, last, "as_is")  # the question is checked where it is asked
    last = last.strip()
    if not backend.generative:
        if not needs_context(last):
            return Standalone(last, last, "as_is")
        carried = with_subject(last, user_turns(turns)[-2])
        if carried and len(carried) <= max_chars:
            return Standalone(carried, last, "subject")
        return Standalone(recent_turns_query(turns, max_chars), last, "recent_turns")
    history = transcript(turns)
    key = (backend.name, history, last)
    rewritten = rewrites.get(key)
    if rewritten is None:
        rewritten = _rewrite(backend, history, last, max_chars)
        rewrites.put(key, rewritten)
    if not trusted(rewritten, last, history):
        return Standalone(recent_turns_query(turns, max_chars), last, "recent_turns")
    return Standalone(rewritten, last, "rewrite")


def trusted(rewritten: str, last: str, history: str) -> bool:
    """Whether a rewrite may replace the follow-up. It may when the model kept the
    question as it was (it judged it standalone) or brought at least one word of the
    conversation into it; a rewrite that only rephrases (small models often drop the
    reference instead of resolving it) is no better than the follow-up alone, and an
    answer in place of a question is no question at all."""
    if not rewritten or (last.rstrip().endswith("?") and not rewritten.endswith("?")):
        return False  # nothing, or an answer instead of a question
    words, asked = content_words(rewritten), content_words(last)
    if words == asked:
        return True
    return bool((words - asked) & content_words(history))


def _rewrite(backend: AnswerBackend, history: str, last: str, max_chars: int) -> str:
    """One rewrite call; '' when the reply is not a usable question."""
    completion = backend.complete(rewrite_prompt(history, last))
    lines = [line.strip() for line in completion.text.strip().splitlines() if line.strip()]
    if not lines or is_refusal(lines[0]):
        return ""
    text = lines[0]
    for label in ("standalone question:", "rewritten question:", "rewritten:", "question:"):
        if text.lower().startswith(label):
            text = text[len(label) :].strip()
    text = text.strip("\"'` ")
    if not text or len(text) > max_chars:
        return ""
    return text
