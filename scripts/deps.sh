#!/bin/sh
# Installs the Debian packages the build, the service, the sandbox's Python and
# the tests need; installs only what is missing. Debian 12, as root.
#   scripts/deps.sh           what make run and make test need
#   scripts/deps.sh --images  only what make images needs (scripts/images.sh):
#                             Debian's podman and buildah with runc (crun refuses
#                             some hosts' hybrid cgroup layout), netavark and the
#                             iptables it runs (not a dependency of Debian's
#                             package), and debootstrap for the debian:12-slim base
#   scripts/deps.sh --bench   only what make bench adds: Debian's perf (linux-perf)
#                             for the kernel's share in its CPU profile
set -eu

# Installs the packages named in $missing, as root; $1 names the make target
# for the message when not root.
install_missing() {
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing packages:$missing (run $1 as root)" >&2
		exit 1
	fi
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
}

# sets $missing: those of the packages named in $1 that are not installed
find_missing() {
	missing=""
	for p in $1; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
}

if [ "${1:-}" = --bench ]; then
	find_missing "linux-perf"
	install_missing "make bench"
	exit 0
fi

if [ "${1:-}" = --images ]; then
	find_missing "podman buildah runc netavark iptables debootstrap"
	install_missing "make images"
	exit 0
fi

PKGS="build-essential pkg-config libfcgi-dev lighttpd libjson-c-dev libcurl4-openssl-dev
libsqlite3-dev sqlite3 libssl-dev check libseccomp-dev libmicrohttpd-dev curl procps
python3 python3.11-dev python3-pip python3-numpy python3-pandas python3-scipy python3-matplotlib python3-pil
python3-sklearn python3-yaml python3-requests python3-bs4 python3-openpyxl python3-sympy
xonsh"
# upstream's tools in every sandbox (README "What a sandbox provides"); the pandas
# extras excel, plot, output-formatting, computation; fonts, fontconfig and
# poppler-utils (pdf2image) named: --no-install-recommends brings none of them
PKGS="$PKGS ffmpeg imagemagick pandoc mupdf-tools poppler-utils weasyprint yt-dlp
fontconfig fonts-dejavu-core fonts-liberation python3-fitz python3-opencv python3-pikepdf
python3-pypdf2 python3-pypandoc python3-tabulate python3-xarray python3-jinja2 python3-pydantic
python3-odf python3-xlrd python3-xlsxwriter"
# tests: answers checked against docs/openapi.json, GET /docs rendered headless
PKGS="$PKGS python3-jsonschema chromium"
find_missing "$PKGS"
# tests (docs/ui, tests/openapi, tests/k8s, tests/clients): Node.js and npm,
# unless a node came another way (NodeSource's nodejs carries its own npm and
# conflicts with Debian's npm package)
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
# the unprivileged user the FastCGI workers run as (APP_SERVICE_USER), with a
# group of its own; the master refuses to start as root without it
user=${APP_SERVICE_USER:-code-interpreter}
if ! getent passwd "$user" >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: no user $user (run make deps as root)" >&2
		exit 1
	fi
	echo "deps: creating the system user $user"
	useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
fi
install_missing "make deps"
