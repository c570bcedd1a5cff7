"""Sandpool's fork server (zygote) for interpreter sandboxes.

One zygote runs per image and preload list. start.sh starts it as host root, in a mount namespace of
its own whose root is the image, with the sandboxes' state, the agent's code and the cgroup
filesystem bound in. It imports the agent and the pool's preload modules once, then forks every
new sandbox from that state: the pages stay shared, copy-on-write, until a session writes them.

Sandboxes are made ahead of requests, as spares, and each request takes one: the forks (the costliest
steps on a virtual machine, which copies page tables slowly) are then not what the request waits on.
Android's zygote keeps such a pool of unspecialized processes (USAP) for the same reason. A spare is
a forked child that, as host root, enters a new user namespace, then new mount, pid, network, ipc and
uts namespaces (its creator has every capability in that user namespace, mapped or not), and forks
pid 1 and the agent (pid 2) into them. Both wait; they hold nothing of any session. The zygote forks
the next spare once it has been idle for a moment, not while the sandbox it just started needs the CPU.

A request makes the spare a sandbox with the isolation a runc sandbox gets, from the same OCI config:
  * the zygote mounts the sandbox's data tmpfs in the requesting server's mount namespace, as the
    driver mounts it for a runc sandbox (it reaches the spare's namespace by propagation); maps the
    user namespace to the sandbox's own host id range; moves both processes into the sandbox's
    cgroups (made and limited by the driver) and sets their OOM score;
  * pid 1 enters a new cgroup namespace rooted there, pivots into a fresh read-only bind of the image
    with the config's mounts, masked and read-only paths, sets the hostname and brings loopback up;
  * each of the two drops every capability (bounding and ambient sets too), lowers the rlimits,
    becomes uid 1000, sets no_new_privs and loads the seccomp filter (compiled on the host from the
    same profile); the agent joins pid 1's cgroup namespace first;
  * pid 1 then reaps orphans and forwards signals, as tini does; the agent serves the session, its
    stdout and stderr on pipes whose read ends only the zygote holds.

The zygote does what conmon does for a runc sandbox: it reaps each pid 1 (it is a child subreaper)
and writes its exit status, and it keeps the agent's output in the console log in the CRI format,
up to 1 MiB. No descriptor of a host file is ever inside a sandbox. It runs on one thread, and
refuses to serve otherwise: forking a threaded process would copy locks held by threads that are not
there, and setns into the server's mount namespace needs a single thread.

Protocol on the control socket: one JSON object per line. The zygote says hello first; each
request is {"op": "spawn", ...}, answered {"ok": true, "pid": N}, or {"op": "unmount", "target": path}
(a sandbox's data, as it ends), answered {"ok": true}; a failure is {"ok": false, "error": "..."}.
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
import selectors
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
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]

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
#: The next spare is forked this long after the last spawn: soon enough that back-to-back cold
#: starts find one (50 ms left them none: 82 ms p50 against 55 ms), and not between the spawns of a
#: burst. Waiting for a free CPU as well (by /proc/loadavg) measured no better for sixteen requests
#: at once, and worse for back-to-back starts.
SPARE_AFTER_SPAWN_S = 0.005
#: A spare that died unused (killed, out of memory) is replaced this long after, not in a loop.
SPARE_AFTER_DEATH_S = 1.0
#: How long a child may take to become a sandbox before the spawn fails.
SPAWN_TIMEOUT_S = 10
#: In a spare's processes: the request pipe from the zygote, and the pipe back to it.
SYNC_IN, SYNC_OUT = 3, 4
#: In a spare's processes: where the agent's stdout and stderr pipes wait for it (their read ends are the zygote's).
OUTPUT_FDS = (5, 6)
#: The agent's pid in its sandbox: the second process forked into the new pid namespace.
AGENT_PID = 2
#: A console log stops growing here, as conmon's --log-size-max stops it.
CONSOLE_LOG_MAX_BYTES = 1024 * 1024
#: Above any descriptor a process can hold (the kernel's nr_open ceiling is 2^30).
FD_CEILING = 2**31 - 1


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


def drop_privileges(config):
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
    program = ctypes.create_string_buffer(SECCOMP_FILTER)
    fprog = SockFprog(len(SECCOMP_FILTER) // 8, ctypes.addressof(program))
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


def fresh_signals_and_randomness():
    """What a started interpreter has of its own that no request decides: signal handlers and seeds.
    A spare's agent sets them while it waits; each spare is forked once, so its seeds are its own."""
    signal.set_wakeup_fd(-1)
    # As a starting interpreter has them: SIGINT raises KeyboardInterrupt, SIGPIPE is ignored (a
    # write to a closed socket raises instead of killing the agent), the rest are the defaults.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    if "random" in sys.modules:
        sys.modules["random"].seed()
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed()


