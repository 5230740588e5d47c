// The review page: pages of records from /api/records, decisions to /api/decisions, charts from /api/stats;
// group.js draws one question's samples side by side beside the list. Record data is only ever written
// with textContent (never innerHTML), so a record holding HTML or a script shows as text. The filters
// (and the open group) live in the address's #hash, so a reload shows the same view.
"use strict";

const TOKEN = document.querySelector('meta[name="review-token"]').content;
const PAGE = 50;
// focus: the view that the keys act on, "list" or "group" (the side-by-side view's state is in group.js).
const state = { offset: 0, total: 0, rows: [], selected: 0, meta: null, busy: false, focus: "list" };

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function text(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function setStatus(message, isError) {
  const node = $("status");
  node.textContent = message;
  node.className = isError ? "error" : "";
}

async function api(path, options) {
  const headers = { "X-Review-Token": TOKEN };
  if (options && options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...(options || {}), headers });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// ---- filters <-> address
function filterParams() {
  const params = new URLSearchParams();
  for (const field of $("filters").elements) {
    if (field.name && field.value !== "") params.set(field.name, field.value);
  }
  return params;
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const field of $("filters").elements) {
    if (!field.name) continue;
    if (params.has(field.name)) field.value = params.get(field.name);
    else if (field.name === "stage") field.value = state.meta.default_stage;
    else field.value = field.tagName === "SELECT" ? field.options[0].value : "";
  }
  state.offset = Number(params.get("offset") || 0);
  return params;
}

function writeHash() {
  const params = filterParams();
  if (!params.has("stage")) params.set("stage", "");
  if (state.offset) params.set("offset", state.offset);
  if (group.open) { params.set("group", group.record); params.set("group_stage", group.stage); }
  history.replaceState(null, "", "#" + params.toString());
}

// ---- records
// Filters change faster than pages come back: only the latest request may draw, or an answer to an
// older filter that arrives late would overwrite the newer one.
let latestLoad = 0;

async function load(selectLast) {
  writeHash();
  const params = filterParams();
  params.set("offset", state.offset);
  params.set("limit", PAGE);
  const ticket = ++latestLoad;
  try {
    const page = await api("/api/records?" + params.toString());
    if (ticket !== latestLoad) return;
    state.total = page.total;
    state.rows = page.records;
    state.selected = selectLast ? Math.max(0, state.rows.length - 1) : 0;
    render();
  } catch (error) {
    setStatus(error.message, true);
  }
}

function render() {
  const first = state.total ? state.offset + 1 : 0;
  $("count").textContent =
    `${first}–${state.offset + state.rows.length} of ${state.total.toLocaleString()} records`;
  $("prev-page").disabled = state.offset === 0;
  $("next-page").disabled = state.offset + state.rows.length >= state.total;
  const list = $("records");
  list.replaceChildren(...state.rows.map((row, i) => card(row, i, "list")));
  select(state.selected, false);
}

// The views a card can sit in: the record list, and the side-by-side group (group.js).
const VIEWS = {
  list: { state: () => state, cards: "#records > .record" },
  group: { state: () => group, cards: "#group > .member" },
};

function cardNode(view, i) {
  return document.querySelector(`${VIEWS[view].cards}[data-index="${i}"]`);
}

