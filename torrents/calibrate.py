"""One calibration run: find each torrent's name and files through qBittorrent's Web API.

For each entry, in one pass and then in parallel:
- qBittorrent knows the torrent (by its v1 hash, its v2 hash or qBittorrent's id) and has its
  metadata: its name and files, as they are there (source "existing").
- It knows it but is still fetching the metadata: wait for it (never touching that torrent).
  Stopped without metadata: "no_metadata" (a stopped magnet never fetches it).
- It does not know it and a magnet link was given: add a *probe* and wait for its metadata.
- Otherwise: "unknown".

A probe is the magnet added running (a stopped magnet never fetches metadata) with
stopCondition=MetadataReceived, so qBittorrent (4.5+) stops it the moment the metadata arrives,
before any data is requested; force-started, so a full queue does not hold it back; outside
automatic torrent management, with the original content layout (so the file paths are the
torrent's own) and its save path set to the connection's probe folder, a folder no real torrent
uses. It is removed as soon as its files are read, or when the wait ends, *with* its files, which
is safe because only a probe can have put anything in that folder (on a qBittorrent older than
4.5, which ignores stopCondition, a probe may fetch a few pieces there before it is removed).
Only a torrent this run added, whose save path is still the probe folder, is ever removed with
files; anything qBittorrent already had is only read. The ids of the probes a run added are
written to `probe_log` first, so the processor's cleanup can remove them if the work horse is
killed (cancel, worker loss) before the run could.
"""

import json
import logging
import math
import os
import time

from torrents.models import EntrySource, EntryStatus
from torrents.qbittorrent import QbtClient, QbtError, has_metadata, is_stopped, same_path

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
PROBE_FOLDER = ".mediacraft-calibration"


def probe_folder(connection, client, run_id):
    """A folder of this run's own under the connection's probe folder: probes are removed with their
    files only from there, so even a probe folder set to where real downloads live (or a real
    torrent that turns out to have a logged hash) never loses a byte that is not a probe's."""
    base = connection.probe_path.rstrip("/\\") if connection.probe_path else (
        client.default_save_path().rstrip("/\\") + "/" + PROBE_FOLDER)
    return f"{base}/{run_id}"


class ProbeLog:
    """The info hashes (and qBittorrent ids) of the probes a task may have left behind: a JSON
    list in a file of the task's work folder."""

    def __init__(self, path):
        self.path = path

    def read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return set()
        return {h for h in data if isinstance(h, str)} if isinstance(data, list) else set()

    def write(self, hashes):
        if not hashes:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(sorted(hashes), f)
        os.replace(tmp, self.path)


def ref_hashes(ref):
    return {*ref.keys, *ref.qbt_ids}


def is_logged(info, hashes):
    return any(str(info.get(k) or "").lower() in hashes for k in ("hash", "infohash_v1", "infohash_v2"))


class Pending:
    """An entry still waiting for metadata."""

    def __init__(self, index, ref, torrent_id=None, owned=False):
        self.index = index
        self.ref = ref
        self.torrent_id = torrent_id
        self.owned = owned  # a probe this run added
        self.adopted_once = False


