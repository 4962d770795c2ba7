"""ONNX Runtime's C++ headers: find them on this machine, or fetch them once (`course setup-ort`).

The onnxruntime wheel ships `libonnxruntime.so` but no headers, and no PyPI package has them.
`find_ort_headers()` looks in ORT_INCLUDE_DIR, a conda prefix (conda-forge's onnxruntime-cpp),
/usr/include, /usr/local, Homebrew and the project cache `.cache/ort-headers/include`.
`setup_ort()` fills that cache on Debian and Ubuntu from Debian's libonnxruntime-dev package, read
from the machine's own configured mirror: the package index, the .deb checked against the index's
SHA256, and only `usr/include/onnxruntime/*` extracted. Nothing is installed.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORT_CACHE = REPO / ".cache" / "ort-headers"


HEADER = "onnxruntime_cxx_api.h"
DEBIAN_SUITE = "trixie"  # the first Debian release with libonnxruntime-dev (1.21.0)
DEBIAN_PACKAGE = "libonnxruntime-dev"
SYSTEM_HEADER_DIRS = (
    Path("/usr/include/onnxruntime"), Path("/usr/local/include/onnxruntime"),
    Path("/opt/homebrew/include/onnxruntime"),
    Path("/usr/local/opt/onnxruntime/include/onnxruntime"),
)
_DEBIAN_CODENAMES = {"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
                     "stable", "testing", "unstable", "oldstable", "oldoldstable"}


def _header_candidates() -> list[Path]:
    dirs = []
    if os.environ.get("ORT_INCLUDE_DIR"):
        dirs.append(Path(os.environ["ORT_INCLUDE_DIR"]))
    if os.environ.get("CONDA_PREFIX"):
        prefix = Path(os.environ["CONDA_PREFIX"])
        dirs += [prefix / "include" / "onnxruntime", prefix / "include"]
    return dirs + list(SYSTEM_HEADER_DIRS) + [ORT_CACHE / "include"]


def find_ort_headers() -> Path | None:
    """The directory holding onnxruntime_cxx_api.h, searched in the documented order."""
    for base in _header_candidates():
        for d in (base, base / "onnxruntime", base / "onnxruntime" / "core" / "session"):
            if (d / HEADER).is_file():
                return d
    return None


def missing_message() -> str:
    looked = ", ".join(str(d) for d in _header_candidates())
    return ("ONNX Runtime's C++ headers are not installed (the onnxruntime wheel ships only "
            f"the library). Looked for {HEADER} in: {looked}.\n" + _how_to_get_headers())


def _how_to_get_headers() -> str:
    return ("Run in a terminal, from the course folder:  course setup-ort\n"
            "  (same as: python -m course.cpp setup-ort; on Debian/Ubuntu it fetches the "
            "headers from Debian's libonnxruntime-dev into .cache/, installing nothing)\n"
            + _package_manager_way())


def _package_manager_way() -> str:
    return ("Or with conda:  conda install -c conda-forge onnxruntime-cpp   then   "
            "export ORT_INCLUDE_DIR=$CONDA_PREFIX/include/onnxruntime\n"
            "Or with Homebrew:  brew install onnxruntime   then   "
            "export ORT_INCLUDE_DIR=$(brew --prefix)/include/onnxruntime\n"
            "Then restart the notebook's kernel.")


def _apt_source_files(root: Path = Path("/")) -> list[Path]:
    apt = root / "etc" / "apt"
    files = [apt / "sources.list"] if (apt / "sources.list").is_file() else []
    d = apt / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    return files


def _is_debian_suite(suite: str) -> bool:
    if "security" in suite:
        return False  # the security archive has no dists/<release>/main of its own
    return re.split(r"[-/]", suite)[0] in _DEBIAN_CODENAMES


def parse_apt_sources(text: str, deb822: bool) -> list[str]:
    """Mirror URLs, in order, of the `deb` entries whose suite is a Debian release."""
    urls = []
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields = {}
            for line in stanza.splitlines():
                m = re.match(r"^([\w-]+):\s*(.*)$", line)
                if m and not line.startswith("#"):
                    fields[m.group(1).lower()] = m.group(2).split()
            enabled = fields.get("enabled", ["yes"])[0].lower() != "no"
            if enabled and "deb" in fields.get("types", []) and any(
                    _is_debian_suite(s) for s in fields.get("suites", [])):
                urls += fields.get("uris", [])
    else:
        for line in text.splitlines():
            line = re.sub(r"\[[^\]]*\]", " ", line.split("#")[0]).split()
            if len(line) >= 3 and line[0] == "deb" and _is_debian_suite(line[2]):
                urls.append(line[1])
    return [u.rstrip("/") for u in urls if u.startswith(("http://", "https://"))]


def debian_mirror(root: Path = Path("/")) -> str | None:
    """The first Debian mirror configured for apt on this machine, or None."""
    for path in _apt_source_files(root):
        try:
            urls = parse_apt_sources(path.read_text(), path.suffix == ".sources")
        except OSError:
            continue
        if urls:
            return urls[0]
    return None


def parse_packages(text: str, package: str) -> dict[str, str] | None:
    """The fields of `package`'s stanza in a Debian `Packages` index, or None."""
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([\w-]+):[ \t]*(.*)$", stanza, re.M))
        if fields.get("Package") == package:
            return fields
    return None


