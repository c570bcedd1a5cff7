"""Sandpool's envd agent: what E2B's in-sandbox agent does, inside a Sandpool sandbox.

The interpreter agent starts it (op ``envd.start``) for a session reached through E2B's API. It runs as
the sandbox's user, inside the sandbox's namespaces and limits, and serves the host over one unix
socket (``/run/sandpool/envd.sock``, beside the interpreter agent's): JSON objects, one a line, each
request with an ``id`` the host chose. Unlike the interpreter agent it serves many requests at once
(a command's output streams while files are read), each on a thread of its own:

* a reply ends a request: ``{"id": 1, "ok": true, ...}`` or ``{"id": 1, "ok": false, "error":
  {"code": "not_found", "message": "..."}}`` (codes are Connect's, as E2B's SDKs read them);
* a streaming request sends events first: ``{"id": 1, "event": "start", "pid": 12}``;
* ``{"op": "cancel", "target": 1}`` stops a stream (a command keeps running; a watch ends).

Processes: ``process.start`` (argv, env, cwd, stdin or not, a terminal of a size), ``process.connect``
(the events of a running one from now on), ``process.list``, ``process.input``, ``process.signal``,
``process.closeStdin``, ``process.resize``. Files: ``fs.stat``, ``fs.list`` (to a depth), ``fs.mkdir``,
``fs.move``, ``fs.remove``, ``fs.read`` (chunks as events), ``fs.write`` (chunks, appended), and
``fs.watch`` (inotify, recursive on request). Relative paths are below the home directory.
"""

import base64
import ctypes
import errno
import fcntl
import grp
import json
import os
import pwd
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import termios
import threading
import time


def home():
    """The user's home: relative paths and commands without a cwd start there (read when asked: the
    module is loaded in a zygote, whose environment is not the sandbox's)."""
    return os.environ.get("HOME", "/home/user")

CHUNK = 256 * 1024
MAX_LINE = 64 * 1024 * 1024
#: Processes a sandbox keeps at once, running or ended and not yet read (E2B's has no bound; ours does).
MAX_PROCESSES = 64


