"""An evaluation set written from the corpus: the exact requests a generative backend
is sent (scripted here, where a paid provider would stand), the filters, determinism
for a seed, and the offline known-item queries; on a real ingested corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
import pytest

from api.cli import main
from ingest.pipeline import run_ingest
from kb.backends.local import LlamaServer, LocalBackend, reply_grammar
from kb.backends.openai_backend import OpenAIBackend
from kb.backends.prompts import (
    GENERATE_SINGLE_INSTRUCTIONS,
    GENERATE_TWO_DOCUMENT_INSTRUCTIONS,
    GENERATE_UNANSWERABLE_INSTRUCTIONS,
    TWO_DOCUMENT_REPLY_FIELDS,
    UNANSWERABLE_REPLY_FIELDS,
    Prompt,
    generation_prompt,
)
from kb.core.errors import InvalidRequestError, NoQuestionsKeptError
from kb.core.settings import Settings, load_settings
from kb.report.generate import (
    MAX_REQUESTS,
    Shares,
    check_max_requests,
    generate_questions,
    parse_reply,
)
from kb.report.generated import (
    Dropped,
    Filters,
    GeneratedQuestion,
    GeneratedSet,
    review_sheet,
    write_generated,
)
from kb.report.metrics import normalize_answer
from kb.report.questions import load_questions
from kb.report.sampling import stratified_sample
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from kb.store.corpus import CorpusVersion
from tests import llm_server
from tests.conftest import write_corpus
from tests.recording import recording_client
from tests.scripted import ScriptedBackend

llama_server = llm_server.llama_server  # the one session-wide llama.cpp server

DOCS = {
    "deploys.md": "# Deploys\n\nDeploys go out on Tuesdays. Quillfeather signs every release.",
    "travel.md": "# Travel\n\nTrain travel is preferred under 600 km. Quillfeather approves "
    "trips abroad.",
    "security.md": "# Security\n\nSecrets rotate every 90 days. The vault is called keyring.",
    "oncall.md": "# On call\n\nThe primary on-call hands over on Mondays at 10:00.",
    "glossary.md": "# Glossary\n\nLantern is the dashboard service. Sieve consumes events.",
}
# What the scripted writer replies to a one-document request, by a word of its passage.
CANNED = {
    "Tuesdays": ("On which day do releases go out?", "Tuesdays", "Deploys go out on Tuesdays."),
    "600 km": (
        "Under what distance is the train preferred?",
        "600 km",
        "Train travel is preferred under 600 km.",
    ),
    # The answer is not in its span: dropped.
    "90 days": ("How often do secrets rotate?", "every 45 days", "Secrets rotate every 90 days."),
    # Names its document ("On call"): dropped.
    "Mondays": (
        "When does on call hand over?",
        "Mondays",
        "The primary on-call hands over on Mondays at 10:00.",
    ),
    # The same question as the deploys one: dropped as a duplicate.
    "Lantern": ("On which day do releases go out?", "Lantern", "Lantern is the dashboard service."),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> CorpusVersion:
    base = tmp_path_factory.mktemp("generate")
    settings = load_settings(data_dir=base / "data")
    run_ingest(settings, write_corpus(base / "docs", DOCS), embedder=embedder)
    return CorpusVersion.open(settings.data_dir)


def writer(prompt: Prompt) -> str:
    """A generative backend's replies, scripted: JSON as the instructions ask."""
    if prompt.instructions == GENERATE_UNANSWERABLE_INSTRUCTIONS:
        topic = max(prompt.context.split("\n\n")[-1].split(), key=len).strip(".")
        return json.dumps({"question": f"Who first wrote down the rule on {topic}?"})
    term = re.search(r'they share "([^"]+)"', prompt.instructions)
    if term:
        sentences = re.findall(r"[^.\n]*" + term.group(1) + r"[^.]*\.", prompt.context, re.I)
        answer = {"question": "Who signs releases and also approves trips abroad?"}
        return json.dumps(answer | {"answer": "Quillfeather", "spans": sentences})
    for word, (question, answer, span) in CANNED.items():
        if word in prompt.context:
            fenced = json.dumps({"question": question, "answer": answer, "span": span})
            return f"Here it is:\n```json\n{fenced}\n```"
    return "no JSON here"


