// New-task forms: show the fields of the chosen tool, prevent double submits, and for kinds with
// uploads send the files with a byte-accurate, cancellable progress bar:
//   1. POST the fields (no files) to the page with X-MediaCraft-Prepare: 1 -> {submission, field_map}
//   2. XHR multipart POST /api/tasks/ with kind, params, title, priority and the files, in order
//      (a watermark video already staged for its preview by boxes.js is named in params instead).
import { csrfToken } from "./chrome.js";
import { formatBytes } from "./format.js";
import { t } from "./i18n.js";

function initSwitch(form) {
  const select = document.getElementById(form.dataset.switch);
  if (!select) return;
  const apply = () => {
    for (const group of form.querySelectorAll("[data-switch-value]")) {
      const active = group.dataset.switchValue === select.value;
      group.hidden = !active;
      group.disabled = !active; // not submitted, not validated
    }
  };
  select.addEventListener("change", apply);
  apply();
}

function clearErrors(form) {
  const box = form.querySelector("[data-form-errors]");
  box.hidden = true;
  box.querySelector("[data-form-errors-text]").replaceChildren();
  for (const p of form.querySelectorAll("[data-field-error]")) {
    if (p.hidden) continue;
    p.hidden = true;
    p.textContent = "";
    const input = document.getElementById(p.id.replace(/_error$/, ""));
    if (input) input.removeAttribute("aria-invalid");
    p.closest(".field")?.classList.remove("field--invalid");
  }
}

function formError(form, message) {
  const box = form.querySelector("[data-form-errors]");
  const p = document.createElement("p");
  p.textContent = message;
  box.querySelector("[data-form-errors-text]").append(p);
  box.hidden = false;
  box.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

// errors: {input id or "": [messages]}
function showErrors(form, errors) {
  let first = null;
  for (const [id, list] of Object.entries(errors)) {
    const text = [].concat(list).join(" ");
    const p = id && document.getElementById(`${id}_error`);
    if (!p) {
      formError(form, text);
      continue;
    }
    p.textContent = text;
    p.hidden = false;
    p.closest(".field")?.classList.add("field--invalid");
    const input = document.getElementById(id);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      const described = new Set((input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean));
      described.add(p.id);
      input.setAttribute("aria-describedby", [...described].join(" "));
      first = first || input;
    }
    input?.closest("details")?.setAttribute("open", "");
  }
  if (first) first.focus();
}

function initUpload(form) {
  const box = form.querySelector("[data-upload-box]");
  const bar = box.querySelector("[data-upload-bar]");
  const pct = box.querySelector("[data-upload-pct]");
  const text = box.querySelector("[data-upload-text]");
  const cancel = box.querySelector("[data-upload-cancel]");
  const submit = form.querySelector("[data-submit]");
  let xhr = null;

  const busy = (on) => {
    submit.disabled = on;
    form.setAttribute("aria-busy", String(on));
  };
  const progress = (loaded, total) => {
    const percent = total ? Math.floor((loaded / total) * 100) : 0;
    bar.value = percent;
    pct.textContent = `${percent}%`;
    text.textContent = t("uploading", { done: formatBytes(loaded), total: formatBytes(total), percent });
  };

  cancel.addEventListener("click", () => xhr && xhr.abort());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (xhr || form.hasAttribute("data-staging")) return;
    clearErrors(form);
    busy(true);
    const fields = new FormData(form);
    const files = [];
    const staged = form.querySelector("[data-staged]");
    for (const input of form.querySelectorAll('input[type="file"]')) {
      fields.delete(input.name);
      if (input.closest("fieldset:disabled")) continue;
      // already uploaded for its preview: the submission names it by id instead
      if ("boxesSource" in input.dataset && staged && staged.value) continue;
      files.push(...(input.orderedFiles || input.files));
    }
    text.textContent = t("checking_form");
    let prepared;
    try {
      const response = await fetch(form.action, {
        method: "POST", body: fields, credentials: "same-origin",
        headers: { "X-MediaCraft-Prepare": "1", "X-CSRFToken": csrfToken(), Accept: "application/json" },
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        if (body && body.errors) showErrors(form, body.errors);
        else formError(form, t("server_error", { status: response.status }));
        busy(false);
        return;
      }
      prepared = body;
    } catch {
      formError(form, t("network_error"));
      busy(false);
      return;
    }

    const data = new FormData();
    const { submission, field_map: fieldMap } = prepared;
    data.append("kind", submission.kind);
    data.append("params", JSON.stringify(submission.params));
    data.append("priority", String(submission.priority));
    if (submission.title) data.append("title", submission.title);
    for (const file of files) data.append("files", file, file.name);

    xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.api);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    box.hidden = false;
    cancel.hidden = false;
    progress(0, files.reduce((sum, f) => sum + f.size, 0));
    xhr.upload.addEventListener("progress", (e) => progress(e.loaded, e.lengthComputable ? e.total : 0));
    xhr.upload.addEventListener("load", () => {
      bar.value = 100;
      pct.textContent = "100%";
      text.textContent = t("upload_processing");
      cancel.hidden = true;
    });
    const finish = () => {
      xhr = null;
      busy(false);
    };
    xhr.addEventListener("abort", () => {
      finish();
      box.hidden = true;
      formError(form, t("upload_cancelled"));
    });
    xhr.addEventListener("error", () => {
      finish();
      box.hidden = true;
      formError(form, t("upload_failed"));
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      if (xhr.status === 201 && body && body.task_id) {
        form.dispatchEvent(new Event("mc:submitted"));
        location.assign(`/tasks/${encodeURIComponent(body.task_id)}/?created=1`);
        return;
      }
      finish();
      box.hidden = true;
      const error = body && body.error;
      if (!error) formError(form, t("server_error", { status: xhr.status }));
      else showErrors(form, { [(error.field && fieldMap[error.field]) || ""]: [error.message] });
    });
    xhr.send(data);
  });
}

export function initForms() {
  for (const form of document.querySelectorAll("form[data-task-form]")) {
    if (form.dataset.switch) initSwitch(form);
    if ("upload" in form.dataset) {
      initUpload(form);
    } else {
      form.addEventListener("submit", () => {
        const submit = form.querySelector("[data-submit]");
        // after the browser has collected the form, so the button's own value is not lost
        setTimeout(() => { submit.disabled = true; }, 0);
      });
    }
  }
}
