"""Small wheels built in memory for the package tests (no network, no build
tools): a wheel is a zip with the modules and <name>-<ver>.dist-info/{METADATA,
WHEEL,RECORD}. pip installs them from a --find-links directory with --no-index."""
import base64
import hashlib
import os
import zipfile


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def build(directory, dist, version, files, requires=(), info=None):
    """Writes <dist>-<version>-py3-none-any.whl into directory. files maps paths
    inside the wheel (e.g. "mod/__init__.py") to their text (or bytes). Returns
    the path. info names the *.dist-info directory (default: the wheel's own)."""
    norm = dist.replace("-", "_")
    info = info or "%s-%s.dist-info" % (norm, version)
    meta = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (dist, version)
    meta += "".join("Requires-Dist: %s\n" % r for r in requires)
    entries = dict((k, v if isinstance(v, bytes) else v.encode()) for k, v in files.items())
    entries[info + "/METADATA"] = meta.encode()
    entries[info + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: ci-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries[info + "/top_level.txt"] = "".join(sorted({p.split("/")[0].split(".")[0] + "\n" for p in files})).encode()
    record = [_record_line(k, v) for k, v in entries.items()] + [info + "/RECORD,,"]
    entries[info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    path = os.path.join(directory, "%s-%s-py3-none-any.whl" % (norm, version))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in entries.items():
            z.writestr(k, v)
    return path


def build_sdist(directory, dist, version, backend):
    """Writes <dist>-<version>.tar.gz into directory: a source distribution
    whose PEP 517 build backend is the module text backend, in the tree itself
    (backend-path), with no build requirements: building it runs that code.
    Returns the path."""
    import io
    import tarfile
    norm = dist.replace("-", "_")
    root = "%s-%s" % (norm, version)
    entries = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "ci_backend"\nbackend-path = ["."]\n',
        "ci_backend.py": backend,
        "PKG-INFO": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (dist, version),
    }
    path = os.path.join(directory, root + ".tar.gz")
    with tarfile.open(path, "w:gz") as t:
        for name, text in entries.items():
            data = text.encode()
            info = tarfile.TarInfo("%s/%s" % (root, name))
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return path