class Refused(Exception):
    """A request that cannot be served, with the Connect code E2B's SDKs map to their errors."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def refused_by_os(error, path):
    codes = {
        errno.ENOENT: "not_found",
        errno.ENOTDIR: "not_found",
        errno.EEXIST: "already_exists",
        errno.EACCES: "permission_denied",
        errno.EPERM: "permission_denied",
        errno.EROFS: "permission_denied",
        errno.ENOSPC: "resource_exhausted",
        errno.EISDIR: "invalid_argument",
        errno.ENOTEMPTY: "failed_precondition",
    }
    return Refused(codes.get(error.errno, "internal"), f"{path}: {os.strerror(error.errno)}")


def absolute(path):
    if not isinstance(path, str) or path == "":
        raise Refused("invalid_argument", "path is required")
    return os.path.normpath(path if path.startswith("/") else os.path.join(home(), path))


def name_of(uid, lookup, field):
    try:
        return getattr(lookup(uid), field)
    except KeyError:
        return str(uid)


def entry(path, follow=False):
    info = os.stat(path) if follow else os.lstat(path)
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        kind = "FILE_TYPE_SYMLINK"
    elif stat.S_ISDIR(mode):
        kind = "FILE_TYPE_DIRECTORY"
    elif stat.S_ISREG(mode):
        kind = "FILE_TYPE_FILE"
    else:
        kind = "FILE_TYPE_UNSPECIFIED"
    described = {
        "name": os.path.basename(path) or path,
        "type": kind,
        "path": path,
        "size": info.st_size,
        "mode": stat.S_IMODE(mode) | (0o20000000000 if stat.S_ISDIR(mode) else 0),
        "permissions": stat.filemode(mode),
        "owner": name_of(info.st_uid, pwd.getpwuid, "pw_name"),
        "group": name_of(info.st_gid, grp.getgrgid, "gr_name"),
        "modifiedTime": info.st_mtime_ns,
    }
    if kind == "FILE_TYPE_SYMLINK":
        described["symlinkTarget"] = os.readlink(path)
    return described


class Connection:
    """One host connection: a reader, and a lock so that lines from many threads never interleave."""

    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()
        self.file = sock.makefile("rb")
        self.closed = False

    def send(self, message):
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        with self.lock:
            if self.closed:
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                self.closed = True
                return False

    def reply(self, request_id, **fields):
        self.send({"id": request_id, "ok": True, **fields})

    def fail(self, request_id, code, message):
        self.send({"id": request_id, "ok": False, "error": {"code": code, "message": message}})

    def event(self, request_id, **fields):
        return self.send({"id": request_id, **fields})


class Subscription:
    """Where a process's (or a watch's) events go for one streaming request, until it is cancelled."""

    def __init__(self, connection, request_id):
        self.connection = connection
        self.request_id = request_id
        self.cancelled = threading.Event()

    def send(self, **fields):
        if self.cancelled.is_set():
            return False
        return self.connection.event(self.request_id, **fields)


class Process:
    def __init__(self, request):
        """Starts the process; its output is read once `stream_to` names who hears it."""
        config = request.get("process") or {}
        cmd = config.get("cmd")
        if not isinstance(cmd, str) or cmd == "":
            raise Refused("invalid_argument", "process.cmd is required")
        args = config.get("args") or []
        envs = config.get("envs") or {}
        cwd = absolute(config.get("cwd") or home())
        if not os.path.isdir(cwd):
            raise Refused("invalid_argument", f"cwd {cwd} is not a directory")
        self.config = {"cmd": cmd, "args": args, "envs": envs, "cwd": cwd}
        self.tag = request.get("tag")
        self.subscribers = []
        self.lock = threading.Lock()
        self.ended = None
        environment = dict(os.environ)
        environment.update({str(k): str(v) for k, v in envs.items()})
        environment.setdefault("HOME", home())
        environment["PWD"] = cwd
        size = (request.get("pty") or {}).get("size")
        self.pty_master = None
        try:
            if size is not None:
                master, slave = os.openpty()
                self.pty_master = master
                self.resize(size.get("cols", 80), size.get("rows", 24))
                environment.setdefault("TERM", "xterm-256color")
                # setsid --ctty makes the terminal the new session's controlling one, as a login's is.
                self.popen = subprocess.Popen(
                    ["setsid", "--ctty", cmd, *args],
                    stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=environment, close_fds=True,
                )
                os.close(slave)
                self.stdin = None
            else:
                self.popen = subprocess.Popen(
                    [cmd, *args],
                    stdin=subprocess.PIPE if request.get("stdin") else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=cwd,
                    env=environment,
                    start_new_session=True,
                    close_fds=True,
                )
                self.stdin = self.popen.stdin
        except OSError as error:
            if self.pty_master is not None:
                os.close(self.pty_master)
            raise Refused("invalid_argument", f"cannot start {cmd}: {os.strerror(error.errno)}") from error
        self.pid = self.popen.pid
        self.readers = []

    def stream_to(self, subscription):
        """`subscription` hears the start, then everything the process writes, then its end: it is
        subscribed before the output is read, so a command that ends at once loses none."""
        self.subscribers.append(subscription)
        subscription.send(event="start", pid=self.pid)
        if self.pty_master is not None:
            self.readers.append(self.reader(self.pty_master, "pty"))
        else:
            self.readers.append(self.reader(self.popen.stdout.fileno(), "stdout"))
            self.readers.append(self.reader(self.popen.stderr.fileno(), "stderr"))
        threading.Thread(target=self.wait, daemon=True).start()

    def reader(self, fd, stream):
        thread = threading.Thread(target=self.read, args=(fd, stream), daemon=True)
        thread.start()
        return thread

    def read(self, fd, stream):
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                return
            self.publish(event="data", stream=stream, data=base64.b64encode(data).decode())

    def publish(self, **fields):
        with self.lock:
            subscribers = list(self.subscribers)
        for subscriber in subscribers:
            subscriber.send(**fields)

    def subscribe(self, subscription):
        """Streams this process's events to `subscription` from now on: its start first, its end last."""
        with self.lock:
            ended = self.ended
            if ended is None:
                self.subscribers.append(subscription)
        subscription.send(event="start", pid=self.pid)
        if ended is not None:
            subscription.send(event="end", **ended)
        return ended is not None

    def wait(self):
        code = self.popen.wait()
        for thread in self.readers:
            thread.join(timeout=0.5)
        if self.pty_master is not None:
            os.close(self.pty_master)
        if code < 0:
            name = signal.Signals(-code).name.lower().removeprefix("sig")
            ended = {"exitCode": 128 - code, "exited": False, "status": f"signal: {name}"}
        else:
            ended = {"exitCode": code, "exited": True, "status": f"exit status {code}"}
        with self.lock:
            self.ended = ended
            subscribers, self.subscribers = self.subscribers, []
        for subscriber in subscribers:
            subscriber.send(event="end", **ended)
            subscriber.send(done=True)

    def describe(self):
        described = {"pid": self.pid, "config": self.config}
        if self.tag is not None:
            described["tag"] = self.tag
        return described

    def write(self, data, to_pty):
        if to_pty:
            if self.pty_master is None:
                raise Refused("failed_precondition", f"process {self.pid} has no terminal")
            os.write(self.pty_master, data)
            return
        if self.stdin is None or self.stdin.closed:
            raise Refused("failed_precondition", f"process {self.pid} takes no stdin")
        try:
            self.stdin.write(data)
            self.stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            raise Refused("failed_precondition", f"process {self.pid} closed its stdin") from error

    def close_stdin(self):
        if self.stdin is not None and not self.stdin.closed:
            self.stdin.close()

    def resize(self, cols, rows):
        if self.pty_master is None:
            raise Refused("failed_precondition", "the process has no terminal")
        fcntl.ioctl(self.pty_master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def signal(self, number):
        try:
            os.killpg(self.pid, number)
        except ProcessLookupError:
            pass


class Processes:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_pid = {}

    def start(self, request, subscription):
        with self.lock:
            running = [p for p in self.by_pid.values() if p.ended is None]
            if len(running) >= MAX_PROCESSES:
                raise Refused("resource_exhausted", f"{MAX_PROCESSES} processes run already")
            for pid in [pid for pid, p in self.by_pid.items() if p.ended is not None]:
                del self.by_pid[pid]
        process = Process(request)
        # Known by its pid before the client hears it: input may follow the start at once.
        with self.lock:
            self.by_pid[process.pid] = process
        process.stream_to(subscription)
        return process

    def find(self, selector):
        selector = selector or {}
        with self.lock:
            if "pid" in selector:
                process = self.by_pid.get(selector["pid"])
            elif "tag" in selector:
                process = next((p for p in self.by_pid.values() if p.tag == selector["tag"]), None)
            else:
                raise Refused("invalid_argument", "select the process by pid or tag")
        if process is None or process.ended is not None:
            raise Refused("not_found", f"no running process {json.dumps(selector)}")
        return process

    def running(self):
        with self.lock:
            return [p.describe() for p in self.by_pid.values() if p.ended is None]


class Inotify:
    """The kernel's inotify, through libc: Python has no module of its own for it."""

    IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
    IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
    IN_DELETE_SELF, IN_ISDIR, IN_IGNORED = 0x400, 0x40000000, 0x8000
    MASK = IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
    # The process's own symbols hold libc's: no library search (which would start ldconfig).
    libc = ctypes.CDLL(None, use_errno=True)

    def __init__(self):
        self.fd = self.libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise Refused("internal", f"inotify: {os.strerror(ctypes.get_errno())}")
        self.paths = {}

    def add(self, path):
        wd = self.libc.inotify_add_watch(self.fd, path.encode(), self.MASK)
        if wd < 0:
            raise refused_by_os(OSError(ctypes.get_errno(), ""), path)
        self.paths[wd] = path

    def events(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        data = os.read(self.fd, 65536)
        found = []
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode(errors="replace")
            offset += 16 + length
            base = self.paths.get(wd)
            if base is not None:
                found.append((os.path.join(base, name) if name else base, mask))
            if mask & self.IN_IGNORED:
                self.paths.pop(wd, None)
        return found

    def close(self):
        os.close(self.fd)


def watch(subscription, request):
    root = absolute(request.get("path"))
    recursive = bool(request.get("recursive"))
    if not os.path.isdir(root):
        raise Refused("invalid_argument" if os.path.exists(root) else "not_found", f"{root} is no directory")
    inotify = Inotify()
    try:
        inotify.add(root)
        if recursive:
            for directory, subdirectories, _ in os.walk(root):
                for sub in subdirectories:
                    inotify.add(os.path.join(directory, sub))
        subscription.send(event="watching")
        while not subscription.cancelled.is_set():
            for path, mask in inotify.events(0.5):
                if mask & inotify.IN_ISDIR and mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO) and recursive:
                    try:
                        inotify.add(path)
                    except Refused:
                        pass
                kind = (
                    "EVENT_TYPE_CREATE" if mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO)
                    else "EVENT_TYPE_REMOVE" if mask & (inotify.IN_DELETE | inotify.IN_DELETE_SELF)
                    else "EVENT_TYPE_RENAME" if mask & inotify.IN_MOVED_FROM
                    else "EVENT_TYPE_WRITE" if mask & inotify.IN_MODIFY
                    else "EVENT_TYPE_CHMOD"
                )
                name = os.path.relpath(path, root)
                found = {"name": name, "type": kind}
                if request.get("includeEntry") and os.path.lexists(path):
                    try:
                        found["entry"] = entry(path)
                    except OSError:
                        pass
                if not subscription.send(event="fs", **found):
                    return
    finally:
        inotify.close()


