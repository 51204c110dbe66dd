// The dashboard: reads the gateway's own JSON APIs with the token the person signed in with.
// Every figure drawn in a chart is also written as text (totals, tables), so screen readers,
// tests and a copy-paste all see the same numbers the APIs return.
"use strict";

const TOKEN_KEY = "gateway-dashboard-token";
const DAY = 86400;
const GROUP_LABEL = { model: "model", project_id: "team", api_key_id: "key" };
const DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3], [1, 3], [10, 5]];
const PALETTE = ["#0a58ca", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f"];

const $ = (id) => document.getElementById(id);
// Embedding prices are fractions of a cent: small amounts keep three significant digits.
const usd = (value) => {
  const small = value !== 0 && Math.abs(value) < 0.01;
  const digits = small ? Math.min(12, 2 - Math.floor(Math.log10(Math.abs(value)))) : 2;
  return "$" + value.toFixed(digits);
};
const count = (value) => value.toLocaleString("en-US");
const percent = (value) => (value * 100).toFixed(1) + "%";
const isoDay = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 10);

// ------------------------------------------------------------------ talking to the gateway

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// A gateway with neither keys nor an internal token marks its page: its figures are open to
// anyone who can reach it, so there is nothing to sign in with.
const isOpen = () => document.body.dataset.auth === "off";

class Unauthorized extends Error {}

async function api(path) {
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401) throw new Unauthorized("the token was not accepted");
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

// For what only the internal token may read (keys, projects, the cache): null otherwise.
async function apiOrNull(path) {
  try {
    return await api(path);
  } catch (error) {
    return null;
  }
}

async function pages(path) {
  const buckets = [];
  let next = null;
  do {
    const page = await api(path + (next ? "&page=" + encodeURIComponent(next) : ""));
    buckets.push(...page.data);
    next = page.has_more ? page.next_page : null;
  } while (next);
  return buckets;
}

// ------------------------------------------------------------------ the range shown

function chosenRange() {
  const pressed = document.querySelector('.range[aria-pressed="true"]');
  return pressed ? pressed.dataset.range : "7";
}

function range() {
  const today = Math.floor(Date.now() / 1000 / DAY) * DAY;
  const choice = chosenRange();
  if (choice === "custom") {
    const from = Date.parse($("from").value) / 1000;
    const to = Date.parse($("to").value) / 1000 + DAY;
    if (Number.isFinite(from) && Number.isFinite(to) && to > from) return [from, to];
  }
  const days = choice === "today" ? 1 : Number(choice) || 7;
  return [today - (days - 1) * DAY, today + DAY];
}

function days([start, end]) {
  const result = [];
  for (let t = start; t < end; t += DAY) result.push(isoDay(t));
  return result;
}

// ------------------------------------------------------------------ data

// One row per (day, model, key, team) from each API; every figure is a sum over rows, so the
// usage rows (tokens, requests, inputs) and the cost rows (spend) can simply be concatenated.
function row(bucket, r, fields) {
  return {
    day: isoDay(bucket.start_time),
    // A usage row without a model: requests refused before their model was read.
    model: r.model || (r.line_item ? modelOf(r.line_item) : "(none)"),
    project_id: r.project_id || "none",
    api_key_id: r.api_key_id || "–",
    requests: 0, tokens: 0, inputs: 0, cached: 0, spent: 0, saved: 0, limited: 0, failed: 0,
    ...fields,
  };
}

function modelOf(lineItem) {
  return (lineItem || "–").replace(/, input$/, "");
}

function usageRows(buckets) {
  return buckets.flatMap((bucket) => bucket.results.map((r) => row(bucket, r, {
    requests: r.num_model_requests || 0,
    tokens: r.input_tokens || 0,
    inputs: r.inputs || 0,
    cached: r.cached_inputs || 0,
    saved: Number(r.saved_usd) || 0,
    limited: r.rate_limited || 0,
    failed: r.upstream_errors || 0,
  })));
}

function costRows(buckets) {
  return buckets.flatMap((bucket) => bucket.results.map((r) => row(bucket, r, {
    spent: Number(r.amount.value) || 0,
  })));
}

function sum(rows, field) {
  return rows.reduce((total, row) => total + row[field], 0);
}

function byDayAndGroup(rows, group, field) {
  const series = new Map();
  for (const row of rows) {
    const name = row[group];
    if (!series.has(name)) series.set(name, new Map());
    const perDay = series.get(name);
    perDay.set(row.day, (perDay.get(row.day) || 0) + row[field]);
  }
  return series;
}

