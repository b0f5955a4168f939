// Drawing tasks from their JSON (the same shape as the API and the WebSocket send) into the
// markup the server rendered. Task data only ever goes in through textContent and attributes.
import { csrfToken, confirmDialog, toast } from "./chrome.js";
import { absoluteTime, formatBytes, formatDuration, refreshTimes, statRows } from "./format.js";
import { client, rule, t } from "./i18n.js";
import { taskSeen } from "./notify.js";

const BLANK_ID = "00000000-0000-0000-0000-000000000000";
const VIDEO = /\.(mp4|m4v|webm|mov|mkv|ogv)$/i;

const safeToken = (value) => String(value || "").replace(/[^a-z0-9_-]/gi, "");

function each(root, field, fn) {
  for (const el of root.querySelectorAll(`[data-f="${field}"]`)) fn(el);
}

function setText(root, field, text) {
  each(root, field, (el) => { if (el.textContent !== text) el.textContent = text; });
}

// As tasks/models.py search_form(): full-width letters and digits as plain ones, any case as lower.
function searchForm(text) {
  return (text || "").normalize("NFKC").toLowerCase();
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `${client.icons}#${name}`);
  svg.append(use);
  return svg;
}

// What a row or the progress card shows; tasks/pages.py summary() is the same: a finished task
// shows its error (or nothing), never a stale stage, speed or time left.
function summary(task) {
  const terminal = rule("terminal").includes(task.status);
  const stage = terminal ? "" : task.stage_label || "";
  let message;
  if (terminal) message = task.error ? task.error.message : "";
  else message = task.message === stage ? "" : task.message || "";
  const transient = [...(client.strings.stats_speed || []), ...(client.strings.stats_eta || [])];
  const stats = statRows(task.stats).filter((s) => !(terminal && transient.includes(s.key)));
  return { stage, message, stats };
}

// Every status change and stage adds to a task's timeline: an event whose timeline is shorter
// than the one already drawn is older (events from two processes may cross) and is dropped.
function isStale(root, task) {
  const version = (task.timeline || []).length;
  if (version < Number(root.dataset.version || 0)) return true;
  root.dataset.version = String(version);
  return false;
}

export function renderTask(root, task) {
  if (isStale(root, task)) return;
  taskSeen(task);
  root.dataset.status = safeToken(task.status);
  setText(root, "display_title", task.title || task.kind_label);
  setText(root, "kind_label", task.kind_label);
  each(root, "status_label", (badge) => {
    badge.textContent = task.status_label;
    badge.className = `badge badge--${safeToken(task.status)}`;
  });
  each(root, "progress", (bar) => { bar.value = Number(task.progress) || 0; });
  setText(root, "percent", `${Math.floor(Number(task.progress) || 0)}%`);
  const { stage, message, stats } = summary(task);
  each(root, "stage_label", (el) => { el.textContent = stage; el.hidden = !stage; });
  setText(root, "message", message);
  each(root, "created_at", (time) => time.setAttribute("datetime", task.created_at || ""));

  const first = (keys) => keys.map((key) => stats.find((s) => s.key === key)).find(Boolean);
  const speed = first(client.strings.stats_speed || []);
  const eta = first(client.strings.stats_eta || []);
  for (const [name, stat] of [["speed", speed], ["eta", eta]]) {
    for (const wrap of root.querySelectorAll(`[data-stat-wrap="${name}"]`)) {
      wrap.hidden = !stat;
      if (stat) wrap.querySelector(`[data-f="${name}"]`).textContent = stat.value;
    }
  }
  renderActions(root, task);
  if (root.matches("[data-task-detail]")) renderDetail(root, task, stats);
  refreshTimes(root);
}

