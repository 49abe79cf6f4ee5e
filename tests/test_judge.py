"""The judge of generative answers: the exact requests it is sent (correctness against
the reference, faithfulness to the cited passages, each with its reply format: a
strict JSON schema for an OpenAI-compatible server, a llama.cpp grammar for the local
backend), its verdict as accuracy, its agreement with containment and the
disagreements listed. Real ingest, retrieval and report runner; a scripted backend, or
a recorded HTTP reply, answers and judges where a paid provider would."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from ingest.pipeline import run_ingest
from kb.backends.local import LlamaServer, LocalBackend
from kb.backends.openai_backend import OpenAIBackend
from kb.backends.prompts import (
    CORRECTNESS_REPLY,
    FAITHFULNESS_REPLY,
    JUDGE_CORRECTNESS_INSTRUCTIONS,
    JUDGE_FAITHFULNESS_INSTRUCTIONS,
    REFUSAL,
    Prompt,
    correctness_prompt,
    faithfulness_prompt,
)
from kb.core.errors import InvalidRequestError
from kb.core.settings import Settings, load_settings
from kb.report import ReportOptions
from kb.report.judge import verdict
from kb.report.markdown import render_markdown
from kb.report.runner import run_report
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests import llm_server
from tests.conftest import write_corpus
from tests.recording import recording_client
from tests.scripted import ScriptedBackend
from tests.test_questions_generation import LocalOnTheSessionServer

llama_server = llm_server.llama_server  # the one session-wide llama.cpp server

DOCS = {
    "deploys.md": "# Deploys\n\nDeploys go out on Tuesdays. A rollback takes 5 minutes.",
    "travel.md": "# Travel\n\nTrain travel is preferred for trips under 600 km.",
}
QUESTIONS = [
    {
        "qid": "day",
        "question": "When do deploys go out?",
        "answers": ["Tuesdays"],
        "gold_doc_ids": ["deploys.md"],
    },
    {
        "qid": "rollback",
        "question": "How long does a rollback take?",
        "answers": ["5 minutes"],
        "gold_doc_ids": ["deploys.md"],
    },
    {"qid": "none", "question": "Who founded the company?", "answers": [], "is_impossible": True},
]
ANSWERS = {"When do": "On Tuesdays", "How long": "Within five minutes"}


def answer_and_judge(prompt: Prompt) -> str:
    """Answers (a paraphrase for the rollback) and the judge's verdicts, scripted."""
    if prompt.instructions == JUDGE_CORRECTNESS_INSTRUCTIONS:
        graded = prompt.context.split("Answer to grade: ")[1]
        return json.dumps({"correct": graded.rstrip(".") in ANSWERS.values()})
    if prompt.instructions == JUDGE_FAITHFULNESS_INSTRUCTIONS:
        return 'Verdict: {"faithful": true}'
    for start, text in ANSWERS.items():
        if prompt.question.startswith(start):
            marker = "[1]" if prompt.path == "rag" else f"[doc:{_ref(prompt, 'deploys.md')}]"
            return f"{text} {marker}."
    return REFUSAL


def _ingested(
    tmp_path: Path, embedder: Embedder, asked: list[dict[str, object]]
) -> tuple[Settings, Path]:
    """DOCS ingested into tmp_path/data, and `asked` written as a question file."""
    settings = load_settings(data_dir=tmp_path / "data")
    run_ingest(settings, write_corpus(tmp_path / "docs", DOCS), embedder=embedder)
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in asked))
    return settings, questions


def _ref(prompt: Prompt, doc_id: str) -> int:
    assert prompt.corpus is not None
    return next(d.ref for d in prompt.corpus.documents if d.doc_id == doc_id)