def session_process_state(config, request):
    """What the session's request decides: environment, directory and argv."""
    # As `python3 -I <agent dir>/agent.py <socket>` has them.
    sys.path[sys.path.index(ZYGOTE_AGENT_DIR)] = request["agentCodeDir"]
    sys.argv = [os.path.join(request["agentCodeDir"], "agent.py"), request["agentSocket"]]
    os.environ.clear()
    os.environ.update(dict(entry.split("=", 1) for entry in config["process"]["env"]))
    os.chdir(config["process"]["cwd"])
    os.umask(0o022)


def request_waits():
    """Whether the spare's request has arrived."""
    return bool(select.select([SYNC_IN], [], [], 0)[0])


def threads_of_this_process():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("Threads:")).split()[1])


def cri_line(stream, text):
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return f"{stamp} {stream} F {text}\n".encode("utf-8", "replace")


def close_descriptors_from(lowest, keep=()):
    """Closes every descriptor from `lowest` up but those in `keep`, however high the limit lets them
    go: one close_range call per gap, where a zygote's fork would otherwise close thousands in turn."""
    for kept in sorted(fd for fd in keep if fd >= lowest):
        os.closerange(lowest, kept)
        lowest = kept + 1
    os.closerange(lowest, FD_CEILING)


def read_request(fd):
    """The spawn request a spare waits for: one JSON line; None once the zygote has gone."""
    received = b""
    while not received.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        received += chunk
    return json.loads(received)


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data) :]


def reported(main):
    """Runs a spare's process; a failure goes to the zygote (and the console log), then the process ends."""
    try:
        main()
    except BaseException as exc:  # noqa: BLE001 - reported, then gone
        message = f"{type(exc).__name__}: {exc}\n"
        try:
            os.write(OUTPUT_FDS[1], message.encode())
            os.write(SYNC_OUT, b"E" + message.encode())
        finally:
            os._exit(127)
    os._exit(0)


def become_spare(rehearse):
    """The forked child, as host root: makes the sandbox's namespaces and its pid 1, then exits, and
    pid 1 is the zygote's child (the zygote is a child subreaper)."""
    check(libc.unshare(CLONE_NEWUSER), "unshare user")
    # The new user namespace's creator has every capability in it, mapped or not: it makes the rest.
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    if os.fork() == 0:
        reported(lambda: spare_init(rehearse))


def host_pid():
    """This process's pid on the host: /proc is still the zygote's, which numbers processes as the host does."""
    return int(os.readlink("/proc/self"))


def spare_init(rehearse):
    """pid 1 of a spare: tells the zygote its host pid and forks the agent, which does the same."""
    os.write(SYNC_OUT, f"I{host_pid()}\n".encode())
    from_init, to_agent = os.pipe()
    from_agent, to_init = os.pipe()
    if os.fork() == 0:
        os.close(to_agent)
        os.close(from_agent)
        reported(lambda: sandbox_agent(from_init, to_init, rehearse))
    os.close(from_init)
    os.close(to_init)
    sandbox_init(to_agent, from_agent)