def listing(root, depth):
    found = []
    pending = [(root, 1)]
    while pending:
        directory, level = pending.pop(0)
        with os.scandir(directory) as entries:
            for item in sorted(entries, key=lambda e: e.name):
                path = os.path.join(directory, item.name)
                found.append(entry(path))
                if level < depth and item.is_dir(follow_symlinks=False):
                    pending.append((path, level + 1))
    return found


def serve_request(connection, processes, streams, request):
    request_id = request.get("id")
    op = request.get("op")
    try:
        if op == "process.start" or op == "process.connect":
            subscription = Subscription(connection, request_id)
            streams[request_id] = subscription
            if op == "process.start":
                processes.start(request, subscription)
            elif processes.find(request.get("process")).subscribe(subscription):
                connection.event(request_id, done=True)
            return
        if op == "fs.watch":
            subscription = Subscription(connection, request_id)
            streams[request_id] = subscription
            watch(subscription, request)
            connection.event(request_id, done=True)
            return
        if op == "cancel":
            target = streams.pop(request.get("target"), None)
            if target is not None:
                target.cancelled.set()
            connection.reply(request_id)
            return
        if op == "process.list":
            connection.reply(request_id, processes=processes.running())
        elif op == "process.input":
            data = base64.b64decode(request.get("data") or "")
            processes.find(request.get("process")).write(data, bool(request.get("pty")))
            connection.reply(request_id)
        elif op == "process.signal":
            number = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}.get(request.get("signal"))
            if number is None:
                raise Refused("invalid_argument", "signal must be SIGTERM or SIGKILL")
            processes.find(request.get("process")).signal(number)
            connection.reply(request_id)
        elif op == "process.closeStdin":
            processes.find(request.get("process")).close_stdin()
            connection.reply(request_id)
        elif op == "process.resize":
            size = request.get("size") or {}
            processes.find(request.get("process")).resize(size.get("cols", 80), size.get("rows", 24))
            connection.reply(request_id)
        elif op == "fs.stat":
            path = absolute(request.get("path"))
            connection.reply(request_id, entry=entry(path))
        elif op == "fs.list":
            path = absolute(request.get("path"))
            if not os.path.isdir(path):
                raise Refused("invalid_argument" if os.path.exists(path) else "not_found", f"{path} is no directory")
            connection.reply(request_id, entries=listing(path, max(1, int(request.get("depth") or 1))))
        elif op == "fs.mkdir":
            path = absolute(request.get("path"))
            if os.path.isdir(path):
                raise Refused("already_exists", f"{path} exists")
            os.makedirs(path)
            connection.reply(request_id, entry=entry(path))
        elif op == "fs.move":
            source, destination = absolute(request.get("source")), absolute(request.get("destination"))
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            os.rename(source, destination)
            connection.reply(request_id, entry=entry(destination))
        elif op == "fs.remove":
            path = absolute(request.get("path"))
            if os.path.isdir(path) and not os.path.islink(path):
                for directory, subdirectories, files in os.walk(path, topdown=False):
                    for name in files:
                        os.unlink(os.path.join(directory, name))
                    for name in subdirectories:
                        sub = os.path.join(directory, name)
                        (os.unlink if os.path.islink(sub) else os.rmdir)(sub)
                os.rmdir(path)
            else:
                os.unlink(path)
            connection.reply(request_id)
        elif op == "fs.read":
            path = absolute(request.get("path"))
            if os.path.isdir(path):
                raise Refused("invalid_argument", f"{path} is a directory")
            with open(path, "rb") as source:
                size = 0
                while True:
                    data = source.read(CHUNK)
                    if not data:
                        break
                    size += len(data)
                    connection.event(request_id, event="chunk", data=base64.b64encode(data).decode())
            connection.reply(request_id, size=size)
        elif op == "fs.write":
            path = absolute(request.get("path"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "ab" if request.get("append") else "wb") as target:
                target.write(base64.b64decode(request.get("data") or ""))
            connection.reply(request_id, entry=entry(path))
        else:
            raise Refused("unimplemented", f"unknown op {op!r}")
    except Refused as refusal:
        streams.pop(request_id, None)
        connection.fail(request_id, refusal.code, str(refusal))
    except OSError as error:
        streams.pop(request_id, None)
        refusal = refused_by_os(error, request.get("path") or request.get("source") or "")
        connection.fail(request_id, refusal.code, str(refusal))
    except Exception as error:  # noqa: BLE001 - the host gets every failure as an answer
        streams.pop(request_id, None)
        connection.fail(request_id, "internal", f"{type(error).__name__}: {error}")


def serve_connection(sock, processes):
    connection = Connection(sock)
    streams = {}
    try:
        while True:
            line = connection.file.readline(MAX_LINE)
            if not line:
                return
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if not isinstance(request, dict):
                continue
            threading.Thread(
                target=serve_request, args=(connection, processes, streams, request), daemon=True
            ).start()
    finally:
        connection.closed = True
        for subscription in streams.values():
            subscription.cancelled.set()
        sock.close()


def main(socket_path):
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    processes = Processes()
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    # Bound at its final name, as the interpreter agent's (gVisor renames no host socket); the host
    # waits for the agent's answer to `envd.start`, given once this listens.
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(16)
    while True:
        sock, _ = server.accept()
        threading.Thread(target=serve_connection, args=(sock, processes), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1])
