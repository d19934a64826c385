"""Pods as containers of the executor image: tests/k8s/apiserver.py --pods container.

What a kubelet and its container runtime would make of the pod specs the
service sends (fcgi-app/k8s_pod.c), done with podman on this host: the spec
becomes `podman run` flags (podman_flags, the table in README's "Testing
without a cluster"), the pod's IP is the container's address on a network of
this double's own, a deleted pod's container goes with `podman rm -f -t 0`.
Needs root, podman with the CONTAINERS_CONF scripts/images.sh writes
(runc, ulimits), iproute2 and iptables. A test double: standard library only.

The network is `podman network create --internal` with a gateway: the host
reaches the pods through the bridge's address, a pod has no route out of its
subnet. Added to it what a NetworkPolicy with no egress would add: bridge
ports isolated from each other (no pod reaches another; Pods.ensure_net after
each start, as netavark makes the bridge with the first container and removes
it with the last) and INPUT rules (iptables, ip6tables) that drop new
connections from the bridge (no pod reaches a service of the host). The
bridge's MAC address is fixed too, as a cluster's pod network keeps its
gateway's (Pods.ensure_net). Pods.close() removes the containers, the network
and the rules.
"""
import glob
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time

LABEL = "code-interpreter.test-double"  # its value: the double's id (network and name prefix)

# variables podman itself reads: a pod's value goes on the command line instead
# of into podman's environment
PODMAN_OWN_ENV = {"PATH", "HOME", "TMPDIR", "LD_PRELOAD", "LD_LIBRARY_PATH", "XDG_RUNTIME_DIR",
                  "XDG_CONFIG_HOME", "XDG_DATA_HOME", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF",
                  "CONTAINERS_REGISTRIES_CONF", "CONTAINER_HOST", "CONTAINER_CONNECTION"}

_SUFFIX = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
           "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18, "m": 1e-3}


class SpecError(Exception):
    """A pod the kubelet would not start: reason is the container's waiting reason."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def quantity(q):
    """A Kubernetes quantity ("512Mi", "100m", "1", "1e3") as a number."""
    m = re.fullmatch(r"([0-9.]+(?:[eE][-+]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?", str(q).strip())
    if not m:
        raise SpecError("CreateContainerConfigError", "bad quantity %r" % q)
    return float(m.group(1)) * _SUFFIX.get(m.group(2) or "", 1)


def podman_flags(spec, name, image, image_user="", log_path=None):
    """`podman run` arguments (after `run`) for the pod spec's first container,
    and the variables to add to podman's environment (the pod's env, so that
    no value, EXECUTOR_TOKEN among them, is on a command line). Raises
    SpecError for what this double does not map (volumes other than emptyDir,
    Localhost seccomp profiles, valueFrom) or the kubelet would refuse."""
    c = (spec.get("containers") or [{}])[0]
    psc = spec.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    sc = dict(psc, **csc)  # the container's fields win over the pod's
    args = ["--hostname", name[:63]]
    # user: runAsUser/runAsGroup; runAsNonRoot checked as the kubelet does
    user, group = sc.get("runAsUser"), sc.get("runAsGroup")
    if sc.get("runAsNonRoot"):
        eff = user if user is not None else (image_user.split(":")[0] or "0")
        if not str(eff).isdigit():
            raise SpecError("CreateContainerConfigError", "image has non-numeric user (%s), cannot verify "
                            "user is non-root" % eff)
        if int(eff) == 0:
            raise SpecError("CreateContainerConfigError", "container has runAsNonRoot and image will run as root")
    if user is not None:
        args += ["--user", "%d:%d" % (user, group) if group is not None else str(user)]
    for g in ([psc["fsGroup"]] if psc.get("fsGroup") is not None else []) + list(psc.get("supplementalGroups") or []):
        args += ["--group-add", str(g)]
    if sc.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]  # no tmpfs on /run, /var/tmp: a cluster has none
    if sc.get("privileged"):
        args += ["--privileged"]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        args += ["--cap-drop", cap]
    for cap in caps.get("add") or []:
        args += ["--cap-add", cap]
    seccomp = (sc.get("seccompProfile") or {}).get("type", "Unconfined")
    if seccomp == "Unconfined":  # a pod without a profile runs unconfined (no SeccompDefault)
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":  # RuntimeDefault: podman's default profile, no flag
        raise SpecError("CreateContainerConfigError", "seccompProfile %s: not mapped by the test double" % seccomp)
    # resources: limits as cgroup limits (no swap, as a kubelet runs), the cpu
    # request as cpu shares (the kubelet's milli * 1024 / 1000)
    res = c.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    if "memory" in limits:
        mem = str(int(quantity(limits["memory"])))
        args += ["--memory", mem, "--memory-swap", mem]
    if "cpu" in limits:
        args += ["--cpus", "%g" % quantity(limits["cpu"])]
    if "cpu" in requests:
        args += ["--cpu-shares", str(max(2, int(quantity(requests["cpu"]) * 1024)))]
    args += ["--cgroupns", "private"]
    # volumes: each emptyDir a tmpfs of its sizeLimit, the pod user's (an
    # emptyDir is writable by it), nothing of the image copied in
    vols = {v.get("name"): v for v in spec.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        v = vols.get(m.get("name"))
        if v is None or "emptyDir" not in v or m.get("subPath"):
            raise SpecError("CreateContainerConfigError", "volume %s: only emptyDir volumes (no subPath) are "
                            "mapped by the test double" % m.get("name"))
        opts = ["type=tmpfs", "destination=" + m["mountPath"], "U=true", "notmpcopyup"]
        size = (v["emptyDir"] or {}).get("sizeLimit")
        if size is not None:
            opts.append("tmpfs-size=%d" % int(quantity(size)))
        if m.get("readOnly"):
            opts.append("ro=true")
        args += ["--mount", ",".join(opts)]
    env = {}
    for e in c.get("env") or []:
        if "value" not in e:
            raise SpecError("CreateContainerConfigError", "env %s: valueFrom is not mapped by the test double"
                            % e.get("name"))
        if e["name"] in PODMAN_OWN_ENV:
            args += ["-e", "%s=%s" % (e["name"], e["value"])]
        else:
            env[e["name"]] = e["value"]
            args += ["-e", e["name"]]
    if c.get("workingDir"):
        args += ["--workdir", c["workingDir"]]
    if log_path:
        args += ["--log-driver", "k8s-file", "--log-opt", "path=" + log_path]
    if c.get("command"):
        args += ["--entrypoint", json.dumps(c["command"])]
    return args + [image] + list(c.get("args") or []), env


def run(cmd, check=True, env=None):
    """Runs cmd; its stdout. Raises RuntimeError with stderr when check and it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd[:3]), (r.stderr or r.stdout).strip()[-500:]))
    return r.stdout