class CalibrationRun:
    """Calibrate `refs` (torrents.refs.TorrentRef) through `client` (logged in) until `deadline`
    (time.monotonic()); returns one result dict per ref, in order. `progress` is
    TaskContext.progress (or any callable with its signature)."""

    def __init__(self, *, client, connection, refs, deadline, progress, probe_log, run_id):
        self.run_id = run_id  # the task's id: names this run's probe folder
        self.client = client
        self.connection = connection
        self.refs = refs
        self.deadline = deadline
        self.progress = progress
        self.probe_log = probe_log
        self.results = [None] * len(refs)
        self.waiting = []
        self.probes = []  # Pending entries whose probe this run added and has not removed yet
        self.folder = None

    # --- results -------------------------------------------------------------------------------

    def _base(self, ref, status):
        item = {"input": ref.text, "info_hash": ref.info_hash, "info_hash_v1": ref.v1, "info_hash_v2": ref.v2,
                "status": status}
        if ref.display_name:
            item["magnet_name"] = ref.display_name
        return item

    def _settle(self, index, status, **extra):
        self.results[index] = {**self._base(self.refs[index], status), **extra}

    def _found(self, index, info, files, source):
        listing = [{"path": f.get("name", ""), "size": int(f.get("size", 0))} for f in files]
        self._settle(index, EntryStatus.FOUND.value, source=source.value, name=info.get("name", ""),
                     torrent_id=info.get("hash", ""), files=listing, file_count=len(listing),
                     total_size=sum(f["size"] for f in listing))

    def counts(self):
        counts = {status: 0 for status in EntryStatus.values}
        for item in self.results:
            if item is not None:
                counts[item["status"]] += 1
        return counts

    def _report(self, stage, code, params=None):
        done = sum(1 for r in self.results if r is not None)
        stats = {"total": len(self.refs), **self.counts(), "waiting": len(self.waiting)}
        self.progress(min(99.0, 100.0 * done / max(1, len(self.refs))), stage=stage, code=code, params=params,
                      stats=stats)

    # --- the run -------------------------------------------------------------------------------

    def run(self):
        self._report("calibration_lookup", "calibration_lookup", {"count": len(self.refs)})
        listing = self.client.torrents()
        try:
            for index, ref in enumerate(self.refs):
                info = next((t for t in listing if ref.matches(t)), None)
                if info is not None:
                    self._examine(Pending(index, ref, info["hash"]), info)
                elif ref.magnet:
                    self._add_probe(Pending(index, ref))
                else:
                    self._settle(index, EntryStatus.UNKNOWN.value)
            self._wait()
        finally:
            self._remove_probes()
        return self.results

    def _examine(self, pending, info):
        """Settle an entry from its torrent's info, or keep it waiting."""
        if has_metadata(info):
            files = self.client.files(info["hash"])
            if files:
                source = EntrySource.METADATA if pending.owned else EntrySource.EXISTING
                self._found(pending.index, info, files, source)
                if pending.owned:
                    self._remove_probe(pending, info)
                return
            if files is None:  # removed between the two calls
                self._vanished(pending)
                return
        elif not pending.owned and is_stopped(info):
            self._settle(pending.index, EntryStatus.NO_METADATA.value, torrent_id=info["hash"],
                         state=info.get("state", ""))
            return
        pending.torrent_id = info["hash"]
        if pending not in self.waiting:
            self.waiting.append(pending)

    def _vanished(self, pending):
        """The torrent an entry waited for went away: someone removed it (or another task's probe
        finished). Fetch the metadata ourselves once if there is a magnet link."""
        if pending in self.waiting:
            self.waiting.remove(pending)
        if pending in self.probes:
            self.probes.remove(pending)
            self._log_probes()
        if pending.ref.magnet and not pending.adopted_once:
            pending.adopted_once = True
            self._add_probe(Pending(pending.index, pending.ref))
        else:
            self._settle(pending.index, EntryStatus.UNKNOWN.value)

    def _add_probe(self, pending):
        if self.folder is None:
            self.folder = probe_folder(self.connection, self.client, self.run_id)
        ref = pending.ref
        # Logged before the add, so a killed run's cleanup finds it.
        self._log_probes(extra=ref_hashes(ref))
        if self.client.add_probe(ref.magnet, self.folder):
            info = self._lookup(ref)
            torrent_id = info["hash"] if info else ref.qbt_ids[0]
            pending.owned, pending.torrent_id = True, torrent_id
            self.probes.append(pending)
            self._log_probes()
            try:
                self.client.force_start([torrent_id])
            except QbtError:  # the probe still works within qBittorrent's queue limits (a job timeout passes)
                log.warning("could not force-start probe %s", torrent_id, exc_info=True)
            if pending not in self.waiting:
                self.waiting.append(pending)
            return
        self._log_probes()
        # Refused: qBittorrent already has the torrent (added meanwhile) or rejects the link.
        info = self._lookup(ref)
        if info is not None:
            pending.owned = False
            self._examine(pending, info)
        else:
            self._settle(pending.index, EntryStatus.REFUSED.value)

    def _lookup(self, ref, listing=None):
        found = self.client.torrents(ref.qbt_ids) if listing is None else listing
        info = next((t for t in found if ref.matches(t)), None)
        if info is None and listing is None:
            # A v1 magnet of a hybrid torrent changes id (to the truncated v2 hash) once its
            # metadata arrives; a known hybrid is listed under its v2 id: look everywhere.
            info = next((t for t in self.client.torrents() if ref.matches(t)), None)
        return info

    def _wait(self):
        while self.waiting:
            left = self.deadline - time.monotonic()
            self._report("calibration_metadata", "calibration_waiting",
                         {"pending": len(self.waiting), "seconds": max(0, math.ceil(left))})
            if left <= 0:
                break
            time.sleep(min(POLL_SECONDS, left))
            ids = sorted({p.torrent_id for p in self.waiting if p.torrent_id})
            listing = self.client.torrents(ids) if ids else []
            full = None
            for pending in list(self.waiting):
                info = next((t for t in listing if pending.ref.matches(t)), None)
                if info is None:
                    if full is None:
                        full = self.client.torrents()
                    info = next((t for t in full if pending.ref.matches(t)), None)
                if info is None:
                    self._vanished(pending)
                    continue
                pending.torrent_id = info["hash"]
                self.waiting.remove(pending)
                self._examine(pending, info)
        for pending in self.waiting:
            self._settle(pending.index, EntryStatus.TIMEOUT.value, torrent_id=pending.torrent_id or "")
        self.waiting = []

    # --- probes --------------------------------------------------------------------------------

    def _log_probes(self, extra=()):
        hashes = set(extra)
        for pending in self.probes:
            hashes |= ref_hashes(pending.ref)
        self.probe_log.write(hashes)

    def _remove_probe(self, pending, info=None):
        """Remove a probe this run added: with its files only while it is still in the probe folder."""
        if info is None:
            info = self._lookup(pending.ref)
        if info is not None:
            self.client.delete([info["hash"]], delete_files=same_path(info.get("save_path"), self.folder))
        if pending in self.probes:
            self.probes.remove(pending)
        self._log_probes()

    def _remove_probes(self):
        for pending in list(self.probes):
            try:
                self._remove_probe(pending)
            except (QbtError, OSError):
                log.warning("could not remove calibration probe %s; the cleanup will retry", pending.torrent_id,
                            exc_info=True)


def remove_logged_probes(*, connection, probe_log, run_id, client=None, timeout=(3, 10)):
    """Remove the probes an earlier run of the task left (killed, or qBittorrent went away
    before it could): only those still in the probe folder. Used by the processor's cleanup
    (with a client of its own; skipped while the connection's credentials are marked as
    refused) and by a retry before it starts. Returns how many it removed."""
    hashes = probe_log.read()
    if not hashes:
        return 0
    if client is None:
        if connection is None or connection.login_blocked:
            return 0
        with QbtClient(connection.url, connection.username, connection.get_password(),
                       verify=connection.verify_tls, timeout=timeout) as own:
            own.login()
            return remove_logged_probes(connection=connection, probe_log=probe_log, run_id=run_id, client=own)
    folder = probe_folder(connection, client, run_id)
    leftovers = [t for t in client.torrents() if is_logged(t, hashes) and same_path(t.get("save_path"), folder)]
    if leftovers:
        client.delete([t["hash"] for t in leftovers], delete_files=True)
    probe_log.write(set())
    return len(leftovers)
