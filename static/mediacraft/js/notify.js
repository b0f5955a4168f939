// Opt-in browser notifications when one of my tasks finishes or fails (any page with the live
// connection). The choice is kept in localStorage; the browser's permission is asked on opt-in.
import { toast } from "./chrome.js";
import { lang, rule, t } from "./i18n.js";

const KEY = "mediacraft.notify";
const RECENT_MS = 20000;
const known = new Map(); // task id -> last status seen on this page
const notified = new Set();

const supported = () => "Notification" in window;
const enabled = () => supported() && localStorage.getItem(KEY) === "1" && Notification.permission === "granted";

function syncButtons() {
  for (const button of document.querySelectorAll("[data-notify-toggle]")) {
    button.hidden = !supported();
    const on = enabled();
    button.setAttribute("aria-pressed", String(on));
    button.querySelector("[data-label]").textContent = t(on ? "notify_on" : "notify_off");
  }
}

async function toggle() {
  if (!supported()) {
    toast(t("notify_unsupported"), "error");
    return;
  }
  if (enabled()) {
    localStorage.removeItem(KEY);
    toast(t("notify_disabled"));
  } else {
    const permission = Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
    if (permission === "granted") {
      localStorage.setItem(KEY, "1");
      toast(t("notify_enabled"));
    } else {
      toast(t("notify_blocked"), "error");
    }
  }
  syncButtons();
}

export function initNotifications() {
  for (const row of document.querySelectorAll("[data-task][data-task-id]")) known.set(row.dataset.taskId, row.dataset.status);
  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-notify-toggle]")) toggle();
  });
  window.addEventListener("storage", (event) => { if (event.key === KEY) syncButtons(); });
  syncButtons();
}

// Called for every task event; notifies once per task when it has just finished well or badly.
export function taskSeen(task) {
  const before = known.get(task.task_id);
  known.set(task.task_id, task.status);
  const ok = rule("finished_ok").includes(task.status);
  const bad = rule("finished_bad").includes(task.status);
  if (!(ok || bad) || before === task.status || notified.has(task.task_id)) return;
  // A task this page never saw running counts only if it finished just now.
  if (before === undefined && !(task.finished_at && Date.now() - Date.parse(task.finished_at) < RECENT_MS)) return;
  if (!enabled()) return;
  notified.add(task.task_id);
  const title = ok ? t("notify_completed") : task.status === "timeout" ? t("notify_timeout") : t("notify_failed");
  const body = [task.title || task.kind_label, task.error ? task.error.message : ""].filter(Boolean).join(" — ");
  const note = new Notification(title, { body, lang, tag: `mediacraft-${task.task_id}` });
  note.addEventListener("click", () => {
    window.focus();
    location.assign(`/tasks/${encodeURIComponent(task.task_id)}/`);
  });
}
