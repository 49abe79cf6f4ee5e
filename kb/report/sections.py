"""The report as a list of sections (heading, paragraphs, table), built from the typed
summary and shared by the Markdown and HTML renderers."""

from __future__ import annotations

from kb.report.caching_rules import caching_rules, override_lines, storage_lines
from kb.report.format import Section, fmt, label
from kb.report.summary import Machine, ReportSummary


def sections(s: ReportSummary) -> list[Section]:
    """Every section of the report, in reading order."""
    found = [
        _paths(s),
        _setup(s),
        _answer_quality(s),
        _judge(s),
        _retrieval_recall(s),
        _latency(s),
        _tokens(s),
        *_costs(s),
        caching_rules(s),
        _threshold(s),
    ]
    return [section for section in found if section is not None]


def headline(s: ReportSummary) -> list[str]:
    """The findings in a few bullet points, from the numbers."""
    modes = s.modes_that_ran
    if not modes:
        return ["No mode produced answers."]
    points = [
        "Accuracy: "
        + ", ".join(f"{label(m)} {fmt(v.accuracy, 'pct')}" for m, v in modes.items())
        + "; median latency: "
        + ", ".join(
            f"{label(m)} {fmt(v.latency_s.p50 if v.latency_s else None, 's')}"
            for m, v in modes.items()
        )
        + "."
    ]
    if s.long_context_rag_same_answer is not None:
        points.append(
            f"Long context and retrieval gave the same answer on "
            f"{fmt(s.long_context_rag_same_answer, 'pct')} of the questions."
        )
    if s.retrieval_recall:
        points.append(
            "Gold-document recall (all gold documents retrieved): "
            + ", ".join(f"@{k} {fmt(v.all_gold, 'pct')}" for k, v in s.retrieval_recall.items())
            + "."
        )
    for model, entry in s.costs.models.items():
        be = entry.break_even.get("long_context_cached_vs_rag")
        if be:
            points.append(f"Projected on {model}: {be.explanation}.")
    return points


def _cost_model(s: ReportSummary) -> str | None:
    return s.recommendation.cost_model or next(iter(s.costs.models), None)


def _paths(s: ReportSummary) -> Section:
    """How to read the opening table's evidence coverage and costs."""
    return Section(
        "What the opening table measures",
        [
            "Accuracy is over the questions with a reference answer or marked unanswerable "
            "(retrieval-only questions have none); the interval is the 95% Wilson interval "
            "for that many questions. Evidence coverage is the share of questions with gold "
            "documents whose gold documents were all inside the context the reader received: "
            "the whole corpus on the long-context path, the retrieved passages on the "
            "retrieval path. With an offline reader it is the fairest comparison of what "
            "each path gives a model to read. Costs are "
            + ("this backend's." if s.recommendation.cost_model else "projections.")
        ],
    )


def _setup(s: ReportSummary) -> Section:
    c, settings = s.corpus, s.settings
    sample = (
        f"; a sample of {s.limit} drawn with seed {s.seed})."
        if s.limit
        else f"; all of them, seed {s.seed})."
    )
    only = f", {s.retrieval_only} retrieval-only" if s.retrieval_only else ""
    gold = (
        f"{100 * c.gold_docs_in_corpus:.0f}% of the gold documents are in it."
        if c.gold_docs_in_corpus is not None
        else "the set names no gold documents."
    )
    threshold = (
        f"; refusal threshold {settings.extractive_threshold}."
        if s.backend == "extractive"
        else "."
    )
    warm = ", ".join(f"{label(m)} {fmt(v, 's')}" for m, v in s.warm_up_s.items())
    lines = [
        f"Evaluation set `{s.questions_file}`: {s.questions} questions ({s.answerable} "
        f"answerable, {s.unanswerable} unanswerable{only}{sample}",
        f"Corpus version `{c.version}` from `{c.root}`: {c.documents:,} documents, "
        f"{c.chunks:,} chunks, {c.corpus_tokens:,} snapshot tokens (cl100k, with document "
        f"markers); {gold}",
        f"Backend `{s.backend}`; top-k {settings.top_k}; long-context budget "
        f"{settings.long_context_budget:,} tokens (the corpus "
        + ("fits)" if c.fits_long_context else "does not fit)")
        + threshold,
        f"Generated {s.generated_at} in {s.run_seconds:.0f} s. Warm-up question per mode "
        f"(untimed in the tables; the first long-context one builds the prompt cache): {warm}.",
    ]
    return Section("Setup", lines + [f"Note: {n}" for n in s.notes])