// ------------------------------------------------------------------ drawing

const charts = {};

function datasetStyle(index, stacked) {
  const colour = PALETTE[index % PALETTE.length];
  return {
    backgroundColor: stacked ? colour + "cc" : colour,
    borderColor: colour,
    borderWidth: 2,
    borderDash: DASHES[index % DASHES.length],
    pointStyle: ["circle", "rect", "triangle", "rectRot", "cross", "star"][index % 6],
  };
}

function draw(id, type, labels, datasets, options = {}) {
  if (typeof Chart === "undefined") return; // the text tables carry every figure anyway
  if (charts[id]) charts[id].destroy();
  const stacked = type === "bar";
  charts[id] = new Chart($(id), {
    type,
    data: {
      labels,
      datasets: datasets.map((d, i) => ({ ...datasetStyle(i, stacked), ...d })),
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: { x: { stacked }, y: { stacked, beginAtZero: true, ...options.y } },
      plugins: { legend: { labels: { usePointStyle: true } } },
    },
  });
}

function table(id, head, rows, numeric) {
  const html = ['<div class="table-scroll"><table><thead><tr>'];
  head.forEach((h, i) => html.push(`<th scope="col"${numeric(i) ? ' class="num"' : ""}>${escape(h)}</th>`));
  html.push("</tr></thead><tbody>");
  for (const row of rows) {
    html.push("<tr>");
    row.forEach((cell, i) => html.push(`<td${numeric(i) ? ' class="num"' : ""}>${escape(cell)}</td>`));
    html.push("</tr>");
  }
  html.push("</tbody></table></div>");
  $(id).innerHTML = html.join("");
}

function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function total(perDay) {
  return [...perDay.values()].reduce((a, b) => a + b, 0);
}

// The chart's text alternative: what it adds up to, and by whom.
function summarise(id, text) {
  $(id).textContent = text;
}

function stackedPerDay(name, rows, group, field, format) {
  const labels = days(range());
  const series = byDayAndGroup(rows, group, field);
  const names = [...series.keys()].filter((n) => total(series.get(n)) !== 0).sort();
  draw(`${name}-chart`, "bar", labels, names.map((n) => ({
    label: `${GROUP_LABEL[group]} ${n}`,
    data: labels.map((day) => series.get(n).get(day) || 0),
  })), { y: { ticks: { callback: (value) => format(value) } } });
  const body = labels.map((day) => [day, ...names.map((n) => format(series.get(n).get(day) || 0))]);
  table(`${name}-table`, ["Day", ...names.map((n) => `${GROUP_LABEL[group]} ${n}`)], body, (i) => i > 0);
  const parts = names.map((n) => `${GROUP_LABEL[group]} ${n} ${format(total(series.get(n)))}`);
  summarise(`${name}-summary`, `${format(sum(rows, field))} in ${labels.length} day(s)` +
    (parts.length ? `: ${parts.join(", ")}.` : "."));
}

function hitRatio(rows) {
  const labels = days(range());
  const cached = byDayAndGroup(rows, "day", "cached");
  const inputs = byDayAndGroup(rows, "day", "inputs");
  const ratio = labels.map((day) => {
    const all = inputs.has(day) ? inputs.get(day).get(day) : 0;
    return all ? cached.get(day).get(day) / all : null;
  });
  draw("ratio-chart", "line", labels, [{ label: "cached share of inputs", data: ratio }], {
    y: { max: 1, ticks: { callback: (value) => percent(value) } },
  });
  table("ratio-table", ["Day", "Cached share"], labels.map((d, i) => [
    d, ratio[i] === null ? "no traffic" : percent(ratio[i]),
  ]), (i) => i > 0);
  const inputsAll = sum(rows, "inputs");
  summarise("ratio-summary", inputsAll
    ? `${percent(sum(rows, "cached") / inputsAll)} of ${count(inputsAll)} inputs from the cache.`
    : "No inputs in this range.");
}

