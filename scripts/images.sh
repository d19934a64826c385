#!/bin/sh
# images: builds the service image (Dockerfile) and the executor image
# (executor/Dockerfile) with Debian's podman, offline (no Docker engine, no
# registry: Debian's archive only), and checks them as a cluster runs them.
# Debian 12, as root. Changes nothing under /etc: podman's settings for this
# host are $IMAGES_DIR/containers.conf, given through CONTAINERS_CONF.
#
#   scripts/images.sh [base] [build] [smoke] [test]   (no step: the first three)
#
#   base   debian:12-slim from debootstrap (--variant=minbase, the mirror apt
#          uses here), slimmed as Debian's own debian:12-slim is, imported as
#          $BASE_IMAGE and tagged docker.io/library/debian:12-slim so that the
#          Dockerfiles' FROM finds it; skipped when $BASE_IMAGE exists
#   build  podman build --pull=never of both Dockerfiles
#   smoke  the executor image as an executor pod runs (restricted profile, no
#          network, tmpfs /workspace and /tmp, a token) refuses a request
#          without the token and executes print(1) over its HTTP protocol
#          with it; the service image, pointed at the Kubernetes API
#          double (tests/k8s/apiserver.py, run in a container of the executor
#          image: its pods are `executor serve` processes in there), answers
#          health_check. Every container is removed at the end.
#   test   (make image-test) the e2e suite with the Kubernetes backend, then
#          the pod checks of tests/k8s/test_pool.py, with the API double
#          running each pod as a container of $EXECUTOR_IMAGE on a network
#          only the host reaches (tests/k8s/podman_pods.py); the service runs
#          on the host from $BUILD. Each double removes its containers, network
#          and firewall rules; the runners check it.
#
# Environment: SERVICE_IMAGE, EXECUTOR_IMAGE, BUILD (the Makefile sets them),
# BASE_IMAGE (localhost/debian:12-slim), IMAGES_DIR (build/images).
set -eu

cd "$(dirname "$0")/.."
SERVICE_IMAGE=${SERVICE_IMAGE:-localhost/code-interpreter:dev}
EXECUTOR_IMAGE=${EXECUTOR_IMAGE:-localhost/code-interpreter-executor:dev}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian:12-slim}
IMAGES_DIR=${IMAGES_DIR:-build/images}
SUITE=bookworm

say() {
	echo "images: $*"
}

