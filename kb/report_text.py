"""Rendering a report summary as Markdown and self-contained HTML."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

MODE_LABELS = {
    "long_context": "long context",
    "rag": "retrieval (rag)",
    "auto": "auto",
    "self_route": "self_route",
}
CHART_TITLES = {
    "accuracy_vs_cost": "Accuracy against projected cost per 1,000 questions",
    "latency": "Latency per question",
    "tokens": "Tokens per question",
    "cost_vs_volume": "Projected monthly cost against monthly question volume",
}


def fmt(value: Any, kind: str = "num") -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if kind == "usd":
        return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _sections(summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]] | None]]:
    """The report as (heading, paragraphs, table) sections, shared by Markdown and HTML.

    A table is a list of rows whose first row is the header."""
    s = summary
    corpus, settings = s["corpus"], s["settings"]
    modes: dict[str, Any] = s["modes"]
    costs = s["costs"]
    offline = s["offline_reader"]
    sections: list[tuple[str, list[str], list[list[str]] | None]] = []

    setup = [
        f"Evaluation set `{s['questions_file']}`: {s['questions']} questions "
        f"({s['answerable']} answerable, {s['unanswerable']} unanswerable"
        + (
            f"; a sample of {s['limit']} drawn with seed {s['seed']})."
            if s["limit"]
            else f"; all of them, seed {s['seed']})."
        ),
        f"Corpus version `{corpus['version']}` from `{corpus['root']}`: "
        f"{corpus['documents']:,} documents, {corpus['chunks']:,} chunks, "
        f"{corpus['corpus_tokens']:,} snapshot tokens (cl100k, with document markers); "
        + (
            f"{100 * corpus['gold_docs_in_corpus']:.0f}% of the gold documents are in it."
            if corpus["gold_docs_in_corpus"] is not None
            else "the set names no gold documents."
        ),
        f"Backend `{s['backend']}`; top-k {settings['top_k']}; long-context budget "
        f"{settings['long_context_budget']:,} tokens (the corpus "
        + ("fits)" if corpus["fits_long_context"] else "does not fit)")
        + (
            f"; refusal threshold {settings['extractive_threshold']}."
            if s["backend"] == "extractive"
            else "."
        ),
        f"Generated {s['generated_at']} in {s['run_seconds']:.0f} s.",
    ]
    sections.append(("Setup", setup + [f"Note: {n}" for n in s["notes"]], None))

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
            "to long context",
        ]
    ]
    for mode, m in modes.items():
        if "accuracy" not in m:
            table.append([MODE_LABELS.get(mode, mode), "not run: " + m.get("first_error", "")])
            continue
        share = (
            f"{fmt(m['escalation_share'], 'pct')} escalated"
            if mode == "self_route"
            else fmt(m["long_context_share"], "pct")
        )
        table.append(
            [
                MODE_LABELS.get(mode, mode),
                fmt(m["accuracy"], "pct"),
                fmt(m["contains"], "pct"),
                fmt(m["exact_match"], "pct"),
                fmt(m["f1"], "pct"),
                fmt(m["refusal_accuracy"], "pct"),
                fmt(m["false_refusal_rate"], "pct"),
                fmt(m["citation_precision"], "pct"),
                fmt(m["citation_recall"], "pct"),
                share,
            ]
        )
    sections.append(
        (
            "Answer quality",
            [
                "Accuracy counts an answerable question right when a reference answer appears "
                "in the answer (on word boundaries, after SQuAD normalisation and with citation "
                "markers removed) and an unanswerable one right when it was refused. EM and F1 "
                "are SQuAD's exact match and token F1 over answerable questions; a reader that "
                "answers with whole sentences scores low on them by construction. Citation "
                "precision is the share of cited documents that are gold (answered questions), "
                "recall the share of gold documents cited.",
            ],
            table,
        )
    )

    recall = s["retrieval_recall"]
    if recall and any(v["all_gold"] is not None for v in recall.values()):
        rtable = [["k", "all gold docs in top-k", "gold docs found (fraction)"]]
        for k, v in recall.items():
            rtable.append([k, fmt(v["all_gold"], "pct"), fmt(v["fraction"], "pct")])
        sections.append(
            (
                "Retrieval recall",
                [
                    "Hybrid retrieval (vectors + BM25) asked for the top-k chunks of each "
                    "answerable question with gold documents; a question counts in the first "
                    "column only when every gold document is among the documents of those "
                    "chunks. The median search (question embedding included) took "
                    f"{fmt(s['retrieval_search_p50_s'], 's')}.",
                ],
                rtable,
            )
        )

    ltable = [["mode", "p50", "p95", "cold long context", "warm long context p50", "rag p50"]]
    for mode, m in modes.items():
        if "latency_s" not in m:
            continue
        lat = m["latency_s"]
        cold = f"{fmt(lat['cold_p50'], 's')} (n={lat['cold_count']})" if lat["cold_count"] else "–"
        ltable.append(
            [
                MODE_LABELS.get(mode, mode),
                fmt(lat["p50"], "s"),
                fmt(lat["p95"], "s"),
                cold,
                fmt(lat["warm_long_context_p50"], "s"),
                fmt(lat["rag_path_p50"], "s"),
            ]
        )
    sections.append(
        (
            "Latency",
            [
                "End-to-end seconds per question on this machine, after a warm-up question "
                "that loads the embedding model and indexes. A long-context question is cold "
                "when it had to build the corpus version's prompt cache (for the offline "
                "reader: its sentence index) and warm when it read it.",
                _machine_note(s.get("machine")),
            ],
            ltable,
        )
    )

    ttable = [["mode", "input (uncached)", "cache read", "cache write", "output"]]
    for mode, m in modes.items():
        if "tokens_per_question" not in m:
            continue
        t = m["tokens_per_question"]
        ttable.append(
            [MODE_LABELS.get(mode, mode)]
            + [
                fmt(t[k], "int")
                for k in (
                    "input_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "output_tokens",
                )
            ]
        )
    sections.append(("Tokens per question (mean)", [], ttable))

    if costs["models"]:
        label = (
            "These are projections from token counts: the run used the offline reader, "
            "which cost nothing; each question's measured token mix is priced as if the "
            "named model had received it."
            if offline
            else "Projections from the token counts of this run, priced with the same table."
        )
        volume = costs["monthly_questions"]
        ctable = [["model", "mode", "no cache", f"with cache at {volume:,}/month", "warm cache"]]
        for model, entry in costs["models"].items():
            for mode, c in entry["modes"].items():
                ctable.append(
                    [
                        model,
                        MODE_LABELS.get(mode, mode),
                        fmt(c["per_1000_without_cache_usd"], "usd"),
                        fmt(c["per_1000_with_cache_usd"], "usd"),
                        fmt(c["per_1000_warm_cache_usd"], "usd"),
                    ]
                )
        ttl = costs["cache_ttl_minutes"]
        lifetimes = costs["cache_lifetimes_per_month"]
        assumptions = [
            label,
            f"Prices: {s['assumptions']['price_source']}. Assumptions: a month of 30 days; "
            f"questions arrive evenly spread; the provider keeps a cached prefix for {ttl:g} "
            f"minutes, so a month holds {lifetimes:,.0f} cache lifetimes; the first "
            "long-context question of each lifetime writes the cached corpus prefix (at the "
            "provider's cache-write price, or the input price where writes are not "
            "surcharged) and the others read it (cache-read price). Counting lifetimes from "
            "their start is conservative: providers that extend a lifetime on each hit "
            "write less often. Long context sends the corpus snapshot as the cacheable "
            "prefix, the instructions and the question as uncached input; retrieval sends "
            "its passages, instructions and question uncached. Output tokens are the "
            "answers this run produced. Each request is priced on its own, so long-prompt "
            "tiers apply as billed. Storage fees for explicit caches (e.g. Gemini context "
            "caching) are not included.",
            f"'With cache' is the cost of 1,000 questions at {volume:,} questions a month; "
            "'warm cache' is the floor when every corpus read hits the cache. Where 'with "
            "cache' exceeds 'no cache', too few questions send the corpus to share cache "
            "lifetimes, and a write surcharge (Anthropic's) is paid for reads that never come.",
        ]
        prompt = costs.get("long_context_prompt_tokens")
        for model, entry in costs["models"].items():
            window = entry.get("context_window")
            if prompt and window and prompt > window:
                assumptions.append(
                    f"Note: {model}'s listed context window ({window:,} tokens) is smaller than "
                    f"the long-context prompt ({prompt:,} tokens); that path needs the model's "
                    "long-context option, priced here with the table's long-prompt tier."
                )
        sections.append(("Cost per 1,000 questions (projection)", assumptions, ctable))

        btable = [["model", "comparison", "break-even"]]
        names = {
            "long_context_cached_vs_rag": "long context (cached) vs retrieval",
            "long_context_uncached_vs_rag": "long context (no cache) vs retrieval",
            "long_context_cached_vs_uncached": "long context: caching vs none",
        }
        for model, entry in costs["models"].items():
            for key, be in entry["break_even"].items():
                btable.append([model, names.get(key, key), be["explanation"]])
        if len(btable) > 1:
            sections.append(
                (
                    "Break-even volume",
                    [
                        "The break-even volume is the number of questions a month at which "
                        "the two monthly cost lines of the model above cross, i.e. where the "
                        "cheaper path changes. Below the cache-lifetime count every "
                        "long-context question writes the cache; above it each lifetime "
                        "pays one write and the rest are reads, so cached long context "
                        "costs lifetimes x write surcharge + volume x warm cost. When the "
                        "lines never cross, one path is cheaper at every volume and the "
                        "table says which."
                    ],
                    btable,
                )
            )

    tradeoff: dict[str, list[dict[str, Any]]] = s["threshold_tradeoff"]
    if tradeoff:
        paths = list(tradeoff)
        header = ["threshold"]
        for path in paths:
            label = "long context" if path == "long_context" else "retrieval"
            header += [f"{label}: refusal acc.", "false refusals", "accuracy"]
        ptable = [header]
        for i, point in enumerate(tradeoff[paths[0]]):
            current = point["threshold"] == settings["extractive_threshold"]
            row = [f"{point['threshold']:.3f}{' (current)' if current else ''}"]
            for path in paths:
                p = tradeoff[path][i]
                row += [
                    fmt(p["refusal_accuracy"], "pct"),
                    fmt(p["false_refusal_rate"], "pct"),
                    fmt(p["accuracy"], "pct"),
                ]
            ptable.append(row)
        sections.append(
            (
                "Refusal threshold trade-off",
                [
                    "The reader was re-run with its threshold at 0 to record each question's "
                    "best sentence score (`best_score` in results.jsonl); a question is refused "
                    "at threshold t when that score is below t. Refusal figures are exact; "
                    "accuracy assumes the chosen sentences do not change with the threshold."
                ],
                ptable,
            )
        )
    return sections


def _machine_note(machine: dict[str, Any] | None) -> str:
    if not machine:
        return ""
    return (
        f"Machine: {machine['cpus']} CPUs; 1-minute load average {machine['load_average_start']}"
        f" at the start of the run and {machine['load_average_end']} at the end (other work "
        "on the machine slows every figure here)."
    )


def render_markdown(summary: dict[str, Any], chart_names: Sequence[str]) -> str:
    """report.md: the sections as Markdown tables, charts linked from charts/."""
    lines = [f"# Long context or retrieval: {_title(summary)}", ""]
    if summary["offline_reader"]:
        lines += [
            f"> Answers come from the offline `{summary['backend']}` reader. All dollar "
            "figures are **projections from token counts**, not bills.",
            "",
        ]
    lines += [f"- {point}" for point in _headline(summary)] + [""]
    for heading, paragraphs, table in _sections(summary):
        lines += [f"## {heading}", ""]
        for paragraph in filter(None, paragraphs):
            lines += [paragraph, ""]
        if table:
            width = max(len(r) for r in table)
            lines.append("| " + " | ".join(table[0]) + " |")
            lines.append("|" + "---|" * len(table[0]))
            for row in table[1:]:
                cells = [c.replace("|", "\\|") for c in row] + [""] * (width - len(row))
                lines.append("| " + " | ".join(cells[: len(table[0])]) + " |")
            lines.append("")
    lines += ["## Charts", ""]
    for name in chart_names:
        lines += [f"![{CHART_TITLES.get(name, name)}](charts/{name}.svg)", ""]
    return "\n".join(lines)


def _title(summary: dict[str, Any]) -> str:
    return str(summary["title"])


def _headline(summary: dict[str, Any]) -> list[str]:
    """The findings in a few bullet points, from the numbers."""
    modes = {m: v for m, v in summary["modes"].items() if "accuracy" in v}
    if not modes:
        return ["No mode produced answers."]
    points = [
        "Accuracy: "
        + ", ".join(
            f"{MODE_LABELS.get(m, m)} {fmt(v['accuracy'], 'pct')}" for m, v in modes.items()
        )
        + "; median latency: "
        + ", ".join(
            f"{MODE_LABELS.get(m, m)} {fmt(v['latency_s']['p50'], 's')}" for m, v in modes.items()
        )
        + "."
    ]
    same = summary.get("long_context_rag_same_answer")
    if same is not None:
        points.append(
            f"Long context and retrieval gave the same answer on {fmt(same, 'pct')} of the "
            "questions."
        )
    recall = summary["retrieval_recall"]
    if recall:
        points.append(
            "Gold-document recall (all gold documents retrieved): "
            + ", ".join(f"@{k} {fmt(v['all_gold'], 'pct')}" for k, v in recall.items())
            + "."
        )
    for model, entry in summary["costs"]["models"].items():
        be = entry["break_even"].get("long_context_cached_vs_rag")
        if be:
            points.append(f"Projected on {model}: {be['explanation']}.")
    return points


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2rem auto;padding:0 1rem;color:#1d2433;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde;
padding-bottom:.2rem}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d5d9e2;padding:.3rem .55rem;text-align:right}
th{background:#f3f5f9;text-align:left}td:first-child,td.t{text-align:left}
svg{max-width:100%;height:auto}
.banner{background:#fff6dd;border:1px solid #e8c96a;padding:.6rem .8rem;border-radius:6px}
figure{margin:1.2rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
code{background:#f3f5f9;padding:0 .2rem;border-radius:3px}
"""


