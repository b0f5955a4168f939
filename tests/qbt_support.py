"""Real qbittorrent-nox instances for the calibration tests, and torrents made from generated
files (bencode written here: v1, v2 and hybrid, so no extra dependency is needed).

An instance runs headless in its own profile folder, talks only on 127.0.0.1 (DHT, PeX, LSD,
UPnP, GeoIP look-ups and port forwarding off, sessions bound to lo), and is always killed by
its fixture's finalizer."""

import base64
import hashlib
import math
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import requests

QBT_BINARY = shutil.which("qbittorrent-nox")
SKIP_REASON = (
    "qbittorrent-nox is not installed, so the calibration tests against a real qBittorrent are SKIPPED "
    "(install it: apt-get install -y qbittorrent-nox; .ci/run does)"
)
USERNAME = "admin"
PASSWORD = "qbt-test-secret"
BLOCK = 16 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pbkdf2_password(password, salt=None):
    """qBittorrent's WebUI\\Password_PBKDF2: PBKDF2-HMAC-SHA512, 100,000 rounds, 16-byte salt, 64-byte key."""
    salt = salt or os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 100_000, dklen=64)
    return f"@ByteArray({base64.b64encode(salt).decode()}:{base64.b64encode(key).decode()})"


CONFIG = """[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DHTEnabled=false
Session\\PeXEnabled=false
Session\\LSDEnabled=false
Session\\Port={session_port}
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress=127.0.0.1
Session\\DefaultSavePath={save_path}
Session\\QueueingSystemEnabled=false
Session\\AddTorrentPaused=false
Session\\RefreshInterval=250

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\\UPnP=false
Connection\\ResolvePeerCountries=false
General\\Locale=en
WebUI\\Enabled=true
WebUI\\Address=127.0.0.1
WebUI\\Port={webui_port}
WebUI\\UseUPnP=false
WebUI\\LocalHostAuth=true
WebUI\\Username={username}
WebUI\\Password_PBKDF2="{password}"
WebUI\\MaxAuthenticationFailCount=0
WebUI\\HostHeaderValidation=false
"""


class QbtInstance:
    """One headless qbittorrent-nox with its own profile, save path and ports."""

    def __init__(self, root):
        self.root = Path(root)
        self.profile = self.root / "profile"
        self.save_path = self.root / "downloads"
        self.webui_port = free_port()
        self.session_port = free_port()
        self.url = f"http://127.0.0.1:{self.webui_port}"
        self.proc = None
        self._http = None

    def start(self, timeout=30):
        config_dir = self.profile / "qBittorrent" / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        self.save_path.mkdir(parents=True, exist_ok=True)
        (config_dir / "qBittorrent.conf").write_text(CONFIG.format(
            session_port=self.session_port, webui_port=self.webui_port, save_path=self.save_path,
            username=USERNAME, password=pbkdf2_password(PASSWORD),
        ))
        home = self.profile / "home"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"), "XDG_RUNTIME_DIR": str(home / "run"),
        }
        for folder in ("run", ".config", ".cache", ".local/share"):
            (home / folder).mkdir(parents=True, exist_ok=True)
        (home / "run").chmod(0o700)
        self.log = open(self.root / "qbittorrent.log", "ab")
        self.proc = subprocess.Popen(
            [QBT_BINARY, f"--profile={self.profile}"], stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"qbittorrent-nox exited with {self.proc.returncode}; see {self.root}/qbittorrent.log")
            try:
                if requests.get(f"{self.url}/api/v2/app/version", timeout=0.5).status_code in (200, 403):
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"qbittorrent-nox did not answer on {self.url} within {timeout}s")
        self.login()
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(timeout=5)
        if self._http is not None:
            self._http.close()
        if getattr(self, "log", None):
            self.log.close()

    # --- a small admin client of the test's own (not the code under test) ----------------------

    def login(self):
        self._http = requests.Session()
        answer = self._http.post(f"{self.url}/api/v2/auth/login", data={"username": USERNAME, "password": PASSWORD},
                                 timeout=5)
        assert answer.text == "Ok.", answer.text

    def get(self, path, **params):
        answer = self._http.get(f"{self.url}/api/v2/{path}", params=params, timeout=5)
        answer.raise_for_status()
        return answer.json() if "json" in answer.headers.get("content-type", "") else answer.text

    def post(self, path, files=None, **data):
        answer = self._http.post(f"{self.url}/api/v2/{path}", data=data, files=files, timeout=5)
        answer.raise_for_status()
        return answer.text

    def torrents(self):
        return self.get("torrents/info")

    def torrent(self, info_hash):
        found = self.get("torrents/info", hashes=info_hash)
        return found[0] if found else None

    def add_torrent(self, torrent, save_path, wait_state=("uploading", "stalledUP")):
        """Add a .torrent whose data lies in save_path and wait until it is checked and seeding."""
        answer = self.post("torrents/add", files={"torrents": ("t.torrent", torrent.data, "application/x-bittorrent")},
                           savepath=str(save_path), paused="false", stopped="false", autoTMM="false")
        assert answer == "Ok.", answer
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = self.torrent(torrent.id)
            if info and info["state"] in wait_state and info["progress"] == 1:
                return info
            time.sleep(0.1)
        raise AssertionError(f"torrent {torrent.id} not seeding: {self.torrent(torrent.id)}")

    def delete_all(self, delete_files=False):
        hashes = [t["hash"] for t in self.torrents()]
        if hashes:
            self.post("torrents/delete", hashes="|".join(hashes), deleteFiles=str(delete_files).lower())
        deadline = time.monotonic() + 10
        while self.torrents() and time.monotonic() < deadline:
            time.sleep(0.05)


