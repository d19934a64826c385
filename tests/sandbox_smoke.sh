#!/bin/sh
# Manual smoke test of the local sandbox (not part of `make test`; needs root).
# Builds a separate executor with -DSBX_SMOKE_HOOK into build/smoke/, whose
# sandbox runs $SBX_SMOKE_CMD under /bin/sh instead of the executor server
# (after sbx_lockdown(cfg, 1) when SBX_SMOKE_LOCKDOWN is set). The service's own
# build never contains the hook.
#   tests/sandbox_smoke.sh            run the checks below
#   tests/sandbox_smoke.sh 'CMD'      run CMD inside a sandbox as pid 1 (sandbox root)
#   tests/sandbox_smoke.sh lockdown 'CMD'   ... as a locked-down child of pid 1
# shellcheck disable=SC2016  # the checks' $(...) are meant for the shell inside
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "sandbox_smoke: needs root"; exit 1; }
make -s BUILD=build/smoke CFLAGS="-O2 -g -DSBX_SMOKE_HOOK" build/smoke/executor >/dev/null

run_dir=$(mktemp -d /tmp/ci-smoke.XXXXXX)
export APP_RUN_DIR="$run_dir" APP_CGROUP_PARENT=code-interpreter-smoke APP_SANDBOX_MEMORY_MB=256 \
	APP_SANDBOX_UID_BASE=1000000 APP_SANDBOX_WORKSPACE_MB=512 APP_SANDBOX_TMP_MB=256 APP_SANDBOX_PIDS=256
id=smoke-$$
remove_sandbox() { # what the pool manager does after the launcher ends
	for c in /sys/fs/cgroup/memory /sys/fs/cgroup/pids /sys/fs/cgroup /sys/fs/cgroup/unified; do
		if [ -d "$c/$APP_CGROUP_PARENT/$id" ]; then rmdir "$c/$APP_CGROUP_PARENT/$id" || true; fi
	done
	rm -rf "${run_dir:?}/sandboxes/$id"
}
trap 'remove_sandbox; rm -rf "$run_dir"; for c in /sys/fs/cgroup/memory /sys/fs/cgroup/pids /sys/fs/cgroup /sys/fs/cgroup/unified; do rmdir "$c/$APP_CGROUP_PARENT" 2>/dev/null; done; true' EXIT

inside() { # inside [lockdown] CMD
	if [ "$1" = lockdown ]; then shift; export SBX_SMOKE_LOCKDOWN=1; else unset SBX_SMOKE_LOCKDOWN; fi
	rc=0
	SBX_SMOKE_CMD="$1" build/smoke/executor sandbox --id "$id" --ready-fd 3 3>/dev/null || rc=$?
	remove_sandbox
	return $rc
}

