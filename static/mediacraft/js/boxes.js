// Watermark form: the video is uploaded (staged) as soon as it is chosen, a frame of it comes
// from the preview endpoint, and the logo boxes are drawn on that frame. The boxes and the
// "x, y, w, h" lines of the textarea are one model: editing either redraws the other. Box
// positions are kept in the video's own pixels and drawn in percent, so the frame may scale.
import { csrfToken, el } from "./chrome.js";
import { clock, formatBytes } from "./format.js";
import { FrameLoader, frameUrl } from "./frames.js";
import { t } from "./i18n.js";

const MIN_DRAG = 4; // display pixels: a click is not a box
const LINE_RE = /^\s*(-?\d+)\s*[,;\s]\s*(-?\d+)\s*[,;\s]\s*(-?\d+)\s*[,;\s]\s*(-?\d+)\s*$/;

export function parseBoxes(text) {
  const boxes = [];
  for (const line of text.split("\n")) {
    const m = LINE_RE.exec(line);
    if (m) boxes.push({ x: +m[1], y: +m[2], w: +m[3], h: +m[4] });
  }
  return boxes;
}

function errorMessage(xhr) {
  const body = xhr.response;
  if (body && body.error && body.error.message) return body.error.message;
  return xhr.status ? t("server_error", { status: xhr.status }) : t("upload_failed");
}

class BoxEditor {
  constructor(form, source, staged, textarea) {
    this.form = form;
    this.source = source;
    this.staged = staged;
    this.textarea = textarea;
    this.media = null;
    this.boxes = parseBoxes(textarea.value);
    this.xhr = null;
    // A copy of a task: its video, already on the server, unless another is chosen.
    this.reuse = source.dataset.reuse && staged.value ? JSON.parse(source.dataset.reuse)[0] : null;
    this.build();
    source.addEventListener("change", () => this.choose());
    textarea.addEventListener("input", () => {
      this.boxes = parseBoxes(textarea.value);
      this.render();
    });
    form.addEventListener("mc:submitted", () => { this.submitted = true; });
    // A staged upload nobody submitted is removed when the page is left (and expires anyway).
    window.addEventListener("pagehide", () => {
      if (!this.submitted && this.staged.value && !this.reused()) this.discard(this.staged.value, true);
    });
    if (this.reuse) this.useReused();
  }

  reused() {
    return Boolean(this.reuse) && this.staged.value === this.reuse.id;
  }

  useReused() {
    this.panel.hidden = false;
    this.bar.hidden = true;
    this.cancel.hidden = true;
    this.ready(this.reuse);
    this.say(t("reusing", { name: this.reuse.name }));
  }

  build() {
    const field = this.textarea.closest(".field");
    this.panel = el("div", "boxes", { "data-boxes-panel": "" });
    this.panel.hidden = true;
    this.status = el("div", "boxes__status", { "aria-live": "polite" });
    this.bar = el("progress", "bar", { max: "100", value: "0", "aria-label": t("upload_progress") });
    this.statusText = el("span", "boxes__status-text");
    this.cancel = el("button", "btn btn--sm", { type: "button" });
    this.cancel.textContent = t("cancel_upload");
    this.cancel.addEventListener("click", () => this.xhr && this.xhr.abort());
    this.status.append(this.bar, this.statusText, this.cancel);

    this.stage = el("div", "boxes__stage", { "data-boxes-stage": "" });
    this.img = el("img", "boxes__frame", { alt: t("frame_alt"), draggable: "false" });
    this.layer = el("div", "boxes__layer", { "data-boxes-layer": "" });
    this.stage.append(this.img, this.layer);
    // A frame's wait or failure has its own line under the picture: the status line above keeps
    // the upload's (or the copied video's) news.
    this.frameNote = el("p", "boxes__note", { "aria-live": "polite", "data-frame-note": "" });
    this.frameNote.hidden = true;
    this.frames = new FrameLoader(this.img, { onWait: (seconds) => this.note(t("frame_waiting", { seconds })) });
    this.img.addEventListener("load", () => this.stage.classList.remove("is-loading"));
    this.img.addEventListener("error", () => {
      this.stage.classList.remove("is-loading");
      this.note(t("preview_failed"));
    });

    const controls = el("div", "boxes__controls");
    const label = el("label", "boxes__time");
    const caption = el("span");
    caption.textContent = t("frame_at");
    this.slider = el("input", "", { type: "range", min: "0", max: "0", step: "0.1", value: "0", "data-boxes-time": "" });
    this.clock = el("output", "boxes__clock");
    label.append(caption, this.slider, this.clock);
    this.slider.addEventListener("input", () => {
      this.clock.textContent = clock(+this.slider.value);
      clearTimeout(this.seekTimer);
      this.seekTimer = setTimeout(() => this.showFrame(), 180);
    });
    const buttons = el("div", "boxes__buttons");
    const useStart = this.button(t("use_as_start"), () => this.setTime("start"));
    const useEnd = this.button(t("use_as_end"), () => this.setTime("end"));
    this.clearButton = this.button(t("clear_boxes"), () => this.setBoxes([]));
    buttons.append(useStart, useEnd, this.clearButton);
    controls.append(label, buttons);

    this.info = el("p", "boxes__info muted");
    const help = el("p", "field__help");
    help.textContent = t("boxes_help");
    this.panel.append(this.status, this.info, this.stage, this.frameNote, controls, help);
    field.before(this.panel);
    this.bindDrawing();
  }