def sandbox_init(to_agent, from_agent):
    """pid 1. Once the zygote has mapped the user namespace, moved both processes into the sandbox's
    cgroups and sent the request: builds the root, hands the request on to the agent, drops
    everything, then reaps orphans and forwards signals to the agent, as tini does, until it ends.
    The agent says when the sandbox runs: once it listens, after it dropped everything."""
    request = read_request(SYNC_IN)
    if request is None:
        return  # the zygote is gone
    config = request["config"]
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    # The new uid made this process undumpable: the agent could not open its /proc/1/ns.
    prctl(PR_SET_DUMPABLE, 1)
    # Now, in the sandbox's cgroups: they are the namespace's root.
    check(libc.unshare(CLONE_NEWCGROUP), "unshare cgroup")
    build_root(config)
    hostname = config["hostname"].encode()
    check(libc.sethostname(hostname, len(hostname)), "sethostname")
    bring_loopback_up()
    write_all(to_agent, (json.dumps(request) + "\n").encode())
    os.close(to_agent)
    # The agent joins this cgroup namespace through /proc/1 before this process leaves root.
    if os.read(from_agent, 1) != b"J":
        return  # the agent failed, and said why
    drop_privileges(config)
    # pid 1 keeps nothing of the agent's output: the zygote, outside, reads it.
    close_descriptors_from(3)
    signal.set_wakeup_fd(-1)
    forward = lambda signum, _frame: os.kill(AGENT_PID, signum)  # noqa: E731
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:
        pid, status = os.wait()
        if pid == AGENT_PID:
            break
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def sandbox_agent(from_init, to_init, rehearse):
    """pid 2. While the spare waits: starts as a new interpreter would and, if `rehearse`, rehearses
    a first request (unless a request waits on this spare already: the rehearsal would only delay it;
    a sandbox for the warm set that skipped it rehearses once it listens instead).
    Once pid 1 has built the root (the pivot moved this process into it too): joins pid 1's cgroup
    namespace, drops everything and serves the session, its output on fds 5 and 6. The sandbox runs
    once the agent listens: it says so to the zygote then."""
    if os.getpid() != AGENT_PID:
        raise RuntimeError(f"the agent is pid {os.getpid()}, not {AGENT_PID}")
    os.write(SYNC_OUT, f"A{host_pid()}\n".encode())
    import agent

    fresh_signals_and_randomness()
    rehearsed = rehearse and not request_waits() and rehearsal(agent)
    request = read_request(from_init)
    if request is None:
        return  # pid 1 failed, and said why
    config = request["config"]
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    cgroup_namespace = os.open("/proc/1/ns/cgroup", os.O_RDONLY)
    check(libc.setns(cgroup_namespace, CLONE_NEWCGROUP), "join pid 1's cgroup namespace")
    os.close(cgroup_namespace)
    os.write(to_init, b"J")
    # Capabilities and seccomp bind the calling thread alone: a thread the rehearsal left would keep both.
    if threads_of_this_process() != 1:
        raise RuntimeError("the agent has more than one thread and would not drop everything from all of them")
    drop_privileges(config)
    session_process_state(config, request)
    os.dup2(OUTPUT_FDS[0], 1)
    os.dup2(OUTPUT_FDS[1], 2)
    close_descriptors_from(3, keep=(SYNC_OUT,))
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    def listening():
        say_running()
        if request["warmUp"] and not rehearsed:
            # Nobody waits on a sandbox for the warm set: it rehearses now, confined as its session
            # will be, while the zygote, answered, serves other requests.
            rehearsal(agent)

    code = 0
    try:
        agent.serve(request["agentSocket"], listening=listening)
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


def rehearsal(agent):
    """Rehearses a session's first request (agent.rehearse): each page that request writes would be
    copied from the zygote's on its time, tens of microseconds a page on a virtual machine. False if
    it failed, which leaves the first request to pay. Returns once the rehearsal's threads are gone."""
    try:
        agent.rehearse()
    except Exception:  # noqa: BLE001 - a rehearsal that fails costs time, nothing else
        return False
    finally:
        until_one_thread()
    return True


def until_one_thread():
    """Waits, a second at most, until this process runs one thread. The rehearsal's output readers
    have been joined, but a joined thread is still leaving the kernel for some microseconds after: a
    request that arrived during the rehearsal once found two threads, and the agent refused to drop
    (once in about 5,000 starts)."""
    deadline = time.monotonic() + 1
    while threads_of_this_process() != 1 and time.monotonic() < deadline:
        time.sleep(0.0002)


def say_running():
    """Tells the zygote the sandbox runs, once: the host may connect to the agent now."""
    try:
        os.write(SYNC_OUT, b"R")
        os.close(SYNC_OUT)
    except OSError:
        pass  # the zygote is gone: nobody waits for the answer


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


