"""Sandpool's fork server (zygote) for interpreter sandboxes.

One zygote runs per image and preload list. start.sh starts it as host root, in a mount namespace of
its own whose root is the image, with the sandboxes' state, the agent's code and the cgroup
filesystem bound in. It imports the agent and the pool's preload modules once, then forks every
new sandbox from that state: the pages stay shared, copy-on-write, until a session writes them.

Each child becomes a sandbox with the same isolation a runc sandbox gets, from the same OCI config
the driver sends:
  * it joins its cgroups (made and limited by the driver) and enters a new user namespace, which
    the zygote maps to the sandbox's own host id range;
  * it enters new mount, pid, network, ipc, uts and cgroup namespaces; its child is pid 1 there;
  * pid 1 pivots into a fresh read-only bind of the image with the config's mounts, masked and
    read-only paths, sets the hostname, brings loopback up and the rlimits down;
  * it drops every capability (bounding and ambient sets too), becomes uid 1000, sets
    no_new_privs and loads the seccomp filter (compiled on the host from the same profile);
  * pid 1 then reaps orphans and forwards signals, as tini does; the agent (pid 2) serves the
    session, its stdout and stderr on pipes whose read ends only the zygote holds.

The zygote does what conmon does for a runc sandbox: it reaps each pid 1 (it is a child subreaper)
and writes its exit status, and it keeps the agent's output in the console log in the CRI format,
up to 1 MiB. No descriptor of a host file is ever inside a sandbox. It starts no thread: forking a threaded process would copy locks held by threads that are
not there.

Protocol on the control socket: one JSON object per line. The zygote says hello first; each
request is {"op": "spawn", ...} and gets {"ok": true, "pid": N} or {"ok": false, "error": "..."}.
"""

import ctypes
import datetime
import fcntl
import gc
import importlib
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.unshare.argtypes = [ctypes.c_int]
libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MOUNT_FLAGS = {
    "ro": 1,
    "rw": 0,
    "nosuid": 2,
    "nodev": 4,
    "noexec": 8,
    "relatime": 1 << 21,
    "strictatime": 1 << 24,
    "bind": 4096,
    "rbind": 4096 | 16384,
}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2

PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}[os.uname().machine]

SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1

