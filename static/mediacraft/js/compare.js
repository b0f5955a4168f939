// A finished watermark task's page: the original and the result at the same second, one over the
// other, split by a divider to drag (or move with its slider or the arrow keys), the task's boxes
// outlined. The frames come from the preview endpoint, as on the watermark form.
import { el } from "./chrome.js";
import { clock } from "./format.js";
import { FrameLoader, frameUrl } from "./frames.js";
import { t } from "./i18n.js";

// The task's original video and its video result, when it has both.
function pair(task) {
  if (task.kind !== "watermark" || task.status !== "completed") return null;
  const before = (task.inputs || [])[0];
  const after = (task.outputs || []).find((o) => o.media && o.media.width);
  if (!before || !before.media || !before.media.width || !after) return null;
  return { before, after };
}

export class Compare {
  constructor(section) {
    this.section = section;
    this.shown = null;
  }

  update(task) {
    const videos = pair(task);
    this.section.hidden = !videos;
    if (!videos) return;
    const key = `${videos.before.id}/${videos.after.id}`;
    if (this.shown === key) return;
    this.shown = key;
    this.build(videos, (task.params && task.params.rects) || []);
  }

  build({ before, after }, rects) {
    const { width, height, duration } = before.media;
    this.before = before;
    this.after = after;
    this.stage = el("div", "compare__stage", { "data-compare-stage": "" });
    this.stage.style.aspectRatio = `${width} / ${height}`;
    this.beforeImg = el("img", "compare__frame", { alt: t("compare_before_alt"), draggable: "false", "data-compare-before": "" });
    this.afterImg = el("img", "compare__frame compare__frame--after", { alt: t("compare_after_alt"), draggable: "false", "data-compare-after": "" });
    this.divider = el("div", "compare__divider", { "aria-hidden": "true" });
    // Named above the picture, not on it: a logo sits in a corner, where a label would hide it.
    const legend = el("div", "compare__legend");
    const names = [el("span"), el("span")];
    names[0].textContent = `← ${t("compare_before")}`;
    names[1].textContent = `${t("compare_after")} →`;
    legend.append(...names);
    const boxes = rects.map((r) => {
      const box = el("div", "compare__box", { "data-compare-box": "" });
      Object.assign(box.style, {
        left: `${(r.x / width) * 100}%`, top: `${(r.y / height) * 100}%`,
        width: `${(r.w / width) * 100}%`, height: `${(r.h / height) * 100}%`,
      });
      return box;
    });
    this.stage.append(this.beforeImg, this.afterImg, ...boxes, this.divider);
    const onWait = (seconds) => this.say(t("frame_waiting", { seconds }));
    this.frames = [new FrameLoader(this.beforeImg, { onWait }), new FrameLoader(this.afterImg, { onWait })];
    for (const img of [this.beforeImg, this.afterImg]) {
      img.addEventListener("load", () => this.loaded());
      img.addEventListener("error", () => { this.stage.classList.remove("is-loading"); this.say(t("compare_failed")); });
    }

    const controls = el("div", "compare__controls");
    const split = el("label", "compare__control");
    const splitCaption = el("span");
    splitCaption.textContent = t("compare_divider");
    this.split = el("input", "", { type: "range", min: "0", max: "100", step: "1", value: "50", "data-compare-split": "" });
    split.append(splitCaption, this.split);
    const time = el("label", "compare__control");
    const timeCaption = el("span");
    timeCaption.textContent = t("frame_at");
    // Both frames must exist: the result may end a little before the original.
    const last = Math.max(0, Math.min(duration || 0, after.media.duration || duration || 0) - 0.1);
    this.slider = el("input", "", { type: "range", min: "0", max: last.toFixed(1), step: "0.1", value: String(Math.min(1, last).toFixed(1)), "data-compare-time": "" });
    this.clock = el("output", "compare__clock");
    time.append(timeCaption, this.slider, this.clock);
    controls.append(split, time);
    this.status = el("p", "muted compare__status", { "aria-live": "polite" });
    this.status.hidden = true;

    this.section.querySelector("[data-compare-body]").replaceChildren(legend, this.stage, controls, this.status);
    this.split.addEventListener("input", () => this.setSplit(+this.split.value));
    this.slider.addEventListener("input", () => {
      this.clock.textContent = clock(+this.slider.value);
      clearTimeout(this.seekTimer);
      this.seekTimer = setTimeout(() => this.showFrames(), 180);
    });
    this.bindDragging();
    this.setSplit(50);
    this.clock.textContent = clock(+this.slider.value);
    this.showFrames();
  }

  bindDragging() {
    const move = (event) => {
      const box = this.stage.getBoundingClientRect();
      const percent = Math.round(Math.min(100, Math.max(0, ((event.clientX - box.left) / box.width) * 100)));
      this.split.value = String(percent);
      this.setSplit(percent);
    };
    this.stage.addEventListener("pointerdown", (event) => {
      this.stage.setPointerCapture(event.pointerId);
      move(event);
      const stop = () => {
        this.stage.removeEventListener("pointermove", move);
        this.stage.removeEventListener("pointerup", stop);
        this.stage.removeEventListener("pointercancel", stop);
      };
      this.stage.addEventListener("pointermove", move);
      this.stage.addEventListener("pointerup", stop);
      this.stage.addEventListener("pointercancel", stop);
    });
  }

  setSplit(percent) {
    // The result shows right of the divider, the original left of it.
    this.afterImg.style.clipPath = `inset(0 0 0 ${percent}%)`;
    this.divider.style.left = `${percent}%`;
  }

  say(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  loaded() {
    // `waiting`: frames of the latest request not yet set (an image keeps its last one meanwhile)
    if (!this.waiting && this.beforeImg.complete && this.afterImg.complete) this.stage.classList.remove("is-loading");
  }

  showFrames() {
    const width = Math.min(1280, Math.max(320, Math.round(this.stage.clientWidth * (window.devicePixelRatio || 1))));
    const at = this.slider.value;
    this.stage.classList.add("is-loading");
    this.waiting = 2;
    const shown = [this.before, this.after].map((video, i) => this.frames[i].show(frameUrl(video.id, at, width))
      .then((set) => { if (set) this.waiting -= 1; return set; }));
    Promise.all(shown).then((both) => {
      if (both.every(Boolean)) this.say("");
    }, (error) => {
      this.stage.classList.remove("is-loading");
      this.say(error.message || t("compare_failed"));
    });
  }
}

export function initCompare() {
  const section = document.querySelector("[data-compare]");
  const data = document.getElementById("mc-task");
  if (!section || !data) return null;
  const compare = new Compare(section);
  compare.update(JSON.parse(data.textContent));
  return compare;
}