function renderActions(root, task) {
  const show = {
    cancel: rule("cancellable").includes(task.status),
    retry: Boolean(task.retryable), // the server's word: a kind may allow more than the usual statuses
    delete: rule("deletable").includes(task.status),
  };
  for (const form of root.querySelectorAll("form[data-action]")) {
    const action = form.dataset.action;
    form.hidden = !show[action];
    if (action !== "cancel") continue;
    if (!show.cancel) delete form.dataset.pending; // finished: a later retry starts afresh
    const pending = "pending" in form.dataset;
    form.querySelector("button").disabled = pending;
    form.querySelector("[data-label]").textContent = t(pending ? "cancelling" : "cancel");
  }
  for (const link of root.querySelectorAll('[data-action="download"]')) {
    const outputs = task.outputs || [];
    link.hidden = outputs.length === 0;
    if (outputs.length === 1) link.href = safeUrl(outputs[0].url);
    else link.href = `/tasks/${encodeURIComponent(task.task_id)}/#files`;
  }
}

function renderDetail(root, task, stats) {
  if (task.error) setText(root, "message", ""); // the error has its own card
  each(root, "stats", (dl) => {
    dl.replaceChildren(...stats.map((s) => {
      const item = el("div", "stats__item");
      item.append(el("dt", "", s.label), el("dd", "", s.value));
      return item;
    }));
    dl.hidden = stats.length === 0;
  });
  each(root, "error", (section) => { section.hidden = !task.error; });
  setText(root, "error_message", task.error ? task.error.message : "");
  setText(root, "error_detail", task.error && task.error.detail ? task.error.detail : "");
  each(root, "error_detail_wrap", (wrap) => { wrap.hidden = !(task.error && task.error.detail); });

  const outputs = task.outputs || [];
  const hasResult = task.result !== null && task.result !== undefined;
  each(root, "results", (section) => { section.hidden = outputs.length === 0 && !hasResult; });
  each(root, "outputs", (list) => {
    const known = [...list.children].map((li) => li.dataset.outputId).join(",");
    if (known === outputs.map((o) => o.id).join(",") && list.children.length) return; // keep players playing
    list.replaceChildren(...outputs.map(renderOutput));
    list.hidden = outputs.length === 0;
  });
  each(root, "outputs_zip", (wrap) => { wrap.hidden = outputs.length < 2; });
  each(root, "result_wrap", (wrap) => { wrap.hidden = !hasResult; });
  setText(root, "result", hasResult ? JSON.stringify(task.result, null, 2) : "");
  setText(root, "attempts", String(task.attempts));
  setText(root, "max_attempts", String(task.max_attempts));
  setText(root, "priority", String(task.priority));
  setText(root, "timeout_text", formatDuration(task.timeout, true));
  for (const name of ["started_at", "finished_at", "expires_at"]) {
    each(root, name, (time) => {
      time.setAttribute("datetime", task[name] || "");
      time.textContent = absoluteTime(task[name]);
    });
  }
  each(root, "timeline", (list) => list.replaceChildren(...timelineItems(task.timeline)));
}

// Status changes and stage changes; a stage repeating the entry before it (the stage "running"
// right after the status "running") is left out, as tasks/pages.py timeline_rows() does.
function timelineItems(timeline) {
  const items = [];
  let previous = null;
  for (const entry of timeline || []) {
    if (!entry || typeof entry !== "object") continue;
    const isStatus = "status" in entry;
    const labels = (client.labels && client.labels[isStatus ? "statuses" : "stages"]) || {};
    const value = isStatus ? entry.status : entry.stage;
    const label = labels[value] || value;
    if (!isStatus && (!label || label === previous)) continue;
    previous = label;
    const item = el("li", `timeline__item timeline__item--${isStatus ? "status" : "stage"}`);
    item.dataset.value = safeToken(value);
    const time = el("time");
    time.setAttribute("datetime", entry.at || "");
    time.dataset.absolute = "";
    item.append(el("span", "timeline__label", label), time);
    items.push(item);
  }
  return items;
}

// Only same-site paths from the server become links (never javascript: or another origin).
const safeUrl = (url) => (typeof url === "string" && /^\/(?!\/)/.test(url) ? url : "#");

function renderOutput(output) {
  const item = el("li", "file");
  item.dataset.outputId = output.id;
  const media = output.media || {};
  const url = safeUrl(output.url);
  if (VIDEO.test(output.name || "") || (media.width && media.duration)) {
    const video = el("video", "file__player");
    video.controls = true;
    video.preload = "metadata";
    video.src = `${url}${url.includes("?") ? "&" : "?"}inline=1`;
    item.append(video);
  }
  const row = el("div", "file__row");
  const link = el("a", "btn btn--sm", t("download"));
  link.href = url;
  link.setAttribute("download", "");
  row.append(icon("file"), el("span", "file__name", output.name), el("span", "file__size muted", formatBytes(output.size)), link);
  item.append(row);
  return item;
}