  button(text, onClick) {
    const b = el("button", "btn btn--sm", { type: "button" });
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  say(text) {
    this.statusText.textContent = text;
    this.status.hidden = !text;
  }

  note(text) {
    this.frameNote.textContent = text;
    this.frameNote.hidden = !text;
  }

  busy(on) {
    const submit = this.form.querySelector("[data-submit]");
    if (submit) submit.disabled = on;
    this.form.toggleAttribute("data-staging", on);
  }

  discard(id, beacon = false) {
    const url = `/api/files/${encodeURIComponent(id)}/`;
    fetch(url, { method: "DELETE", keepalive: beacon, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } })
      .catch(() => {});
  }

  fieldError(message) {
    const p = document.getElementById(`${this.source.id}_error`);
    if (!p) return;
    p.textContent = message || "";
    p.hidden = !message;
    p.closest(".field")?.classList.toggle("field--invalid", Boolean(message));
    if (message) this.source.setAttribute("aria-invalid", "true");
    else this.source.removeAttribute("aria-invalid");
  }

  choose() {
    if (this.xhr) this.xhr.abort();
    if (this.staged.value && !this.reused()) this.discard(this.staged.value);
    this.staged.value = "";
    this.media = null;
    this.fieldError("");
    const file = this.source.files[0];
    if (!file) {
      if (this.reuse) this.useReused();
      else this.panel.hidden = true;
      return;
    }
    this.panel.hidden = false;
    this.stage.hidden = true;
    this.info.textContent = "";
    this.upload(file);
  }