function card(row, i, view) {
  const r = row.record;
  const d = row.decision;
  const node = el("li", { class: view === "group" ? "member" : "record", "data-index": i, "data-id": r.id || "" });
  node.addEventListener("click", () => { state.focus = view; select(i, false, view); });

  const badges = el("div", { class: "badges" },
    el("span", { class: "stage" }, row.stage),
    el("span", { class: "line" }, `line ${row.line}`),
    el("span", { class: "id" }, r.id),
    el("span", { class: r.kept === false ? "dropped" : "kept" },
      r.kept === false ? `dropped by ${text(r.dropped_by)}` : "kept"));
  if (d && d.status) badges.append(el("span", { class: "decision " + d.status }, d.status + (d.reason ? `: ${d.reason}` : "")));
  if (d && (d.answer !== null || d.rationale !== null)) badges.append(el("span", { class: "decision edited" }, "edited"));
  node.append(badges);
  if (view === "list") node.append(inputFields(r.input)); // the group shows its question once, above


  const rationale = d && d.rationale !== null ? d.rationale : r.rationale;
  const answer = d && d.answer !== null ? d.answer : r.answer;
  const gold = r.input ? r.input.answer : undefined;
  if (isPair(r)) node.append(pairSides(r, rationale, answer));
  else node.append(el("div", { class: "field rationale" }, el("h3", {}, "rationale"), el("pre", { class: "value" }, text(rationale))));
  if (d && d.rationale !== null) node.append(el("div", { class: "original" }, "original: ", el("span", {}, text(r.rationale))));
  const matches = gold !== undefined && answer !== null && String(answer).trim() === String(gold).trim();
  node.append(el("div", { class: "field answers" },
    el("span", {}, "answer ", el("b", { class: "answer " + (gold === undefined ? "" : matches ? "match" : "mismatch") }, text(answer))),
    el("span", {}, "gold ", el("b", { class: "gold" }, text(gold))),
    el("span", {}, "agreement ", el("b", { class: "agreement" }, r.agreement === null || r.agreement === undefined ? "—" : Number(r.agreement).toFixed(2)))));
  if (d && d.answer !== null) node.append(el("div", { class: "original" }, "original answer: ", el("span", {}, text(r.answer))));

  const verdicts = Object.entries(r.verdicts || {});
  if (verdicts.length) node.append(view === "group" ? verdictList(verdicts) : verdictTable(verdicts));

  const provenance = el("ul", { class: "provenance" });
  for (const p of r.provenance || []) {
    const who = [p.teacher, p.model].filter(Boolean).join("/");
    const template = p.template ? `${p.template}${p.template_hash ? " #" + p.template_hash : ""}` : "";
    provenance.append(el("li", {}, [p.stage, who, template, JSON.stringify(p.params || {})].filter(Boolean).join(" · ")));
  }
  const extra = el("details", {}, el("summary", {}, `provenance, ${(r.samples || []).length} samples, full record`), provenance);
  for (const [n, s] of (r.samples || []).entries()) {
    extra.append(el("pre", { class: "sample" }, `sample ${n}${s.error ? " (failed: " + s.error + ")" : ""}\n${s.text}`));
  }
  extra.append(el("pre", { class: "json" }, JSON.stringify(r, null, 2)));
  if (d && d.history && d.history.length) {
    extra.append(el("h3", {}, "review history"));
    const hist = el("ol", { class: "history" });
    for (const h of d.history) hist.append(el("li", {}, `${h.time} ${h.action}${h.reason ? ": " + h.reason : ""}`));
    extra.append(hist);
  }
  node.append(extra);

  const actions = el("div", { class: "actions" },
    el("button", { type: "button", class: "accept", onclick: () => decide(view, i, "accept") }, "accept (a)"),
    el("button", { type: "button", class: "reject", onclick: () => startReject(view, i) }, "reject (r)"),
    el("button", { type: "button", class: "edit", onclick: () => startEdit(view, i) }, "edit (e)"));
  if (view === "list") {
    // Not bubbling to the card's click, which would hand the keys back to the list.
    const open = (event) => { event.stopPropagation(); select(i, false, "list"); openGroup(row); };
    actions.append(el("button", { type: "button", class: "side-by-side", onclick: open }, "same question side by side (g)"));
  }
  node.append(actions);
  return node;
}

function score(v) {
  return v.score === null || v.score === undefined ? "—" : Number(v.score).toFixed(3);
}

function verdictTable(verdicts) {
  const table = el("table", { class: "verdicts" },
    el("tr", {}, el("th", {}, "critic"), el("th", {}, "verdict"), el("th", {}, "score"), el("th", {}, "reason")));
  for (const [critic, v] of verdicts) {
    table.append(el("tr", { class: v.passed ? "pass" : "fail" },
      el("td", {}, critic), el("td", {}, v.passed ? "pass" : "fail"), el("td", {}, score(v)), el("td", {}, text(v.reason))));
  }
  return table;
}

// A column of the side-by-side view is narrow: one wrapping line a critic instead of a table.
function verdictList(verdicts) {
  return el("ul", { class: "verdict-list" }, ...verdicts.map(([critic, v]) =>
    el("li", { class: v.passed ? "pass" : "fail" }, el("b", {}, critic), " ",
      el("span", { class: "verdict" }, v.passed ? "pass" : "fail"), ` ${score(v)}`, v.reason ? ` · ${text(v.reason)}` : "")));
}

// A preference pair (the pairs stage) holds its rejected completion in its input; its chosen completion is
// its own rationale and answer (so an edit changes the chosen side), written as the student learns it.
function isPair(r) {
  return Boolean(r.input) && typeof r.input.rejected === "string";
}

function pairSides(r, rationale, answer) {
  const provenance = r.provenance || [];
  const params = (provenance[provenance.length - 1] || {}).params || {};
  const chosen = rationale && answer !== null && answer !== undefined
    ? `${rationale}\nThe answer is ${answer}.` : text(rationale || answer);
  const side = (name, completion, info) => el("div", { class: "side " + name },
    el("h3", {}, info && info.from ? `${name}: ${info.from}` : name),
    el("pre", { class: "value" }, completion),
    info ? el("div", { class: "side-info" }, [info.model,
      info.answer === null || info.answer === undefined ? null : `answer ${info.answer}`,
      info.correct === true ? "right" : info.correct === false ? "wrong" : null].filter(Boolean).join(" · ")) : null);
  const method = params.method ? el("div", { class: "pair-method" }, `pair by ${params.method}`) : null;
  return el("div", { class: "field pair" }, method,
    el("div", { class: "sides" }, side("chosen", chosen, params.chosen), side("rejected", r.input.rejected, params.rejected)));
}