# --- torrents from generated files --------------------------------------------------------------

def bencode(value):
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(value))


def _merkle_root(leaves):
    layer = list(leaves)
    while len(layer) > 1:
        layer = [hashlib.sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
    return layer[0]


def _v2_file(data, piece_length):
    """(pieces root, piece layer or None) of one non-empty file (BEP 52)."""
    blocks = [hashlib.sha256(data[i:i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]
    per_piece = piece_length // BLOCK
    leaves = 1 << max(0, math.ceil(math.log2(len(blocks))))
    blocks += [bytes(32)] * (leaves - len(blocks))
    root = _merkle_root(blocks)
    if len(data) <= piece_length:
        return root, None
    pieces = math.ceil(len(data) / piece_length)
    layer = b"".join(_merkle_root(blocks[i * per_piece:(i + 1) * per_piece]) for i in range(pieces))
    return root, layer


class Torrent:
    def __init__(self, info, extra):
        self.info = info
        self.data = bencode({"info": info, **extra})
        raw = bencode(info)
        self.v1 = hashlib.sha1(raw).hexdigest() if "pieces" in info else None
        self.v2 = hashlib.sha256(raw).hexdigest() if info.get("meta version") == 2 else None
        # qBittorrent's torrent id: libtorrent's "best" hash, the v2 one (truncated) when there is one.
        self.id = self.v2[:40] if self.v2 else self.v1

    def magnet(self, peer=None):
        parts = []
        if self.v1:
            parts.append(f"xt=urn:btih:{self.v1}")
        if self.v2:
            parts.append(f"xt=urn:btmh:1220{self.v2}")
        parts.append(f"dn={quote(self.info['name'])}")
        if peer:
            parts.append(f"x.pe={peer}")
        return "magnet:?" + "&".join(parts)


def make_torrent(root, name, files, version="v1", piece_length=32 * 1024):
    """Write `files` ({relative path: bytes}) under root/name and return a Torrent of that folder."""
    items = sorted((tuple(path.split("/")), data) for path, data in files.items())
    for parts, data in items:
        target = Path(root, name, *parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    info = {"name": name, "piece length": piece_length}
    extra = {}
    if version in ("v1", "hybrid"):
        listing, stream = [], b""
        for index, (parts, data) in enumerate(items):
            listing.append({"length": len(data), "path": list(parts)})
            stream += data
            pad = -len(data) % piece_length
            if version == "hybrid" and pad and index < len(items) - 1:
                listing.append({"length": pad, "path": [".pad", str(pad)], "attr": "p"})
                stream += bytes(pad)
        info["files"] = listing
        info["pieces"] = b"".join(hashlib.sha1(stream[i:i + piece_length]).digest()
                                  for i in range(0, len(stream), piece_length))
    if version in ("v2", "hybrid"):
        tree, layers = {}, {}
        for parts, data in items:
            node = tree
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            root_hash, layer = _v2_file(data, piece_length)
            node[parts[-1]] = {"": {"length": len(data), "pieces root": root_hash}}
            if layer:
                layers[root_hash] = layer
        info["file tree"] = tree
        info["meta version"] = 2
        extra["piece layers"] = layers
    return Torrent(info, extra)
