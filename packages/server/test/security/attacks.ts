/**
 * The escape battery's hostile programs. Each runs as session code through the public API in a
 * PythonLTS sandbox of the default shape (0.25 CPU, 512 MiB, EgressDisabled) and ends in one
 * expression naming what happened: `ok` when the attack worked, else the errno name (or exception
 * class) that stopped it. `expect` lists the outcomes that mean "refused"; anything else fails the
 * test. SECURITY.md's table is checked against `name` and `area`, so the document cannot drift.
 *
 * Syscalls go through libc's `syscall()` with x86_64 numbers, so an attack reaches the kernel even
 * where Python has no wrapper, and the seccomp filter, not the language, is what refuses it.
 */

export interface AttackContext {
  /** A file the test wrote on the host, outside every sandbox. */
  hostMarker: string;
  /** The Sandpool API's loopback port. */
  apiPort: number;
  /** A TCP service the test runs on the host's loopback. */
  loopbackPort: number;
  /** The test process's pid on the host. */
  hostPid: number;
  /** What the witness session keeps in memory and in /mnt/data. */
  witnessSecret: string;
}

export interface Attack {
  area: Area;
  name: string;
  code: (context: AttackContext) => string;
  /** Outcomes that mean the attack was refused. */
  expect: string[];
  /** Runs in a session of its own, for attacks that may take their session down with them. */
  ownSession?: boolean;
  timeoutInSeconds?: number;
}

export const AREAS = [
  'host files',
  'other sessions',
  'privileged syscalls',
  'kernel interfaces',
  'devices and identity',
  'network',
  'resources',
  'files API',
] as const;
export type Area = (typeof AREAS)[number];

/** Defined before every attack: `sys` calls a syscall by number, `attempt` runs a callable. */
export const PRELUDE = `
import ctypes, errno, os, socket
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def sys(nr, *args):
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return 'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def attempt(fn):
    try:
        fn()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, type(e).__name__) if e.errno else type(e).__name__
def first_refusal(outcomes):
    # Every attempt must fail; the first outcome that is 'ok' (or the last refusal) is the answer.
    return next((o for o in outcomes if o == 'ok'), outcomes[-1])
`;

const py = (lines: string[]) => lines.join('\n');
/** Refused by a missing capability (EPERM, EACCES) or by the seccomp filter (EPERM, or ENOSYS where it pretends the call does not exist). */
const DENIED = ['EPERM', 'EACCES', 'ENOSYS'];
const READ_ONLY = ['EROFS', 'EACCES', 'EPERM'];