_NUMERIC = re.compile(r"^[-–$0-9.,]+(%| ms| s)?( \(.*\))?( escalated)?$")


def _align(cell: str) -> str:
    """Numbers align right (the default); words align left."""
    return "" if _NUMERIC.match(cell) else ' class="t"'


def render_html(summary: dict[str, Any], charts: dict[str, str]) -> str:
    """report.html: one file, CSS and SVG inline, no script and nothing fetched."""
    esc = html.escape

    def inline(text: str) -> str:
        parts = esc(text).split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)).replace(
            "**", ""
        )

    body = [f"<h1>Long context or retrieval: {esc(_title(summary))}</h1>"]
    if summary["offline_reader"]:
        body.append(
            f'<p class="banner">Answers come from the offline <code>{esc(summary["backend"])}'
            "</code> reader. All dollar figures are <strong>projections from token counts"
            "</strong>, not bills.</p>"
        )
    body.append("<ul>" + "".join(f"<li>{inline(p)}</li>" for p in _headline(summary)) + "</ul>")
    for heading, paragraphs, table in _sections(summary):
        body.append(f"<h2>{esc(heading)}</h2>")
        body += [f"<p>{inline(p)}</p>" for p in paragraphs if p]
        if table:
            head = "".join(f"<th>{esc(c)}</th>" for c in table[0])
            rows = "".join(
                "<tr>"
                + "".join(
                    f'<td colspan="{len(table[0]) - len(r) + 1}">{esc(c)}</td>'
                    if i == len(r) - 1 and len(r) < len(table[0])
                    else f"<td{_align(c)}>{esc(c)}</td>"
                    for i, c in enumerate(r)
                )
                + "</tr>"
                for r in table[1:]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    body.append("<h2>Charts</h2>")
    for name, svg in charts.items():
        body.append(
            f"<figure><figcaption>{esc(CHART_TITLES.get(name, name))}</figcaption>{svg}</figure>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Report: {esc(_title(summary))}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