def _answer_quality(s: ReportSummary) -> Section:
    table = [
        [
            "mode",
            "accuracy",
            "contains",
            "EM",
            "F1",
            "refusal acc.",
            "false refusals",
            "cit. precision",
            "cit. recall",
            "evidence coverage",
            "to long context",
        ]
    ]
    for mode, m in s.modes.items():
        if not m.ran:
            table.append([label(mode), "not run: " + (m.first_error or "")])
            continue
        share = (
            f"{fmt(m.escalation_share, 'pct')} escalated"
            if mode == "self_route"
            else fmt(m.long_context_share, "pct")
        )
        table.append(
            [label(mode)]
            + [
                fmt(v, "pct")
                for v in (
                    m.accuracy,
                    m.contains,
                    m.exact_match,
                    m.f1,
                    m.refusal_accuracy,
                    m.false_refusal_rate,
                    m.citation_precision,
                    m.citation_recall,
                    m.evidence_coverage,
                )
            ]
            + [share]
        )
    text = (
        "Accuracy counts an answerable question right when a reference answer appears in the "
        "answer (on word boundaries, after SQuAD normalisation and with citation markers "
        "removed) and an unanswerable one right when it was refused. EM and F1 are SQuAD's "
        "exact match and token F1 over answerable questions; a reader that answers with whole "
        "sentences scores low on them by construction. Citation precision is the share of "
        "cited documents that are gold (answered questions), recall the share of gold "
        "documents cited."
    )
    if s.retrieval_only:
        text += (
            f" The {s.retrieval_only} retrieval-only questions (gold documents, no reference "
            "answer) count in evidence coverage and retrieval recall, not in these answer "
            "metrics."
        )
    return Section("Answer quality", [text], table)


def _judge(s: ReportSummary) -> Section:
    """Who judged the answers, how often it agrees with containment, and where not."""
    j = s.judge
    if j is None:
        return Section(
            "Judge",
            [
                f"No judge: `{s.backend}` does not write text, it answers with sentences of "
                "its context, so accuracy is containment of a reference answer, with exact "
                "match and token F1 beside it, as in earlier reports."
            ],
        )
    agreement = fmt(j.agreement_with_contains, "pct")
    paragraphs = [
        f"Answers were judged by `{j.judge}`: correctness against the reference answer "
        "(any wording) and faithfulness to the passages each answer cites. Accuracy above "
        "is the judge's verdict where it decided; exact match, containment and F1 stay "
        f"beside it. On the {j.judged} answered questions (x modes) where both decide, the "
        f"judge agrees with containment on {agreement}"
        + (f"; {j.undecided} replies were not a verdict." if j.undecided else ".")
        + (" The disagreements are listed for a person to check." if j.disagreements else "")
    ]
    table = [["mode", "judge accuracy", "faithful to cited passages"]]
    table += [
        [label(m), fmt(j.accuracy.get(m), "pct"), fmt(j.faithfulness.get(m), "pct")]
        for m in s.modes_that_ran
    ]
    table += [["disagreement: qid (mode)", "judge / contains", "answer | reference"]]
    table += [
        [
            f"{d['qid']} ({label(str(d['mode']))})",
            f"{'right' if d['judge'] else 'wrong'} / {'right' if d['contains'] else 'wrong'}",
            f"{str(d['answer'])[:160]} | {d['reference']}",
        ]
        for d in j.disagreements
    ]
    return Section("Judge", paragraphs, table)