def _debian_arch() -> str:
    try:
        out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el"}.get(machine, machine)


def ar_members(data: bytes) -> dict[str, bytes]:
    """The members of an `ar` archive (a .deb is one): name -> bytes."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive (a .deb starts with '!<arch>')")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def extract_headers(deb: bytes, dest: Path) -> list[Path]:
    """Write only usr/include/onnxruntime/* of a .deb into dest/include/onnxruntime/."""
    members = ar_members(deb)
    name = next((n for n in members if n.startswith("data.tar")), None)
    if name is None:
        raise ValueError("the .deb has no data.tar member")
    if name.endswith(".zst"):
        raise ValueError("the .deb's data is zstd-compressed, which Python cannot read; "
                         "use a Debian mirror (Debian packages use xz)")
    prefix, written = "usr/include/onnxruntime/", []
    with tarfile.open(fileobj=io.BytesIO(members[name]), mode="r:*") as tar:
        for member in tar.getmembers():
            rel = member.name.lstrip("./") if member.name.startswith("./") else member.name
            if not (member.isfile() and rel.startswith(prefix)):
                continue
            rel = Path(rel[len(prefix):])
            if rel.is_absolute() or ".." in rel.parts:
                continue
            target = dest / "include" / "onnxruntime" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            written.append(target)
    return written


def _download(url: str, timeout: float = 120) -> bytes:
    print(f"  downloading {url}")
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def fetch_debian_headers(mirror: str, dest: Path = ORT_CACHE, suite: str = DEBIAN_SUITE,
                         arch: str | None = None) -> Path:
    """Fetch libonnxruntime-dev from `mirror`, check its SHA256, keep only the headers."""
    arch = arch or _debian_arch()
    index = _download(f"{mirror}/dists/{suite}/main/binary-{arch}/Packages.xz")
    fields = parse_packages(lzma.decompress(index).decode("utf-8", "replace"), DEBIAN_PACKAGE)
    if fields is None or "Filename" not in fields or "SHA256" not in fields:
        raise RuntimeError(f"{DEBIAN_PACKAGE} is not in {mirror} {suite}/main for {arch}")
    deb = _download(f"{mirror}/{fields['Filename']}")
    digest = hashlib.sha256(deb).hexdigest()
    if digest != fields["SHA256"]:
        raise RuntimeError(f"SHA256 mismatch for {fields['Filename']}: the index says "
                           f"{fields['SHA256']}, the download is {digest}; nothing written")
    with tempfile.TemporaryDirectory(dir=_mkdir(dest.parent)) as tmp:
        written = extract_headers(deb, Path(tmp))
        if not any(p.name == HEADER for p in written):
            raise RuntimeError(f"{fields['Filename']} holds no {HEADER}")
        shutil.rmtree(dest / "include", ignore_errors=True)
        _mkdir(dest)
        os.replace(Path(tmp) / "include", dest / "include")
    (dest / "VERSION").write_text(f"{DEBIAN_PACKAGE} {fields.get('Version', '?')}\n")
    return dest / "include" / "onnxruntime"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def setup_ort(argv: list[str] | None = None) -> int:
    """`course setup-ort`: make sure ONNX Runtime's C++ headers are available; 0 if they are."""
    parser = argparse.ArgumentParser(prog="course setup-ort", description=setup_ort.__doc__)
    parser.add_argument("--mirror", help="a Debian mirror URL (default: the one apt uses)")
    parser.add_argument("--dest", type=Path, default=ORT_CACHE, help="cache folder")
    parser.add_argument("--force", action="store_true", help="fetch even if headers exist")
    args = parser.parse_args([] if argv is None else argv)
    found = find_ort_headers()
    if found and not args.force:
        print(f"ONNX Runtime C++ headers found in {found}")
        return 0
    mirror = args.mirror or debian_mirror()
    if mirror is None:
        print("No Debian mirror is configured for apt on this machine, so the headers cannot "
              "be fetched from Debian's libonnxruntime-dev (pass --mirror URL to use one).\n"
              + _package_manager_way(), file=sys.stderr)
        return 1
    print(f"Fetching ONNX Runtime C++ headers ({DEBIAN_PACKAGE}, Debian {DEBIAN_SUITE}) "
          f"from {mirror}")
    try:
        where = fetch_debian_headers(mirror.rstrip("/"), args.dest)
    except (OSError, RuntimeError, ValueError, lzma.LZMAError) as exc:
        print(f"Could not fetch the headers: {exc}\n" + _how_to_get_headers(), file=sys.stderr)
        return 1
    print(f"ONNX Runtime C++ headers written to {where} (nothing was installed)")
    return 0