  upload(file) {
    const data = new FormData();
    data.append("files", file, file.name);
    const xhr = new XMLHttpRequest();
    this.xhr = xhr;
    xhr.open("POST", "/api/files/");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    this.bar.hidden = false;
    this.cancel.hidden = false;
    this.bar.value = 0;
    this.say(t("staging", { name: file.name }));
    this.busy(true);
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.floor((e.loaded / e.total) * 100);
      this.bar.value = percent;
      this.say(t("uploading", { done: formatBytes(e.loaded), total: formatBytes(e.total), percent }));
    });
    xhr.upload.addEventListener("load", () => {
      this.cancel.hidden = true;
      this.say(t("upload_processing"));
    });
    const done = () => {
      this.xhr = null;
      this.busy(false);
      this.bar.hidden = true;
      this.cancel.hidden = true;
    };
    const fail = (message) => {
      done();
      this.say("");
      this.panel.hidden = true;
      this.source.value = "";
      this.fieldError(message);
      if (this.reuse) this.useReused();
    };
    xhr.addEventListener("abort", () => fail(t("upload_cancelled")));
    xhr.addEventListener("error", () => fail(t("upload_failed")));
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      if (xhr.status !== 201 || !Array.isArray(body) || !body[0]) {
        fail(errorMessage(xhr));
        return;
      }
      done();
      this.say("");
      this.ready(body[0]);
    });
    xhr.send(data);
  }

  ready(stored) {
    this.staged.value = stored.id;
    this.fileId = stored.id;
    this.media = stored.media;
    const { width, height, duration } = this.media;
    this.info.textContent = t("video_info", { width, height, duration: clock(duration || 0), size: formatBytes(stored.size) });
    this.stage.style.aspectRatio = `${width} / ${height}`;
    this.slider.max = String(Math.max(0, (duration || 0) - 0.1).toFixed(1));
    this.slider.value = String(Math.min(1, +this.slider.max));
    this.clock.textContent = clock(+this.slider.value);
    this.stage.hidden = false;
    this.showFrame();
    this.setBoxes(this.boxes.map((b) => this.clamp(b)).filter(Boolean));
  }

  showFrame() {
    if (!this.fileId) return;
    const width = Math.min(1280, Math.max(320, Math.round(this.stage.clientWidth * (window.devicePixelRatio || 1))));
    this.stage.classList.add("is-loading");
    this.frames.show(frameUrl(this.fileId, this.slider.value, width)).then((shown) => {
      if (shown) this.note("");
    }, (error) => {
      this.stage.classList.remove("is-loading");
      this.note(`${error.message} ${t("boxes_by_number")}`);
    });
  }

  setTime(name) {
    const input = this.form.querySelector(`[name$="-${name}"], [name="${name}"]`);
    if (!input) return;
    input.value = (+this.slider.value).toFixed(1);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // -- the model ------------------------------------------------------------------------------

  clamp(box) {
    if (!this.media) return box;
    const W = this.media.width;
    const H = this.media.height;
    let x0 = Math.max(0, Math.min(W, box.x));
    let y0 = Math.max(0, Math.min(H, box.y));
    let x1 = Math.max(0, Math.min(W, box.x + box.w));
    let y1 = Math.max(0, Math.min(H, box.y + box.h));
    if (x1 < x0) [x0, x1] = [x1, x0];
    if (y1 < y0) [y0, y1] = [y1, y0];
    if (x1 - x0 < 1 || y1 - y0 < 1) return null;
    return { x: Math.round(x0), y: Math.round(y0), w: Math.round(x1 - x0), h: Math.round(y1 - y0) };
  }

  setBoxes(boxes) {
    this.boxes = boxes;
    this.textarea.value = boxes.map((b) => `${b.x}, ${b.y}, ${b.w}, ${b.h}`).join("\n");
    this.textarea.dispatchEvent(new Event("change", { bubbles: true }));
    this.render();
  }

  render() {
    if (!this.media) return;
    const W = this.media.width;
    const H = this.media.height;
    this.layer.replaceChildren();
    this.boxes.forEach((b, i) => {
      const node = el("div", "boxes__box", { "data-box": String(i) });
      node.style.left = `${(b.x / W) * 100}%`;
      node.style.top = `${(b.y / H) * 100}%`;
      node.style.width = `${(b.w / W) * 100}%`;
      node.style.height = `${(b.h / H) * 100}%`;
      const tag = el("span", "boxes__tag");
      tag.textContent = String(i + 1);
      const remove = el("button", "boxes__remove", { type: "button", "aria-label": t("remove_box", { n: i + 1 }), "data-box-remove": "" });
      remove.textContent = "×";
      remove.addEventListener("pointerdown", (e) => e.stopPropagation());
      remove.addEventListener("click", () => this.setBoxes(this.boxes.filter((_b, j) => j !== i)));
      const handle = el("span", "boxes__handle", { "data-box-resize": "" });
      node.append(tag, remove, handle);
      this.layer.append(node);
    });
    this.clearButton.disabled = !this.boxes.length;
  }

  // -- pointer: draw a new box, move one, or resize one by its corner -------------------------

  toSource(event) {
    const rect = this.layer.getBoundingClientRect();
    const fx = Math.max(0, Math.min(1, (event.clientX - rect.left) / rect.width));
    const fy = Math.max(0, Math.min(1, (event.clientY - rect.top) / rect.height));
    return { x: fx * this.media.width, y: fy * this.media.height, scale: this.media.width / rect.width };
  }

  bindDrawing() {
    let drag = null;
    this.layer.addEventListener("pointerdown", (event) => {
      if (!this.media || event.button !== 0) return;
      event.preventDefault();
      const at = this.toSource(event);
      const boxNode = event.target.closest("[data-box]");
      if (boxNode) {
        const index = +boxNode.dataset.box;
        const mode = event.target.closest("[data-box-resize]") ? "resize" : "move";
        drag = { mode, index, start: at, original: { ...this.boxes[index] } };
      } else {
        drag = { mode: "draw", start: at, index: this.boxes.length };
        this.boxes = [...this.boxes, { x: Math.round(at.x), y: Math.round(at.y), w: 0, h: 0 }];
      }
      this.layer.setPointerCapture(event.pointerId);
    });
    this.layer.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const at = this.toSource(event);
      const dx = at.x - drag.start.x;
      const dy = at.y - drag.start.y;
      const W = this.media.width;
      const H = this.media.height;
      let box;
      if (drag.mode === "draw") {
        box = { x: Math.min(at.x, drag.start.x), y: Math.min(at.y, drag.start.y), w: Math.abs(dx), h: Math.abs(dy) };
      } else if (drag.mode === "move") {
        const o = drag.original;
        box = { x: Math.max(0, Math.min(W - o.w, o.x + dx)), y: Math.max(0, Math.min(H - o.h, o.y + dy)), w: o.w, h: o.h };
      } else {
        const o = drag.original;
        box = { x: o.x, y: o.y, w: Math.max(1, Math.min(W - o.x, o.w + dx)), h: Math.max(1, Math.min(H - o.y, o.h + dy)) };
      }
      const rounded = { x: Math.round(box.x), y: Math.round(box.y), w: Math.round(box.w), h: Math.round(box.h) };
      this.boxes = this.boxes.map((b, i) => (i === drag.index ? rounded : b));
      this.render();
    });
    const end = (event) => {
      if (!drag) return;
      const box = this.boxes[drag.index];
      const scale = this.toSource(event).scale;
      let boxes = this.boxes;
      if (drag.mode === "draw" && (box.w < MIN_DRAG * scale || box.h < MIN_DRAG * scale)) {
        boxes = boxes.filter((_b, i) => i !== drag.index);
      }
      drag = null;
      this.setBoxes(boxes.map((b) => this.clamp(b)).filter(Boolean));
    };
    this.layer.addEventListener("pointerup", end);
    this.layer.addEventListener("pointercancel", end);
  }
}