die() {
	echo "images: $*" >&2
	exit 1
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# Seconds since $1 (now_ms), as 12.3 s.
since() {
	t1=$(now_ms)
	echo "$(((t1 - $1) / 1000)).$(((t1 - $1) % 1000 / 100)) s"
}

# Runs "$@" after $1 (a label) and prints how long it took.
timed() {
	label=$1
	shift
	t0=$(now_ms)
	"$@"
	say "$label: $(since "$t0")"
}

# ---- podman on this host -------------------------------------------------

# runc: crun refuses a hybrid cgroup v1/v2 layout. The default ulimits are
# this process's hard limits (ulimit -Hn, -Hu), the process count at most
# 32768: podman's defaults are above them, root without CAP_SYS_RESOURCE
# cannot raise a limit, and podman lowers its own RLIMIT_NPROC to 32768
# before it starts a container (strace shows it), which its runc inherits.
write_containers_conf() {
	mkdir -p "$IMAGES_DIR"
	ulimits=""
	n=$(awk '/^Max open files / { print $5 }' /proc/self/limits)
	[ "$n" = unlimited ] || ulimits="\"nofile=$n:$n\""
	u=$(awk '/^Max processes / { print ($4 == "unlimited" || $4 > 32768) ? 32768 : $4 }' /proc/self/limits)
	ulimits="$ulimits${ulimits:+, }\"nproc=$u:$u\""
	cat >"$IMAGES_DIR/containers.conf.tmp" <<-EOF
		# written by scripts/images.sh for this host; /etc/containers is left alone
		[containers]
		default_ulimits = [$ulimits]

		[engine]
		runtime = "runc"

		[network]
		network_backend = "netavark"
	EOF
	mv "$IMAGES_DIR/containers.conf.tmp" "$IMAGES_DIR/containers.conf"
	CONTAINERS_CONF=$(pwd)/$IMAGES_DIR/containers.conf
	export CONTAINERS_CONF
}

# ---- base ----------------------------------------------------------------

# The archive apt uses on this host for $1 (a suite), else Debian's CDN.
apt_site() {
	# shellcheck disable=SC2016
	site=$(apt-get indextargets --format '$(RELEASE) $(SITE)' 'Identifier: Packages' 2>/dev/null |
		awk -v s="$1" '$1 == s { print $2; exit }')
	echo "${site:-$2}"
}

# Debian's debian:12-slim as debuerreotype makes it: dpkg installs no
# documentation, manual pages or translations (copyright files and
# locale.alias stay), and what debootstrap installed of them goes; apt keeps
# no .deb after an install and fetches no translations; services are not
# started by package scripts; apt's sources as Debian's image has them.
slim_rootfs() {
	root=$1
	clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
	cat >"$root/etc/apt/apt.conf.d/docker-clean" <<-EOF
		# as in Debian's debian:12-slim: no package cache left in an image layer
		DPkg::Post-Invoke { $clean };
		APT::Update::Post-Invoke { $clean };
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
	EOF
	echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
	cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<-'EOF'
		# as in Debian's debian:12-slim (debuerreotype's slimify)
		path-exclude /usr/share/doc/*
		path-exclude /usr/share/groff/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/linda/*
		path-exclude /usr/share/lintian/overrides/*
		path-exclude /usr/share/locale/*
		path-exclude /usr/share/man/*
		path-include /usr/share/doc/*/copyright
		path-include /usr/share/locale/locale.alias
	EOF
	find "$root/usr/share/doc" ! -type d ! -name copyright -delete
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
	find "$root/usr/share/locale" -mindepth 1 ! -type d ! -name locale.alias -delete
	find "$root/usr/share/locale" -mindepth 1 -type d -empty -delete
	for d in groff info linda lintian/overrides man; do
		[ -d "$root/usr/share/$d" ] && find "$root/usr/share/$d" -mindepth 1 -delete
	done
	printf '#!/bin/sh\n# no service starts during an image build\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 0755 "$root/usr/sbin/policy-rc.d"
	rm -f "$root/etc/apt/sources.list"
	cat >"$root/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $2
		Suites: $SUITE $SUITE-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: $3
		Suites: $SUITE-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	rm -rf "${root:?}"/var/lib/apt/lists/* "${root:?}"/var/cache/apt/*.bin \
		"${root:?}"/var/cache/apt/archives/*.deb "${root:?}"/tmp/* "${root:?}"/dev/*
	find "$root/var/log" -type f -delete
	: >"$root/etc/resolv.conf"
	: >"$root/etc/hostname"
}

# Removes $1, unmounting first what a failed debootstrap may have left there.
remove_rootfs() {
	[ -e "$1" ] || return 0
	awk -v d="$(realpath "$1")/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf --one-file-system "$1"
}

base() {
	if podman image exists "$BASE_IMAGE"; then
		say "base: $BASE_IMAGE exists, no debootstrap"
	else
		mirror=$(apt_site "$SUITE" http://deb.debian.org/debian)
		security=$(apt_site "$SUITE-security" http://deb.debian.org/debian-security)
		root=$IMAGES_DIR/rootfs
		remove_rootfs "$root"
		say "base: debootstrap --variant=minbase $SUITE from $mirror"
		debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$IMAGES_DIR/debootstrap.log" 2>&1 ||
			die "debootstrap failed; see $IMAGES_DIR/debootstrap.log"
		slim_rootfs "$root" "$mirror" "$security"
		tar --numeric-owner --xattrs -C "$root" -cf "$IMAGES_DIR/rootfs.tar" .
		podman import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase $SUITE, slimmed" \
			-q "$IMAGES_DIR/rootfs.tar" "$BASE_IMAGE" >/dev/null
		rm -f "$IMAGES_DIR/rootfs.tar"
		remove_rootfs "$root"
	fi
	# FROM debian:12-slim: podman's short-name alias for debian is docker.io's
	podman tag "$BASE_IMAGE" docker.io/library/debian:12-slim
}

# ---- build ---------------------------------------------------------------

# Builds $2 from the Dockerfile $1; its output goes to $IMAGES_DIR/build-*.log.
build_image() {
	log=$IMAGES_DIR/build-$(echo "$1" | tr / -).log
	podman build --pull=never --layers -t "$2" -f "$1" . >"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; die "podman build -f $1 failed; see $log"; }
	say "built $2 from $1 ($(podman image inspect --format '{{.Size}}' "$2" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

# ---- smoke ---------------------------------------------------------------

SMOKE_CONTAINERS=""

smoke_cleanup() {
	for c in $SMOKE_CONTAINERS; do
		podman rm -f -t 0 "$c" >/dev/null 2>&1 || :
	done
}

# Prints the logs of the containers named in $@ and fails.
smoke_fail() {
	msg=$1
	shift
	for c in "$@"; do
		echo "---- podman logs $c" >&2
		podman logs "$c" 2>&1 | tail -n 40 >&2 || :
	done
	die "smoke: $msg"
}

# The executor pod's HTTP protocol, from a container of its own in the pod's
# network namespace (loopback only) as the service would reach it; not in the
# pod's pid namespace, whose processes the executor kills after a run.
# /healthz without the token, POST /execute without it (401: a pod answers
# only the service) and with it.
EXECUTOR_PROBE='
import http.client, json, os, sys, time
def call(method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", 8000, timeout=30)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()
deadline = time.monotonic() + 60
while True:
    try:
        if call("GET", "/healthz")[0] == 200:
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("executor: /healthz never answered 200")
    time.sleep(0.1)
body = json.dumps({"source_code": "print(1)"})
status, _ = call("POST", "/execute", body)
print("executor: POST /execute without the token: %d" % status)
if status != 401:
    sys.exit("executor: answered without the token")
status, out = call("POST", "/execute", body, os.environ.get("EXECUTOR_TOKEN"))
res = json.loads(out)
print("executor: POST /execute print(1): %d %s" % (status, json.dumps(res)[:200]))
if status != 200 or res.get("stdout") != "1\n" or res.get("exit_code") != 0:
    sys.exit("executor: print(1) did not print 1")
'

smoke_executor() {
	name=ci-smoke-executor-$$
	SMOKE_CONTAINERS="$SMOKE_CONTAINERS $name"
	token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	# an executor pod's securityContext and volumes (fcgi-app/k8s_pod.c), the
	# default resources as cgroup limits, and no network
	podman run -d --name "$name" --network none --read-only --cap-drop ALL \
		--security-opt no-new-privileges --user 1000:1000 --cgroupns private \
		--memory 1g --cpus 1 --pids-limit 256 \
		--mount type=tmpfs,destination=/workspace,tmpfs-size=64m,U=true \
		--mount type=tmpfs,destination=/tmp,tmpfs-size=64m \
		-e EXECUTOR_TOKEN="$token" "$EXECUTOR_IMAGE" >/dev/null
	podman run --rm --network "container:$name" --read-only --cap-drop ALL --user 1000:1000 \
		--entrypoint /usr/bin/python3 -e EXECUTOR_TOKEN="$token" "$EXECUTOR_IMAGE" -u -c "$EXECUTOR_PROBE" ||
		smoke_fail "the executor image" "$name"
	# shellcheck disable=SC2016
	podman exec "$name" sh -c 'echo "executor: uid:gid $(id -u):$(id -g), /workspace $(stat -c %u:%g /workspace),\
 memory limit $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"'
	podman rm -f -t 0 "$name" >/dev/null
}

# What the API double saw (its GET /admin/state).
DOUBLE_STATE='
import json, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:8001/admin/state"))
print("service: the API double created %d pods, deleted %d; %d running" % (s["created"], s["deleted"], len(s["pods"])))
'

smoke_service() {
	double=ci-smoke-k8s-$$
	svc=ci-smoke-service-$$
	SMOKE_CONTAINERS="$SMOKE_CONTAINERS $svc $double"
	# The API double needs root and CAP_SYS_ADMIN (each pod's /workspace is a
	# bind mount in a mount namespace of its own); the service's container
	# shares its network namespace, which has loopback only.
	podman run -d --name "$double" --network none --user 0 --cap-add SYS_ADMIN \
		--entrypoint /usr/bin/python3 \
		-v "$(pwd)/tests/k8s/apiserver.py:/double/apiserver.py:ro" \
		"$EXECUTOR_IMAGE" /double/apiserver.py --executor /usr/local/bin/executor \
		--data-dir /usr/share/code-interpreter --port 8001 >/dev/null
	# the service as k8s/statefulset.yaml runs it
	podman run -d --name "$svc" --network "container:$double" --read-only --cap-drop ALL \
		--security-opt no-new-privileges --user 1000:1000 \
		--mount type=tmpfs,destination=/run/code-interpreter,U=true \
		--mount type=tmpfs,destination=/var/lib/code-interpreter,U=true \
		--mount type=tmpfs,destination=/tmp \
		-e APP_KUBERNETES_API_URL=http://127.0.0.1:8001 -e APP_KUBERNETES_NAMESPACE=default \
		-e APP_KUBERNETES_INSTANCE=smoke -e APP_EXECUTOR_POD_QUEUE_TARGET_LENGTH=1 \
		-e APP_RUN_DIR=/run/code-interpreter \
		-e APP_DB_PATH=/var/lib/code-interpreter/code-interpreter.db \
		-e APP_FILE_STORAGE_PATH=/var/lib/code-interpreter/objects \
		"$SERVICE_IMAGE" >/dev/null
	deadline=$(($(date +%s) + 90))
	until out=$(podman exec "$svc" /usr/local/bin/health_check 2>&1); do
		[ "$(date +%s)" -lt "$deadline" ] || smoke_fail "health_check: $out" "$svc" "$double"
		[ "$(podman inspect -f '{{.State.Running}}' "$svc" 2>/dev/null)" = true ] ||
			smoke_fail "the service container stopped" "$svc" "$double"
		sleep 1
	done
	say "service: health_check exit 0 (print(21 * 2) through lighttpd, a worker and a pod)${out:+: $out}"
	podman exec "$double" python3 -c "$DOUBLE_STATE"
	warnings=$(podman logs "$svc" 2>&1 | grep -cE ' WARN |WARNING' || :)
	say "service: $warnings warnings in its log"
	podman logs "$svc" 2>&1 | grep -E ' WARN |WARNING' | sed 's/^/    /' || :
	podman rm -f -t 0 "$svc" >/dev/null
	podman rm -f -t 0 "$double" >/dev/null
}

# ---- test ----------------------------------------------------------------

# Warns when a source of the executor binary is newer than $EXECUTOR_IMAGE:
# the pods run the image's executor, the service is this tree's.
warn_if_stale() {
	created=$(podman image inspect --format '{{.Created.Unix}}' "$EXECUTOR_IMAGE")
	newer=$(find executor common Makefile -type f -newermt "@$created" 2>/dev/null | head -n 3 | tr '\n' ' ')
	[ -z "$newer" ] || say "test: warning: $EXECUTOR_IMAGE is older than ${newer}(make images rebuilds it)"
}

image_test() {
	podman image exists "$EXECUTOR_IMAGE" || die "test: no image $EXECUTOR_IMAGE: run \`make images\` first"
	[ -x "${BUILD:?}/code-interpreter" ] || die "test: no $BUILD/code-interpreter (make BUILD=$BUILD all)"
	warn_if_stale
	rc=0
	t0=$(now_ms)
	/usr/bin/python3 tests/e2e/run.py --build "$BUILD" --backend kubernetes \
		--pods container --image "$EXECUTOR_IMAGE" -q || rc=1
	say "test: e2e, kubernetes backend, pods as containers: $(since "$t0")"
	t0=$(now_ms)
	/usr/bin/python3 tests/k8s/test_pool.py --build "$BUILD" --pods container --image "$EXECUTOR_IMAGE" || rc=1
	say "test: pool checks, pods as containers: $(since "$t0")"
	return $rc
}

# ---- main ----------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root (podman's storage is root's)"
[ $# -gt 0 ] || set -- base build smoke
for step in "$@"; do
	case $step in
	base | build | smoke | test) ;;
	*) die "unknown step $step (base, build, smoke, test)" ;;
	esac
done
timed tools ./scripts/deps.sh --images
write_containers_conf
say "podman $(podman version --format '{{.Client.Version}}'), CONTAINERS_CONF=$CONTAINERS_CONF"
trap smoke_cleanup EXIT
trap 'exit 130' INT TERM
for step in "$@"; do
	case $step in
	base) timed base base ;;
	build)
		timed "service image" build_image Dockerfile "$SERVICE_IMAGE"
		timed "executor image" build_image executor/Dockerfile "$EXECUTOR_IMAGE"
		;;
	smoke)
		for i in "$EXECUTOR_IMAGE" "$SERVICE_IMAGE"; do
			podman image exists "$i" || die "smoke: no image $i (make images builds it)"
		done
		timed "smoke: executor" smoke_executor
		timed "smoke: service" smoke_service
		;;
	test) image_test ;;
	esac
done
