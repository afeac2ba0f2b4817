// The reasonrec page: pick a user, show the history, both modes side by side, and the per-arm panel.
// Everything user- or model-provided is written with textContent (never innerHTML).
"use strict";

const state = { config: null, users: [], later: new Set() };
const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

async function getJson(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = { detail: response.statusText }; }
  return { ok: response.ok, status: response.status, body };
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

function itemLine(item) {
  const li = el("li");
  li.appendChild(el("span", item.title));
  const details = [item.year, (item.genres || []).join(", ")].filter(Boolean).join(" · ");
  if (details) li.appendChild(el("div", details, "item-meta"));
  return li;
}

function showProfile(user) {
  $("profile").hidden = false;
  $("history-meta").textContent = `user ${user.user_id}: ${user.history.length} items, from ${user.history_source}` +
    `; A/B arm ${user.arm}` + (user.cached_cot ? "; CoT cached" : "; no cached CoT");
  const notes = $("user-notes");
  notes.hidden = user.notes.length === 0;
  notes.textContent = user.notes.join(" ");
  const history = $("history");
  history.replaceChildren(...user.history.slice().reverse().map(itemLine));
  state.later = new Set(user.later.map((item) => item.item_id));
  const later = $("later");
  later.replaceChildren(...(user.later.length ? user.later.map(itemLine) :
    [el("li", state.config.split ? "none" : "no split folder configured (ui.split_dir)", "muted")]));
}

function labelPattern(label) {
  // "Step 1, behavioural evidence" also matches a tokenised "step 1 , behavioural evidence :" (the tiny policy's).
  const parts = label.match(/\w+|[^\w\s]/g).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(parts.join("\\s*") + "\\s*:?", "i");
}

function splitStages(raw, labels) {
  // [[label, body]...] in text order; text outside the labelled stages becomes one "Reasoning" block.
  const text = raw.replace(/<answer>[\s\S]*?<\/answer>/g, "").replace(/<\/?think>/g, "");
  const found = [];
  labels.forEach((label) => {
    const match = labelPattern(label).exec(text);
    if (match) found.push([label, match.index, match[0].length]);
  });
  found.sort((a, b) => a[1] - b[1]);
  if (found.length === 0) return [["Reasoning", text.trim()]];
  const stages = [];
  if (text.slice(0, found[0][1]).trim()) stages.push(["Reasoning", text.slice(0, found[0][1]).trim()]);
  found.forEach(([label, at, length], i) => {
    const end = i + 1 < found.length ? found[i + 1][1] : text.length;
    stages.push([label, text.slice(at + length, end).trim()]);
  });
  return stages;
}

function showCot(column, explanation) {
  const box = column.querySelector(".cot");
  if (!box) return;
  if (!explanation) {
    box.replaceChildren(el("p", "No chain of thought for this answer.", "muted"));
    return;
  }
  const blocks = splitStages(explanation, state.config.stage_labels).map(([label, body]) => {
    const details = el("details");  // folded by default
    details.appendChild(el("summary", label));
    details.appendChild(el("p", body));
    return details;
  });
  box.replaceChildren(el("h3", "Chain of thought"), ...blocks);
}

function showAnswer(column, result) {
  column.hidden = false;
  const meta = column.querySelector(".meta");
  const items = column.querySelector(".items");
  if (!result.ok) {
    meta.replaceChildren(el("span", `HTTP ${result.status}: ${result.body.detail}`, "error"));
    items.replaceChildren();
    showCot(column, null);
    return;
  }
  const body = result.body;
  const parts = [el("span", `arm ${body.arm}`, "badge"), el("span", ` ${body.mode_used} · ${body.path} · `),
    el("span", `${body.latency_ms.toFixed(1)} ms`), el("span", ` · model ${body.model_version} `)];
  if (body.fallback) parts.push(el("span", `fallback: ${body.fallback}`, "badge fallback"));
  meta.replaceChildren(...parts);
  items.replaceChildren(...body.items.map((item) => {
    const li = el("li", null, state.later.has(item.item_id) ? "hit" : "");
    li.appendChild(el("span", item.title));
    li.appendChild(el("span", item.score.toFixed(3), "score"));
    li.dataset.itemId = item.item_id;
    return li;
  }));
  showCot(column, body.explanation);
}

async function recommend(mode, userId, k) {
  const arm = state.config.columns[mode];
  const column = $(mode);
  column.querySelector(".arm-name").textContent = arm ? `(arm ${arm})` : "(no arm serves it)";
  if (!arm) {
    column.hidden = false;
    column.querySelector(".meta").replaceChildren(el("span", `no arm of this experiment serves ${mode} mode`,
      "muted"));
    return;
  }
  const result = await getJson("/v1/recommend", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Reasonrec-Arm": arm },
    body: JSON.stringify({ user_id: userId, k: k, mode: mode, explain: mode === "reasoning" }),
  });
  showAnswer(column, result);
}

async function showUser(userId) {
  const k = Number($("k").value);
  setStatus(`Loading user ${userId}…`);
  const user = await getJson(`/ui/api/users/${encodeURIComponent(userId)}`);
  if (!user.ok) {
    setStatus(`User ${userId}: ${user.body.detail}`, true);
    return;
  }
  showProfile(user.body);
  await Promise.all([recommend("direct", userId, k), recommend("reasoning", userId, k)]);
  setStatus(`User ${userId}: ${state.later.size} later items; matches are marked ✓.`);
  await refreshArms();
}

function cell(value, digits) {
  if (value === null || value === undefined) return el("td", "–");
  return el("td", typeof value === "number" && digits !== undefined ? value.toFixed(digits) : String(value));
}

async function refreshArms() {
  const result = await getJson("/ui/api/arms");
  if (!result.ok) return;
  $("arm-rows").replaceChildren(...result.body.arms.map((a) => {
    const row = el("tr");
    row.dataset.arm = a.arm;
    row.append(cell(a.arm), cell(a.mode), cell(a.requests), cell(a.p50_ms, 1), cell(a.p99_ms, 1),
      cell(a.fallback_rate, 3), cell(a.exposures), cell(a.clicks), cell(a.ctr, 3));
    return row;
  }));
}

async function loadUsers(prefix) {
  const result = await getJson(`/ui/api/users?prefix=${encodeURIComponent(prefix || "")}`);
  if (!result.ok) return;
  state.users = result.body.users;
  $("users").replaceChildren(...state.users.map((id) => { const o = el("option"); o.value = id; return o; }));
}

async function start() {
  const config = await getJson("/ui/api/config");
  if (!config.ok) {
    setStatus(`The service is not ready: ${config.body.detail}`, true);
    return;
  }
  state.config = config.body;
  $("experiment").textContent = `experiment ${state.config.experiment}: ` +
    state.config.arms.map((a) => `${a.name} (${a.mode}, ${a.engine}, weight ${a.weight})`).join(", ");
  await Promise.all([loadUsers(""), refreshArms()]);
  $("pick").addEventListener("submit", (event) => {
    event.preventDefault();
    const userId = $("user").value.trim();
    if (userId) showUser(userId);
  });
  $("random").addEventListener("click", () => {
    if (state.users.length === 0) return;
    $("user").value = state.users[Math.floor(Math.random() * state.users.length)];
    showUser($("user").value);
  });
  const fromUrl = new URLSearchParams(window.location.search).get("user");
  if (fromUrl) {
    $("user").value = fromUrl;
    showUser(fromUrl);
  }
  setInterval(refreshArms, 5000);
}

start();