// Two series told apart by name, line style and point shape, not by colour alone.
function refusals(rows) {
  const labels = days(range());
  const perDay = (field) => byDayAndGroup(rows, "day", field);
  const series = [["limited", "rate-limited (429)"], ["failed", "upstream errors"]].map(
    ([field, label]) => {
      const byDay = perDay(field);
      return { label, data: labels.map((day) => (byDay.has(day) ? byDay.get(day).get(day) : 0)) };
    });
  draw("refusals-chart", "line", labels, series, { y: { ticks: { precision: 0 } } });
  table("refusals-table", ["Day", "Rate-limited (429)", "Upstream errors"],
    labels.map((day, i) => [day, count(series[0].data[i]), count(series[1].data[i])]),
    (i) => i > 0);
  const limited = sum(rows, "limited");
  const failed = sum(rows, "failed");
  summarise("refusals-summary", `${count(limited)} rate-limited (429) and ` +
    `${count(failed)} upstream error${failed === 1 ? "" : "s"} in ${labels.length} day(s).`);
  $("empty-refusals").hidden = limited + failed > 0;
}

function setTotal(id, value, text) {
  $(id).textContent = text;
  $(id).dataset.value = String(value);
}

function totals(rows) {
  const inputs = sum(rows, "inputs");
  const ratio = inputs ? sum(rows, "cached") / inputs : null;
  setTotal("total-spend", sum(rows, "spent"), usd(sum(rows, "spent")));
  setTotal("total-saved", sum(rows, "saved"), usd(sum(rows, "saved")));
  setTotal("total-hit-ratio", ratio ?? "", ratio === null ? "–" : percent(ratio));
  setTotal("total-requests", sum(rows, "requests"), count(sum(rows, "requests")));
  setTotal("total-tokens", sum(rows, "tokens"), count(sum(rows, "tokens")));
  setTotal("total-rate-limited", sum(rows, "limited"), count(sum(rows, "limited")));
  setTotal("total-upstream-errors", sum(rows, "failed"), count(sum(rows, "failed")));
  $("empty-traffic").hidden = rows.length > 0;
}

function budgetCell(budget) {
  if (!budget) return "no budget";
  const used = Math.min(1, budget.spent_usd / budget.usd);
  return `<meter min="0" max="1" value="${used}" aria-label="budget used"></meter> ` +
    `${escape(usd(budget.spent_usd))} of ${escape(usd(budget.usd))} (${escape(percent(used))} used), ` +
    `${escape(budget.period)}, resets ${escape(budget.reset_at.slice(0, 10))}`;
}

function topSpenders(rows, budgets, names) {
  const ids = new Map([...names].map(([id, name]) => [name, id]));
  const spend = (group) => [...byDayAndGroup(rows, group, "spent")].map(([name, perDay]) => ({
    kind: GROUP_LABEL[group],
    name,
    spent: [...perDay.values()].reduce((a, b) => a + b, 0),
  }));
  const top = [...spend("api_key_id"), ...spend("project_id")]
    .sort((a, b) => b.spent - a.spent)
    .slice(0, 10);
  const rowsHtml = top.map((t) => {
    const owner = t.kind === "key" ? ids.get(t.name) || t.name : t.name;
    const budget = budgets.get(`${t.kind}:${owner}`);
    return `<tr><td>${escape(t.kind)}</td><td>${escape(t.name)}</td>` +
      `<td class="num">${escape(usd(t.spent))}</td><td>${budgetCell(budget)}</td></tr>`;
  });
  $("top").innerHTML = top.length
    ? '<div class="table-scroll"><table><thead><tr><th scope="col">Kind</th><th scope="col">Name' +
      '</th><th scope="col" class="num">Spent</th><th scope="col">Budget</th></tr></thead><tbody>' +
      rowsHtml.join("") + "</tbody></table></div>"
    : "";
  $("empty-budgets").hidden = budgets.size > 0;
}

function cacheTable(list) {
  if (!list || !list.data.length) {
    $("cache").innerHTML = '<p class="empty">Nothing cached yet, or this token may not see ' +
      "the cache (it needs the internal token).</p>";
    return;
  }
  table("cache", ["Model", "Entries", "Bytes", "Hits", "Misses", "Hit ratio"],
    list.data.map((m) => [
      m.model,
      (m.estimated ? "≈" : "") + count(m.entries),
      (m.estimated ? "≈" : "") + count(m.bytes),
      count(m.hits),
      count(m.misses),
      m.hit_ratio === null ? "–" : percent(m.hit_ratio),
    ]), (i) => i > 0);
}

// ------------------------------------------------------------------ budgets

