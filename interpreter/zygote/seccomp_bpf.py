"""Compiles an OCI seccomp profile (the one runc gets) into the BPF program a forked sandbox loads.

Runs on the host with Debian's python3-seccomp, which wraps the libseccomp runc uses, so both paths
apply one filter. Reads the profile as JSON on stdin and writes the program to the path given.

Like runc, it answers ENOSYS (not the profile's default errno) for clone3 when the profile has no
rule for it: glibc then falls back to clone, whose namespace flags the profile can inspect.
"""

import errno
import json
import sys

import seccomp

ARCHES = {"SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X32": "x32"}
OPS = {
    "SCMP_CMP_NE": seccomp.NE,
    "SCMP_CMP_LT": seccomp.LT,
    "SCMP_CMP_LE": seccomp.LE,
    "SCMP_CMP_EQ": seccomp.EQ,
    "SCMP_CMP_GE": seccomp.GE,
    "SCMP_CMP_GT": seccomp.GT,
    "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ,
}


def action(name, errno_ret, default_errno):
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        chosen = errno_ret if errno_ret is not None else default_errno
        return seccomp.ERRNO(errno.EPERM if chosen is None else chosen)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    raise ValueError(f"unsupported seccomp action {name}")


def compile_profile(profile):
    default_errno = profile.get("defaultErrnoRet")
    default_action = action(profile["defaultAction"], default_errno, default_errno)
    sandbox_filter = seccomp.SyscallFilter(default_action)
    for arch in profile.get("architectures", []):
        name = ARCHES.get(arch)
        if name is None:
            continue
        try:
            sandbox_filter.add_arch(seccomp.Arch(name))
        except (RuntimeError, ValueError):
            pass  # the native arch, which the filter has already
    named = set()
    for rule in profile["syscalls"]:
        rule_action = action(rule["action"], rule.get("errnoRet"), default_errno)
        if rule_action == default_action:
            continue  # what the default does already (libseccomp refuses it, and runc skips it)
        conditions = [
            seccomp.Arg(arg["index"], OPS[arg["op"]], arg["value"], arg.get("valueTwo", 0))
            if arg["op"] == "SCMP_CMP_MASKED_EQ"
            else seccomp.Arg(arg["index"], OPS[arg["op"]], arg["value"])
            for arg in rule.get("args", [])
        ]
        for syscall in rule["names"]:
            named.add(syscall)
            try:
                seccomp.resolve_syscall(seccomp.Arch.NATIVE, syscall)
            except ValueError:
                continue  # a name this architecture lacks is skipped, as runc skips it
            sandbox_filter.add_rule(rule_action, syscall, *conditions)
    if "clone3" not in named and default_errno != errno.ENOSYS:
        sandbox_filter.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    return sandbox_filter


def main():
    profile = json.load(sys.stdin)
    with open(sys.argv[1], "wb") as out:
        compile_profile(profile).export_bpf(out)


if __name__ == "__main__":
    main()