class Container:
    """One pod's container, with the poll/wait of a Popen (its `podman wait`)."""

    def __init__(self, name):
        self.name = name
        self.times = {"begin": time.monotonic()}  # begin, running, ready, deleted, removed
        self.waiter = subprocess.Popen(["podman", "wait", name], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)

    def poll(self):
        return self.waiter.poll()

    def wait(self):
        """The container's exit code once it has stopped (137 when removed)."""
        out, _ = self.waiter.communicate()
        try:
            return int(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return 137

    def remove(self):
        """The pod's deletion: the container goes at once, as with a grace period of 0."""
        self.times["deleted"] = time.monotonic()
        run(["podman", "rm", "-f", "-t", "0", "--ignore", self.name], check=False)
        self.waiter.wait()
        self.times["removed"] = time.monotonic()


# app.kubernetes.io/name of an installer pod (fcgi-app/k8s_pod.h)
INSTALLER_NAME = "code-interpreter-installer"


class Pods:
    """This double's containers and their network."""

    SpecError = SpecError  # for a caller that imports this module lazily

    def __init__(self, image, ident, index_dirs=()):
        self.image = image
        self.id = ident
        self.index_dirs = list(index_dirs)
        self.lock = threading.Lock()
        self.rules = []
        run(["podman", "image", "exists", image])
        self.image_user = run(["podman", "image", "inspect", "--format", "{{.Config.User}}", image]).strip()
        # the working directory of podman run, so of each container's conmon,
        # which writes a file named oom there when the container's memory
        # limit is hit
        self.workdir = tempfile.mkdtemp(prefix=ident + "-")
        self.create_network()
        try:
            net = json.loads(run(["podman", "network", "inspect", ident]))[0]
            self.bridge = net["network_interface"]  # podmanN, this network's while it exists
            for tool in ("iptables", "ip6tables"):
                rule = ["INPUT", "-i", self.bridge, "-m", "conntrack", "--ctstate", "NEW",
                        "-m", "comment", "--comment", ident + ": pods reach no service of the host", "-j", "DROP"]
                run([tool, "-w", "-I"] + rule)
                self.rules.append((tool, rule))
        except (RuntimeError, KeyError, ValueError, IndexError):
            self.close()
            raise

    def create_network(self):
        """An internal network with a gateway: without one, netavark gives the
        bridge no address (the host could not reach the pods) and hands out
        the subnet's .1 to a container. The first free 10.89.N.0/24 from a
        random N (podman refuses a subnet in use)."""
        first = random.randrange(1, 255)
        for k in range(254):
            n = (first + k) % 254 + 1
            self.gateway = "10.89.%d.1" % n
            r = subprocess.run(["podman", "network", "create", "--internal", "--disable-dns",
                                "--subnet", "10.89.%d.0/24" % n, "--gateway", self.gateway,
                                "--label", "%s=%s" % (LABEL, self.id), self.id],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if r.returncode == 0:
                return
            if "already used" not in r.stderr:
                raise RuntimeError("podman network create: " + r.stderr.strip()[-300:])
        raise RuntimeError("podman network create: no free subnet in 10.89.0.0/16")

    def container_name(self, pod):
        return "%s-%s" % (self.id, pod)

    def start(self, pod, spec, log_path=None, begin=None, labels=None):
        """Starts the pod's container; (Container, ip). Raises SpecError. begin:
        when the kubelet took the pod (time.monotonic(); default now); labels:
        the pod's."""
        name = self.container_name(pod)
        args, env = podman_flags(spec, pod, self.image, self.image_user, log_path)
        if (labels or {}).get("app.kubernetes.io/name") == INSTALLER_NAME:
            # the package index an installer pod reaches: here the tests' wheel
            # directories (glob patterns), read-only where the service names them
            for d in sorted({m for pattern in self.index_dirs for m in glob.glob(pattern) if os.path.isdir(m)}):
                args[:0] = ["--mount", "type=bind,source=%s,destination=%s,ro=true" % (d, d)]
        penv = {k: v for k, v in os.environ.items() if not k.startswith("APP_") and k != "EXECUTOR_TOKEN"}
        penv.update(env)
        cmd = ["podman", "run", "-d", "--name", name, "--label", "%s=%s" % (LABEL, self.id),
               "--network", self.id, "--pull", "never"] + args
        r = subprocess.run(cmd, capture_output=True, text=True, env=penv, stdin=subprocess.DEVNULL,
                           cwd=self.workdir)
        if r.returncode != 0:
            run(["podman", "rm", "-f", "-t", "0", "--ignore", name], check=False)
            err = r.stderr.strip()[-300:]
            raise SpecError("ErrImageNeverPull" if "image not known" in err else "RunContainerError", err)
        c = Container(name)
        if begin is not None:
            c.times["begin"] = begin
        try:
            ip = run(["podman", "inspect", "--format",
                      '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % self.id, name]).strip()
            self.ensure_net()
        except RuntimeError as e:
            c.remove()
            raise SpecError("RunContainerError", str(e))
        c.times["running"] = time.monotonic()
        return c, ip

    def ensure_net(self):
        """Every port of the bridge isolated, and the bridge's MAC address
        fixed (idempotent). A Linux bridge whose address was never set takes
        the lowest of its ports' addresses, so it changes as pods' veths come
        and go; a pod that resolved the gateway before then sends its answers
        to a MAC address the host no longer has, and they are lost until its
        neighbour entry is probed again (30-90 s: a call fails with curl's
        timeout). Setting the address to itself marks it as chosen (the
        kernel's addr_assign_type 3), which the bridge then keeps."""
        with self.lock:
            for line in run(["ip", "-o", "link", "show", "master", self.bridge]).splitlines():
                port = line.split(": ")[1].split("@")[0]
                run(["bridge", "link", "set", "dev", port, "isolated", "on"], check=False)
            sysfs = "/sys/class/net/%s/" % self.bridge
            try:
                with open(sysfs + "addr_assign_type") as f:
                    chosen = f.read().strip() == "3"
                with open(sysfs + "address") as f:
                    address = f.read().strip()
            except OSError as e:  # netavark removed it with the last container
                raise RuntimeError("bridge %s: %s" % (self.bridge, e))
            if not chosen:
                run(["ip", "link", "set", "dev", self.bridge, "address", address])

    def close(self):
        """Removes every container of this double, its network and its rules."""
        ids = run(["podman", "ps", "-aq", "--filter", "label=%s=%s" % (LABEL, self.id)], check=False).split()
        if ids:
            run(["podman", "rm", "-f", "-t", "0", "--ignore"] + ids, check=False)
        run(["podman", "network", "rm", "-f", self.id], check=False)
        for tool, rule in self.rules:
            run([tool, "-w", "-D"] + rule, check=False)
        self.rules = []
        shutil.rmtree(self.workdir, ignore_errors=True)


def leftovers(ident, remove=False):
    """What a double with this id left (a killed one): container names, network
    names and firewall rules; with remove, they go."""
    cs = run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", "label=%s=%s" % (LABEL, ident)],
             check=False).split()
    nets = [n for n in run(["podman", "network", "ls", "--format", "{{.Name}}"], check=False).split() if n == ident]
    rules = [(tool, line) for tool in ("iptables", "ip6tables")
             for line in run([tool, "-w", "-S", "INPUT"], check=False).splitlines() if ident + ":" in line]
    if remove:
        if cs:
            run(["podman", "rm", "-f", "-t", "0", "--ignore"] + cs, check=False)
        for n in nets:
            run(["podman", "network", "rm", "-f", n], check=False)
        for tool, line in rules:  # "-A INPUT ..." as printed; shlex keeps the quoted comment whole
            run([tool, "-w", "-D"] + shlex.split(line)[1:], check=False)
    return cs, nets, [line for _, line in rules]