@pytest.mark.integration
def test_one_document_requests_are_exact_and_the_filters_drop_weak_questions(
    corpus: CorpusVersion,
) -> None:
    backend = ScriptedBackend(writer, model="writer")
    generated = generate_questions(corpus, 10, seed=3, backend=backend, shares=Shares(0, 0))
    order = [s.chunk for s in stratified_sample(corpus.chunks, len(corpus.chunks), 3)]
    assert [(p.instructions, p.context, p.question, p.path) for p in backend.prompts] == [
        (GENERATE_SINGLE_INSTRUCTIONS, f"Passage 1:\n{c.text}", "Write the question.", "rag")
        for c in order
    ]
    kept = {(q.question, q.answer, q.gold_doc_ids) for q in generated.questions}
    assert kept == {
        ("On which day do releases go out?", "Tuesdays", ("deploys.md",)),
        ("Under what distance is the train preferred?", "600 km", ("travel.md",)),
    }
    reasons = sorted((d.reason, d.source) for d in generated.dropped)
    assert reasons == [
        ("answer not in its span", "security.md"),
        ("duplicate", "glossary.md"),  # seed 3 asks deploys.md first
        ("names its document", "oncall.md"),
    ]


@pytest.mark.integration
def test_two_document_and_unanswerable_shares_and_the_files(
    corpus: CorpusVersion, tmp_path: Path
) -> None:
    backend = ScriptedBackend(writer, model="writer")
    generated = generate_questions(corpus, 4, seed=0, backend=backend, shares=Shares(0.25, 0.25))
    kinds = [q.kind for q in generated.questions]
    assert kinds.count("unanswerable") == 1 and kinds.count("two_document") == 1
    first = backend.prompts[0]
    assert first.instructions == GENERATE_UNANSWERABLE_INSTRUCTIONS
    pair = next(p for p in backend.prompts if "they share" in p.instructions)
    assert pair.instructions == GENERATE_TWO_DOCUMENT_INSTRUCTIONS.format(term="quillfeather")
    texts = {c.doc_id: c.text for c in corpus.chunks}
    assert pair.context in (
        f"Passage 1:\n{texts['deploys.md']}\n\nPassage 2:\n{texts['travel.md']}",
        f"Passage 1:\n{texts['travel.md']}\n\nPassage 2:\n{texts['deploys.md']}",
    )
    two = next(q for q in generated.questions if q.kind == "two_document")
    assert sorted(two.gold_doc_ids) == ["deploys.md", "travel.md"]
    questions, review = write_generated(generated, tmp_path)
    loaded = {q.qid: q for q in load_questions(questions)}
    impossible = [q for q in loaded.values() if q.is_impossible]
    assert len(impossible) == 1 and impossible[0].answers == () and not impossible[0].gold_doc_ids
    assert "Quillfeather" in review.read_text("utf-8")
    assert "the right reply is a refusal" in review.read_text("utf-8")


@pytest.mark.integration
def test_the_same_seed_writes_the_same_set_and_another_seed_another(
    corpus: CorpusVersion,
) -> None:
    def run(seed: int) -> tuple[list[dict[str, object]], list[str]]:
        backend = ScriptedBackend(writer, model="writer")
        generated = generate_questions(corpus, 3, seed, backend, Shares(0, 0))
        return generated.records(), [p.context for p in backend.prompts]

    assert run(7) == run(7)
    orders = {tuple(run(seed)[1]) for seed in range(6)}
    assert len(orders) > 1


@pytest.mark.integration
def test_offline_known_item_queries_are_retrieval_only_and_seeded(
    corpus: CorpusVersion, tmp_path: Path
) -> None:
    generated = generate_questions(corpus, 4, seed=1)
    assert generated.retrieval_only and len(generated.questions) == 4
    assert (generated.requests, generated.max_requests, generated.stopped) == (
        0,
        None,
        "count reached",
    )
    assert generated.records() == generate_questions(corpus, 4, seed=1).records()
    queries = {q.question: q.gold_doc_ids for q in generated.questions}
    assert queries["quillfeather signs every release"] == ("deploys.md",)
    assert queries["secrets rotate 90 days"] == ("security.md",)
    # "On call" and its sentence name their document ("oncall.md"): filtered.
    assert {d.source for d in generated.dropped} == {"oncall.md"}
    questions, review = write_generated(generated, tmp_path)
    for question in load_questions(questions):
        assert question.retrieval_only and len(question.gold_doc_ids) == 1
        assert question.extra["kind"].startswith("known_item_")
    assert "retrieval-only" in review.read_text("utf-8")
    assert "no requests to a model (offline); stopped: count reached" in review.read_text("utf-8")


