"""`sluice -c FILE --watch`: a reload when the config, or a certificate it names, changes, the
way the kubelet updates a ConfigMap or Secret volume (a new data directory, then the `..data`
symlink swapped to it), the way an editor saves (a new file renamed over the old one), and never
for a change that leaves the contents as they were."""

import http.client
import os
import shutil
import ssl
import threading
import time
from pathlib import Path

from helpers import HOST, wait_for
from pki import Pki

CONFIG = """
admin: { address: "127.0.0.1:${admin_port}" }
workers: 2
listeners:
  - { name: main, address: "127.0.0.1:${port}" }
routes:
  - name: version
    match: { path: { exact: /version } }
    respond: { status: 200, body: "VERSION" }
"""


def config(version: str) -> str:
    return CONFIG.replace("VERSION", version)


class ConfigMapVolume:
    """A directory laid out and updated as the kubelet does a ConfigMap volume: each version in
    its own `..<timestamp>` directory, `..data` a symlink to the current one, and each key a
    symlink `KEY -> ..data/KEY` that never changes."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir()
        self.versions = 0

    def path(self, key: str) -> Path:
        return self.root / key

    def publish(self, files: dict[str, str]) -> None:
        self.versions += 1
        data = self.root / f"..2026_12_02_00_00_00.{self.versions:09d}"
        data.mkdir()
        for key, text in files.items():
            (data / key).write_text(text)
        current = self.root / "..data"
        old = os.readlink(current) if current.is_symlink() else None
        tmp = self.root / "..data_tmp"
        os.symlink(data.name, tmp)
        os.replace(tmp, current)  # rename(2): the switch is atomic
        for key in files:
            link = self.root / key
            if not link.is_symlink():
                os.symlink(f"..data/{key}", link)
        if old:
            shutil.rmtree(self.root / old)


def get_version(s, conn=None) -> str:
    c = conn or http.client.HTTPConnection(HOST, s.port, timeout=5)
    try:
        c.request("GET", "/version")
        r = c.getresponse()
        body = r.read().decode()
        assert r.status == 200, (r.status, body)
        return body
    finally:
        if conn is None:
            c.close()


class Load:
    """Clients asking for /version without pause, on keep-alive connections and on new ones,
    until stopped; every failure is kept."""

    def __init__(self, s, threads: int = 4):
        self.s = s
        self.stop_event = threading.Event()
        self.failures: list[str] = []
        self.bodies: set[str] = set()
        self.requests = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i % 2 == 0,)) for i in
                        range(threads)]
        for t in self.threads:
            t.start()

    def run(self, keep_alive: bool) -> None:
        conn = None
        deadline = time.monotonic() + 30  # bounded whatever happens to the test
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.s.port, timeout=5)
                body = get_version(self.s, conn)
                with self.lock:
                    self.requests += 1
                    self.bodies.add(body)
                if not keep_alive:
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                with self.lock:
                    self.failures.append(repr(e))
                conn = None

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=10)


def test_configmap_swap_under_load_serves_the_new_config_without_a_failed_request(
        start_sluice, tmp_path):
    volume = ConfigMapVolume(tmp_path / "configmap")
    volume.publish({"sluice.yaml": ""})
    s = start_sluice(config("v1"), config_path=volume.path("sluice.yaml"), args=["--watch"])
    assert get_version(s) == "v1"
    wait_for(lambda: "watching" in s.stderr_text(), 5)

    load = Load(s)
    try:
        wait_for(lambda: load.requests > 50, 10, what="load to start")
        volume.publish({"sluice.yaml": s.render_config(config("v2"))})
        swapped = time.monotonic()
        wait_for(lambda: get_version(s) == "v2", 3.0, interval=0.02,
                 what="the new config to serve within 3 s of the swap")
        print(f"serving v2 {time.monotonic() - swapped:.2f} s after the swap")
        time.sleep(0.3)  # keep loading across the switch
    finally:
        load.stop()
    assert load.failures == []
    assert load.bodies == {"v1", "v2"}
    assert load.requests > 100
    # One kubelet update is several inotify events: one reload.
    assert s.metric("sluice_config_reloads_total", result="success") == 1
    assert s.metric("sluice_config_reloads_total", result="failure") == 0


def test_a_bad_update_is_reported_and_the_running_config_stays(start_sluice, tmp_path):
    volume = ConfigMapVolume(tmp_path / "configmap")
    volume.publish({"sluice.yaml": ""})
    s = start_sluice(config("v1"), config_path=volume.path("sluice.yaml"), args=["--watch"])

    broken = s.render_config(config("v1")).replace("status: 200", "status: twohundred")
    volume.publish({"sluice.yaml": broken})
    wait_for(lambda: s.metric("sluice_config_reloads_total", result="failure") == 1, 5)
    assert get_version(s) == "v1"
    err = s.stderr_text()
    # FILE:LINE:COL, as --check and SIGHUP report it.
    assert f"{volume.path('sluice.yaml')}:" in err and "status" in err, err
    assert "the previous config stays in force" in err

    volume.publish({"sluice.yaml": s.render_config(config("v3"))})
    wait_for(lambda: get_version(s) == "v3", 3.0, interval=0.02)
    assert s.metric("sluice_config_reloads_total", result="failure") == 1


def test_an_editor_save_reloads_and_a_touch_does_not(start_sluice, tmp_path):
    path = tmp_path / "plain" / "sluice.yaml"
    path.parent.mkdir()
    s = start_sluice(config("v1"), config_path=path, args=["--watch"])

    # Editors write a new file and rename it over the old one.
    tmp = path.with_suffix(".yaml.swp")
    tmp.write_text(s.render_config(config("v2")))
    os.replace(tmp, path)
    wait_for(lambda: get_version(s) == "v2", 3.0, interval=0.02)
    assert s.metric("sluice_config_reloads_total", result="success") == 1

    # New times, same contents; and an unrelated file in the directory.
    os.utime(path)
    (path.parent / "notes.txt").write_text("unrelated\n")
    time.sleep(1.0)  # four times the settle delay
    assert s.metric("sluice_config_reloads_total", result="success") == 1

    # In place (truncate and write), as `cat > FILE` does.
    path.write_text(s.render_config(config("v3")))
    wait_for(lambda: get_version(s) == "v3", 3.0, interval=0.02)


def test_a_rotated_certificate_in_a_secret_volume_is_served_without_a_restart(
        start_sluice, tmp_path):
    pki = Pki(tmp_path)
    secret = ConfigMapVolume(tmp_path / "secret")

    def publish_leaf():
        leaf = pki.leaf("site", ["localhost"])
        secret.publish({"tls.crt": Path(leaf["cert_file"]).read_text(),
                        "tls.key": Path(leaf["key_file"]).read_text()})
        return pki.last_der

    first = publish_leaf()
    text = f"""
admin: {{ address: "127.0.0.1:${{admin_port}}" }}
listeners:
  - name: main
    address: "127.0.0.1:${{port}}"
    tls:
      certificates: [{{ cert_file: {secret.path('tls.crt')}, key_file: {secret.path('tls.key')} }}]
routes:
  - {{ name: hello, match: {{ path: {{ prefix: / }} }}, respond: {{ status: 200, body: ok }} }}
"""
    s = start_sluice(text, args=["--watch"])

    def served_certificate() -> bytes:
        ctx = ssl.create_default_context(cafile=str(pki.ca_file))
        conn = http.client.HTTPSConnection("localhost", s.port, context=ctx, timeout=5)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"ok"
            return conn.sock.getpeercert(binary_form=True)
        finally:
            conn.close()

    assert served_certificate() == first
    second = publish_leaf()
    assert second != first
    wait_for(lambda: served_certificate() == second, 3.0, interval=0.05,
             what="the rotated certificate to be served")
    assert s.metric("sluice_config_reloads_total", result="success") == 1