#: Where start.sh binds things in the zygote's mount namespace.
NEW_ROOT = "/run/zygote/newroot"
IMAGE = "/run/zygote/image"
#: Devices a sandbox gets, bound from the host's /dev (the devices cgroup allows exactly these).
DEVICES = ["null", "zero", "full", "random", "urandom", "tty"]
DEVICE_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
#: How long a child may take to become a sandbox before the spawn fails.
SPAWN_TIMEOUT_S = 10
#: In the child: where the agent's stdout and stderr pipes wait for it (their read ends are the zygote's).
OUTPUT_FDS = (5, 6)
#: A console log stops growing here, as conmon's --log-size-max stops it.
CONSOLE_LOG_MAX_BYTES = 1024 * 1024


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def check(result, what):
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(source, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    check(libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl {option}")


# ---------------------------------------------------------------- in the sandbox (pid 1, as root in its user namespace)


def apply_mount(spec):
    """One mount of the OCI config, below NEW_ROOT: binds (sources already translated) and filesystems."""
    target = NEW_ROOT + spec["destination"]
    flags, data = 0, []
    for option in spec.get("options", []):
        if option in MOUNT_FLAGS:
            flags |= MOUNT_FLAGS[option]
        else:
            data.append(option)
    if spec.get("type") == "bind":
        mount(spec["source"], target, None, flags & (MS_BIND | MS_REC))
        extra = flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        if extra:
            mount(None, target, None, MS_REMOUNT | MS_BIND | extra)
        return
    os.makedirs(target, exist_ok=True)
    mount(spec.get("source", spec["type"]), target, spec["type"], flags, ",".join(data) or None)


def mask(path):
    target = NEW_ROOT + path
    if not os.path.lexists(target):
        return
    if os.path.isdir(target):
        mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    else:
        mount("/dev/null", target, None, MS_BIND)


def make_read_only(path):
    target = NEW_ROOT + path
    if not os.path.lexists(target):
        return
    mount(target, target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def build_root(config):
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount(IMAGE, NEW_ROOT, None, MS_BIND)
    for spec in config["mounts"]:
        apply_mount(spec)
    for name in DEVICES:
        node = f"{NEW_ROOT}/dev/{name}"
        open(node, "a").close()
        mount(f"/dev/{name}", node, None, MS_BIND)
    for name, target in DEVICE_LINKS.items():
        os.symlink(target, f"{NEW_ROOT}/dev/{name}")
    for key, value in config.get("sysctl", {}).items():
        with open(f"{NEW_ROOT}/proc/sys/{key.replace('.', '/')}", "w") as knob:
            knob.write(value)
    for path in config["maskedPaths"]:
        mask(path)
    for path in config["readonlyPaths"]:
        make_read_only(path)
    # Read-only last: the mounts above needed their mount points.
    mount(None, NEW_ROOT, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(NEW_ROOT)
    check(libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")


def bring_loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def drop_privileges(config, seccomp_filter):
    process = config["process"]
    for limit in process["rlimits"]:
        resource.setrlimit(getattr(resource, limit["type"]), (limit["soft"], limit["hard"]))
    with open("/proc/sys/kernel/cap_last_cap") as last:
        cap_last = int(last.read())
    for cap in range(cap_last + 1):
        prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    user = process["user"]
    os.setgroups(user.get("additionalGids", []))
    os.setresgid(user["gid"], user["gid"], user["gid"])
    # Leaving uid 0 clears the permitted and effective sets: nothing is left to regain.
    os.setresuid(user["uid"], user["uid"], user["uid"])
    # Leaving uid 0 made the process undumpable, which an exec would have undone: as under runc, the
    # sandbox's own processes are dumpable (its /proc entries belong to its user).
    prctl(PR_SET_DUMPABLE, 1)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    program = ctypes.create_string_buffer(seccomp_filter)
    fprog = SockFprog(len(seccomp_filter) // 8, ctypes.addressof(program))
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


def fresh_process_state(config, request):
    """What a started interpreter has of its own: environment, directory, argv, randomness, signal handlers."""
    signal.set_wakeup_fd(-1)
    # As `python3 -I <agent dir>/agent.py <socket>` has them.
    sys.path[sys.path.index(ZYGOTE_AGENT_DIR)] = request["agentCodeDir"]
    sys.argv = [os.path.join(request["agentCodeDir"], "agent.py"), request["agentSocket"]]
    # As a starting interpreter has them: SIGINT raises KeyboardInterrupt, SIGPIPE is ignored (a
    # write to a closed socket raises instead of killing the agent), the rest are the defaults.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(dict(entry.split("=", 1) for entry in config["process"]["env"]))
    os.chdir(config["process"]["cwd"])
    os.umask(0o022)
    if "random" in sys.modules:
        sys.modules["random"].seed()
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed()


def cri_line(stream, text):
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return f"{stamp} {stream} F {text}\n".encode("utf-8", "replace")


def warm_up(agent):
    """Runs one throwaway cell at boot, with the boot CPU: the copy-on-write faults of the first
    execution (reference counts written on shared pages) are paid before a session waits on them."""
    try:
        agent.Interpreter().execute("print(1)\n1", 100)
    except Exception:  # noqa: BLE001 - a warm-up that fails leaves the first request to pay
        pass


def init(agent_socket):
    """pid 1: starts the agent as pid 2 with its output on fds 5 and 6 (pipes the zygote reads), then
    reaps orphans and forwards signals to it, as tini does, until it ends."""
    agent_pid = os.fork()
    if agent_pid == 0:
        os.dup2(OUTPUT_FDS[0], 1)
        os.dup2(OUTPUT_FDS[1], 2)
        close_descriptors_from(3)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        code = 0
        try:
            import agent

            warm_up(agent)
            agent.serve(agent_socket)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - the sandbox ends with the reason printed
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    # pid 1 keeps nothing of the agent's output: the zygote, outside, reads it.
    close_descriptors_from(3)
    forward = lambda signum, _frame: os.kill(agent_pid, signum)  # noqa: E731
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    while True:
        pid, status = os.wait()
        if pid == agent_pid:
            break
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def close_descriptors_from(lowest):
    """Closes every descriptor from `lowest` up, however high the limit lets them go."""
    for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
        if fd >= lowest:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory's own descriptor, closed already


def become_sandbox(request, seccomp_filter, sync_in, sync_out):
    """The forked child: from zygote to sandbox. Runs as host root until the user namespace."""
    config = request["config"]
    with open("/proc/self/oom_score_adj", "w") as score:
        score.write(str(config["process"]["oomScoreAdj"]))
    for procs_file in request["cgroups"]:
        with open(procs_file, "w") as procs:
            procs.write("0")
    check(libc.unshare(CLONE_NEWUSER), "unshare user")
    os.write(sync_out, b"U")
    if os.read(sync_in, 1) != b"M":
        raise RuntimeError("the zygote did not map the user namespace")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP), "unshare")
    pid = os.fork()
    if pid:
        os.write(sync_out, f"P{pid}\n".encode())
        os._exit(0)
    # pid 1 of the sandbox.
    build_root(config)
    hostname = config["hostname"].encode()
    check(libc.sethostname(hostname, len(hostname)), "sethostname")
    bring_loopback_up()
    drop_privileges(config, seccomp_filter)
    fresh_process_state(config, request)
    os.write(sync_out, b"R")
    os.close(sync_out)
    os.close(sync_in)
    init(request["agentSocket"])


# ---------------------------------------------------------------- the zygote


class ConsoleLog:
    """One sandbox's stdout and stderr, read by the zygote and kept in the CRI format, up to a cap."""

    def __init__(self, path):
        self.path = path
        self.size = os.path.getsize(path) if os.path.exists(path) else 0
        self.pending = {}

    def add(self, stream, chunk):
        *lines, rest = (self.pending.get(stream, b"") + chunk).split(b"\n")
        self.pending[stream] = rest
        self.write(stream, lines)

    def close(self, stream):
        rest = self.pending.pop(stream, b"")
        if rest:
            self.write(stream, [rest])

    def write(self, stream, lines):
        if not lines or self.size >= CONSOLE_LOG_MAX_BYTES:
            return
        text = b"".join(cri_line(stream, line.decode("utf-8", "replace")) for line in lines)
        with open(self.path, "ab") as log:
            log.write(text)
        self.size += len(text)


class Zygote:
    def __init__(self, control_path, seccomp_filter):
        self.seccomp_filter = seccomp_filter
        self.sandboxes = {}  # pid 1's host pid -> exit file
        self.outputs = {}  # read end of a sandbox's stdout or stderr -> (its console log, stream)
        self.clients = {}
        self.served = False
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(control_path)
        except FileNotFoundError:
            pass
        self.listener.bind(control_path)
        os.chmod(control_path, 0o600)
        self.listener.listen(8)
        self.wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def hello(self):
        return {"zygote": 1, "pid": os.getpid(), "python": sys.version.split()[0], "preload": PRELOADED}

    def serve(self):
        while True:
            fds = [self.listener, self.wakeup_r, *self.clients, *self.outputs]
            try:
                ready, _, _ = select.select(fds, [], [], 5)
            except InterruptedError:
                continue
            for fd in ready:
                if fd is self.listener:
                    client, _ = self.listener.accept()
                    client.setblocking(True)
                    self.served = True
                    try:
                        client.sendall((json.dumps(self.hello()) + "\n").encode())
                    except OSError:
                        client.close()
                        continue
                    self.clients[client] = b""
                elif fd in self.outputs:
                    self.read_output(fd)
                elif fd == self.wakeup_r:
                    while True:
                        try:
                            if not os.read(self.wakeup_r, 512):
                                break
                        except BlockingIOError:
                            break
                else:
                    self.read_client(fd)
            self.reap()
            # Nobody left to serve or to reap for: a server that stopped, its sandboxes all ended.
            if self.served and not self.clients and not self.sandboxes and not self.outputs:
                return

    def read_output(self, fd):
        log, stream = self.outputs[fd]
        chunk = os.read(fd, 65536)
        if chunk:
            log.add(stream, chunk)
            return
        log.close(stream)
        del self.outputs[fd]
        os.close(fd)

    def read_client(self, client):
        # A server killed mid-request resets the connection, before or after the answer: it goes,
        # and the zygote keeps serving its sandboxes and the next server.
        try:
            chunk = client.recv(1 << 20)
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            buffer = self.clients[client] + chunk
            *lines, buffer = buffer.split(b"\n")
            self.clients[client] = buffer
            for line in lines:
                try:
                    reply = self.spawn(json.loads(line))
                except Exception as exc:  # noqa: BLE001 - every failure is the request's answer
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                client.sendall((json.dumps(reply) + "\n").encode())
        except OSError:
            del self.clients[client]
            client.close()

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            exit_file = self.sandboxes.pop(pid, None)
            if exit_file is None:
                continue
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            with open(exit_file + ".tmp", "w") as out:
                out.write(str(code))
            os.rename(exit_file + ".tmp", exit_file)

    def spawn(self, request):
        if request.get("op") != "spawn":
            raise ValueError(f"unknown op {request.get('op')!r}")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                for source, target in ((to_child_r, 3), (from_child_w, 4), (out_w, OUTPUT_FDS[0]), (err_w, OUTPUT_FDS[1])):
                    os.dup2(source, target)
                null = os.open("/dev/null", os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                close_descriptors_from(OUTPUT_FDS[1] + 1)
                os.setsid()
                become_sandbox(request, self.seccomp_filter, 3, 4)
            except BaseException as exc:  # noqa: BLE001 - reported to the zygote, then gone
                try:
                    os.write(4, f"E{type(exc).__name__}: {exc}\n".encode())
                finally:
                    os._exit(127)
        for fd in (to_child_r, from_child_w, out_w, err_w):
            os.close(fd)
        log = ConsoleLog(request["consoleLog"])
        try:
            reply = self.follow(child, request, to_child_w, from_child_r)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(to_child_w)
            os.close(from_child_r)
        self.outputs[out_r] = (log, "stdout")
        self.outputs[err_r] = (log, "stderr")
        return reply

    def follow(self, child, request, to_child, from_child):
        """Maps the child's user namespace, learns its pid 1, and waits until it runs as a sandbox."""
        deadline = time.monotonic() + SPAWN_TIMEOUT_S
        received = b""
        pid = None
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([from_child], [], [], max(0, remaining))
            if not ready:
                self.kill(child, pid)
                raise TimeoutError("the sandbox did not start in time")
            chunk = os.read(from_child, 4096)
            if not chunk:
                self.kill(child, pid)
                raise RuntimeError("the sandbox ended while it started")
            received += chunk
            while received:
                tag = received[:1]
                if tag == b"U":
                    received = received[1:]
                    for name, mapping in (("uid_map", request["uidMap"]), ("gid_map", request["gidMap"])):
                        with open(f"/proc/{child}/{name}", "w") as out:
                            out.write(mapping)
                    os.write(to_child, b"M")
                elif tag in (b"P", b"E"):
                    if b"\n" not in received:
                        break
                    line, received = received.split(b"\n", 1)
                    if tag == b"E":
                        self.kill(child, pid)
                        raise RuntimeError(line[1:].decode("utf-8", "replace"))
                    pid = int(line[1:])
                    self.sandboxes[pid] = request["exitFile"]
                    # Written here, not by the server, which may die before it hears the answer: a
                    # later server then finds the sandbox's pid 1 and its monitor all the same.
                    for path, value in ((request["initPidFile"], pid), (request["monitorPidFile"], os.getpid())):
                        with open(path + ".tmp", "w") as out:
                            out.write(str(value))
                        os.rename(path + ".tmp", path)
                    # The intermediate child exits at once; pid 1 is now the zygote's to reap.
                    os.waitpid(child, 0)
                elif tag == b"R":
                    return {"ok": True, "pid": pid}
                else:
                    raise RuntimeError(f"unexpected message from the sandbox: {received[:40]!r}")

    def kill(self, child, pid):
        for target in (pid, child):
            if target:
                try:
                    os.kill(target, signal.SIGKILL)
                except ProcessLookupError:
                    pass


PRELOADED = []
#: Where start.sh binds the agent's code for the zygote.
ZYGOTE_AGENT_DIR = "/run/zygote/agent"
#: Where start.sh left the host's root after pivoting into the image.
OLD_ROOT = "/run/zygote/old-root"


def main():
    control_path, seccomp_path = sys.argv[1:3]
    preload = [name for name in sys.argv[3].split(",") if name] if len(sys.argv) > 3 else []
    # start.sh pivoted into the image and left the host's root here.
    check(libc.umount2(OLD_ROOT.encode(), MNT_DETACH), "detach the host's root")
    os.rmdir(OLD_ROOT)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    with open(seccomp_path, "rb") as bpf:
        seccomp_filter = bpf.read()
    sys.path.insert(0, ZYGOTE_AGENT_DIR)
    agent = importlib.import_module("agent")
    # pyplot.show is patched as pyplot is imported: the hook goes in before any preload does.
    sys.meta_path.insert(0, agent.pyplot_show)
    for name in preload:
        importlib.import_module(name)
        PRELOADED.append(name)
    # What is imported now stays shared: the collector never writes to these objects again.
    gc.collect()
    gc.freeze()
    zygote = Zygote(control_path, seccomp_filter)
    print(json.dumps({"zygote": "ready", "preload": PRELOADED}), flush=True)
    zygote.serve()


if __name__ == "__main__":
    main()