@pytest.mark.integration
def test_filters_drop_a_question_naming_its_document_a_duplicate_and_an_unfound_answer() -> None:
    filters = Filters({"policies/travel.md": "Travel Policy"})

    def candidate(question: str, answer: str = "", span: str = "") -> GeneratedQuestion:
        return GeneratedQuestion("single", question, answer, ("policies/travel.md",), span, ())

    assert filters.problem(candidate("What does the travel policy say?")) == "names its document"
    assert filters.problem(candidate("How far by train?", "600 km", "Under 600 km.")) is None
    assert (
        filters.problem(candidate("How far by train ?", "600 km", "Under 600 km.")) == "duplicate"
    )
    assert filters.problem(candidate("Who books?", "Ana", "Bo books trips.")) == (
        "answer not in its span"
    )
    assert filters.problem(candidate("When does IC Bo hand over?", "Bo", "IC Bo hands over.")) == (
        "answer given in the question"
    )


@pytest.mark.integration
def test_bad_input_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path)]) == 2
    assert "--questions FILE or --generate N" in capsys.readouterr().err
    assert main(["questions", "--out", str(tmp_path / "q"), "--count", "0"]) == 2
    assert "must be 1-1,000, got 0" in capsys.readouterr().err
    args = ["report", "--out", str(tmp_path / "r"), "--generate", "5", "--unanswerable-share", "2"]
    assert main(args) == 2
    assert "shares" in capsys.readouterr().err
    with pytest.raises(InvalidRequestError):
        Shares(0.7, 0.5)
    # The request cap: from the count to MAX_REQUESTS, checked before any model loads.
    for count, cap in (("5", "4"), ("5", "0"), ("5", str(MAX_REQUESTS + 1))):
        args = ["questions", "--out", str(tmp_path / "q"), "--count", count]
        assert main([*args, "--max-requests", cap]) == 2
        assert (
            "The request cap (--max-requests) must be a whole number from the question "
            + (f"count (5: each kept question takes one request) to {MAX_REQUESTS:,}, got ")
            in capsys.readouterr().err
        )
    args = ["report", "--out", str(tmp_path / "r"), "--generate", "3", "--max-requests", "2"]
    assert main(args) == 2
    assert "got 2." in capsys.readouterr().err
    assert not (tmp_path / "q").exists() and not (tmp_path / "r").exists()
    assert check_max_requests(None, 30) == 120 and check_max_requests(30, 30) == 30


