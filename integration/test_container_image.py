"""The container image (Dockerfile) against the release binary it ships.

The image cannot be built by the test suite (no registry, no daemon), so what can go wrong with
it is checked from the sources instead:

- every shared library the release binary links (ldd), and every one it has mapped while
  serving (dlopen included), belongs to a Debian package the runtime stage installs by name;
- the runtime stage installs nothing else beyond a short list of deliberate extras;
- the build stage builds the `release` preset, the runtime stage runs as a numeric non-root
  user (the Helm chart's runAsUser), starts `sluice -c /etc/sluice/sluice.yaml`, and that
  default config passes --check, binds every interface on the EXPOSEd ports and serves;
- .dockerignore keeps build trees and .git out of the context.

The release binary is $SLUICE_RELEASE_BIN (test.sh builds it), else build/release/proxy/sluice;
the ASan build in $SLUICE_BIN links libasan/libubsan, which the image does not ship. Package
names are looked up with dpkg on this machine, so these checks run only on the Debian release
the runtime stage is based on (bookworm); elsewhere they skip and say so.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT, http_get

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
CHART_VALUES = REPO_ROOT / "helm" / "sluice" / "values.yaml"
DEFAULT_CONFIG_IN_IMAGE = "/etc/sluice/sluice.yaml"
# Runtime packages installed on purpose although the binary links no library of theirs.
DELIBERATE_EXTRAS = {
    "ca-certificates": "the system CA store, for upstream TLS without clusters[].tls.ca_file",
}


# --------------------------------------------------------------------------- Dockerfile parsing


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by stage. Comment lines are dropped (also inside a continuation, as
    Docker does) and lines ending in a backslash are joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line and not pending:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending.strip():
        logical.append(pending)
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return stages


def apt_installed_packages(stage: Stage) -> list[str]:
    """Package names given to `apt-get install` (or `apt install`) in the stage's RUN commands;
    options, `=version` pins and `:arch` qualifiers are dropped."""
    packages: list[str] = []
    for run in stage.args("RUN"):
        lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        i = 0
        while i < len(tokens):
            if tokens[i] in ("apt-get", "apt") and i + 1 < len(tokens) and \
                    tokens[i + 1] == "install":
                i += 2
                while i < len(tokens) and not re.fullmatch(r"[;&|()]+", tokens[i]):
                    if not tokens[i].startswith("-"):
                        packages.append(re.split(r"[=:]", tokens[i], maxsplit=1)[0])
                    i += 1
            else:
                i += 1
    return packages


def exec_form(arguments: str) -> list[str]:
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        pytest.fail(f"expected the exec (JSON array) form, got: {arguments}", pytrace=False)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    parsed = parse_dockerfile(DOCKERFILE.read_text())
    assert len(parsed) >= 2, "the Dockerfile should have a build stage and a runtime stage"
    return parsed


@pytest.fixture(scope="module")
def runtime(stages) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def runtime_packages(runtime) -> set[str]:
    packages = set(apt_installed_packages(runtime))
    assert packages, "the runtime stage installs no package with apt-get install"
    return packages


# --------------------------------------------------------------------------- binary and packages


def release_binary() -> Path:
    path = os.environ.get("SLUICE_RELEASE_BIN") or str(REPO_ROOT / "build/release/proxy/sluice")
    p = Path(path).resolve()
    assert p.is_file(), f"release sluice binary not found at {p} (set SLUICE_RELEASE_BIN)"
    return p


def os_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return ""
    m = re.search(r"^VERSION_CODENAME=\"?([^\"\n]*)", text, re.M)
    return m.group(1) if m else ""


@pytest.fixture(scope="module")
def debian_host(runtime) -> None:
    """Skips unless this machine runs the Debian release of the runtime stage: package names
    and sonames from another release say nothing about the image."""
    m = re.fullmatch(r"debian:([a-z]+)(?:-slim)?(?:@.*)?", runtime.base)
    assert m, f"the runtime stage should be FROM debian:<codename>-slim, not {runtime.base}"
    if os_codename() != m.group(1):
        pytest.skip(f"package checks need a Debian {m.group(1)} host (this is "
                    f"'{os_codename() or 'unknown'}'): dpkg here cannot speak for the image")


def ldd(binary: Path) -> list[tuple[str, str | None]]:
    """(soname, resolved path) per line of `ldd`; path None for the vDSO."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"ldd {binary} failed: {out.stderr}"
    libs: list[tuple[str, str | None]] = []
    for line in out.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("statically linked"):
            continue
        if "=> not found" in line:
            pytest.fail(f"{binary} needs {line.split()[0]}, which is not installed here",
                        pytrace=False)
        m = re.match(r"(\S+) => (\S+)", line) or re.match(r"(/\S+)", line)
        if m and m.lastindex == 2:
            libs.append((m.group(1), m.group(2)))
        elif m:  # the dynamic loader, by absolute path
            libs.append((Path(m.group(1)).name, m.group(1)))
        elif line.startswith("linux-vdso") or line.startswith("linux-gate"):
            libs.append((line.split()[0], None))  # in the kernel, no file
        else:
            pytest.fail(f"unexpected ldd line: {line!r}", pytrace=False)
    return libs