export const ATTACKS: Attack[] = [
  // --- host files ---
  {
    area: 'host files',
    name: 'open a host file by its host path',
    code: (c) => `attempt(lambda: open(${JSON.stringify(c.hostMarker)}).read())`,
    expect: ['ENOENT'],
  },
  {
    area: 'host files',
    name: 'open a host file through /proc/1/root',
    code: (c) => `attempt(lambda: open("/proc/1/root" + ${JSON.stringify(c.hostMarker)}).read())`,
    expect: ['ENOENT'],
  },
  {
    area: 'host files',
    name: 'find a host file through every /proc/<pid>/root and /proc/<pid>/cwd',
    code: (c) =>
      py([
        `name = ${JSON.stringify(c.hostMarker)}`,
        'found = [p for p in os.listdir("/proc") if p.isdigit()',
        '         for base in ("root", "cwd") if os.path.exists(f"/proc/{p}/{base}{name}")]',
        '"ok" if found else "ENOENT"',
      ]),
    expect: ['ENOENT'],
  },
  {
    area: 'host files',
    name: 'write into the image (read-only rootfs)',
    code: () =>
      py([
        'first_refusal([attempt(lambda: open("/usr/bin/python3", "ab")), attempt(lambda: open("/etc/passwd", "a")),',
        '               attempt(lambda: os.mkdir("/usr/evil"))])',
      ]),
    expect: READ_ONLY,
  },
  // --- other sessions ---
  {
    area: 'other sessions',
    name: 'find another session’s /mnt/data file anywhere in the visible filesystem',
    code: () =>
      py([
        'hits = []',
        'for top in ("/", "/proc/1/root/"):',
        '    for d, dirs, files in os.walk(top):',
        '        dirs[:] = [x for x in dirs if not (d == top and x in ("proc", "sys"))]',
        '        hits += [f for f in files if f.startswith("witness-secret")]',
        '"ok" if hits else "ENOENT"',
      ]),
    expect: ['ENOENT'],
    timeoutInSeconds: 60,
  },
  {
    area: 'other sessions',
    name: 'find another session’s process or its secret in /proc',
    code: (c) =>
      py([
        'seen = []',
        'for p in [p for p in os.listdir("/proc") if p.isdigit()]:',
        '    for part in ("cmdline", "environ"):',
        '        try: seen.append(open(f"/proc/{p}/{part}", "rb").read())',
        '        except OSError: pass',
        `"ok" if any(${JSON.stringify(c.witnessSecret)}.encode() in s for s in seen) or len(seen) > 40 else "ENOENT"`,
      ]),
    expect: ['ENOENT'],
  },
  {
    area: 'other sessions',
    name: 'signal every process it can see (kill -1)',
    code: () => 'import signal\nos.kill(-1, signal.SIGKILL)\n"survived"',
    // kill(-1) spares the caller and its namespace's init, and the agent is the interpreter itself: no target.
    expect: ['ProcessLookupError'],
    ownSession: true,
  },
  // --- privileged syscalls ---
  {
    area: 'privileged syscalls',
    name: 'read the host server’s memory through /proc/<pid>/mem',
    code: (c) => `attempt(lambda: open("/proc/${c.hostPid}/mem", "rb").read(16))`,
    expect: ['ENOENT', ...DENIED],
  },
  {
    area: 'privileged syscalls',
    name: 'ptrace the host’s server by its host pid',
    code: (c) => `sys(101, 16, ${c.hostPid}, None, None)`,
    expect: ['ESRCH', ...DENIED],
  },
  {
    area: 'privileged syscalls',
    name: 'read the host server’s memory (process_vm_readv)',
    code: (c) =>
      py([
        'buf = ctypes.create_string_buffer(16)',
        'class iovec(ctypes.Structure): _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]',
        'local, remote = iovec(ctypes.addressof(buf), 16), iovec(0x400000, 16)',
        `sys(310, ${c.hostPid}, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)`,
      ]),
    expect: ['ESRCH', ...DENIED],
  },
  {
    area: 'privileged syscalls',
    name: 'mount a tmpfs',
    code: () => 'os.makedirs("/tmp/m", exist_ok=True)\nsys(165, b"none", b"/tmp/m", b"tmpfs", 0, None)',
    expect: DENIED,
  },
  {
    area: 'privileged syscalls',
    name: 'remount the root filesystem read-write',
    code: () => 'sys(165, None, b"/", None, 0x20 | 0x1000, None)',
    expect: DENIED,
  },
  {
    area: 'privileged syscalls',
    name: 'mount cgroup v1 to plant a release_agent',
    code: () =>
      'os.makedirs("/tmp/cg", exist_ok=True)\nsys(165, b"cgroup", b"/tmp/cg", b"cgroup", 0, b"rdma")',
    expect: DENIED,
  },
  {
    area: 'privileged syscalls',
    name: 'unshare a user namespace (to regain capabilities)',
    code: () => 'sys(272, 0x10000000)',
    expect: DENIED,
  },
  {
    area: 'privileged syscalls',
    name: 'unshare mount and network namespaces',
    code: () => 'sys(272, 0x00020000 | 0x40000000)',
    expect: DENIED,
  },
  {
    area: 'privileged syscalls',
    name: 'setns into pid 1’s namespaces',
    code: () =>
      py([
        'outcomes = []',
        'for ns in ("mnt", "net", "pid", "user", "uts", "ipc", "cgroup"):',
        '    try: fd = os.open(f"/proc/1/ns/{ns}", os.O_RDONLY)',
        '    except OSError as e:',
        '        outcomes.append(errno.errorcode[e.errno]); continue',
        '    outcomes.append(sys(308, fd, 0)); os.close(fd)',
        'first_refusal(outcomes)',
      ]),
    expect: DENIED,
  },
  {
    area: 'privileged syscalls',
    name: 'chroot',
    code: () => 'sys(161, b"/tmp")',
    expect: DENIED,
  },
  {
    area: 'privileged syscalls',
    name: 'pivot_root',
    code: () => 'sys(155, b"/tmp", b"/tmp")',
    expect: DENIED,
  },
  {
    area: 'privileged syscalls',
    name: 'open a file by handle (the "shocker" escape)',
    code: () => 'fd = os.open("/", os.O_RDONLY)\nsys(304, fd, ctypes.create_string_buffer(16), 0)',
    expect: DENIED,
  },
  // --- kernel interfaces ---
  {
    area: 'kernel interfaces',
    name: 'load a kernel module (init_module, finit_module)',
    code: () =>
      'fd = os.open("/usr/bin/python3", os.O_RDONLY)\nfirst_refusal([sys(175, None, 0, b""), sys(313, fd, b"", 0)])',
    expect: DENIED,
  },
  {
    area: 'kernel interfaces',
    name: 'unload a kernel module',
    code: () => 'sys(176, b"ext4", 0)',
    expect: [...DENIED, 'ENOENT'],
  },
  {
    area: 'kernel interfaces',
    name: 'use the kernel keyring (keyctl, add_key)',
    code: () => 'first_refusal([sys(250, 1, b"sandpool"), sys(248, b"user", b"x", b"secret", 6, -3)])',
    expect: DENIED,
  },
  {
    area: 'kernel interfaces',
    name: 'load a BPF program',
    code: () =>
      py([
        'insns = (ctypes.c_uint64 * 2)(0x00000000000000b7, 0x0000000000000095)  # r0 = 0; exit',
        'license = ctypes.create_string_buffer(b"GPL")',
        'attr = (ctypes.c_uint32 * 32)()',
        'attr[0] = 1  # BPF_PROG_TYPE_SOCKET_FILTER',
        'attr[1] = 2',
        'ctypes.memmove(ctypes.byref(attr, 8), ctypes.byref(ctypes.c_uint64(ctypes.addressof(insns))), 8)',
        'ctypes.memmove(ctypes.byref(attr, 16), ctypes.byref(ctypes.c_uint64(ctypes.addressof(license))), 8)',
        'sys(321, 5, ctypes.byref(attr), 128)',
      ]),
    expect: DENIED,
  },
  {
    area: 'kernel interfaces',
    name: 'open a perf event',
    code: () =>
      py([
        'attr = (ctypes.c_uint32 * 32)()',
        'attr[0] = 1; attr[1] = 128  # PERF_TYPE_SOFTWARE, size',
        'sys(298, ctypes.byref(attr), 0, -1, -1, 0)',
      ]),
    expect: [...DENIED, 'ENOSYS'],
  },
  {
    area: 'kernel interfaces',
    name: 'create a userfaultfd',
    code: () => 'sys(323, 0)',
    expect: [...DENIED, 'ENOSYS'],
  },
  {
    area: 'kernel interfaces',
    name: 'kexec or reboot the host',
    code: () => 'first_refusal([sys(246, 0, 0, None, 0), sys(169, 0xfee1dead, 672274793, 0x4321fedc, None)])',
    expect: DENIED,
  },
  {
    area: 'kernel interfaces',
    name: 'raise I/O privilege (iopl, ioperm)',
    code: () => 'first_refusal([sys(172, 3), sys(173, 0x80, 1, 1)])',
    expect: DENIED,
  },
  {
    area: 'kernel interfaces',
    name: 'turn on swap or process accounting',
    code: () =>
      'open("/tmp/swap", "wb").write(b"\\0" * 4096)\nfirst_refusal([sys(167, b"/tmp/swap", 0), sys(163, b"/tmp/acct")])',
    expect: DENIED,
  },
  {
    area: 'kernel interfaces',
    name: 'write /proc/sys (kernel.hostname, vm.drop_caches)',
    code: () =>
      py([
        'first_refusal([attempt(lambda: open("/proc/sys/kernel/hostname", "w").write("owned")),',
        '               attempt(lambda: open("/proc/sys/vm/drop_caches", "w").write("3"))])',
      ]),
    expect: READ_ONLY,
  },
  {
    area: 'kernel interfaces',
    name: 'write /proc/sysrq-trigger',
    code: () => 'attempt(lambda: open("/proc/sysrq-trigger", "w").write("b"))',
    expect: [...READ_ONLY, 'ENOENT'],
  },
  {
    area: 'kernel interfaces',
    name: 'write /sys (a network device’s MTU, kernel mm settings)',
    code: () =>
      py([
        'first_refusal([attempt(lambda: open("/sys/class/net/lo/mtu", "w").write("1280")),',
        '               attempt(lambda: open("/sys/kernel/mm/transparent_hugepage/enabled", "w").write("never"))])',
      ]),
    expect: [...READ_ONLY, 'ENOENT'],
  },
  {
    area: 'kernel interfaces',
    name: 'write its cgroup’s limits or move itself out of its cgroup',
    code: () =>
      py([
        'first_refusal([attempt(lambda: open("/sys/fs/cgroup/memory.max", "w").write("max")),',
        '               attempt(lambda: open("/sys/fs/cgroup/pids.max", "w").write("max")),',
        '               attempt(lambda: open("/sys/fs/cgroup/cgroup.procs", "w").write(str(os.getpid()))),',
        '               attempt(lambda: open("/sys/fs/cgroup/release_agent", "w").write("/tmp/x"))])',
      ]),
    expect: [...READ_ONLY, 'ENOENT'],
  },
  {
    area: 'kernel interfaces',
    name: 'read kernel memory or the kernel log (/proc/kcore, /dev/kmsg, syslog)',
    code: () =>
      py([
        'def read_some(path):',
        '    data = open(path, "rb").read(64)',
        '    if data: raise PermissionError(0, "readable")', // non-empty content counts as a leak below
        'outcomes = [attempt(lambda: read_some("/proc/kcore")), attempt(lambda: read_some("/dev/kmsg")), sys(103, 3, ctypes.create_string_buffer(64), 64)]',
        // A masked path reads as empty (bound to /dev/null): refused as far as the attacker can tell.
        'first_refusal(["EMPTY" if o == "ok" else o for o in outcomes[:2]] + [outcomes[2]])',
      ]),
    expect: [...DENIED, 'ENOENT', 'EMPTY'],
  },
  // --- devices and identity ---
  {
    area: 'devices and identity',
    name: 'create a block device node',
    code: () => 'sys(133, b"/tmp/sda", 0o060600, os.makedev(8, 0))',
    expect: DENIED,
  },
  {
    area: 'devices and identity',
    name: 'open host devices (/dev/mem, /dev/port, /dev/sda, /dev/vda)',
    code: () =>
      'first_refusal([attempt(lambda: os.open(d, os.O_RDONLY)) for d in ("/dev/mem", "/dev/port", "/dev/sda", "/dev/vda")])',
    expect: ['ENOENT', ...DENIED],
  },
  {
    area: 'devices and identity',
    name: 'become root (setuid(0), setuid binaries)',
    code: () =>
      py([
        'import stat',
        'setuid = [os.path.join(d, f) for top in ("/usr", "/bin", "/sbin") for d, _, fs in os.walk(top)',
        '          for f in fs if os.path.isfile(os.path.join(d, f)) and os.stat(os.path.join(d, f)).st_mode & stat.S_ISUID]',
        'nnp = [l for l in open("/proc/self/status") if l.startswith("NoNewPrivs")][0].split()[1]',
        'outcome = attempt(lambda: os.setuid(0))',
        '"ok" if setuid or nnp != "1" or os.geteuid() == 0 else outcome',
      ]),
    expect: DENIED,
  },
  {
    area: 'devices and identity',
    name: 'change the clock',
    code: () =>
      py([
        'ts = (ctypes.c_long * 2)(0, 0)',
        'first_refusal([sys(227, 0, ctypes.byref(ts)), sys(164, ctypes.byref(ts), None)])',
      ]),
    expect: DENIED,
  },
  {
    area: 'devices and identity',
    name: 'change the hostname',
    code: () => 'sys(170, b"owned", 5)',
    expect: DENIED,
  },
  {
    area: 'devices and identity',
    name: 'signal the host’s server by its host pid',
    code: (c) => `attempt(lambda: os.kill(${c.hostPid}, 9))`,
    expect: ['ESRCH', ...DENIED],
  },
  // --- network (EgressDisabled) ---
  {
    area: 'network',
    name: 'connect to the Sandpool API on the host’s loopback',
    code: (c) => `attempt(lambda: socket.create_connection(("127.0.0.1", ${c.apiPort}), timeout=3))`,
    expect: ['ECONNREFUSED'],
  },
  {
    area: 'network',
    name: 'connect to another host loopback service',
    code: (c) => `attempt(lambda: socket.create_connection(("127.0.0.1", ${c.loopbackPort}), timeout=3))`,
    expect: ['ECONNREFUSED'],
  },
  {
    area: 'network',
    name: 'reach other sandboxes’ egress links',
    code: () => 'attempt(lambda: socket.create_connection(("10.64.0.1", 80), timeout=3))',
    expect: ['ENETUNREACH'],
  },
  {
    area: 'network',
    name: 'TCP out',
    code: () => 'attempt(lambda: socket.create_connection(("198.51.100.1", 80), timeout=3))',
    expect: ['ENETUNREACH'],
  },
  {
    area: 'network',
    name: 'UDP out',
    code: () =>
      'attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("198.51.100.1", 53)))',
    expect: ['ENETUNREACH'],
  },
  {
    area: 'network',
    name: 'ICMP out (ping socket)',
    code: () =>
      py([
        'def ping():',
        '    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)',
        '    s.sendto(b"\\x08\\0\\0\\0\\0\\0\\0\\0", ("198.51.100.1", 0))',
        'attempt(ping)',
      ]),
    expect: ['EACCES', 'EPERM', 'ENETUNREACH'],
  },
  {
    area: 'network',
    name: 'DNS lookup',
    code: () =>
      py([
        'try:',
        '    socket.getaddrinfo("example.com", 443)',
        '    outcome = "ok"',
        'except socket.gaierror as e:',
        '    outcome = "gaierror"',
        'outcome',
      ]),
    expect: ['gaierror'],
  },
  {
    area: 'network',
    name: 'open raw and packet sockets',
    code: () =>
      py([
        'first_refusal([attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)),',
        '               attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0x0300))])',
      ]),
    expect: DENIED,
  },
  // --- resources ---
  {
    area: 'resources',
    name: 'fork bomb',
    code: () =>
      py([
        'import signal',
        'children, outcome = [], "ok"',
        'try:',
        '    for _ in range(5000):',
        '        pid = os.fork()',
        '        if pid == 0:',
        '            signal.pause(); os._exit(0)',
        '        children.append(pid)',
        'except OSError as e:',
        '    outcome = errno.errorcode[e.errno]',
        'for pid in children:',
        '    os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)',
        'outcome',
      ]),
    expect: ['EAGAIN'],
  },
  {
    area: 'resources',
    name: 'memory bomb',
    code: () => 'hog = []\nwhile True: hog.append(b"x" * (64 * 1024 * 1024))',
    // The OOM killer ends the whole sandbox: the session is over, with reason oom.
    expect: ['MemoryError', 'SessionLost'],
    ownSession: true,
  },
  {
    area: 'resources',
    name: 'file descriptor exhaustion',
    code: () =>
      py([
        'fds, outcome = [], "ok"',
        'try:',
        '    for _ in range(100000): fds.append(os.open("/dev/null", os.O_RDONLY))',
        'except OSError as e:',
        '    outcome = errno.errorcode[e.errno]',
        'for fd in fds: os.close(fd)',
        'outcome',
      ]),
    expect: ['EMFILE'],
  },
  {
    area: 'resources',
    name: 'fill /mnt/data past its cap',
    code: () => fill('/mnt/data/fill.bin'),
    expect: ['ENOSPC'],
    timeoutInSeconds: 60,
  },
  {
    area: 'resources',
    name: 'fill /tmp past its cap',
    code: () => fill('/tmp/fill.bin'),
    expect: ['ENOSPC'],
    timeoutInSeconds: 60,
  },
  {
    area: 'resources',
    name: 'spin the CPU past the execution timeout',
    code: () => 'while True: pass',
    expect: ['ExecutionTimeout'],
    timeoutInSeconds: 2,
  },
  {
    area: 'resources',
    name: 'flood stdout and stderr',
    code: () =>
      py([
        'import sys as system',
        'chunk = "x" * 65536',
        'for _ in range(800): system.stdout.write(chunk); system.stderr.write(chunk)',
        '"flooded"',
      ]),
    // The response is checked for its cut streams in the test; the flood itself succeeds.
    expect: ['flooded'],
    timeoutInSeconds: 60,
  },
  {
    area: 'resources',
    name: 'unpack a decompression bomb uploaded through the files API',
    code: () =>
      py([
        'import gzip, shutil',
        'outcome = "ok"',
        'try:',
        '    with gzip.open("/mnt/data/bomb.gz") as src, open("/mnt/data/bomb", "wb") as dst:',
        '        shutil.copyfileobj(src, dst, 1 << 20)',
        'except OSError as e:',
        '    outcome = errno.errorcode.get(e.errno, type(e).__name__)',
        'outcome',
      ]),
    expect: ['ENOSPC'],
    ownSession: true,
    timeoutInSeconds: 60,
  },
  // --- files API (checked by the test through the API after the program plants its links) ---
  {
    area: 'files API',
    name: 'a symlink in /mnt/data to a host file, downloaded through the files API',
    code: (c) => `os.symlink(${JSON.stringify(c.hostMarker)}, "/mnt/data/leak.txt")\n"planted"`,
    expect: ['planted'],
  },
  {
    area: 'files API',
    name: 'a symlinked directory in /mnt/data, listed and uploaded into through the files API',
    code: (c) =>
      `os.symlink(${JSON.stringify(c.hostMarker.replace(/\/[^/]+$/, ''))}, "/mnt/data/hostdir")\n"planted"`,
    expect: ['planted'],
  },
  {
    area: 'files API',
    name: 'a hard link in /mnt/data to a file outside it',
    code: () => 'attempt(lambda: os.link("/etc/passwd", "/mnt/data/passwd"))',
    expect: ['EXDEV'],
  },
];

function fill(path: string): string {
  return py([
    'outcome = "ok"',
    'try:',
    `    with open(${JSON.stringify(path)}, "wb") as f:`,
    '        while True: f.write(b"x" * 1048576); f.flush()',
    'except OSError as e:',
    '    outcome = errno.errorcode[e.errno]',
    `os.remove(${JSON.stringify(path)})`,
    'outcome',
  ]);
}
