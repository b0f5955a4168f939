"""One sync of one profile, run inside the job (tasks/processors/strm_sync.py).

Listing and writing overlap: folders are listed by the profile's concurrency of threads, which
queue subfolders themselves; as each listing arrives the main thread writes the folder's .strm
files and hands its sidecars to as many copying threads. At concurrency 1 there are no threads:
the main thread lists one folder per turn (on a local disk, thread hand-offs cost more than they
save). Deletions come last and only after a complete listing:

    full         every output is checked (a .strm byte for byte, a sidecar by size and time);
                 what differs is rewritten; orphans are deleted when the profile says so
    incremental  only entries that are new, changed (size and ETag or modification time) or
                 whose output went missing are written, trusting the state of the last syncs

Either kind deletes the outputs of entries that disappeared from the source. A listing that
failed anywhere deletes nothing; the files already written stay and the task fails naming the
folders. Files the ignore pattern protects are never deleted.
"""

import collections
import logging
import queue
import stat
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from django.core.exceptions import ValidationError

from strm import paths, selectors, services
from strm.models import PasswordUnreadable, SourceType, SyncType
from strm.sources import FetchError, ListingError, LocalSource, SourceError, WebDavSource
from strm.writer import LibraryWriter, UnsafePath
from tasks.errors import TaskError

log = logging.getLogger(__name__)

RESULT_CAP = 200
COPY_BATCH = 16  # sidecars per copying job: few futures, still parallel across folders
REPORT_EVERY = 0.5
MB = 1024 * 1024


class Capped:
    """A list of paths kept to its first RESULT_CAP items, with the total."""

    __slots__ = ("items", "total")

    def __init__(self):
        self.items, self.total = [], 0

    def add(self, item):
        self.total += 1
        if len(self.items) < RESULT_CAP:
            self.items.append(shown(item) if isinstance(item, str) else item)


