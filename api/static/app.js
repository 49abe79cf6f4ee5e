// The kb web page: corpus status, a question form, and the streamed answer with its
// route, usage and cited passages. Plain JS, no build step, no external assets.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "kb.apiKey";

function headers(json) {
  const h = json ? { "Content-Type": "application/json" } : {};
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fillGrid(grid, pairs) {
  grid.replaceChildren();
  for (const [name, value, className] of pairs) {
    const item = el("div", "item");
    item.append(el("dt", "", name), el("dd", className || "", value));
    grid.append(item);
  }
}

const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : String(n));
const when = (iso) => {
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
};
const seconds = (s) => (typeof s === "number" ? (s * 1000).toFixed(0) + " ms" : "–");

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${body.error.message} (${response.status} ${body.error.type})`;
  } catch (_) { /* not JSON */ }
  return `The service answered ${response.status} ${response.statusText}.`;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// ---- knowledge bases (issue 19): the selector, and the routes of the chosen one ----
const kbName = () => $("kb").value || "default";
const kbPath = (tail) =>
  kbName() === "default" ? { query: "/v1/query", status: "/v1/corpus" }[tail]
    : `/v1/kbs/${encodeURIComponent(kbName())}` + (tail === "query" ? "/query" : "");

async function loadKbs() {
  // The knowledge bases this key may read; the selector shows when there is a choice.
  const select = $("kb");
  const chosen = select.value;
  try {
    const response = await fetch("/v1/kbs", { headers: headers(false) });
    if (!response.ok) return;
    const names = (await response.json()).data.map((kb) => kb.name);
    select.replaceChildren(...names.map((name) => el("option", "", name)));
    if (names.includes(chosen)) select.value = chosen;
    $("kb-label").hidden = names.length < 2 && names[0] === "default";
  } catch (_) { /* the status line says what is wrong */ }
}
// ---- end knowledge bases ----

async function loadStatus() {
  const text = $("status-text");
  try {
    const response = await fetch(kbPath("status"), { headers: headers(false) });
    if (!response.ok) {
      text.textContent = await errorMessage(response);
      text.className = "error-inline";
      $("status-grid").hidden = true;
      $("status-route").hidden = true;
      return;
    }
    const s = await response.json();
    text.hidden = true;
    if (!s.auto_route) {  // a named knowledge base with nothing ingested yet
      text.textContent = `Nothing is ingested into ${kbName()} yet.`;
      text.hidden = false;
      $("status-grid").hidden = true;
      $("status-route").hidden = true;
      return;
    }
    fillGrid($("status-grid"), [
      ["Documents", fmt(s.documents)],
      ["Chunks", fmt(s.chunks)],
      ["Tokens", fmt(s.corpus_tokens)],
      ["Version", s.corpus_version, "mono"],
      s.last_ingest ? ["Last ingest", when(s.last_ingest)] : ["Knowledge base", s.name],
      s.backend ? ["Backend", s.backend] : ["Loaded", s.loaded ? "yes" : "not yet"],
    ]);
    $("status-grid").hidden = false;
    const hint = $("status-route");
    hint.replaceChildren(
      el("strong", "", `auto would use ${s.auto_route.path.replace("_", " ")}: `),
      document.createTextNode(s.auto_route.reason),
    );
    if (s.ingest_running) hint.append(el("em", "", " (a re-index is running)"));
    hint.hidden = false;
  } catch (err) {
    text.textContent = "Could not reach the service: " + err;
  }
}

function renderAnswerText(text) {
  // "[n]" markers become links to the n-th source.
  const answer = $("answer");
  answer.replaceChildren();
  const parts = text.split(/(\[\d+\])/);
  for (const part of parts) {
    const match = /^\[(\d+)\]$/.exec(part);
    if (match) {
      const link = el("a", "marker", part);
      link.href = "#source-" + match[1];
      answer.append(link);
    } else if (part) {
      answer.append(document.createTextNode(part));
    }
  }
}

function renderRoute(route) {
  const box = $("route");
  box.replaceChildren();
  const head = el("p", "route-head");
  head.append(el("span", "badge path-" + route.path, route.path.replace("_", " ")));
  head.append(el("span", "badge muted-badge", "mode " + route.mode));
  if (route.fallback) head.append(el("span", "badge warn", "escalated"));
  box.append(head, el("p", "reason", route.reason));
}

function renderUsage(a) {
  const u = a.usage;
  const t = a.timings || {};
  const pairs = [
    ["Input tokens", fmt(u.input_tokens)],
    ["Cache read", fmt(u.cache_read_tokens)],
    ["Cache write", fmt(u.cache_write_tokens)],
    ["Output tokens", fmt(u.output_tokens)],
    ["Cost", a.cost_usd === null ? "unknown" : "$" + a.cost_usd.toFixed(6)],
    ["Total time", seconds(t.total_s)],
  ];
  if (t.retrieve_s !== undefined) pairs.push(["Retrieval", seconds(t.retrieve_s)]);
  if (t.generate_s !== undefined) pairs.push(["Answering", seconds(t.generate_s)]);
  pairs.push(["Backend", a.backend], ["Corpus version", a.corpus_version, "mono"]);
  fillGrid($("usage"), pairs);
}

function renderCitations(citations) {
  const list = $("citations");
  list.replaceChildren();
  $("citations-title").textContent = citations.length ? "Sources" : "No sources cited";
  for (const c of citations) {
    const item = el("li", "citation");
    item.id = "source-" + c.number;
    const head = el("div", "citation-head");
    head.append(el("span", "number", `[${c.number}]`), el("span", "title", c.title));
    const meta = el("div", "citation-meta");
    meta.append(
      el("span", "source", c.source),
      el("span", "span", `chars ${c.start}–${c.end}`),
    );
    if (c.score !== null && c.score !== undefined) {
      meta.append(el("span", "score", "score " + c.score.toFixed(2)));
    }
    item.append(head, meta, el("blockquote", "", c.text));
    list.append(item);
  }
}

// The conversation so far: {role, content} turns, oldest first, sent as `history`.
const HISTORY_TURNS = 20;
let history = [];

function renderConversation() {
  const list = $("turns");
  list.replaceChildren();
  for (const turn of history) {
    const item = el("li", "turn turn-" + turn.role);
    item.append(el("span", "turn-role", turn.role === "user" ? "You" : "kb"));
    item.append(el("span", "turn-text", turn.content));
    list.append(item);
  }
  $("conversation").hidden = history.length === 0;
}

function renderStandalone(a) {
  const box = $("standalone");
  box.hidden = !a.standalone_question;
  if (!a.standalone_question) return;
  const how = a.standalone_method === "rewrite" ? "rewritten by the model" : "with the recent questions";
  box.replaceChildren(
    el("span", "label-inline", "Asked as: "),
    el("q", "standalone-question", a.standalone_question),
    el("span", "muted", ` (${how})`),
  );
}

function render(answerJson) {
  renderAnswerText(answerJson.answer);
  renderStandalone(answerJson);
  $("answer").classList.toggle("refused", answerJson.refused);
  renderRoute(answerJson.route);
  renderUsage(answerJson);
  renderCitations(answerJson.citations);
  $("result").hidden = false;
  $("result").dataset.state = "done";
}

// Reads a text/event-stream body: calls onEvent(name, data) per frame.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) {
    showError("Type a question first.");
    return;
  }
  const body = { question, mode: $("mode").value, stream: true };
  if (history.length) body.history = history.slice(-HISTORY_TURNS);
  const topK = $("top-k").value.trim();
  if (topK) body.top_k = Number(topK);

  showError("");
  const button = $("ask");
  button.disabled = true;
  button.textContent = "Thinking…";
  $("result").dataset.state = "pending";
  let streamed = "";
  try {
    const response = await fetch(kbPath("query"), {
      method: "POST",
      headers: headers(true),
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      showError(await errorMessage(response));
      return;
    }
    await readEvents(response, (name, data) => {
      if (name === "delta") {
        streamed += data.text;
        renderAnswerText(streamed);
        $("result").hidden = false;
      } else if (name === "answer") {
        render(data);
        history.push({ role: "user", content: question }, { role: "assistant", content: data.answer });
        renderConversation();
        $("question").value = "";
      } else if (name === "error") {
        showError(`${data.error.message} (${data.error.type})`);
      }
    });
  } catch (err) {
    showError("The request failed: " + err);
  } finally {
    button.disabled = false;
    button.textContent = "Ask";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const keyInput = $("api-key");
  // The key lives for this tab's session only: never written to disk (localStorage).
  localStorage.removeItem(KEY_STORAGE);
  keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
  keyInput.addEventListener("change", async () => {
    sessionStorage.setItem(KEY_STORAGE, keyInput.value.trim());
    await loadKbs();
    loadStatus();
  });
  $("kb").addEventListener("change", () => {  // another knowledge base: a new conversation
    history = [];
    renderConversation();
    $("result").hidden = true;
    loadStatus();
  });
  $("ask-form").addEventListener("submit", ask);
  $("new-conversation").addEventListener("click", () => {
    history = [];
    renderConversation();
    $("result").hidden = true;
    $("question").focus();
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("ask-form").requestSubmit();
  });
  loadKbs().then(loadStatus);
});