@pytest.mark.integration
def test_the_judge_scores_paraphrases_and_reports_its_agreement_with_containment(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings, questions = _ingested(tmp_path, embedder, QUESTIONS)
    backend = ScriptedBackend(answer_and_judge, model="writer")
    options = ReportOptions(questions, modes=("long_context", "rag"), threshold_sweep=False)
    with KnowledgeBase(settings, backend=backend, embedder=embedder) as kb:
        result = run_report(kb, options)
        chunk_text = kb.corpus().chunks_by_doc["deploys.md"][0].text

    correctness = [p for p in backend.prompts if p.instructions == JUDGE_CORRECTNESS_INSTRUCTIONS]
    assert sorted(p.context for p in correctness) == sorted(
        [
            "Question: How long does a rollback take?\nReference answer: 5 minutes\n"
            "Answer to grade: Within five minutes.",
            "Question: When do deploys go out?\nReference answer: Tuesdays\n"
            "Answer to grade: On Tuesdays.",
        ]
        * 2  # both paths; the refusal of the unanswerable question is not judged
    )
    faithful = [p for p in backend.prompts if p.instructions == JUDGE_FAITHFULNESS_INSTRUCTIONS]
    assert len(faithful) == 4
    assert {p.context for p in faithful} == {
        f"Cited passage 1:\n{chunk_text}\n\nAnswer: On Tuesdays.",
        f"Cited passage 1:\n{chunk_text}\n\nAnswer: Within five minutes.",
    }
    assert {p.question for p in faithful} == {"Is the answer faithful to the cited passages?"}
    assert {p.reply_format for p in correctness} == {CORRECTNESS_REPLY}
    assert {p.reply_format for p in faithful} == {FAITHFULNESS_REPLY}

    summary = result.summary
    judge = summary.judge
    assert judge is not None and judge.judge == "scripted:writer"
    assert judge.judged == 4 and judge.agreement_with_contains == 0.5
    assert judge.accuracy == {"long_context": 1.0, "rag": 1.0}
    assert judge.faithfulness == {"long_context": 1.0, "rag": 1.0}
    assert sorted(
        (d["qid"], d["mode"], d["judge"], d["contains"]) for d in judge.disagreements
    ) == [
        ("rollback", "long_context", True, 0.0),
        ("rollback", "rag", True, 0.0),
    ]
    lc = summary.modes["long_context"]
    assert lc.accuracy == 1.0 and lc.contains == 0.5  # the judge decides; containment beside
    text = render_markdown(summary, [])
    assert "judged by `scripted:writer`" in text and "agrees with containment on 50.0%" in text
    row = "| rollback (long context) | right / wrong | Within five minutes. \\| 5 minutes |"
    assert row in text


@pytest.mark.integration
def test_a_named_judge_that_writes_no_text_is_refused_before_any_question(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings, questions = _ingested(tmp_path, embedder, QUESTIONS[:1])
    backend = ScriptedBackend(answer_and_judge)
    options = ReportOptions(questions, modes=("rag",), judge="extractive")
    with (
        KnowledgeBase(settings, backend=backend, embedder=embedder) as kb,
        pytest.raises(InvalidRequestError, match="does not write text"),
    ):
        run_report(kb, options)
    assert backend.prompts == []


@pytest.mark.fast
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"correct": true}', True),
        ('Verdict: {"correct": false} because', False),
        ("Yes, the answer is correct.", True),
        ("Yes.", True),
        ("**No**, it says Monday.", False),
        ("Correct.", True),
        ("incorrect", False),
        ("Incorrect: the reference says 5 minutes.", False),
        ("True", True),
        ("false", False),
        # Not a verdict word first, or not a JSON boolean: undecided, never a yes.
        ("not correct", None),
        ("The answer is not correct. It says", None),
        ("The answer is correct.", None),
        ("Correctly answered? I cannot say.", None),
        ('{"correct": "yes"}', None),
        ('{"correct": "true"} correct', None),
        ("I am not sure what you mean.", None),
        ("", None),
    ],
)
def test_a_free_text_verdict_is_a_json_boolean_or_a_verdict_word_first(
    reply: str, expected: bool | None
) -> None:
    assert verdict(reply, "correct") is expected


@pytest.mark.fast
def test_a_faithfulness_verdict_reads_its_own_words() -> None:
    assert verdict("Faithful.", "faithful") is True
    assert verdict("Unfaithful: it adds a date.", "faithful") is False
    assert verdict("not faithful", "faithful") is None
    assert verdict("Correct.", "faithful") is None  # another key's word


def undecided_judge(prompt: Prompt) -> str:
    """Answers as `answer_and_judge`, but judges correctness in free text that is no
    verdict: a string for the boolean, a negation that does not open with a verdict."""
    if prompt.instructions == JUDGE_CORRECTNESS_INSTRUCTIONS:
        graded = prompt.context.split("Answer to grade: ")[1]
        return '{"correct": "yes"}' if "Tuesdays" in graded else "not correct, I think"
    return answer_and_judge(prompt)