// Merge form: the chosen files as an ordered list that can be rearranged before upload.
class FileOrder {
  constructor(input) {
    this.input = input;
    this.files = [];
    this.list = el("ol", "order", { "data-file-order": "", "aria-label": t("order_label") });
    this.list.hidden = true;
    input.closest(".field").append(this.list);
    input.addEventListener("change", () => {
      this.files = [...input.files];
      this.render();
    });
  }

  move(i, to) {
    const files = [...this.files];
    const [item] = files.splice(i, 1);
    files.splice(to, 0, item);
    this.files = files;
    this.render();
    this.list.querySelectorAll("li")[to]?.querySelector(to < i ? "[data-up]" : "[data-down]")?.focus();
  }

  render() {
    this.list.replaceChildren();
    this.list.hidden = this.files.length < 2;
    this.files.forEach((file, i) => {
      const li = el("li", "order__item");
      const name = el("span", "order__name");
      name.textContent = file.name;
      const size = el("span", "order__size muted");
      size.textContent = formatBytes(file.size);
      const up = el("button", "btn btn--sm", { type: "button", "data-up": "", "aria-label": t("move_up", { name: file.name }) });
      up.textContent = "↑";
      up.disabled = i === 0;
      up.addEventListener("click", () => this.move(i, i - 1));
      const down = el("button", "btn btn--sm", { type: "button", "data-down": "", "aria-label": t("move_down", { name: file.name }) });
      down.textContent = "↓";
      down.disabled = i === this.files.length - 1;
      down.addEventListener("click", () => this.move(i, i + 1));
      li.append(name, size, up, down);
      this.list.append(li);
    });
    this.input.orderedFiles = this.files;
  }
}

export function initVideoForms() {
  for (const form of document.querySelectorAll("form[data-task-form]")) {
    const source = form.querySelector("input[type=file][data-boxes-source]");
    const staged = form.querySelector("[data-staged]");
    const textarea = form.querySelector("textarea[data-boxes]");
    if (source && staged && textarea) form.boxEditor = new BoxEditor(form, source, staged, textarea);
    for (const input of form.querySelectorAll("input[type=file][data-orderable]")) new FileOrder(input);
  }
}