def _retrieval_recall(s: ReportSummary) -> Section | None:
    recall = s.retrieval_recall
    if not recall or all(v.all_gold is None for v in recall.values()):
        return None
    table = [["k", "all gold docs in top-k", "gold docs found (fraction)"]]
    table += [[k, fmt(v.all_gold, "pct"), fmt(v.fraction, "pct")] for k, v in recall.items()]
    return Section(
        "Retrieval recall",
        [
            "Hybrid retrieval (vectors + BM25) asked for the top-k chunks of each question "
            "with gold documents (unanswerable ones aside); a question counts in the first "
            "column only when every gold document is among the documents of those chunks. "
            f"The median search (question embedding included) took "
            f"{fmt(s.retrieval_search_p50_s, 's')}.",
        ],
        table,
    )


def _latency(s: ReportSummary) -> Section:
    table = [["mode", "p50", "p95", "cold long context", "warm long context p50", "rag p50"]]
    for mode, m in s.modes_that_ran.items():
        lat = m.latency_s
        if lat is None:
            continue
        cold = f"{fmt(lat.cold_p50, 's')} (n={lat.cold_count})" if lat.cold_count else "–"
        table.append(
            [
                label(mode),
                fmt(lat.p50, "s"),
                fmt(lat.p95, "s"),
                cold,
                fmt(lat.warm_long_context_p50, "s"),
                fmt(lat.rag_path_p50, "s"),
            ]
        )
    return Section(
        "Latency",
        [
            "End-to-end seconds per question on this machine. Every mode answered one "
            "warm-up question first (loading the embedding model and indexes, and building "
            "the corpus version's prompt cache, for the offline reader its sentence index); "
            "each question was embedded and garbage collected before its modes were timed, "
            "and the modes ran in "
            "the orders of a balanced Latin square (each mode first, second, ... equally "
            "often, and after each other mode equally often). A long-context question is "
            "cold when it had to build the prompt cache.",
            _machine_note(s.machine),
        ],
        table,
    )


def _tokens(s: ReportSummary) -> Section:
    table = [["mode", "input (uncached)", "cache read", "cache write", "output"]]
    for mode, m in s.modes_that_ran.items():
        t = m.tokens_per_question
        if t is not None:
            table.append(
                [label(mode)]
                + [
                    fmt(v, "int")
                    for v in (
                        t.input_tokens,
                        t.cache_read_tokens,
                        t.cache_write_tokens,
                        t.output_tokens,
                    )
                ]
            )
    return Section("Tokens per question (mean)", [], table)


def _machine_note(machine: Machine) -> str:
    return (
        f"Machine: {machine.cpus} CPUs; 1-minute load average {machine.load_average_start}"
        f" at the start of the run and {machine.load_average_end} at the end (other work "
        "on the machine slows every figure here)."
    )


def _costs(s: ReportSummary) -> list[Section]:
    """The projection table and the break-even table (none without price models)."""
    if not s.costs.models:
        return []
    found = [_cost_table(s), _break_even(s)]
    return [x for x in found if x is not None]