// ---- the action buttons: with JavaScript they call the API and redraw in place --------------

export function initActions({ onDeleted }) {
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches("form[data-action][data-api]")) return;
    event.preventDefault();
    if (form.dataset.confirm && !(await confirmDialog(t(form.dataset.confirm)))) return;
    const button = form.querySelector("button");
    const root = form.closest("[data-task]");
    button.disabled = true;
    try {
      const response = await fetch(form.dataset.api, {
        method: form.dataset.method || "POST",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.status === 204) {
        onDeleted(root.dataset.taskId);
        return;
      }
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        toast(body && body.error ? body.error.message : t("server_error", { status: response.status }), "error");
        button.disabled = false;
        return;
      }
      if (form.dataset.action === "cancel" && !rule("terminal").includes(body.status)) form.dataset.pending = "1";
      button.disabled = false;
      renderTask(root, body);
    } catch {
      button.disabled = false;
      toast(t("network_error"), "error");
    }
  });
}

// ---- lists: rows update, new tasks appear at the top ------------------------------------------

export class TaskList {
  constructor(list) {
    this.list = list;
    this.container = list.parentElement;
    this.template = this.container.querySelector("template[data-row-template]") || document.querySelector("template[data-row-template]");
    this.empty = this.container.querySelector("[data-empty]");
    this.limit = Number(list.dataset.limit || list.dataset.pageSize || 20);
    this.prepend = !("noPrepend" in list.dataset);
    this.count = document.querySelector("[data-count]");
    // My tasks: the filters and the bulk buttons follow the rows (and the tasks on other pages,
    // counted by the server).
    this.filters = document.querySelector("[data-filters]");
    this.bulk = document.querySelector("[data-bulk]");
  }

  row(id) {
    return this.list.querySelector(`[data-task-id="${CSS.escape(id)}"]`);
  }

  matches(task) {
    const { status, kind, q } = this.list.dataset;
    return (!status || task.status === status) && (!kind || task.kind === kind)
      && (!q || searchForm(task.title).includes(searchForm(q)));
  }

  // What events did while a poll was on its way: its answer may be older than they are.
  noteEvent(id, version) {
    if (this.recent) this.recent.set(id, Math.max(this.recent.get(id) || 0, version));
  }

  update(task, { insert = true } = {}) {
    this.noteEvent(task.task_id, (task.timeline || []).length);
    let row = this.row(task.task_id);
    if (row && !this.matches(task)) {
      this.remove(task.task_id); // e.g. a task that finished, on a list of running tasks
      return;
    }
    if (!row) {
      if (!insert || !this.prepend || !this.matches(task) || !this.template) return;
      row = this.newRow(task.task_id);
      this.list.prepend(row);
      row.classList.add("is-new");
      setTimeout(() => row.classList.remove("is-new"), 2500);
      while (this.list.children.length > this.limit) this.pushOff(this.list.lastElementChild);
      this.bumpCount(1);
    }
    renderTask(row, task);
    this.syncEmpty();
  }

  newRow(id) {
    const row = this.template.content.firstElementChild.cloneNode(true);
    for (const node of [row, ...row.querySelectorAll("*")]) {
      for (const attr of ["href", "action", "data-api", "data-task-id"]) {
        const value = node.getAttribute(attr);
        if (value && value.includes(BLANK_ID)) node.setAttribute(attr, value.replaceAll(BLANK_ID, id));
      }
    }
    return row;
  }

  remove(id) {
    this.noteEvent(id, Infinity);
    const row = this.row(id);
    if (!row) return;
    row.remove();
    this.bumpCount(-1);
    this.syncEmpty();
  }

  bumpCount(delta) {
    if (this.count) this.count.textContent = String(Math.max(0, Number(this.count.textContent) + delta));
  }