@pytest.mark.fast
@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["--max-requests", "50"], "--max-requests applies only to --generate N"),
        (["--unanswerable-share", "0.3"], "--unanswerable-share applies only to --generate N"),
        (
            ["--two-document-share", "0", "--max-requests", "9"],
            "--two-document-share and --max-requests apply only to --generate N",
        ),
    ],
)
def test_report_refuses_generation_options_with_a_question_file_before_any_work(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    given: list[str],
    named: str,
) -> None:
    def no_loading(**_: object) -> Settings:
        raise AssertionError("settings were loaded: the check came too late")

    monkeypatch.setattr("api.cli_report.load_settings", no_loading)
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"qid": "a", "question": "When?", "answers": ["x"]}) + "\n")
    out = tmp_path / "r"
    args = ["report", "--questions", str(questions), "--out", str(out), *given]
    assert main([*args, "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "with --questions FILE the evaluation set is read as it stands" in err
    assert not out.exists() and not (tmp_path / "data").exists()


@pytest.mark.integration
def test_kb_report_generate_writes_the_set_the_sheet_a_report_and_records_it(
    corpus: CorpusVersion, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = corpus.layout.data_dir
    out = tmp_path / "report"
    args = ["report", "--data-dir", str(data_dir), "--generate", "4", "--seed", "1"]
    args += ["--modes", "long_context,rag", "--no-threshold-sweep", "--record", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "recorded: auto follows" in printed and "for extractive on this corpus" in printed
    records = [json.loads(line) for line in (out / "questions" / "questions.jsonl").open()]
    assert [r["question"] for r in records] == [
        q.question for q in generate_questions(corpus, 4, seed=1).questions
    ]
    assert (
        (out / "questions" / "review.md")
        .read_text("utf-8")
        .startswith("# Generated evaluation set: review before the run")
    )
    report = (out / "report.md").read_text("utf-8")
    assert "generated from the corpus itself by known-item queries" in report
    assert "4 questions (0 answerable, 0 unanswerable, 4 retrieval-only" in report
    recorded = json.loads((data_dir / "recommendation.json").read_text("utf-8"))
    assert recorded["backend"] == "extractive" and recorded["corpus_version"] == corpus.version
    (data_dir / "recommendation.json").unlink()  # the module's corpus is shared


@pytest.mark.integration
def test_requests_stop_at_the_cap_and_the_set_says_why_it_stopped(
    corpus: CorpusVersion, tmp_path: Path
) -> None:
    def garbage(prompt: Prompt) -> str:
        return "I would rather not."

    backend = ScriptedBackend(garbage)
    capped = generate_questions(corpus, 2, 0, backend, Shares(0, 0), max_requests=3)
    assert len(backend.prompts) == capped.requests == 3 and capped.max_requests == 3
    assert capped.questions == [] and len(capped.dropped) == 3
    assert capped.stopped == "request cap reached"
    assert (
        "0 questions kept, 3 dropped; 3 requests to the model (cap 3); stopped: request cap "
        "reached, before the count (--max-requests raises it)."
    ) in review_sheet(capped)
    with pytest.raises(NoQuestionsKeptError, match="Try a larger --max-requests"):
        write_generated(capped, tmp_path / "set")
    assert not (tmp_path / "set").exists()  # no empty set for `kb report` to read
    # The default cap (4 x 2) is above the corpus's chunks: every one is tried.
    exhausted = generate_questions(corpus, 2, 0, ScriptedBackend(garbage), Shares(0, 0))
    assert exhausted.max_requests == 8 and exhausted.requests == len(corpus.chunks) < 8
    assert exhausted.stopped == "chunks exhausted"
    # A writer that keeps its questions stops at the count, whatever the cap left.
    written = generate_questions(corpus, 1, 3, ScriptedBackend(writer), Shares(0, 0), 1)
    assert (len(written.questions), written.requests, written.stopped) == (1, 1, "count reached")


def refusing_writer(prompt: Prompt) -> str:
    """A writer whose replies the filters drop: no JSON, or an answer not in its span."""
    if "Tuesdays" in prompt.context:
        return json.dumps({"question": "Which day do releases go out?", "answer": "Fridays"})
    return "I would rather not."


@pytest.mark.integration
@pytest.mark.parametrize("command", ["questions", "report"])
def test_a_run_that_keeps_no_question_fails_saying_why_and_writes_no_set(
    command: str,
    corpus: CorpusVersion,
    embedder: Embedder,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = ScriptedBackend(refusing_writer, model="writer")

    def scripted_base(settings: Settings) -> KnowledgeBase:
        return KnowledgeBase(settings, backend=backend, embedder=embedder)

    monkeypatch.setattr(f"api.cli_{command}.KnowledgeBase", scripted_base)
    out = tmp_path / "out"
    args = [command, "--data-dir", str(corpus.layout.data_dir), "--out", str(out)]
    args += ["--count", "2"] if command == "questions" else ["--generate", "2"]
    assert main([*args, "--max-requests", "3", "--unanswerable-share", "0"]) == 2
    err = capsys.readouterr().err
    assert len(backend.prompts) == 3
    assert err == (
        "kb: No question was kept (scripted:writer, seed 0; 3 requests to the model (cap 3); "
        "stopped: request cap reached, before the count (--max-requests raises it)). "
        "The filters dropped all 3: reply is not the JSON asked for (2), "
        "answer not in its span (1); the first: (reply: 'I would rather not.'). "
        "Nothing was written. Try a larger --max-requests (it was 3), or another --backend "
        "whose replies are the JSON asked for.\n"
    )
    assert not out.exists()  # no empty questions.jsonl, no report


@pytest.mark.fast
def test_why_nothing_was_kept_names_what_to_try_for_each_way_writing_stopped() -> None:
    offline = GeneratedSet("known-item (offline)", 0)
    assert offline.nothing_kept() == (
        "No question was kept (known-item (offline), seed 0; no requests to a model "
        "(offline); stopped: chunks exhausted, every chunk tried). Nothing was written. "
        "The corpus gave no known-item query (a distinctive heading, or a sentence with "
        "discriminative words): ingest more text, or use a generative --backend."
    )
    dropped = [Dropped("duplicate", "Who signs?", "a.md"), Dropped("duplicate", "Who?", "b.md")]
    tried = GeneratedSet("openai:m", 4, dropped=dropped, requests=2, max_requests=8)
    assert tried.nothing_kept().endswith(
        "The filters dropped all 2: duplicate (2); the first: Who signs? Nothing was "
        "written. Every chunk was tried: try another --backend (one that follows the JSON "
        "format asked for, e.g. with structured output), or a corpus with more text."
    )


@pytest.mark.integration
def test_a_reply_in_labelled_lines_is_read_and_an_unusable_one_shown_on_the_sheet(
    corpus: CorpusVersion, tmp_path: Path
) -> None:
    def labelled(prompt: Prompt) -> str:
        if "Tuesdays" in prompt.context:
            return "**Question:** On which day do releases go out?\nAnswer: Tuesdays\n" + (
                "Span: Deploys go out on Tuesdays."
            )
        return "I think this passage is about work."

    generated = generate_questions(corpus, 5, 0, ScriptedBackend(labelled), Shares(0, 0))
    assert [(q.question, q.answer) for q in generated.questions] == [
        ("On which day do releases go out?", "Tuesdays")
    ]
    assert not generated.retrieval_only
    _, review = write_generated(generated, tmp_path)
    sheet = review.read_text("utf-8")
    assert "(reply: 'I think this passage is about work.')" in sheet
    assert "retrieval-only" not in sheet


@pytest.mark.integration
def test_a_written_question_without_its_answer_is_dropped(corpus: CorpusVersion) -> None:
    def no_answer(prompt: Prompt) -> str:
        return "Question: Which day do releases go out?"

    generated = generate_questions(corpus, 2, 0, ScriptedBackend(no_answer), Shares(0, 0))
    assert generated.questions == []
    assert {d.reason for d in generated.dropped} == {"no reference answer"}


@pytest.mark.integration
def test_a_question_about_nothing_in_its_passage_is_dropped(corpus: CorpusVersion) -> None:
    def vague(prompt: Prompt) -> str:
        return json.dumps({"question": "What is the answer to the question?"})

    generated = generate_questions(corpus, 1, 0, ScriptedBackend(vague), Shares(0, 1))
    assert generated.questions == []
    assert generated.dropped[0].reason == "question shares no word with its passage"


# ---- structured replies: a strict JSON schema for any OpenAI-compatible server, and a
# grammar for llama.cpp that also pins the answer to words of the passage


@pytest.mark.fast
def test_question_writing_asks_openai_for_a_strict_json_schema_and_nothing_else() -> None:
    client, bodies = recording_client('{"question": "When?"}')
    settings = load_settings(api_key="sk-test", max_output_tokens=256)
    backend = OpenAIBackend(settings, "gpt-4.1-mini", http_client=client)
    string = {"type": "string"}
    cases: list[tuple[tuple[str, ...] | None, dict[str, object]]] = [
        (None, {"span": string, "question": string, "answer": string}),
        (
            TWO_DOCUMENT_REPLY_FIELDS,
            {"question": string, "answer": string, "spans": {"type": "array", "items": string}},
        ),
        (UNANSWERABLE_REPLY_FIELDS, {"question": string}),
    ]
    for fields, properties in cases:
        passages = ["Deploys go out on Tuesdays.", "Train travel is preferred under 600 km."]
        prompt = generation_prompt("Write.", passages, *([fields] if fields else []))
        backend.complete(prompt)
        assert bodies[-1] == {
            "model": "gpt-4.1-mini",
            "messages": [
                {"role": "system", "content": "Write."},
                {"role": "user", "content": f"{prompt.context}\n\nQuestion: Write the question."},
            ],
            "temperature": 0,
            "max_completion_tokens": 256,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "generated_question",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": properties,
                        "required": list(properties),
                        "additionalProperties": False,
                    },
                },
            },
        }
    backend.complete(Prompt("rag", "Answer.", "", "Who?"))  # an answer: free text
    assert "response_format" not in bodies[-1]


@pytest.mark.fast
def test_the_llama_cpp_grammar_quotes_the_span_and_copies_the_answer_from_it() -> None:
    passage = '# Deploys\n\nDeploys go out on Tuesdays at 10:00. Quillfeather signs every "v2" tag.'
    prompt = generation_prompt(GENERATE_SINGLE_INSTRUCTIONS, [passage])
    assert prompt.reply_format is not None
    question = (
        '("What" | "Which" | "Who" | "When" | "Where" | "How" | "Why") " " '
        '[^"\\\\?\\x00-\\x1F\\x7F]{8,100} "?"'
    )
    member = '"\\"span\\": " "\\"" {span} "\\"" ", \\"question\\": " "\\"" question "\\"" ' + (
        '", \\"answer\\": " "\\"" {answer} "\\""'
    )
    first = member.format(span='"Deploys go out on Tuesdays at 10:00."', answer="answer-0-0")
    # The heading is no sentence; a quote in the passage is escaped twice (JSON, GBNF).
    second = member.format(
        span='"Quillfeather signs every \\\\\\"v2\\\\\\" tag."', answer="answer-0-1"
    )
    assert reply_grammar(prompt.reply_format).splitlines() == [
        'root ::= "{" tied "}"',
        f"question ::= {question}",
        'answer-0-0 ::= "Tuesdays" | "10:00"',  # words that name something, as written
        'answer-0-1 ::= "v2"',
        f"tied ::= ( {first} ) | ( {second} )",
    ]
    unanswerable = generation_prompt("Write.", [passage], UNANSWERABLE_REPLY_FIELDS)
    assert unanswerable.reply_format is not None
    assert reply_grammar(unanswerable.reply_format).splitlines() == [
        'root ::= "{" "\\"question\\": " "\\"" question "\\"" "}"',
        f"question ::= {question}",
    ]


def session_settings(server: LlamaServer) -> Settings:
    return load_settings(base_url=f"{server.url}/v1", api_key=server.api_key, max_output_tokens=160)


class LocalOnTheSessionServer(LocalBackend):
    """The local backend bound to the session's server instead of a second one."""

    def __init__(self, server: LlamaServer, http_client: httpx2.Client) -> None:
        settings = session_settings(server)
        OpenAIBackend.__init__(self, settings, "SmolLM2-135M-Instruct", http_client=http_client)

    def close(self) -> None:
        OpenAIBackend.close(self)


@pytest.mark.slow
def test_a_small_local_model_writes_parseable_questions_with_copied_answers(
    corpus: CorpusVersion, llama_server: LlamaServer
) -> None:
    client, bodies = recording_client()
    backend = LocalOnTheSessionServer(llama_server, client)
    generated = generate_questions(corpus, 3, 0, backend, Shares(1 / 3, 1 / 3))

    assert bodies and all("response_format" not in body for body in bodies)
    assert all(body["grammar"].startswith("root ::= ") for body in bodies)
    assert not [d for d in generated.dropped if d.reason.startswith("reply is not")]
    texts = {c.chunk_id: normalize_answer(c.text) for c in corpus.chunks}
    for question in generated.questions:
        assert question.question.endswith("?")
        if question.answer:  # copied: the answer inside its span, the span from its passage
            assert normalize_answer(question.answer) in normalize_answer(question.span)
            passages = " ".join(texts[c] for c in question.source_chunk_ids)
            assert all(normalize_answer(p) in passages for p in question.span.split(" ... "))
    # The same server holds a plain OpenAI-compatible request to the strict JSON schema.
    plain = OpenAIBackend(session_settings(llama_server), "SmolLM2-135M-Instruct")
    prompt = generation_prompt(GENERATE_SINGLE_INSTRUCTIONS, [corpus.chunks[0].text])
    reply = parse_reply(plain.complete(prompt).text)
    plain.close()
    assert reply is not None and set(reply) == {"span", "answer", "question"}