def _cost_table(s: ReportSummary) -> Section:
    costs = s.costs
    volume = costs.monthly_questions
    table = [["model", "mode", "no cache", f"with cache at {volume:,}/month", "warm cache"]]
    for model, entry in costs.models.items():
        for mode, c in entry.modes.items():
            table.append(
                [
                    model,
                    label(mode),
                    fmt(c.per_1000_without_cache_usd, "usd"),
                    fmt(c.per_1000_with_cache_usd, "usd"),
                    fmt(c.per_1000_warm_cache_usd, "usd"),
                ]
            )
    paragraphs = [
        "These are projections from token counts: the run used the offline reader, which "
        "cost nothing; each question's measured token mix is priced as if the named model "
        "had received it."
        if s.offline_reader
        else "Projections from the token counts of this run, priced with the same table.",
        f"Prices: {s.assumptions.price_source}. Assumptions: a month of 30 days; questions "
        "arrive evenly spread; the provider keeps a cached prefix for "
        f"{costs.cache_ttl_minutes:g} minutes, so a month holds "
        f"{costs.cache_lifetimes_per_month or 0:,.0f} cache lifetimes; the first "
        "long-context question of each lifetime writes the cached corpus prefix (at the "
        "provider's cache-write price, or the input price where writes are not "
        "surcharged) and the others read it (cache-read price). Counting lifetimes from "
        "their start is conservative: providers that extend a lifetime on each hit "
        "write less often. Long context sends the corpus snapshot as the cacheable "
        "prefix, the instructions and the question as uncached input; retrieval sends "
        "its passages, instructions and question uncached. Output tokens are the "
        "answers this run produced. Each request is priced on its own, so long-prompt "
        "tiers apply as billed. Where a provider bills an explicit cache's storage per "
        "token-hour (Gemini), 'with cache' assumes an explicit cache kept for one "
        "lifetime after each write and adds its storage: cached prefix tokens x hours "
        "kept a month x the storage rate.",
        f"'With cache' is the cost of 1,000 questions at {volume:,} questions a month; "
        "'warm cache' is the floor when every corpus read hits the cache (writes and "
        "storage aside). Where 'with cache' exceeds 'no cache', too few questions send "
        "the corpus to share cache lifetimes, and a write surcharge (Anthropic's) or "
        "storage (Gemini's) is paid for reads that never come.",
        *override_lines(s),
        *storage_lines(s),
    ]
    prompt = costs.long_context_prompt_tokens
    for model, entry in costs.models.items():
        window = entry.context_window
        if prompt and window and prompt > window:
            paragraphs.append(
                f"Note: {model}'s listed context window ({window:,} tokens) is smaller than "
                f"the long-context prompt ({prompt:,} tokens); that path needs the model's "
                "long-context option, priced here with the table's long-prompt tier."
            )
    return Section("Cost per 1,000 questions (projection)", paragraphs, table)


BREAK_EVEN_NAMES = {
    "long_context_cached_vs_rag": "long context (cached) vs retrieval",
    "long_context_uncached_vs_rag": "long context (no cache) vs retrieval",
    "long_context_cached_vs_uncached": "long context: caching vs none",
}


def _break_even(s: ReportSummary) -> Section | None:
    table = [["model", "comparison", "break-even"]]
    for model, entry in s.costs.models.items():
        for key, be in entry.break_even.items():
            table.append([model, BREAK_EVEN_NAMES.get(key, key), be.explanation])
    if len(table) == 1:
        return None
    return Section(
        "Break-even volume",
        [
            "The break-even volume is the number of questions a month at which the two "
            "monthly cost lines of the model above cross, i.e. where the cheaper path "
            "changes. Below the cache-lifetime count every long-context question writes the "
            "cache; above it each lifetime pays one write and the rest are reads, so cached "
            "long context costs lifetimes x (write surcharge + storage for one lifetime, "
            "where billed) + volume x warm cost. When the "
            "lines never cross, one path is cheaper at every volume and the table says which."
        ],
        table,
    )


def _threshold(s: ReportSummary) -> Section | None:
    tradeoff = s.threshold_tradeoff
    if not tradeoff:
        return None
    paths = list(tradeoff)
    header = ["threshold"]
    for path in paths:
        name = "long context" if path == "long_context" else "retrieval"
        header += [f"{name}: refusal acc.", "false refusals", "accuracy"]
    table = [header]
    for i, point in enumerate(tradeoff[paths[0]]):
        current = point.threshold == s.settings.extractive_threshold
        row = [f"{point.threshold:.3f}{' (current)' if current else ''}"]
        for path in paths:
            p = tradeoff[path][i]
            row += [
                fmt(p.refusal_accuracy, "pct"),
                fmt(p.false_refusal_rate, "pct"),
                fmt(p.accuracy, "pct"),
            ]
        table.append(row)
    return Section(
        "Refusal threshold trade-off",
        [
            "The reader was re-run with its threshold at 0 to record each question's best "
            "sentence score (`best_score` in results.jsonl); a question is refused at "
            "threshold t when that score is below t. Refusal figures are exact; accuracy "
            "assumes the chosen sentences do not change with the threshold."
        ],
        table,
    )
