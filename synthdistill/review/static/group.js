// The side-by-side view, beside the record list: every record of one stage that answers the same question
// as the record chosen in the list (from /api/group, paged like the list), one column each, with its
// answer, agreement, kept or dropped and verdicts. Its cards are app.js's, so accept, reject and edit work
// there as in the list. Loaded before app.js, whose helpers it calls once the page runs.
"use strict";

const GROUP_PAGE = 50;
// record and stage: the record the group was opened from; selected: the column the keys act on.
const group = { open: false, record: "", stage: "", offset: 0, total: 0, kept: 0, rows: [], selected: 0 };
let latestGroup = 0;

// Open the group of `row`'s question (a row of the list, or {record: {id}, stage} from the address).
async function openGroup(row) {
  Object.assign(group, { open: true, record: row.record.id, stage: row.stage, offset: 0, rows: [] });
  state.focus = "group";
  $("records-view").classList.add("grouped");
  $("group-view").hidden = false;
  fitGroup();
  await loadGroup(true);
}

// Keep the view in sight below the sticky filters, however many rows they wrap to.
function fitGroup() {
  const top = $("filters").offsetHeight + 8;
  $("group-view").style.top = `${top}px`;
  $("group-view").style.maxHeight = `calc(100vh - ${top + 12}px)`;
}

async function loadGroup(findAnchor) {
  const params = new URLSearchParams({ record: group.record, stage: group.stage, offset: group.offset, limit: GROUP_PAGE });
  const ticket = ++latestGroup;
  try {
    let page = await api("/api/group?" + params.toString());
    if (findAnchor && page.position >= page.offset + page.limit) {
      group.offset = page.position - (page.position % GROUP_PAGE);
      params.set("offset", group.offset);
      page = await api("/api/group?" + params.toString());
    }
    if (ticket !== latestGroup) return;
    Object.assign(group, { stage: page.stage, total: page.total, kept: page.kept, rows: page.records });
    const anchor = page.records.findIndex((r) => r.record.id === group.record);
    group.selected = findAnchor && anchor >= 0 ? anchor : 0;
    writeHash();
    renderGroup();
  } catch (error) {
    if (!group.rows.length) closeGroup(); // a record gone since (a re-run): back to the list alone
    setStatus(error.message, true);
  }
}

function renderGroup() {
  const first = group.total ? group.offset + 1 : 0;
  $("group-count").textContent =
    `${first}–${group.offset + group.rows.length} of ${group.total} records in ${group.stage} · ${group.kept} kept`;
  $("group-prev").disabled = group.offset === 0;
  $("group-next").disabled = group.offset + group.rows.length >= group.total;
  const question = group.rows.find((r) => r.record.id === group.record) || group.rows[0];
  $("group-question").replaceChildren(...(question ? [inputFields(question.record.input)] : []));
  $("group").replaceChildren(...group.rows.map((row, i) => {
    const node = card(row, i, "group");
    if (row.record.id === group.record) node.classList.add("anchor");
    return node;
  }));
  groupSummary();
  select(group.selected, state.focus === "group", "group");
}

// The answers of the columns shown, most frequent first, the gold one marked: the vote at a glance.
function groupSummary() {
  const counts = new Map();
  let gold;
  for (const { record: r, decision: d } of group.rows) {
    const answer = text(d && d.answer !== null ? d.answer : r.answer);
    counts.set(answer, (counts.get(answer) || 0) + 1);
    if (r.input && r.input.answer !== undefined) gold = String(r.input.answer).trim();
  }
  const parts = [...counts].sort((a, b) => b[1] - a[1])
    .map(([answer, n]) => `${answer} ×${n}${gold !== undefined && answer.trim() === gold ? " (gold)" : ""}`);
  $("group-answers").textContent = parts.length ? "answers: " + parts.join(", ") : "";
}

async function moveInGroup(step) {
  const next = group.selected + step;
  if (next >= group.rows.length) {
    if (group.offset + group.rows.length < group.total) { group.offset += GROUP_PAGE; await loadGroup(false); }
  } else if (next < 0) {
    if (group.offset > 0) {
      group.offset = Math.max(0, group.offset - GROUP_PAGE);
      await loadGroup(false);
      select(group.rows.length - 1, true, "group");
    }
  } else {
    select(next, true, "group");
  }
}

// g: from the list, open the selected record's group; from the group, go back to the list.
function toggleGroup() {
  if (state.focus === "group" && group.open) {
    state.focus = "list";
    select(state.selected, true, "list");
  } else if (state.rows[state.selected]) {
    openGroup(state.rows[state.selected]);
  }
}

function closeGroup() {
  if (!group.open) return;
  Object.assign(group, { open: false, rows: [] });
  ++latestGroup;
  state.focus = "list";
  $("group-view").hidden = true;
  $("records-view").classList.remove("grouped");
  $("group").replaceChildren();
  writeHash();
}

function setupGroup() {
  $("group-prev").addEventListener("click", () => { group.offset = Math.max(0, group.offset - GROUP_PAGE); loadGroup(false); });
  $("group-next").addEventListener("click", () => { group.offset += GROUP_PAGE; loadGroup(false); });
  $("group-close").addEventListener("click", closeGroup);
  window.addEventListener("resize", fitGroup);
}