function inputFields(input) {
  const fields = el("dl", { class: "input" });
  for (const [key, value] of Object.entries(input || {})) {
    if (key === "answer" || (key === "rejected" && typeof value === "string")) continue;
    fields.append(el("dt", {}, key), el("dd", {}, text(value)));
  }
  return fields;
}

function select(i, scroll = true, view = "list") {
  const at = VIEWS[view].state();
  if (!at.rows.length) return;
  at.selected = Math.max(0, Math.min(i, at.rows.length - 1));
  for (const node of document.querySelectorAll(VIEWS[view].cards)) {
    node.classList.toggle("selected", Number(node.dataset.index) === at.selected);
  }
  const node = cardNode(view, at.selected);
  if (scroll && node) node.scrollIntoView({ block: "nearest", inline: "nearest" });
}

async function move(step) {
  if (state.focus === "group") return moveInGroup(step);
  const next = state.selected + step;
  if (next >= state.rows.length) {
    if (state.offset + state.rows.length < state.total) { state.offset += PAGE; await load(false); }
  } else if (next < 0) {
    if (state.offset > 0) { state.offset = Math.max(0, state.offset - PAGE); await load(true); }
  } else {
    select(next);
  }
}

// ---- decisions
async function decide(view, i, action, extra) {
  const row = VIEWS[view].state().rows[i];
  if (!row || state.busy) return;
  state.busy = true;
  try {
    const body = { record_id: row.record.id, stage: row.stage, action, ...(extra || {}) };
    row.decision = await api("/api/decisions", { method: "POST", body: JSON.stringify(body) });
    redraw(row);
    select(i, true, view);
    setStatus(`${action} saved for ${row.record.id}`, false);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    state.busy = false;
  }
}

// Draw again every card of this record (the list and the group may both show it) with its new decision.
function redraw(changed) {
  for (const view of Object.keys(VIEWS)) {
    VIEWS[view].state().rows.forEach((row, i) => {
      if (row.record.id !== changed.record.id || row.stage !== changed.stage) return;
      row.decision = changed.decision;
      const node = cardNode(view, i);
      if (node) node.replaceWith(card(row, i, view));
    });
    select(VIEWS[view].state().selected, false, view);
  }
  if (group.open) groupSummary();
}

function startReject(view, i) {
  select(i, true, view);
  const node = cardNode(view, i);
  if (!node || node.querySelector(".reject-form")) return;
  const reason = el("input", { type: "text", class: "reason", placeholder: "reason (optional), Enter to reject, Esc to cancel" });
  const form = el("form", { class: "reject-form" }, reason, el("button", { type: "submit" }, "reject"));
  form.addEventListener("submit", (event) => { event.preventDefault(); decide(view, i, "reject", { reason: reason.value }); });
  reason.addEventListener("keydown", (event) => { if (event.key === "Escape") { form.remove(); event.stopPropagation(); } });
  node.append(form);
  reason.focus();
}

function startEdit(view, i) {
  select(i, true, view);
  const node = cardNode(view, i);
  if (!node || node.querySelector(".edit-form")) return;
  const row = VIEWS[view].state().rows[i];
  const d = row.decision;
  const rationale = el("textarea", { class: "edit-rationale", rows: 5 });
  rationale.value = d && d.rationale !== null ? d.rationale : row.record.rationale || "";
  const answer = el("input", { type: "text", class: "edit-answer" });
  answer.value = d && d.answer !== null ? d.answer : row.record.answer || "";
  const form = el("form", { class: "edit-form" },
    el("label", {}, "rationale", rationale), el("label", {}, "answer", answer),
    el("button", { type: "submit" }, "save edit (Ctrl+Enter)"));
  const save = () => decide(view, i, "edit", { answer: answer.value, rationale: rationale.value });
  form.addEventListener("submit", (event) => { event.preventDefault(); save(); });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); save(); }
    if (event.key === "Escape") { form.remove(); event.stopPropagation(); }
  });
  node.append(form);
  rationale.focus();
}