  syncEmpty() {
    if (this.empty) this.empty.hidden = this.list.children.length > 0;
    if (this.filters && this.list.children.length) this.filters.hidden = false;
    if (this.bulk) this.syncBulk();
  }

  // A row that leaves the page for the next one still counts for the bulk buttons.
  pushOff(row) {
    if (this.bulk) {
      const key = rule("terminal").includes(row.dataset.status) ? "finishedElsewhere" : "unfinishedElsewhere";
      this.bulk.dataset[key] = String(Number(this.bulk.dataset[key] || 0) + 1);
    }
    row.remove();
  }

  syncBulk() {
    const statuses = [...this.list.children].map((row) => row.dataset.status);
    const finished = statuses.filter((s) => rule("terminal").includes(s)).length;
    const counts = {
      "delete-finished": finished + Number(this.bulk.dataset.finishedElsewhere || 0),
      "cancel-all": statuses.length - finished + Number(this.bulk.dataset.unfinishedElsewhere || 0),
    };
    for (const form of this.bulk.querySelectorAll("form[data-bulk-action]")) form.hidden = !counts[form.dataset.bulkAction];
    this.bulk.hidden = !counts["delete-finished"] && !counts["cancel-all"];
  }

  // While the socket is down: the same page of the API, drawn in its order.
  async poll() {
    const { status = "", kind = "", q = "", page = "1" } = this.list.dataset;
    const query = new URLSearchParams({ page, page_size: String(this.limit) });
    for (const [name, value] of Object.entries({ status, kind, q })) if (value) query.set(name, value);
    const recent = new Map();
    this.recent = recent;
    let body;
    try {
      const response = await fetch(`/api/tasks/?${query}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      body = await response.json();
    } finally {
      if (this.recent === recent) this.recent = null;
    }
    // A task an event touched meanwhile keeps what the event drew: no stale row comes back.
    const newer = (task) => recent.has(task.task_id) && recent.get(task.task_id) >= (task.timeline || []).length;
    const ids = new Set(body.items.map((task) => task.task_id));
    for (const row of [...this.list.children]) {
      if (!ids.has(row.dataset.taskId) && !recent.has(row.dataset.taskId)) row.remove();
    }
    for (const task of body.items) {
      let row = this.row(task.task_id);
      if (newer(task)) {
        if (row) this.list.append(row);
        continue;
      }
      if (!row) row = this.newRow(task.task_id);
      renderTask(row, task);
      this.list.append(row); // re-appending in API order keeps the page sorted
    }
    const goneSince = body.items.filter((task) => recent.get(task.task_id) === Infinity).length;
    if (this.count) this.count.textContent = String(body.count - goneSince);
    this.syncEmpty();
  }
}

// ---- the detail page ------------------------------------------------------------------------

export class TaskDetail {
  constructor(root) {
    this.root = root;
    this.id = root.dataset.taskId;
  }

  update(task) {
    if (task.task_id !== this.id || this.deleted) return;
    const finished = rule("terminal").includes(task.status);
    if (finished && this.root.dataset.status !== task.status) this.refreshResultTable();
    renderTask(this.root, task);
    if (this.onUpdate) this.onUpdate(task);
  }

  // A kind may draw its result as a table on the server (Processor.result_table): take it from
  // the page itself once the task has finished, so the table is drawn in one place.
  async refreshResultTable() {
    const slot = this.root.querySelector("[data-result-table][data-refresh]");
    if (!slot) return;
    try {
      const response = await fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const table = page.querySelector("[data-result-table]");
      if (!table) return;
      slot.replaceChildren(...[...table.childNodes].map((node) => document.importNode(node, true)));
      const raw = this.root.querySelector("[data-result-raw]");
      if (raw) raw.open = !slot.querySelector("table");
    } catch {
      // the JSON below still shows the result
    }
  }

  markDeleted() {
    this.deleted = true;
    this.root.querySelector("[data-deleted-flash]").hidden = false;
    for (const actions of this.root.querySelectorAll("[data-actions]")) actions.hidden = true;
  }

  async poll() {
    const response = await fetch(`/api/tasks/${encodeURIComponent(this.id)}/`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 404) this.markDeleted();
    else if (response.ok) this.update(await response.json());
  }
}
