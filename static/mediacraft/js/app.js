// Entry point of every page (an ES module: no build step, no framework).
import { initChrome } from "./chrome.js";
import { refreshTimes } from "./format.js";
import { initVideoForms } from "./boxes.js";
import { initCompare } from "./compare.js";
import { initForms } from "./forms.js";
import { Live } from "./live.js";
import { initNotifications, taskSeen } from "./notify.js";
import { initActions, TaskDetail, TaskList } from "./tasks.js";

initChrome();
initVideoForms();
initForms();
initNotifications();
refreshTimes();
setInterval(() => refreshTimes(), 30000);

const lists = [...document.querySelectorAll("[data-task-list]")].map((el) => new TaskList(el));
const detailRoot = document.querySelector("[data-task-detail]");
const detail = detailRoot ? new TaskDetail(detailRoot) : null;
const compare = initCompare();
if (detail && compare) detail.onUpdate = (task) => compare.update(task); // live or polled

if (detail && new URLSearchParams(location.search).has("created")) {
  history.replaceState(null, "", location.pathname + location.hash); // a reload does not say "created" again
}

function onDeleted(id) {
  for (const list of lists) list.remove(id);
  if (detail && detail.id === id) {
    if (detail.deletedByMe) return;
    detail.markDeleted();
  }
}

initActions({
  onDeleted(id) {
    if (detail && detail.id === id) {
      detail.deletedByMe = true;
      location.assign(detailRoot.dataset.listUrl);
      return;
    }
    onDeleted(id);
  },
});

if (document.body.dataset.live) {
  const live = new Live({
    path: document.body.dataset.wsPath,
    onTask(task) {
      taskSeen(task);
      for (const list of lists) list.update(task);
      if (detail) detail.update(task);
    },
    onDeleted,
    poll: lists.length || detail ? () => Promise.all([...lists.map((l) => l.poll()), detail && detail.poll()]) : null,
  });
  live.start();
}
