// Video frames from the preview endpoint, fetched instead of set as an image's src: a busy server
// (503 with Retry-After: its preview slots are all taken) is waited out and asked again, a frame
// overtaken by a newer one is dropped, and a refusal is told with the server's own message.
import { t } from "./i18n.js";

const TRIES = 5;
const MAX_WAIT_SECONDS = 10;

export function frameUrl(fileId, second, width) {
  return `/api/files/${encodeURIComponent(fileId)}/preview/?t=${encodeURIComponent(second)}&width=${width}`;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}

async function refusal(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not the API's JSON (a proxy's page): the status says enough
  }
  return t("server_error", { status: response.status });
}

export class FrameLoader {
  // onWait(seconds) is called before each wait on a busy server.
  constructor(img, { onWait = () => {} } = {}) {
    this.img = img;
    this.onWait = onWait;
    this.controller = null;
    this.objectUrl = null;
  }

  // Shows the frame at `url` in the image: true once it is set, false if a newer frame was asked
  // for meanwhile; an Error whose message is for the visitor if the server refused it.
  async show(url) {
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    try {
      for (let attempt = 1; ; attempt += 1) {
        const response = await fetch(url, { credentials: "same-origin", signal: controller.signal });
        if (response.status === 503 && attempt < TRIES) {
          const seconds = Math.min(MAX_WAIT_SECONDS, Math.max(1, Number(response.headers.get("Retry-After")) || 2));
          this.onWait(seconds);
          await sleep(seconds * 1000, controller.signal);
          continue;
        }
        if (!response.ok) throw new Error(await refusal(response));
        const blob = await response.blob();
        if (controller.signal.aborted) return false;
        if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
        this.objectUrl = URL.createObjectURL(blob);
        this.img.src = this.objectUrl;
        this.img.dataset.frame = url; // what it shows, where a blob: src cannot tell
        return true;
      }
    } catch (error) {
      if (controller.signal.aborted) return false;
      if (error instanceof TypeError) throw new Error(t("frame_no_connection")); // fetch's network failure
      throw error;
    } finally {
      if (this.controller === controller) this.controller = null;
    }
  }
}