class Client:
    """A connected server, and its mount namespace: where its sandboxes' data is mounted."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        pid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[0]
        self.mount_namespace = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)

    def close(self):
        os.close(self.mount_namespace)
        self.sock.close()


class Spare:
    """A sandbox made ahead of a request: namespaces, pid 1 and the agent, which wait for it on `to_child`."""

    def __init__(self, to_child, from_child, stdout, stderr):
        self.init_pid = None
        self.agent_pid = None
        self.to_child = to_child
        self.from_child = from_child
        self.stdout = stdout
        self.stderr = stderr
        self.received = b""

    def buffered_message(self):
        """The next whole message the spare's processes sent, None until one has arrived: I and A
        (pid 1's and the agent's host pids), R (the sandbox runs) or E (failed)."""
        tag = self.received[:1]
        if tag == b"R":
            self.received = self.received[1:]
            return "R", ""
        if tag in (b"I", b"A", b"E") and b"\n" in self.received:
            line, self.received = self.received.split(b"\n", 1)
            return tag.decode(), line[1:].decode("utf-8", "replace")
        if tag not in (b"", b"I", b"A", b"E"):
            raise RuntimeError(f"unexpected message from the sandbox: {self.received[:40]!r}")
        return None

    def message(self, deadline):
        """The next message from the spare's processes (see buffered_message), waiting for it."""
        waiting = select.poll()
        waiting.register(self.from_child, select.POLLIN)
        while (said := self.buffered_message()) is None:
            if not waiting.poll(max(0, deadline - time.monotonic()) * 1000):
                raise TimeoutError("the sandbox did not start in time")
            chunk = os.read(self.from_child, 4096)
            if not chunk:
                raise RuntimeError("the sandbox ended while it started")
            self.received += chunk
        return said

    def note_pid(self, tag, said):
        """Notes a host pid the spare reported; any other message before its request is a failure."""
        if tag == "I":
            self.init_pid = int(said)
        elif tag == "A":
            self.agent_pid = int(said)
        else:
            raise RuntimeError(said if tag == "E" else f"unexpected {tag} from a spare")

    def hear(self):
        """Reads what the spare says while it waits: its pids, noted ahead of its request. False once
        it has gone or failed (it said E, or its processes all closed the pipe)."""
        chunk = os.read(self.from_child, 4096)
        self.received += chunk
        try:
            while (said := self.buffered_message()) is not None:
                self.note_pid(*said)
        except (RuntimeError, ValueError):
            return False
        return bool(chunk)

    def last_words(self):
        """The last line the spare's processes wrote to stdout or stderr before they ended."""
        lines = []
        for fd in (self.stdout, self.stderr):
            os.set_blocking(fd, False)
            try:
                lines += os.read(fd, 65536).decode("utf-8", "replace").strip().splitlines()
            except BlockingIOError:
                pass
        return lines[-1] if lines else ""

    def kill(self):
        """Kills pid 1, and with it its pid namespace. Until pid 1 is known, closing the pipes ends the
        spare: its processes read the end of them. The forked child is not killed: it exits by itself
        once it forked pid 1, and its pid, reaped, may belong to another process."""
        if self.init_pid:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self):
        for fd in (self.to_child, self.from_child, self.stdout, self.stderr):
            try:
                os.close(fd)
            except OSError:
                pass  # closed already


