// Number, size, duration and time formatting; formatStat mirrors tasks/pages.py format_stat().
import { client, lang } from "./i18n.js";

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

// Seconds as m:ss.s, for a frame's time.
export function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

export function formatBytes(value) {
  let n = Number(value) || 0;
  let unit = 0;
  while (Math.abs(n) >= 1024 && unit < UNITS.length - 1) { n /= 1024; unit += 1; }
  return unit === 0 ? `${Math.round(n)}\u00a0B` : `${n.toFixed(1)}\u00a0${UNITS[unit]}`;
}

export function formatDuration(seconds, alwaysHours = false) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const mm = String(m).padStart(2, "0"), ss = String(s).padStart(2, "0");
  return h || alwaysHours ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
}

export function formatStat(key, value) {
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (key === "eta" || key.startsWith("eta_") || key.endsWith("_seconds")) return formatDuration(value);
    if (key === "speed") return `${value.toFixed(1)}×`; // ffmpeg: a multiple of real time
    if (key.endsWith("_speed") || key.endsWith("bytes_per_second")) return `${formatBytes(value)}/s`;
    if (key.endsWith("_per_second")) return `${value.toFixed(1)}/s`;
    if (key.endsWith("_size") || key.includes("bytes")) return formatBytes(value);
    return Number.isInteger(value) ? String(value) : value.toFixed(1);
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// [{key, label, value}] as tasks/pages.py stats_rows(): hidden keys and unknown (null) values left out.
export function statRows(stats) {
  const strings = client.strings || {};
  const labels = strings.stats || {};
  const hidden = strings.stats_hidden || [];
  const coded = strings.stat_values || {}; // values that are codes, e.g. sync_type "full": their labels
  const shown = (key, value) => (coded[key] && typeof value === "string" && coded[key][value]) || formatStat(key, value);
  return Object.entries(stats || {})
    .filter(([key, value]) => !hidden.includes(key) && !key.startsWith("_") && value !== null && value !== "")
    .map(([key, value]) => ({ key, label: labels[key] || key.replace(/_/g, " "), value: shown(key, value) }));
}

const relative = "RelativeTimeFormat" in Intl ? new Intl.RelativeTimeFormat(lang, { numeric: "auto" }) : null;
const absolute = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" });

export function relativeTime(iso) {
  const when = Date.parse(iso);
  if (!iso || Number.isNaN(when)) return "";
  const seconds = Math.round((when - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (!relative) return absolute.format(when);
  if (abs < 45) return relative.format(0, "second");
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

export function absoluteTime(iso) {
  const when = Date.parse(iso);
  return !iso || Number.isNaN(when) ? "—" : absolute.format(when);
}

// Fill <time data-relative> and <time data-absolute> below root from their datetime attribute.
export function refreshTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-relative]")) {
    const iso = el.getAttribute("datetime");
    if (!iso) continue;
    el.textContent = relativeTime(iso);
    el.title = absoluteTime(iso);
  }
  for (const el of root.querySelectorAll("time[data-absolute]")) {
    const iso = el.getAttribute("datetime");
    el.textContent = iso ? absoluteTime(iso) : "—";
  }
}