@pytest.mark.integration
def test_replies_that_are_no_verdict_are_counted_undecided_and_containment_stands(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings, questions = _ingested(tmp_path, embedder, QUESTIONS)
    backend = ScriptedBackend(undecided_judge, model="writer")
    options = ReportOptions(questions, modes=("long_context", "rag"), threshold_sweep=False)
    with KnowledgeBase(settings, backend=backend, embedder=embedder) as kb:
        summary = run_report(kb, options).summary
    judge = summary.judge
    assert judge is not None
    assert (judge.judged, judge.undecided, judge.disagreements) == (0, 4, [])
    # Undecided rows keep containment's score: "On Tuesdays" right, the paraphrase wrong
    # (and the refused unanswerable question right).
    assert judge.accuracy == {"long_context": pytest.approx(2 / 3), "rag": pytest.approx(2 / 3)}
    assert summary.modes["rag"].contains == 0.5


# ---- structured verdicts: the exact request bodies, with a recorded reply where the
# provider would stand

CORRECTNESS = correctness_prompt("When do deploys go out?", "Tuesdays", "On Tuesdays.")
FAITHFULNESS = faithfulness_prompt(["Deploys go out on Tuesdays."], "On Tuesdays.")
MESSAGES = {
    "correct": [
        {"role": "system", "content": JUDGE_CORRECTNESS_INSTRUCTIONS},
        {
            "role": "user",
            "content": "Question: When do deploys go out?\nReference answer: Tuesdays\n"
            "Answer to grade: On Tuesdays.\n\nQuestion: Is the answer correct?",
        },
    ],
    "faithful": [
        {"role": "system", "content": JUDGE_FAITHFULNESS_INSTRUCTIONS},
        {
            "role": "user",
            "content": "Cited passage 1:\nDeploys go out on Tuesdays.\n\nAnswer: On Tuesdays."
            "\n\nQuestion: Is the answer faithful to the cited passages?",
        },
    ],
}


@pytest.mark.fast
@pytest.mark.parametrize(("prompt", "key"), [(CORRECTNESS, "correct"), (FAITHFULNESS, "faithful")])
def test_a_judge_request_asks_openai_for_a_strict_true_or_false_and_reads_the_reply(
    prompt: Prompt, key: str
) -> None:
    client, bodies = recording_client(json.dumps({key: False}))
    settings = load_settings(api_key="sk-test", max_output_tokens=256)
    judge = OpenAIBackend(settings, "gpt-4.1-mini", http_client=client)
    reply = judge.complete(prompt).text
    assert bodies == [
        {
            "model": "gpt-4.1-mini",
            "messages": MESSAGES[key],
            "temperature": 0,
            "max_completion_tokens": 256,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": f"{'correctness' if key == 'correct' else 'faithfulness'}_verdict",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {key: {"type": "boolean"}},
                        "required": [key],
                        "additionalProperties": False,
                    },
                },
            },
        }
    ]
    assert verdict(reply, key) is False


class LocalWithoutServer(LocalBackend):
    """The local backend's requests, sent to a recording client instead of the
    llama.cpp server it would start."""

    def __init__(self, http_client: httpx2.Client) -> None:
        settings = load_settings(base_url="http://127.0.0.1:9/v1", api_key="k", max_output_tokens=8)
        OpenAIBackend.__init__(self, settings, "SmolLM2-135M-Instruct", http_client=http_client)

    def close(self) -> None:
        OpenAIBackend.close(self)


@pytest.mark.fast
@pytest.mark.parametrize(("prompt", "key"), [(CORRECTNESS, "correct"), (FAITHFULNESS, "faithful")])
def test_a_judge_request_holds_the_local_model_to_a_true_or_false_grammar(
    prompt: Prompt, key: str
) -> None:
    client, bodies = recording_client(json.dumps({key: True}))
    judge = LocalWithoutServer(client)
    reply = judge.complete(prompt).text
    judge.close()
    assert bodies == [
        {
            "model": "SmolLM2-135M-Instruct",
            "messages": MESSAGES[key],
            "temperature": 0,
            "max_tokens": 8,
            "grammar": f'root ::= "{{" "\\"{key}\\": " ( "true" | "false" ) "}}"',
        }
    ]
    assert verdict(reply, key) is True


@pytest.mark.fast
def test_a_structured_verdict_is_read_as_it_stands_and_free_text_still_is() -> None:
    assert verdict('{"correct": true}', "correct") is True
    assert verdict('{"correct":false}\n', "correct") is False
    # Not the format (another key, prose around it): the free-text reading.
    assert verdict('{"faithful": true}', "correct") is None
    assert verdict('Sure. {"correct": false}', "correct") is False


@pytest.mark.slow
def test_a_small_local_judge_held_by_the_grammar_always_replies_with_a_verdict(
    llama_server: LlamaServer,
) -> None:
    client, bodies = recording_client()
    judge = LocalOnTheSessionServer(llama_server, client)
    asked = [
        (CORRECTNESS, "correct"),
        (correctness_prompt("How long does a rollback take?", "5 minutes", "An hour."), "correct"),
        (FAITHFULNESS, "faithful"),
        (faithfulness_prompt(["Deploys go out on Tuesdays."], "On Fridays."), "faithful"),
    ]
    replies = [(judge.complete(prompt).text, key) for prompt, key in asked]
    judge.close()
    assert all("response_format" not in body and "grammar" in body for body in bodies)
    # Right or wrong, a 135M model's every reply is the object asked for, nothing else.
    for reply, key in replies:
        assert json.loads(reply).keys() == {key} and verdict(reply, key) is not None