def path_aliases(path: str) -> list[str]:
    """The names dpkg may know a library file by: the path, its symlink-resolved path, and each
    of those with or without the /usr prefix (bookworm merges /lib into /usr/lib, but dpkg
    records the path the package ships: /lib/x86_64-linux-gnu/libc.so.6,
    /usr/lib/x86_64-linux-gnu/libre2.so.9)."""
    names: list[str] = []
    for p in (path, os.path.realpath(path)):
        for q in (p, p[len("/usr"):] if p.startswith("/usr/") else "/usr" + p):
            if q not in names:
                names.append(q)
    return names


def owning_packages(paths: list[str]) -> dict[str, set[str]]:
    """{path: packages} for the paths dpkg knows (one `dpkg -S` call); `:arch` dropped."""
    out = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True, timeout=60)
    owners: dict[str, set[str]] = {}
    for line in out.stdout.splitlines():
        if line.startswith(("diversion by", "local diversion")):
            continue
        pkgs, sep, path = line.rpartition(": ")
        if not sep or path not in paths:
            continue
        owners.setdefault(path, set()).update(p.strip().split(":")[0] for p in pkgs.split(","))
    return owners


def library_packages(libraries: list[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
    """{(name, path): packages owning the file under any of its aliases}."""
    aliases = {lib: path_aliases(lib[1]) for lib in libraries}
    owners = owning_packages(sorted({a for names in aliases.values() for a in names}))
    result = {}
    for lib, names in aliases.items():
        result[lib] = set().union(*(owners.get(n, set()) for n in names))
        assert result[lib], (f"no Debian package owns {lib[0]} ({lib[1]}; tried "
                             f"{', '.join(names)}): the image could not contain it")
    return result


def missing_packages_message(needed: dict[tuple[str, str], set[str]], installed: set[str],
                             what: str) -> str:
    lines = []
    for (name, path), pkgs in sorted(needed.items()):
        if not pkgs & installed:
            lines.append(f"  {name} ({path}) is in package {' or '.join(sorted(pkgs))}")
    if not lines:
        return ""
    return (f"{what} libraries that the Dockerfile's runtime stage does not install:\n"
            + "\n".join(lines)
            + "\nadd the package(s) to the runtime stage's `apt-get install` list")


@pytest.fixture(scope="module")
def linked(debian_host) -> dict[tuple[str, str], set[str]]:
    binary = release_binary()
    libs = ldd(binary)
    names = [name for name, _ in libs]
    sanitizers = [n for n in names if re.match(r"lib(a|ub|t|l)san\.", n)]
    if sanitizers:
        pytest.fail(f"{binary} is a sanitizer build (links {', '.join(sanitizers)}); point "
                    "SLUICE_RELEASE_BIN at the release build, which the image ships",
                    pytrace=False)
    return library_packages([(n, p) for n, p in libs if p is not None])


# --------------------------------------------------------------------------- the build context


def test_dockerignore_keeps_build_trees_and_git_out():
    assert DOCKERIGNORE.is_file(), ".dockerignore is missing: `COPY . .` would send build/ and .git"
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = {line.strip("/") for line in lines if line and not line.startswith("#")}
    # A host build/ in the context would carry a CMakeCache.txt for another source path.
    for needed in ("build", ".git"):
        assert needed in patterns, f".dockerignore should exclude {needed}/"


# --------------------------------------------------------------------------- stages


def test_build_stage_builds_the_release_preset(stages, runtime):
    build_stages = stages[:-1]
    runs = " && ".join(a for s in build_stages for a in s.args("RUN"))
    assert re.search(r"cmake --preset release\b", runs), \
        "a build stage should configure with `cmake --preset release`"
    assert re.search(r"cmake --build --preset release\b", runs), \
        "a build stage should build with `cmake --build --preset release`"
    assert all(s.base.startswith("debian:bookworm") for s in build_stages), \
        f"build on the runtime's Debian release: {[s.base for s in build_stages]}"
    copies_from_build = [a for a in runtime.args("COPY")
                         if any(f"--from={s.name}" in a for s in build_stages if s.name)]
    assert copies_from_build, "the runtime stage should COPY the binary --from the build stage"


def test_runtime_stage_is_slim_and_installs_without_recommends(runtime):
    assert runtime.base.startswith("debian:bookworm-slim"), runtime.base
    installs = [r for r in runtime.args("RUN") if re.search(r"\bapt(-get)? install\b", r)]
    assert installs, "the runtime stage installs nothing"
    for run in installs:
        assert "--no-install-recommends" in run, \
            f"the runtime stage should install with --no-install-recommends: {run}"


def chart_ids(values) -> set[tuple[str, int]]:
    found = set()
    if isinstance(values, dict):
        for k, v in values.items():
            if k in ("runAsUser", "runAsGroup") and isinstance(v, int):
                found.add((k, v))
            else:
                found |= chart_ids(v)
    elif isinstance(values, list):
        for v in values:
            found |= chart_ids(v)
    return found


def test_runtime_stage_runs_as_numeric_non_root_user(runtime):
    users = runtime.args("USER")
    assert users, "the runtime stage has no USER: the container would run as root"
    user = users[-1]
    uid, _, gid = user.partition(":")
    # Kubernetes' runAsNonRoot can only verify a numeric user.
    assert uid.isdigit(), f"USER should be numeric (uid[:gid]), got {user}"
    assert int(uid) != 0, "USER 0 is root"
    assert not gid or (gid.isdigit() and int(gid) != 0), \
        f"USER group should be numeric, not 0: {user}"
    if CHART_VALUES.is_file():
        ids = chart_ids(yaml.safe_load(CHART_VALUES.read_text()))
        expected = {("runAsUser", int(uid))} | ({("runAsGroup", int(gid))} if gid else set())
        wrong = {i for i in ids if i not in expected}
        assert not wrong, (f"{CHART_VALUES.relative_to(REPO_ROOT)} sets {sorted(wrong)} but the "
                           f"image runs as USER {user}")


def test_entrypoint_runs_the_default_config(runtime):
    entrypoints, cmds = runtime.args("ENTRYPOINT"), runtime.args("CMD")
    assert entrypoints and cmds, "the runtime stage needs ENTRYPOINT and CMD"
    entrypoint, cmd = exec_form(entrypoints[-1]), exec_form(cmds[-1])
    assert Path(entrypoint[0]).name == "sluice" and len(entrypoint) == 1, entrypoint
    assert cmd == ["-c", DEFAULT_CONFIG_IN_IMAGE], cmd
    copies = [shlex.split(a) for a in runtime.args("COPY")]
    binary_dests = [c[-1] for c in copies if any(p.startswith("--from=") for p in c)]
    on_path = ("/usr/local/bin/sluice", "/usr/bin/sluice", "/usr/local/bin/", "/usr/bin/")
    assert any(d in on_path for d in binary_dests) or entrypoint[0].startswith("/"), \
        f"ENTRYPOINT {entrypoint[0]} must be on PATH; the binary is copied to {binary_dests}"
    config_copies = [c for c in copies if c[-1] == DEFAULT_CONFIG_IN_IMAGE]
    assert config_copies, f"nothing is copied to {DEFAULT_CONFIG_IN_IMAGE}"
    source = REPO_ROOT / config_copies[-1][-2]
    assert source.is_file(), f"{source} (copied to {DEFAULT_CONFIG_IN_IMAGE}) is missing"


# --------------------------------------------------------------------------- libraries


def test_every_linked_library_comes_from_a_runtime_package(linked, runtime_packages):
    message = missing_packages_message(linked, runtime_packages,
                                       f"{release_binary()} links")
    if message:
        pytest.fail(message, pytrace=False)


def test_every_runtime_package_is_needed(linked, runtime_packages):
    used = set().union(*linked.values())
    unused = sorted(p for p in runtime_packages - used if p not in DELIBERATE_EXTRAS)
    if unused:
        pytest.fail(f"the runtime stage installs {', '.join(unused)} but the release binary "
                        "links no library of them: drop them, or list them in "
                        "DELIBERATE_EXTRAS (integration/test_container_image.py) with the reason",
                    pytrace=False)


# --------------------------------------------------------------------------- the default config


def default_config_source(runtime) -> Path:
    for a in runtime.args("COPY"):
        words = shlex.split(a)
        if words[-1] == DEFAULT_CONFIG_IN_IMAGE:
            return REPO_ROOT / words[-2]
    pytest.fail(f"nothing is copied to {DEFAULT_CONFIG_IN_IMAGE}", pytrace=False)


def test_default_config_passes_check_and_binds_the_exposed_ports(runtime):
    source = default_config_source(runtime)
    out = subprocess.run([str(release_binary()), "--check", "-c", str(source)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"sluice --check -c {source}:\n{out.stdout}{out.stderr}"
    config = yaml.safe_load(source.read_text())
    addresses = [config["admin"]["address"]] + [l["address"] for l in config["listeners"]]
    for address in addresses:
        host = str(address).rsplit(":", 1)[0]
        assert host in ("0.0.0.0", "[::]"), \
            f"{source.name}: {address} is unreachable from outside the container"
    ports = {int(str(a).rsplit(":", 1)[1]) for a in addresses}
    exposed = {int(p.split("/")[0]) for a in runtime.args("EXPOSE") for p in a.split()}
    assert exposed == ports, f"EXPOSE {sorted(exposed)} but {source.name} binds {sorted(ports)}"


def test_default_config_serves_with_only_runtime_libraries(runtime, runtime_packages, linked,
                                                           start_sluice):
    """Runs the release binary on the image's default config (on loopback ports) and checks
    the libraries it has mapped while serving, which include any it dlopen()ed."""
    config = yaml.safe_load(default_config_source(runtime).read_text())
    config["admin"]["address"] = "127.0.0.1:0"
    for listener in config["listeners"]:
        listener["address"] = "127.0.0.1:0"
    config["access_log"] = {"path": "off"}
    s = start_sluice(config, binary=release_binary())
    assert http_get(s.url("/")).status == 200
    assert http_get(s.admin_url("/metrics")).status == 200
    mapped = set()
    for line in Path(f"/proc/{s.pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and re.search(r"\.so(\.|$)", parts[5]) and parts[5].startswith("/"):
            mapped.add((Path(parts[5]).name, parts[5]))
    assert mapped, "no shared library mapped: is /proc readable?"
    message = missing_packages_message(library_packages(sorted(mapped)), runtime_packages,
                                       "while serving, sluice has mapped")
    if message:
        pytest.fail(message, pytrace=False)
