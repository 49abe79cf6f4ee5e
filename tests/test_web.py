"""The web page at `/`, driven in headless Chromium (Debian's, through Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.search.embedding import Embedder
from kb.store.corpus import CorpusVersion
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.live_server import HANDBOOK, LiveServer, make_settings, serving

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed at /usr/bin/chromium "
        "(WITH_BROWSER=1 bash scripts/setup.sh installs it)",
    ),
]


@pytest.fixture(scope="module")
def data_dir(handbook: tuple[Path, Path]) -> Path:
    return handbook[1]


@pytest.fixture(scope="module")
def server(
    data_dir: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with serving(
        make_settings(tmp_path_factory.mktemp("web"), data_dir=data_dir), embedder
    ) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def save_screenshot(page: object, tmp_path: Path, name: str) -> Path:
    """Into the test's tmp dir, and a copy under test-artifacts/ (gitignored)."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    return path


def test_ask_a_question_and_see_cited_passages(
    server: LiveServer, browser: object, data_dir: Path, tmp_path: Path
) -> None:
    version = CorpusVersion.open(data_dir).version
    page = browser.new_page(viewport={"width": 1100, "height": 900})  # type: ignore[attr-defined]
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server.url + "/")

    # The corpus status loads on its own.
    status = page.locator("#status-grid")
    status.wait_for(state="visible", timeout=30_000)
    assert version in status.inner_text()
    assert str(len(HANDBOOK)) in status.inner_text()
    assert "auto would use long context" in page.locator("#status-route").inner_text()

    page.fill("#question", "When are production deploys frozen?")
    page.select_option("#mode", "rag")
    page.click("#ask")
    page.wait_for_selector("#result[data-state=done]", timeout=60_000)

    assert "Friday 15:00" in page.locator("#answer").inner_text()
    assert page.locator("#answer a.marker").first.get_attribute("href") == "#source-1"
    route = page.locator("#route").inner_text()
    assert "rag" in route and "retrieval was requested" in route
    citations = page.locator("#citations .citation")
    assert citations.count() >= 1
    first = citations.first.inner_text()
    assert "Deploys" in first and "engineering/deploys.md" in first and "chars " in first
    assert "Friday 15:00" in citations.first.locator("blockquote").inner_text()
    usage = page.locator("#usage").inner_text()
    assert "input tokens" in usage.lower() and version in usage
    assert page.locator("#error").is_hidden()
    shot = save_screenshot(page, tmp_path, "web-answer-rag.png")
    assert shot.stat().st_size > 10_000

    # auto on this small corpus reads it whole, from the cached prompt.
    page.fill("#question", "How long do access grants last?")
    page.select_option("#mode", "auto")
    page.click("#ask")
    # (a selector, not wait_for_function: the page's CSP forbids evaluating strings)
    page.locator("#result[data-state='done'] #answer:has-text('eight hours')").wait_for(
        timeout=60_000
    )
    assert "long context" in page.locator("#route .route-head").inner_text()
    save_screenshot(page, tmp_path, "web-answer-auto.png")

    # Nothing but our own origin was fetched: no CDN, no external assets.
    assert requests and all(url.startswith(server.url) for url in requests)
    page.close()


def test_errors_are_shown_on_the_page(server: LiveServer, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(server.url + "/")
    page.fill("#question", "x" * 600)  # over KB_MAX_QUESTION_CHARS of the test settings
    page.click("#ask")
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=30_000)
    assert "KB_MAX_QUESTION_CHARS" in error.inner_text()
    assert "422" in error.inner_text()
    page.close()


def test_a_follow_up_on_the_page_keeps_the_conversation(
    server: LiveServer, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 1000})  # type: ignore[attr-defined]
    page.goto(server.url + "/")
    page.select_option("#mode", "rag")
    for question in ("Who runs the access portal?", "How long do its grants last?"):
        page.fill("#question", question)
        page.click("#ask")
        # (a selector, not wait_for_function: the page's CSP forbids evaluating strings)
        page.locator(f"#turns .turn-user:has-text({question!r})").wait_for(timeout=60_000)
        page.locator("#result[data-state='done']").wait_for(timeout=60_000)
    turns = page.locator("#turns .turn")
    assert turns.count() == 4
    assert "eight hours" in page.locator("#answer").inner_text()
    asked_as = page.locator("#standalone").inner_text()
    assert "Who runs the access portal? How long do its grants last?" in asked_as
    assert "rag" in page.locator("#route .route-head").inner_text()
    assert "security/access.md" in page.locator("#citations .citation").first.inner_text()
    save_screenshot(page, tmp_path, "web-conversation.png")

    page.click("#new-conversation")
    assert page.locator("#conversation").is_hidden()
    page.close()


def test_api_docs_render_offline(server: LiveServer, browser: object, tmp_path: Path) -> None:
    """Swagger UI comes from the installed package: with every request to another
    origin aborted, the operations still render, and the favicon is ours."""
    context = browser.new_context()  # type: ignore[attr-defined]
    requests: list[str] = []
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(server.url) else route.abort()
        ),
    )
    page = context.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server.url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/query" in paths and "/v1/chat/completions" in paths
    assert "kb: a knowledge service" in page.locator(".title").first.inner_text()
    save_screenshot(page, tmp_path, "web-docs.png")
    assert requests and all(url.startswith(server.url) for url in requests)
    icon = page.request.get(server.url + "/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    context.close()