class Zygote:
    def __init__(self, control_path):
        self.sandboxes = {}  # pid 1's host pid -> exit file
        self.outputs = {}  # read end of a sandbox's stdout or stderr -> (its console log, stream)
        self.clients = {}  # socket -> Client
        self.served = False
        self.last_spawn = 0.0
        self.spare_died = 0.0
        # What the zygote waits on, each descriptor with its handler: epoll, since a zygote holds two
        # descriptors per sandbox, past the 1,024 that select() can watch.
        self.waiting = selectors.DefaultSelector()
        # The first spare, forked now, also ends the threads a preloaded library started (OpenBLAS
        # shuts its workers down before a fork): forks copy one thread, and setns needs one.
        self.spare = None
        self.keep_spare(self.fork_spare())
        threads = threads_of_this_process()
        if threads != 1:
            raise SystemExit(f"the preload list left {threads - 1} threads running; a zygote must be single-threaded")
        self.own_mount_namespace = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
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
        self.waiting.register(self.listener, selectors.EVENT_READ, self.accept)
        self.waiting.register(self.wakeup_r, selectors.EVENT_READ, self.drain_wakeups)

    def hello(self):
        return {"zygote": 1, "pid": os.getpid(), "python": sys.version.split()[0], "preload": PRELOADED}

    def serve(self):
        while True:
            for key, _ in self.waiting.select(5 if self.spare else max(0.0, self.next_spare_in())):
                # A handler before this one may have let go of its descriptor: a spawn takes the spare.
                if self.waiting.get_map().get(key.fd) is key:
                    key.data()
            self.reap()
            if self.spare is None and self.next_spare_in() <= 0:
                self.keep_spare(self.fork_spare())
            # Nobody left to serve or to reap for: a server that stopped, its sandboxes all ended.
            if self.served and not self.clients and not self.sandboxes and not self.outputs:
                return

    def accept(self):
        sock, _ = self.listener.accept()
        sock.setblocking(True)
        self.served = True
        try:
            client = Client(sock)
            sock.sendall((json.dumps(self.hello()) + "\n").encode())
        except OSError:
            sock.close()
            return
        self.clients[sock] = client
        self.waiting.register(sock, selectors.EVENT_READ, lambda: self.read_client(client))

    def drain_wakeups(self):
        """Empties the pipe a signal (SIGCHLD) wrote to: it woke the loop, which reaps next."""
        while True:
            try:
                if not os.read(self.wakeup_r, 512):
                    return
            except BlockingIOError:
                return

    def read_output(self, fd):
        log, stream = self.outputs[fd]
        chunk = os.read(fd, 65536)
        if chunk:
            log.add(stream, chunk)
            return
        log.close(stream)
        del self.outputs[fd]
        self.waiting.unregister(fd)
        os.close(fd)

    def read_client(self, client):
        # A server killed mid-request resets the connection, before or after the answer: it goes,
        # and the zygote keeps serving its sandboxes and the next server.
        try:
            chunk = client.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            *lines, client.buffer = (client.buffer + chunk).split(b"\n")
            for line in lines:
                try:
                    reply = self.answer(json.loads(line), client)
                except Exception as exc:  # noqa: BLE001 - every failure is the request's answer
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                client.sock.sendall((json.dumps(reply) + "\n").encode())
        except OSError:
            del self.clients[client.sock]
            self.waiting.unregister(client.sock)
            client.close()

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare.init_pid:
                self.spare.init_pid = None  # reaped: the pid is not its own any more
                self.drop_spare()
                continue
            exit_file = self.sandboxes.pop(pid, None)
            if exit_file is None:
                continue
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            with open(exit_file + ".tmp", "w") as out:
                out.write(str(code))
            os.rename(exit_file + ".tmp", exit_file)

    def keep_spare(self, spare):
        """Makes `spare` the one the next request takes, hearing what it says while it waits."""
        self.spare = spare
        self.waiting.register(spare.from_child, selectors.EVENT_READ, self.hear_spare)

    def take_spare(self):
        """The spare, for a request: the zygote stops listening to it. None if there is none."""
        spare, self.spare = self.spare, None
        if spare is not None:
            self.waiting.unregister(spare.from_child)
        return spare

    def hear_spare(self):
        if not self.spare.hear():
            self.drop_spare()

    def drop_spare(self):
        """Lets go of a spare that died or failed while it waited; the next is forked a while later."""
        spare = self.take_spare()
        spare.kill()
        spare.close()
        self.spare_died = time.monotonic()

    def next_spare_in(self):
        """Seconds until the next spare is due (see SPARE_AFTER_SPAWN_S and SPARE_AFTER_DEATH_S)."""
        return max(self.last_spawn + SPARE_AFTER_SPAWN_S, self.spare_died + SPARE_AFTER_DEATH_S) - time.monotonic()

    def fork_spare(self, rehearse=True):
        """Forks a spare; one forked for a request that waits on it skips the rehearsal."""
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if os.fork() == 0:
            pipes = ((to_child_r, SYNC_IN), (from_child_w, SYNC_OUT), (out_w, OUTPUT_FDS[0]), (err_w, OUTPUT_FDS[1]))
            for source, target in pipes:
                os.dup2(source, target)
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            close_descriptors_from(OUTPUT_FDS[1] + 1)
            os.setsid()
            reported(lambda: become_spare(rehearse))
        for fd in (to_child_r, from_child_w, out_w, err_w):
            os.close(fd)
        return Spare(to_child_w, from_child_r, out_r, err_r)

    def answer(self, request, client):
        op = request.get("op")
        if op == "spawn":
            try:
                return self.spawn(request, client)
            finally:
                self.last_spawn = time.monotonic()
        if op == "unmount":
            self.in_server_namespace(client, lambda: check(libc.umount2(request["target"].encode(), MNT_DETACH), "umount"))
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}")

    def in_server_namespace(self, client, action):
        """Runs `action` in the server's mount namespace, where the server has its sandboxes' data:
        the zygote mounts and unmounts it there, which saves the server starting a process for it."""
        check(libc.setns(client.mount_namespace, CLONE_NEWNS), "enter the server's mount namespace")
        try:
            action()
        finally:
            if libc.setns(self.own_mount_namespace, CLONE_NEWNS) != 0:
                # Whatever it forked now would start from the host's root: it forks nothing more.
                os._exit(70)

    def spawn(self, request, client):
        """Makes the spare the request's sandbox: its data, id mapping, cgroups and pid files, then
        the request itself, and waits until pid 1 says it runs."""
        deadline = time.monotonic() + SPAWN_TIMEOUT_S
        data = request["dataMount"]
        self.in_server_namespace(client, lambda: mount("tmpfs", data["target"], "tmpfs", MS_NOSUID | MS_NODEV, data["options"]))
        spare = self.take_spare() or self.fork_spare(rehearse=False)
        try:
            while spare.init_pid is None or spare.agent_pid is None:
                spare.note_pid(*spare.message(deadline))
            for name, mapping in (("uid_map", request["uidMap"]), ("gid_map", request["gidMap"])):
                with open(f"/proc/{spare.init_pid}/{name}", "w") as out:
                    out.write(mapping)
            for pid in (spare.init_pid, spare.agent_pid):
                with open(f"/proc/{pid}/oom_score_adj", "w") as score:
                    score.write(str(request["config"]["process"]["oomScoreAdj"]))
                for procs_file in request["cgroups"]:
                    with open(procs_file, "w") as procs:
                        procs.write(str(pid))
            self.sandboxes[spare.init_pid] = request["exitFile"]
            # Written here, not by the server, which may die before it hears the answer: a later
            # server then finds the sandbox's pid 1 and its monitor all the same.
            for path, value in ((request["initPidFile"], spare.init_pid), (request["monitorPidFile"], os.getpid())):
                with open(path + ".tmp", "w") as out:
                    out.write(str(value))
                os.rename(path + ".tmp", path)
            write_all(spare.to_child, (json.dumps(request) + "\n").encode())
            tag, said = spare.message(deadline)
            if tag != "R":
                raise RuntimeError(said)
        except Exception as exc:
            spare.kill()
            last_words = spare.last_words()
            spare.close()
            raise RuntimeError(f"{exc}: {last_words}" if last_words else str(exc)) from exc
        os.close(spare.to_child)
        os.close(spare.from_child)
        log = ConsoleLog(request["consoleLog"])
        for fd, stream in ((spare.stdout, "stdout"), (spare.stderr, "stderr")):
            self.outputs[fd] = (log, stream)
            self.waiting.register(fd, selectors.EVENT_READ, lambda fd=fd: self.read_output(fd))
        return {"ok": True, "pid": spare.init_pid}


