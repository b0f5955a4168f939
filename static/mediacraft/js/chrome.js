// Page chrome: the "Mine" menu, dismissible flashes, toasts, the confirm dialog, copy buttons.
import { t } from "./i18n.js";

export function el(tag, className, attrs = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

export function csrfToken() {
  // The cookie first: a visitor's first write logs them in, which rotates the token the page has.
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

export function toast(message, kind = "info") {
  const box = document.querySelector("[data-toasts]");
  if (!box) return;
  const el = document.createElement("div");
  el.className = `toast toast--${kind}`;
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  el.textContent = message;
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4500);
}

export function confirmDialog(text) {
  const dialog = document.querySelector("[data-confirm-dialog]");
  if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(text));
  dialog.querySelector("[data-confirm-text]").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  dialog.querySelector("[data-confirm-ok]").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

function initMenus() {
  const menus = [...document.querySelectorAll("[data-menu]")];
  document.addEventListener("click", (event) => {
    for (const menu of menus) if (menu.open && !menu.contains(event.target)) menu.open = false;
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const menu of menus) {
      if (menu.open) { menu.open = false; menu.querySelector("summary").focus(); }
    }
  });
  for (const menu of menus) {
    menu.addEventListener("focusout", (event) => {
      if (menu.open && event.relatedTarget && !menu.contains(event.relatedTarget)) menu.open = false;
    });
  }
}

function initFlashes() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-dismiss]");
    if (button) button.closest("[data-flash]")?.remove();
  });
}

function initCopy() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(source.textContent.trim());
      toast(t("copied"));
    } catch {
      const range = document.createRange();
      range.selectNodeContents(source);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      toast(t("copy_failed"), "error");
    }
  });
}

// Plain forms that ask first (e.g. revoking a token); task actions ask in tasks.js.
function initConfirmForms() {
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches("form[data-confirm]:not([data-api])")) return;
    event.preventDefault();
    if (await confirmDialog(t(form.dataset.confirm))) form.submit();
  });
}

// A form rendered before this visitor's first write carries a token that write rotated.
function initFreshTokens() {
  document.addEventListener("submit", (event) => {
    const input = event.target.querySelector('input[name="csrfmiddlewaretoken"]');
    if (input) input.value = csrfToken();
  }, true);
}

export function initChrome() {
  initFreshTokens();
  initMenus();
  initFlashes();
  initCopy();
  initConfirmForms();
}