// ---- statistics
async function showStats() {
  const stage = $("f-stage").value || state.meta.default_stage;
  try {
    const stats = await api("/api/stats?stage=" + encodeURIComponent(stage));
    const view = $("stats");
    view.replaceChildren(
      chart("Records per stage (kept of all)", stats.stages.map((s) => [s.stage, s.kept, s.records])),
      chart(`Pass rate per critic (${stats.stage})`, stats.critics.map((c) => [c.critic, c.passed, c.judged])),
      histogram(`Answer agreement (${stats.stage})`, stats.agreement, (x) => x.toFixed(1)),
      histogram(`Rationale length in words (${stats.stage})`, stats.rationale_words, (x) => String(x)),
      el("p", { class: "decisions" }, "Review decisions in this stage: " +
        (Object.entries(stats.decisions).map(([k, v]) => `${k} ${v}`).join(", ") || "none")));
  } catch (error) {
    setStatus(error.message, true);
  }
}

// One bar per row: [label, part, whole]; the bar shows part/whole.
function chart(title, rows) {
  const box = el("figure", { class: "chart" }, el("figcaption", {}, title));
  const width = 360, barHeight = 18, labelWidth = 170;
  const svg = svgEl("svg", { width: width + labelWidth + 220, height: rows.length * (barHeight + 6) + 4, role: "img" });
  rows.forEach(([label, part, whole], i) => {
    const y = i * (barHeight + 6);
    const share = whole ? part / whole : 0;
    svg.append(svgEl("text", { x: 0, y: y + 13, class: "label" }, label));
    svg.append(svgEl("rect", { x: labelWidth, y, width, height: barHeight, class: "whole" }));
    svg.append(svgEl("rect", { x: labelWidth, y, width: width * share, height: barHeight, class: "part" }));
    svg.append(svgEl("text", { x: labelWidth + width + 6, y: y + 13, class: "value" },
      `${part} / ${whole} (${(100 * share).toFixed(1)}%)`));
  });
  box.append(svg);
  return box;
}

function histogram(title, data, fmt) {
  const box = el("figure", { class: "chart" }, el("figcaption", {}, title));
  const max = Math.max(1, ...data.counts);
  const height = 120, barWidth = 58;
  const svg = svgEl("svg", { width: data.counts.length * barWidth + 20, height: height + 40, role: "img" });
  data.counts.forEach((count, i) => {
    const h = (height * count) / max;
    svg.append(svgEl("rect", { x: i * barWidth, y: height - h + 14, width: barWidth - 4, height: h, class: "part" }));
    svg.append(svgEl("text", { x: i * barWidth, y: 10, class: "value" }, String(count)));
    svg.append(svgEl("text", { x: i * barWidth, y: height + 30, class: "label" }, fmt(data.edges[i])));
  });
  box.append(svg);
  return box;
}

function svgEl(tag, attrs, content) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (content !== undefined) node.textContent = content;
  return node;
}

function showTab(stats) {
  $("records-view").hidden = stats;
  $("stats-view").hidden = !stats;
  $("tab-records").classList.toggle("active", !stats);
  $("tab-stats").classList.toggle("active", stats);
  if (stats) showStats();
}

// ---- keyboard
function onKey(event) {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (typing) {
    if (event.key === "Escape") document.activeElement.blur();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const actions = {
    j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
    n: () => $("next-page").click(), p: () => $("prev-page").click(),
    a: () => decide(state.focus, focused(), "accept"), r: () => startReject(state.focus, focused()),
    e: () => startEdit(state.focus, focused()), g: toggleGroup, x: closeGroup,
    "/": () => $("f-q").focus(), s: () => showTab($("stats-view").hidden), "?": () => $("help").showModal(),
  };
  const action = actions[event.key];
  if (action) { event.preventDefault(); action(); }
}

function focused() {
  return VIEWS[state.focus].state().selected;
}

async function main() {
  state.meta = await api("/api/meta");
  $("run-name").textContent = `${state.meta.run} (${state.meta.status})`;
  for (const stage of state.meta.stages) $("f-stage").append(el("option", { value: stage }, stage));
  for (const critic of state.meta.critics) {
    $("f-critic").append(el("option", { value: critic }, critic));
    $("f-sort").append(el("option", { value: "score:" + critic }, `score of ${critic}`));
  }
  const hash = readHash();
  let timer = null;
  $("filters").addEventListener("input", (event) => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.offset = 0; load(false); if (!$("stats-view").hidden) showStats(); },
      event.target.name === "q" ? 250 : 0);
  });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("prev-page").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); load(false); });
  $("next-page").addEventListener("click", () => { state.offset += PAGE; load(false); });
  $("tab-records").addEventListener("click", () => showTab(false));
  $("tab-stats").addEventListener("click", () => showTab(true));
  $("show-help").addEventListener("click", () => $("help").showModal());
  document.addEventListener("keydown", onKey);
  setupGroup();
  await load(false);
  if (hash.get("group")) await openGroup({ record: { id: hash.get("group") }, stage: hash.get("group_stage") || "" });
  document.body.dataset.ready = "1";
}

main().catch((error) => setStatus(error.message, true));