function budgetOf(owner) {
  if (!owner.budget || !owner.budget_usage) return null;
  return {
    usd: Number(owner.budget.usd),
    period: owner.budget.period,
    spent_usd: Number(owner.budget_usage.spent_usd),
    reset_at: owner.budget_usage.resets_at,
  };
}

// Budgets and key names: only the internal token may list keys and projects; a key sees
// its own figures by id, without budgets (its budget comes back on every embeddings response).
async function owners() {
  const budgets = new Map();
  const names = new Map();
  const keys = await apiOrNull("/v1/organization/api_keys?limit=100");
  const projects = await apiOrNull("/v1/organization/projects?limit=100");
  for (const key of keys ? keys.data : []) {
    names.set(key.id, key.name);
    if (budgetOf(key)) budgets.set(`key:${key.id}`, budgetOf(key));
  }
  for (const project of projects ? projects.data : []) {
    if (budgetOf(project)) budgets.set(`team:${project.id}`, budgetOf(project));
  }
  return { budgets, names, organisation: keys !== null || projects !== null };
}

// ------------------------------------------------------------------ the page

// Each load draws only if no later one started meanwhile (a person may press ranges quickly).
let generation = 0;

async function load(start, end) {
  const query = `start_time=${start}&end_time=${end}&bucket_width=1d&limit=31`;
  const groups = "group_by=model,api_key_id,project_id";
  const { budgets, names, organisation } = await owners();
  const rows = [
    ...usageRows(await pages(`/v1/organization/usage/embeddings?${query}&${groups}`)),
    ...costRows(await pages(`/v1/organization/costs?${query}&group_by=line_item,api_key_id,project_id`)),
  ].map((r) => ({ ...r, api_key_id: names.get(r.api_key_id) || r.api_key_id }));
  const cache = await apiOrNull("/v1/organization/cache");
  return { budgets, names, organisation, rows, cache };
}

async function show() {
  const mine = ++generation;
  const [start, end] = range();
  const group = $("group").value;
  document.body.dataset.loaded = "";
  $("status").textContent = "Loading…";
  const data = await load(start, end);
  if (mine !== generation) return;
  $("who").textContent = isOpen()
    ? "This gateway has no API keys and no internal token: its figures are open to anyone " +
      "who can reach it. Set auth.internal_token to require a sign-in."
    : data.organisation
      ? "Signed in with the internal token: the whole organisation."
      : "Signed in with an API key: its own figures only.";
  totals(data.rows);
  stackedPerDay("spend", data.rows, group, "spent", usd);
  stackedPerDay("saved", data.rows, group, "saved", usd);
  hitRatio(data.rows);
  refusals(data.rows);
  topSpenders(data.rows, data.budgets, data.names);
  cacheTable(data.cache);
  $("status").textContent = `Showing ${isoDay(start)} to ${isoDay(end - DAY)} (UTC).`;
  document.body.dataset.range = chosenRange();
  document.body.dataset.loaded = "true";
}

async function refresh() {
  try {
    await show();
  } catch (error) {
    if (error instanceof Unauthorized) return signOut("That token was not accepted.");
    $("status").textContent = "Could not load: " + error.message;
  }
}

function signedIn() {
  $("sign-in").hidden = true;
  $("main").hidden = false;
  $("sign-out").hidden = isOpen();
  $("skip").hidden = false;
  $("main").focus({ preventScroll: true }); // the sign-in form is gone: the next Tab reaches the range buttons
  refresh();
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  document.body.dataset.loaded = "";
  $("sign-in").hidden = false;
  $("main").hidden = true;
  $("sign-out").hidden = true;
  $("skip").hidden = true;
  $("sign-in-error").textContent = message;
  $("token").focus();
}

// Buttons answer Enter and Space by themselves; the pressed one is the range shown.
function chooseRange(button) {
  for (const other of document.querySelectorAll(".range")) {
    other.setAttribute("aria-pressed", String(other === button));
  }
  const custom = button.dataset.range === "custom";
  $("custom-range").hidden = !custom;
  if (custom) $("from").focus();
  else refresh();
}

function start() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    signedIn();
  });
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  for (const button of document.querySelectorAll(".range")) {
    button.addEventListener("click", () => chooseRange(button));
  }
  $("group").addEventListener("change", refresh);
  $("sign-out").addEventListener("click", () => signOut());
  if (isOpen() || token()) signedIn();
}

document.addEventListener("DOMContentLoaded", start);