PRELOADED = []
#: The seccomp program every sandbox loads, as the host's libseccomp compiled the driver's profile.
SECCOMP_FILTER = b""
#: Where start.sh binds the agent's code for the zygote.
ZYGOTE_AGENT_DIR = "/run/zygote/agent"
#: Where start.sh left the host's root after pivoting into the image.
OLD_ROOT = "/run/zygote/old-root"


def raise_descriptor_limit():
    """A zygote holds two descriptors per sandbox (its output pipes): it takes as many as its hard
    limit allows, as Node does for itself. Each sandbox sets its own limit from its config."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with open("/proc/sys/fs/nr_open") as nr_open:
        ceiling = int(nr_open.read())
    resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling), hard))


def main():
    global SECCOMP_FILTER
    control_path, seccomp_path = sys.argv[1:3]
    preload = [name for name in sys.argv[3].split(",") if name] if len(sys.argv) > 3 else []
    # start.sh pivoted into the image and left the host's root here.
    check(libc.umount2(OLD_ROOT.encode(), MNT_DETACH), "detach the host's root")
    os.rmdir(OLD_ROOT)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    raise_descriptor_limit()
    with open(seccomp_path, "rb") as bpf:
        SECCOMP_FILTER = bpf.read()
    sys.path.insert(0, ZYGOTE_AGENT_DIR)
    agent = importlib.import_module("agent")
    # pyplot.show is patched as pyplot is imported: the hook goes in before any preload does.
    sys.meta_path.insert(0, agent.pyplot_show)
    agent.import_modules(preload)
    PRELOADED.extend(preload)
    # What is imported now stays shared: the collector never writes to these objects again.
    gc.collect()
    gc.freeze()
    zygote = Zygote(control_path)
    print(json.dumps({"zygote": "ready", "preload": PRELOADED}), flush=True)
    zygote.serve()


if __name__ == "__main__":
    main()
