"""Writes into one library folder and nowhere else: every folder level is checked (a symbolic
link leading out of the library is refused), files are written to a temporary name beside
their final one and renamed into place, and deletions never follow links or remove folders
that still hold anything."""

import itertools
import os
import secrets
import stat

from strm import paths


class UnsafePath(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class LibraryWriter:
    def __init__(self, root):
        self.root = os.path.realpath(root)
        self._dirs = {(): self.root}
        self._token = secrets.token_hex(4)
        self._counter = itertools.count()

    def ensure_root(self):
        os.makedirs(self.root, exist_ok=True)
        if not os.path.isdir(self.root) or os.path.realpath(self.root) != self.root:
            raise UnsafePath("the library folder is not a folder")

    # --- folders ------------------------------------------------------------------------------

    def directory(self, parts):
        """The absolute path of the library folder `parts`, created level by level as needed."""
        found = self._dirs.get(parts)
        if found is not None:
            return found
        parent = self.directory(parts[:-1])
        path = os.path.join(parent, parts[-1])
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            if not paths.within(real, self.root) or not os.path.isdir(real):
                raise UnsafePath(f"{'/'.join(parts)} is a link leading out of the library folder")
        elif not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"{'/'.join(parts)} exists and is not a folder")
        self._dirs[parts] = path
        return path

    def _existing_directory(self, parts):
        """Like directory() but creates nothing; None when a level is missing."""
        path = os.path.join(self.root, *parts)
        real = os.path.realpath(path)
        if not paths.within(real, self.root):
            raise UnsafePath(f"{'/'.join(parts)} leads out of the library folder")
        return path if os.path.isdir(real) else None

    # --- files --------------------------------------------------------------------------------

    def _temp(self, directory):
        name = f"{paths.TEMP_PREFIX}{self._token}-{next(self._counter)}{paths.TEMP_SUFFIX}"
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        return fd, path

    def write(self, directory, name, data):
        fd, temp = self._temp(directory)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            _unlink_quietly(temp)
            raise
        os.close(fd)
        self._commit(temp, os.path.join(directory, name))

    def write_from(self, directory, name, fill, mtime_ns=None):
        """Let fill(fd) write the content, keep the source's modification time, rename into place."""
        fd, temp = self._temp(directory)
        try:
            fill(fd)
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
        except BaseException:
            os.close(fd)
            _unlink_quietly(temp)
            raise
        os.close(fd)
        self._commit(temp, os.path.join(directory, name))

    def _commit(self, temp, final):
        try:
            os.replace(temp, final)
        except BaseException:
            _unlink_quietly(temp)
            raise

    def read(self, directory, name, limit):
        """The file's bytes if it is a regular file of at most `limit` bytes, else None."""
        try:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
                return None
            return os.read(fd, limit + 1)
        except OSError:
            return None
        finally:
            os.close(fd)

    def lstat(self, directory, name):
        try:
            return os.lstat(os.path.join(directory, name))
        except OSError:
            return None

    def delete(self, rel):
        """Remove the file (or link) at `rel`; True if something was removed. Never a folder."""
        parts = tuple(rel.split("/"))
        if not all(paths.safe_name(p) for p in parts):
            raise UnsafePath(f"{rel} is not a plain path")
        directory = self._existing_directory(parts[:-1])
        if directory is None:
            return False
        path = os.path.join(directory, parts[-1])
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"{rel} is a folder")
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def prune(self, folders, protected):
        """Remove the given library folders, and then their parents, while they are empty."""
        for rel in sorted(folders, key=lambda r: r.count("/"), reverse=True):
            parts = tuple(rel.split("/")) if rel else ()
            while parts:
                if protected("/".join(parts)):
                    break
                try:
                    directory = self._existing_directory(parts)
                    if directory is None or os.path.islink(directory):
                        break
                    os.rmdir(directory)
                except (OSError, UnsafePath):
                    break
                self._dirs.pop(parts, None)
                parts = parts[:-1]

    # --- what is there ------------------------------------------------------------------------

    def scan(self):
        """The relative paths of every file and link in the library (links to folders are not
        entered). Temporary files a killed sync left behind are removed on the way."""
        found = set()
        stack = [("", self.root)]
        while stack:
            prefix, directory = stack.pop()
            try:
                scanner = os.scandir(directory)
            except OSError:
                continue
            with scanner:
                for item in scanner:
                    try:
                        is_dir = item.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    if is_dir:
                        stack.append((prefix + item.name + "/", item.path))
                    elif paths.is_temp_name(item.name):
                        _unlink_quietly(item.path)
                    else:
                        found.add(prefix + item.name)
        return found


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