def shown(path):
    """A path as JSON can carry it (a name that is not UTF-8 keeps its bytes as \\x escapes)."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def unchanged(row, entry):
    _id, _output, size, mtime_ns, etag = row
    if size != entry.size:
        return False
    if etag and entry.etag:
        return etag == entry.etag
    return mtime_ns == entry.mtime_ns


def make_source(profile):
    if profile.source_type == SourceType.WEBDAV:
        return WebDavSource(url=profile.source_url, username=profile.source_username,
                            password=profile.get_password(), concurrency=profile.concurrency)
    return LocalSource(path=profile.source_path, roots=paths.allowed_roots())


class InlineExecutor:
    """The pools' stand-in at concurrency 1: jobs run in the main thread, one per turn of its
    loop (so progress still flows), with no thread hand-offs at all: on a local disk this is
    the fastest way."""

    def __init__(self):
        self.jobs = collections.deque()

    def submit(self, fn, *args):
        future = Future()
        self.jobs.append((future, fn, args))
        return future

    def run_one(self):
        if not self.jobs:
            return False
        future, fn, args = self.jobs.popleft()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the main loop through the future, like a pool's
            future.set_exception(exc)
        return True

    def shutdown(self, wait=False, cancel_futures=True):
        self.jobs.clear()


class SyncRun:
    def __init__(self, *, profile, sync_type, progress):
        self.profile = profile
        self.sync_type = sync_type
        self.progress = progress
        self.started = time.monotonic()
        self.generated, self.skipped, self.failed, self.deleted = Capped(), Capped(), Capped(), Capped()
        self.errors = Capped()
        self.listing_failures = []
        self.listed = self.unmatched = self.protected = 0
        self.folders_done, self.folders_seen = 0, 1
        self.expected = {}  # output -> source path, for every entry that has an output
        self.seen = {}  # source path -> output
        self.upserts = {}  # source path -> (output, size, mtime_ns, etag) to record
        self.drop_paths = set()  # source paths whose record must go (their write failed)
        self.last_report = 0.0
        self.last_percent = 0.0
        self.existing, self.state, self.expected_total = set(), {}, 0
        self.pools = ()
        self.inline = None  # the InlineExecutor when there are no threads
        self.done = queue.SimpleQueue()  # finished futures of the listing and copying threads
        self.pending = 0  # submitted jobs whose future the main thread has not handled yet
        self.pending_lock = threading.Lock()

    # --- checks -------------------------------------------------------------------------------

    def _confined(self, value):
        try:
            return paths.confine(value)
        except ValidationError:
            raise TaskError("strm_path_not_allowed", {"path": value}) from None

    def _check_paths(self):
        target = self._confined(self.profile.target_path)
        if self.profile.source_type == SourceType.LOCAL:
            source = self._confined(self.profile.source_path)
            if paths.overlaps(source, target):
                raise TaskError("strm_target_unusable",
                                {"reason": "the library folder and the source folder contain each other"})
        return target

    # --- the run ------------------------------------------------------------------------------

    def run(self):
        profile = self.profile
        target = self._check_paths()
        try:
            profile.get_password()
        except PasswordUnreadable:
            raise TaskError("strm_password_unreadable", {"profile": profile.name}) from None
        signature = profile.output_signature()
        self.trust_state = self.sync_type == SyncType.INCREMENTAL and profile.synced_signature == signature
        self.renderer = profile.renderer()
        self.media, self.sidecars = profile.media_set, profile.sidecar_set
        self.protected_by = paths.compile_ignore(profile.ignore_patterns)
        self.max_sidecar = profile.sidecar_max_mb * MB
        self.writer = LibraryWriter(target)
        try:
            self.writer.ensure_root()
        except (OSError, UnsafePath) as exc:
            raise TaskError("strm_target_unusable", {"reason": getattr(exc, "strerror", None) or str(exc)}) from None
        self.progress(0, stage="strm_scanning", code="strm_scanning")
        self.source = make_source(profile)
        try:
            self._start_listing()  # the listing threads walk the source on their own from here
            self.existing = self.writer.scan()
            self.state = selectors.state_map(profile_id=profile.pk)
            self.expected_total = profile.last_entry_count or len(self.state)
            self._process()
        except SourceError as exc:
            self._save_state(drop_ids=())
            raise TaskError(exc.code, exc.params, detail=exc.detail, retryable=exc.retryable) from None
        finally:
            for pool in self.pools:
                pool.shutdown(wait=False, cancel_futures=True)
            self.source.close()
        self._report(force=True)
        if self.listing_failures:
            self._save_state(drop_ids=())
            raise self._listing_failed()
        drop_ids, to_delete = self._plan_deletions()
        if to_delete:
            self.progress(96, stage="strm_deleting", code="strm_deleting", params={"count": len(to_delete)},
                          stats=self._stats())
            undeleted = self._delete(to_delete)
            # A record whose file could not be deleted stays, so a later sync tries again.
            drop_ids = [row_id for row_id, output in drop_ids.items() if output not in undeleted]
        self.progress(98, stage="strm_saving", code="strm_saving", stats=self._stats())
        self._save_state(drop_ids=drop_ids)
        services.strm_profile_mark_synced(profile_id=profile.pk, signature=signature, sync_type=self.sync_type,
                                          entry_count=len(self.seen))
        return self._result()

    def _start_listing(self):
        concurrency = self.profile.concurrency
        if concurrency > 1:
            self.lister = ThreadPoolExecutor(concurrency, thread_name_prefix="strm-list")
            self.copier = ThreadPoolExecutor(concurrency, thread_name_prefix="strm-copy")
        else:
            self.lister = self.copier = self.inline = InlineExecutor()
        self.pools = (self.lister, self.copier)
        root = self.source.root()
        self._submit(self.lister, ("list", root), self._list, root)

    def _submit(self, pool, tag, fn, *args):
        """Run fn(*args) in the pool; its future lands in self.done. Safe from any thread."""
        with self.pending_lock:
            self.pending += 1
        try:
            future = pool.submit(fn, *args)
        except RuntimeError:  # the pools are shut down: the sync is stopping
            with self.pending_lock:
                self.pending -= 1
            return
        future.tag = tag
        future.add_done_callback(self.done.put)

    def _list(self, folder):
        """A listing thread's job: list one folder and queue its subfolders at once, so the
        walk never waits for the main thread."""
        listing = self.source.list_folder(folder)
        for subfolder in listing.folders:
            self._submit(self.lister, ("list", subfolder), self._list, subfolder)
        return listing

    def _process(self):
        """The main thread: write each listed folder's files as its listing arrives, and
        account for the sidecar copies as they finish."""
        while True:
            with self.pending_lock:
                if not self.pending:
                    return
            try:
                if self.inline is not None and self.inline.jobs:
                    future = self.done.get_nowait()
                else:
                    future = self.done.get(timeout=REPORT_EVERY)
            except queue.Empty:
                if self.inline is None or not self.inline.run_one():
                    self._report()
                continue
            with self.pending_lock:
                self.pending -= 1
            kind, item = future.tag
            if kind == "list":
                self.folders_done += 1
                try:
                    listing = future.result()
                except ListingError as exc:
                    self.listing_failures.append(("/".join(item.parts) + "/", exc.reason))
                    continue
                self.folders_seen += len(listing.folders)
                for entry_path, reason in listing.failed:
                    self.listing_failures.append((entry_path, reason))
                for entry_path, reason in listing.rejected:
                    self._fail(entry_path, reason)
                copies = self._folder(item, listing.files)
                for i in range(0, len(copies), COPY_BATCH):
                    self._submit(self.copier, ("copy", None), self._copy_batch, copies[i:i + COPY_BATCH])
            else:
                for (path, output, entry), reason in future.result():
                    if reason is None:
                        self.generated.add(output)
                        self._record(path, output, entry)
                    else:
                        self._fail(path, reason)
            self._report()

    def _folder(self, folder, files):
        """Write the folder's .strm files; return the sidecar copies to make."""
        copies = []
        prefix = "".join(p + "/" for p in folder.parts)
        directory = prefixes = None
        media, sidecars, renderer = self.media, self.sidecars, self.renderer
        expected, seen, state, existing = self.expected, self.seen, self.state, self.existing
        trust_state = self.trust_state
        self.listed += len(files)
        for entry in files:
            name = entry.name
            dot = name.rfind(".")
            ext = name[dot + 1:].lower() if dot > 0 else ""
            if ext in media:
                out_name = name[:dot] + ".strm"
                is_media = True
            elif ext in sidecars:
                out_name = name
                is_media = False
            else:
                self.unmatched += 1
                continue
            path, output = prefix + name, prefix + out_name
            if output in expected:
                self._fail(path, f"{expected[output]} is already written to {output}")
                continue
            expected[output] = path
            seen[path] = output
            if trust_state:
                row = state.get(path)
                if row is not None and row[1] == output and unchanged(row, entry) and output in existing:
                    self.skipped.add(output)
                    continue
            if directory is None:
                try:
                    directory = self.writer.directory(folder.parts)
                except (UnsafePath, OSError) as exc:
                    directory = exc
            if isinstance(directory, Exception):
                self._fail(path, getattr(directory, "reason", None) or str(directory))
                continue
            if not is_media:
                if entry.size is not None and entry.size > self.max_sidecar:
                    self._fail(path, f"larger than the sidecar limit of {self.profile.sidecar_max_mb} MB")
                    continue
                if output in existing and self._same_sidecar(directory, out_name, entry):
                    self.skipped.add(output)
                    self._record(path, output, entry)
                    continue
                copies.append(((path, output, entry), directory, out_name))
                continue
            if prefixes is None:
                prefixes = renderer.folder_prefixes(folder.parts)
            data = renderer.render(prefixes, name)
            if output in existing and self.writer.read(directory, out_name, len(data)) == data:
                self.skipped.add(output)
                self._record(path, output, entry)
                continue
            try:
                self.writer.write(directory, out_name, data)
            except OSError as exc:
                self._fail(path, exc.strerror or str(exc))
                continue
            self.generated.add(output)
            self._record(path, output, entry)
        return copies

    def _same_sidecar(self, directory, name, entry):
        st = self.writer.lstat(directory, name)
        if st is None or not stat.S_ISREG(st.st_mode) or entry.size is None or entry.mtime_ns is None:
            return False
        return st.st_size == entry.size and st.st_mtime_ns // 10**9 == entry.mtime_ns // 10**9

    def _copy_batch(self, copies):
        """A copying thread's job: some sidecars of one folder. Returns (item, None or the reason
        it failed) for each; a SourceError (e.g. refused credentials) ends the whole sync."""
        done = []
        for item, directory, name in copies:
            entry = item[2]
            try:
                self.writer.write_from(directory, name, lambda fd: self.source.copy_to(entry, fd, self.max_sidecar),
                                       entry.mtime_ns)
            except (FetchError, UnsafePath) as exc:
                done.append((item, exc.reason))
            except OSError as exc:
                done.append((item, exc.strerror or str(exc)))
            else:
                done.append((item, None))
        return done

    def _record(self, path, output, entry):
        row = self.state.get(path)
        if row is None or row[1] != output or row[2] != entry.size or row[3] != entry.mtime_ns or row[4] != entry.etag:
            self.upserts[path] = (output, entry.size, entry.mtime_ns, entry.etag)

    def _fail(self, path, reason):
        self.failed.add(path)
        self.errors.add({"path": shown(path), "reason": str(reason)[:300]})
        self.drop_paths.add(path)
        self.upserts.pop(path, None)

    # --- deletions ----------------------------------------------------------------------------

    def _plan_deletions(self):
        """The records to forget (id -> the output to delete first, if any) and the library
        paths to delete: outputs of entries that disappeared or now write elsewhere, and, for a
        full sync that deletes orphans, files matching nothing at the source."""
        drop_ids, candidates = {}, []
        for path, row in self.state.items():
            output = self.seen.get(path)
            stale = output != row[1] and row[1] not in self.expected
            if output is None:
                drop_ids[row[0]] = row[1] if stale else None
            if stale:
                candidates.append(row[1])
        if self.sync_type == SyncType.FULL and self.profile.delete_orphans:
            # Only what a sync could have written: .strm files and sidecar types, never hidden
            # files (.plexignore) or anything else the library's owner keeps there.
            tracked, ours = set(candidates), self.sidecars | {"strm"}
            candidates.extend(
                rel for rel in self.existing
                if rel not in self.expected and rel not in tracked and paths.extension_of(rel) in ours
                and not rel.rpartition("/")[2].startswith(".")
            )
        to_delete = []
        for rel in candidates:
            if self.protected_by(rel):
                self.protected += 1
            else:
                to_delete.append(rel)
        if to_delete and not self.seen:
            raise TaskError("strm_source_empty", {"count": len(to_delete)},
                            detail=f"{self.source.describe()} listed {self.listed} files, none of them media or sidecars")
        return drop_ids, to_delete

    def _delete(self, to_delete):
        """Delete the library paths; returns those that could not be deleted."""
        folders, undeleted = set(), set()
        for rel in sorted(to_delete):
            try:
                removed = self.writer.delete(rel)
            except UnsafePath as exc:
                reason = exc.reason
            except OSError as exc:
                reason = exc.strerror or str(exc)
            else:
                if removed:
                    self.deleted.add(rel)
                    folders.add(rel.rpartition("/")[0])
                continue
            undeleted.add(rel)
            self.failed.add(rel)
            self.errors.add({"path": shown(rel), "reason": f"not deleted: {reason}"[:300]})
        folders.discard("")
        self.writer.prune(folders, self.protected_by)
        return undeleted

    # --- state, progress, result ----------------------------------------------------------------

    def _save_state(self, drop_ids):
        services.strm_state_save(profile_id=self.profile.pk, upserts=self.upserts, drop_ids=drop_ids,
                                 drop_paths=[p for p in self.drop_paths if p in self.state])

    def _listing_failed(self):
        failures = sorted(self.listing_failures)
        names = ", ".join(shown(p) or "/" for p, _r in failures[:5]) + (" …" if len(failures) > 5 else "")
        lines = [
            f"Nothing was deleted. Written before stopping: {self.generated.total} generated, "
            f"{self.skipped.total} skipped, {self.failed.total} failed.",
            *(f"{shown(p) or '/'}: {reason}" for p, reason in failures),
        ]
        return TaskError("strm_listing_failed", {"count": len(failures), "paths": names}, detail="\n".join(lines))

    def _processed(self):
        return self.generated.total + self.skipped.total + self.failed.total

    def _rate(self):
        elapsed = time.monotonic() - self.started
        return round(self._processed() / elapsed, 1) if elapsed > 0 else 0.0

    def _stats(self):
        return {
            "sync_type": self.sync_type, "profile": self.profile.name, "listed": self.listed,
            "processed": self._processed(), "generated": self.generated.total, "skipped": self.skipped.total,
            "failed": self.failed.total, "deleted": self.deleted.total, "folders": self.folders_done,
            "files_per_second": self._rate(),
        }

    def _report(self, force=False):
        now = time.monotonic()
        if not force and now - self.last_report < REPORT_EVERY:
            return
        self.last_report = now
        if self.expected_total:
            percent = 95 * min(1.0, len(self.seen) / self.expected_total)
        else:
            percent = 95 * self.folders_done / max(1, self.folders_seen)
        self.last_percent = max(self.last_percent, round(percent, 1))
        self.progress(self.last_percent, stage="strm_listing", code="strm_listing", stats=self._stats(),
                      params={"listed": self.listed, "processed": self._processed(), "rate": self._rate()})

    def _result(self):
        elapsed = time.monotonic() - self.started
        lists = {"generated": self.generated, "skipped": self.skipped, "failed": self.failed, "deleted": self.deleted}
        return {
            "profile": self.profile.name,
            "sync_type": self.sync_type,
            "source": self.source.describe(),
            "target": self.writer.root,
            **{name: capped.items for name, capped in lists.items()},
            "errors": self.errors.items,
            "totals": {
                **{name: capped.total for name, capped in lists.items()},
                "listed": self.listed, "unmatched": self.unmatched, "protected": self.protected,
                "folders": self.folders_done,
            },
            "truncated": any(c.total > len(c.items) for c in lists.values()),
            "checked_everything": not self.trust_state,
            "duration_seconds": round(elapsed, 3),
            "files_per_second": round(self._processed() / elapsed, 1) if elapsed > 0 else 0.0,
        }