if [ $# -gt 0 ]; then inside "$@"; exit $?; fi

fail=0
check() { # check NAME [lockdown] CMD: CMD runs inside and must exit 0
	name=$1; shift
	if out=$(inside "$@" 2>&1); then echo "ok   $name"; else echo "FAIL $name"; printf '%s\n' "$out" | sed 's/^/     /'; fail=1; fi
}

check "pid 1, hostname, root inside" '[ $$ = 1 ] && [ "$(cat /proc/sys/kernel/hostname)" = sandbox ] && [ "$(id -u)" = 0 ]'
check "root directory listing" '[ "$(ls / | tr "\n" " ")" = "bin dev etc lib lib32 lib64 opt proc run sbin tmp usr workspace " ]'
check "/ and /usr read-only" '! touch /x 2>/dev/null && ! touch /usr/x 2>/dev/null && ! touch /etc/x 2>/dev/null'
check "/dev has only the five devices" '[ "$(ls /dev | tr "\n" " ")" = "fd full null random shm stderr stdin stdout urandom zero " ] && echo x > /dev/null && head -c 4 /dev/urandom | wc -c | grep -q 4'
check "only loopback, up" 'python3 -c "
import socket, fcntl, struct
assert [n for _, n in socket.if_nameindex()] == [\"lo\"], socket.if_nameindex()
s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(); c = socket.create_connection(s.getsockname()); c.close()
try:
    socket.create_connection((\"1.1.1.1\", 80), timeout=2); raise SystemExit(\"internet reachable\")
except OSError as e:
    pass
"'
check "proc shows only the sandbox" 'set -- /proc/[0-9]*; [ "$1" = /proc/1 ] && [ $# -le 2 ]'
check "cgroup namespace" 'grep -q "memory:/$" /proc/self/cgroup || grep -q "^0::/$" /proc/self/cgroup'
check "uid map" '[ "$(cat /proc/self/uid_map | tr -s " " | tr "\n" "|")" = " 0 1000000 1| 1000 1001000 1|" ] && [ "$(cat /proc/self/gid_map | tr -s " " | tr "\n" "|")" = " 0 1000000 1| 1000 1001000 1|" ]'
check "workspace and tmp: tmpfs, sizes, owners" 'df -k /workspace | grep -q "524288" && df -k /tmp | grep -q "262144" && [ "$(stat -c "%u:%g %a" /workspace)" = "1000:1000 755" ] && [ "$(stat -c %a /tmp)" = 1777 ]'
check "socket dir writable by sandbox root" 'touch /run/executor/probe && rm /run/executor/probe'
check "runner dir read-only" '[ -f /opt/code-interpreter/python/runner.py ] || [ -d /opt/code-interpreter/python ]; ! touch /opt/code-interpreter/python/x 2>/dev/null'
check "no host paths leak" '[ ! -e /root ] && [ ! -e /home ] && [ ! -e /var ] && [ ! -e /sys ] && [ ! -e /etc/shadow ]'
check "lockdown: uid, caps, seccomp" lockdown '[ "$(id -u):$(id -g)" = 1000:1000 ] && grep -q "^Seccomp:[[:space:]]*2" /proc/self/status && grep -q "^NoNewPrivs:[[:space:]]*1" /proc/self/status && grep -q "^CapEff:[[:space:]]*0000000000000000" /proc/self/status && grep -q "^CapBnd:[[:space:]]*0000000000000000" /proc/self/status'
check "lockdown: workspace writable, /tmp writable, /usr not" lockdown 'echo hi > /workspace/a && echo hi > /tmp/b && ! touch /usr/x 2>/dev/null && [ "$(stat -c %u /workspace/a)" = 1000 ]'
check "lockdown: python with numpy, pandas, matplotlib" lockdown 'cd /workspace && python3 -c "
import numpy, pandas, scipy, matplotlib
matplotlib.use(\"Agg\")
import matplotlib.pyplot as plt
plt.plot([1, 2, 3]); plt.savefig(\"p.png\")
print((numpy.ones((200, 200)) @ numpy.ones((200, 200))).sum(), pandas.DataFrame({\"a\": [1]}).shape)
import getpass; assert getpass.getuser() == \"sandbox\"
" && [ -s /workspace/p.png ]'
check "lockdown: escapes fail" lockdown 'python3 -c "
import os, ctypes, socket, errno
libc = ctypes.CDLL(None, use_errno=True)
assert libc.unshare(0x10000000) == -1 and ctypes.get_errno() == errno.EPERM
assert libc.mount(b\"none\", b\"/tmp\", b\"tmpfs\", 0, None) == -1 and ctypes.get_errno() == errno.EPERM
for fam, typ in ((socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW), (socket.AF_INET, socket.SOCK_RAW)):
    try:
        socket.socket(fam, typ); raise SystemExit(\"socket allowed\")
    except PermissionError:
        pass
try:
    os.kill(1, 9); raise SystemExit(\"killed pid 1\")
except PermissionError:
    pass
"'
check "lockdown: memory limit (cgroup) kills a hog" lockdown 'python3 -c "b = bytearray(600 << 20); b[::4096] = b\"x\" * len(b[::4096])"; [ $? -ne 0 ]'
check "lockdown: fork bomb stops at the pids limit" lockdown 'python3 -c "
import os
n = 0
try:
    while n < 2000:
        if os.fork() == 0:
            import time; time.sleep(5); os._exit(0)
        n += 1
except BlockingIOError:
    pass
assert n < 300, n
print(n)
"'
[ $fail = 0 ] && echo "sandbox smoke: all passed" || echo "sandbox smoke: FAILED"
exit $fail
