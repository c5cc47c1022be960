#!/usr/bin/python3
"""Checks the sluice Helm chart without a cluster (ctest `helm.chart`).

For each case in CASES it renders the chart and then checks:
  - the values (values.yaml coalesced with the case's file) against values.schema.json (ajv);
  - every rendered object against the Kubernetes / Prometheus Operator schemas, unknown fields
    included, and that the objects fit together (validate.mjs);
  - what the case promises about the chart's behaviour (ASSERTIONS below);
  - the config in the ConfigMap with `sluice --check`;
  - the PrometheusRule's groups with `promtool check rules`.
Negative cases must fail where they say: the schema check, or rendering with a message.

Rendering: `helm template` (and `helm lint`) when helm is on PATH; otherwise render/main.go,
a small Go program implementing what the chart uses of helm's engine (helm is not packaged for
Debian), built here in GOPATH mode against Debian's golang-*-dev packages, offline.
Validation runs on node with the npm packages pinned in package-lock.json, installed with
`npm ci` into the work directory.

  check.py --chart DIR --work-dir DIR [--sluice BIN] [--promtool BIN]

Without --sluice the `sluice --check` step is skipped (said so in the output), so the rest can
run before sluice is built.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
VALUES_DIR = os.path.join(HERE, "values")

BASE_KINDS = ["ConfigMap", "Deployment", "Service", "ServiceAccount"]

# name, values file (None: defaults), release name, expectation.
#   kinds: exactly the kinds that must be rendered
#   schema_fails / render_fails: a negative case, with a text the failure must contain
CASES = [
    {"name": "defaults", "values": None, "release": "release-name", "kinds": BASE_KINDS},
    {
        "name": "all-on",
        "values": "all-on.yaml",
        "release": "sluice",
        "kinds": BASE_KINDS + ["HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor",
                               "PrometheusRule", "NetworkPolicy", "Service"],
        "alert_tests": "alerts_test.yaml",
    },
    {"name": "watch-checksum", "values": "watch-checksum.yaml", "release": "edge", "kinds": BASE_KINDS},
    {"name": "wrong-type", "values": "wrong-type.yaml", "release": "release-name",
     "schema_fails": ["replicaCount", "configReload", "service.type", "service.ports.http",
                      "podDisruptionBudget.minAvailable", "config.drain_timeout"]},
    {"name": "drain-too-long", "values": "drain-too-long.yaml", "release": "release-name",
     "render_fails": "config.drain_timeout (25s) plus preStopSleepSeconds (5) must be less than terminationGracePeriodSeconds (30)"},
    {"name": "drain-minutes", "values": "drain-minutes.yaml", "release": "release-name",
     "render_fails": "config.drain_timeout (1m) must be less than terminationGracePeriodSeconds (60)"},
    {"name": "admin-token", "values": "admin-token.yaml", "release": "release-name",
     "kinds": BASE_KINDS + ["ServiceMonitor", "Service"]},
    {"name": "admin-loopback", "values": "admin-loopback.yaml", "release": "release-name",
     "render_fails": "config.admin.address 127.0.0.1:9901 is a loopback address"},
]


class Failure(Exception):
    pass


def run(cmd, env=None, cwd=None, check=True):
    p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise Failure(f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout}{p.stderr}")
    return p


def coalesce(user, defaults):
    """helm's value merge: maps merge key by key, anything else replaces, null deletes."""
    out = dict(defaults)
    for k, v in user.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = coalesce(v, out[k])
        else:
            out[k] = v
    return out


class Renderer:
    def __init__(self, chart, work):
        self.chart = chart
        self.work = work
        self.helm = shutil.which("helm")
        if not self.helm:
            self.binary = self.build_go_renderer()

    def build_go_renderer(self):
        # GOPATH mode: Debian's Go libraries are GOPATH sources in /usr/share/gocode, and the
        # /v3 import of sprig resolves only for code inside a GOPATH that has a go.mod.
        gopath = os.path.join(self.work, "gopath")
        link = os.path.join(gopath, "src", "sluice-helm-render")
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.islink(link) and os.readlink(link) != os.path.join(HERE, "render"):
            os.unlink(link)
        if not os.path.lexists(link):
            os.symlink(os.path.join(HERE, "render"), link)
        binary = os.path.join(self.work, "render")
        env = dict(os.environ, GOPATH=f"{gopath}:/usr/share/gocode", GO111MODULE="off", GOFLAGS="",
                   GOCACHE=os.path.join(self.work, "gocache"), CGO_ENABLED="0")
        print("build: go build -o render (GOPATH mode, sprig from /usr/share/gocode)", flush=True)
        run(["go", "build", "-o", binary, "sluice-helm-render"], env=env, cwd=link)
        return binary

    def describe(self):
        return f"helm ({self.helm})" if self.helm else "render/main.go (helm is not on PATH)"

    def render(self, values_file, release, namespace, notes_out):
        """Returns (returncode, manifests, stderr)."""
        if self.helm:
            args = ["-f", values_file] if values_file else []
            lint = run([self.helm, "lint", self.chart, *args], check=False)
            if lint.returncode != 0:
                return lint.returncode, "", lint.stdout + lint.stderr
            p = run([self.helm, "template", release, self.chart, "--namespace", namespace, *args], check=False)
            open(notes_out, "w").close()  # helm lint rendered NOTES.txt
            return p.returncode, p.stdout, p.stderr
        args = ["-f", values_file] if values_file else []
        # --strict: a template that reads a key missing from the values fails (helm's
        # missingkey=error), so the templates stay safe for `helm lint --strict` users.
        p = run([self.binary, "--strict", "--name", release, "--namespace", namespace,
                 "--notes-out", notes_out, *args, self.chart], check=False)
        return p.returncode, p.stdout, p.stderr


class Node:
    def __init__(self, work):
        self.dir = os.path.join(work, "node")
        os.makedirs(self.dir, exist_ok=True)
        for f in ("package.json", "package-lock.json", "validate.mjs"):
            shutil.copyfile(os.path.join(HERE, f), os.path.join(self.dir, f))
        lock = open(os.path.join(HERE, "package-lock.json"), "rb").read()
        stamp = os.path.join(self.dir, "node_modules", ".lock-sha256")
        digest = hashlib.sha256(lock).hexdigest()
        if not (os.path.exists(stamp) and open(stamp).read() == digest):
            print("build: npm ci (kubernetes-models, @kubernetes-models/prometheus-operator, ajv, yaml)", flush=True)
            run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=self.dir)
            with open(stamp, "w") as f:
                f.write(digest)

    def validate(self, *args):
        return run(["node", os.path.join(self.dir, "validate.mjs"), *args], cwd=self.dir, check=False)


def docs_of(manifests):
    return [d for d in yaml.safe_load_all(manifests) if d]


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if len(found) != 1:
        raise Failure(f"expected one {kind}{' ' + name if name else ''}, found {len(found)}")
    return found[0]


def expect(cond, msg):
    if not cond:
        raise Failure(msg)
    print(f"  ok   {msg}")


def assertions(case, objs):
    """What each case promises about the chart's behaviour, beyond schema validity."""
    dep = one(objs, "Deployment")
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    annotations = pod["metadata"].get("annotations", {})
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    cfg = yaml.safe_load(one(objs, "ConfigMap")["data"]["sluice.yaml"])
    expect(c["args"][:2] == ["-c", "/etc/sluice/sluice.yaml"], "sluice runs with -c /etc/sluice/sluice.yaml")
    expect("/etc/sluice" in mounts and "subPath" not in mounts["/etc/sluice"],
           "the ConfigMap is mounted as the directory /etc/sluice (no subPath)")
    expect(c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
           and c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"},
           "readiness probe /ready and liveness probe /healthz on the admin port")
    sc = c["securityContext"]
    expect(sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"] and sc["runAsUser"] == 65532
           and sc["capabilities"]["drop"] == ["ALL"] and sc["allowPrivilegeEscalation"] is False
           and sc["seccompProfile"]["type"] == "RuntimeDefault", "restricted security context")
    name = case["name"]
    if name == "defaults":
        expect("--watch" in c["args"] and "checksum/config" not in annotations,
               "configReload=watch: --watch, no checksum/config annotation")
        expect(ports == {"http": 8080, "admin": 9901}, "container ports http 8080 and admin 9901")
        expect(c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"], "preStop sleeps 5 s")
        expect(dep["spec"]["replicas"] == 2, "2 replicas")
        svc = one(objs, "Service")
        expect([p["name"] for p in svc["spec"]["ports"]] == ["http"], "the Service has the listener port only, not admin")
        zones = [t["topologyKey"] for t in pod["spec"]["topologySpreadConstraints"]]
        expect(zones == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"], "spread over zones and nodes")
    if name == "all-on":
        expect("--watch" not in c["args"], "configReload=restart: no --watch")
        digest = hashlib.sha256(one(objs, "ConfigMap")["data"]["sluice.yaml"].rstrip("\n").encode()).hexdigest()
        expect(annotations.get("checksum/config") == digest, "configReload=restart: checksum/config is the sha256 of sluice.yaml")
        for secret in ("site-tls", "api.example.com"):
            m = mounts.get(f"/etc/sluice/tls/{secret}")
            expect(m is not None and m["readOnly"], f"Secret {secret} mounted read-only at /etc/sluice/tls/{secret}")
            vol = [v for v in pod["spec"]["volumes"] if v["name"] == m["name"]][0]
            expect(vol["secret"]["secretName"] == secret, f"volume {m['name']} is Secret {secret}")
        expect(ports == {"http": 8080, "public-tls-list": 8443, "admin": 9901},
               "ports from listener addresses, names sanitized, loopback listener left out")
        svc = one(objs, "Service", "sluice")
        expect({p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 80, "public-tls-list": 443},
               "service.ports maps listener names to Service ports")
        admin = one(objs, "Service", "sluice-admin")
        expect(admin["spec"]["clusterIP"] == "None" and [p["name"] for p in admin["spec"]["ports"]] == ["admin"],
               "admin port only on the headless sluice-admin Service")
        np = one(objs, "NetworkPolicy")
        admin_rule = [r for r in np["spec"]["ingress"] if r["ports"] == [{"port": 9901, "protocol": "TCP"}]][0]
        expect(admin_rule["from"][0] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
               "NetworkPolicy: admin port only from the monitoring namespace (and adminFrom)")
        expect("replicas" not in dep["spec"], "with autoscaling the Deployment leaves replicas to the HPA")
    if name == "watch-checksum":
        expect("--watch" in c["args"] and "checksum/config" in annotations,
               "configReload=watch with configChecksumAnnotation: --watch and checksum/config")
        expect("lifecycle" not in c, "preStopSleepSeconds=0: no preStop hook")
        expect(ports == {"p-8080": 8080, "http": 8081, "admin": 9090},
               "a numeric listener name gets a port name with a letter; two listeners on one port share it")
    if name == "defaults":
        expect(cfg["admin"].get("allow_unauthenticated") is True and "token_file" not in cfg["admin"]
               and "/etc/sluice/admin-token" not in mounts,
               "no admin.tokenSecret: no token mounted, allow_unauthenticated as in values.config")
    if name == "admin-token":
        m = mounts.get("/etc/sluice/admin-token")
        expect(m is not None and m["readOnly"], "admin token Secret mounted read-only at /etc/sluice/admin-token")
        vol = [v for v in pod["spec"]["volumes"] if v["name"] == m["name"]][0]
        expect(vol["secret"] == {"secretName": "sluice-admin-token", "defaultMode": 0o440,
                                 "items": [{"key": "admin-token", "path": "token"}]},
               "the volume is the Secret's key admin-token as the file token, mode 0440")
        expect(cfg["admin"].get("token_file") == "/etc/sluice/admin-token/token"
               and "allow_unauthenticated" not in cfg["admin"],
               "config.admin.token_file is the mounted token, allow_unauthenticated dropped")
        ep = one(objs, "ServiceMonitor")["spec"]["endpoints"][0]
        expect(ep.get("authorization") == {"type": "Bearer", "credentials": {"name": "sluice-admin-token",
                                                                                  "key": "admin-token"}},
               "the ServiceMonitor scrapes with the token from the same Secret")
    expected = case["config"]
    if (case.get("admin") or {}).get("tokenSecret", {}).get("name"):
        expected = dict(expected, admin={k: v for k, v in expected["admin"].items()
                                         if k != "allow_unauthenticated"})
        expected["admin"]["token_file"] = "/etc/sluice/admin-token/token"
    expect(cfg == expected, "the ConfigMap's sluice.yaml is values.config (with the token file, if any)")


def sluice_check(sluice, config_text, tmp, secrets):
    """`sluice --check` on the rendered config. Certificates under /etc/sluice/tls/NAME/ do not
    exist here, and --check reads them: a self-signed pair per Secret is generated, and those
    paths in the config are pointed at it (a plain text replacement of the mount prefix). The
    same for the admin token under /etc/sluice/admin-token/."""
    if "/etc/sluice/admin-token/" in config_text:
        token_dir = os.path.join(tmp, "admin-token")
        os.makedirs(token_dir, exist_ok=True)
        with open(os.path.join(token_dir, "token"), "w") as f:
            f.write("a-test-token\n")
        config_text = config_text.replace("/etc/sluice/admin-token/", token_dir + "/")
    if secrets:
        tls_root = os.path.join(tmp, "tls")
        for s in secrets:
            d = os.path.join(tls_root, s)
            os.makedirs(d, exist_ok=True)
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-days", "2", "-subj", f"/CN={s}", "-addext", f"subjectAltName=DNS:{s}",
                 "-keyout", os.path.join(d, "tls.key"), "-out", os.path.join(d, "tls.crt")])
        config_text = config_text.replace("/etc/sluice/tls/", tls_root + "/")
    path = os.path.join(tmp, "sluice.yaml")
    with open(path, "w") as f:
        f.write(config_text)
    p = run([sluice, "--check", "-c", path], check=False)
    if p.returncode != 0:
        raise Failure(f"sluice --check failed:\n{p.stdout}{p.stderr}\n--- config ---\n{config_text}")
    print(f"  ok   sluice --check: {p.stdout.strip()}")
    for line in p.stderr.splitlines():
        print(f"       {line}")  # warnings


def promtool_check(promtool, rule, tmp, unit_tests):
    path = os.path.join(tmp, "rules.yaml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": rule["spec"]["groups"]}, f, sort_keys=False)
    p = run([promtool, "check", "rules", path], check=False)
    if p.returncode != 0:
        raise Failure(f"promtool check rules failed:\n{p.stdout}{p.stderr}")
    summary = [line.strip() for line in p.stdout.splitlines() if "SUCCESS" in line]
    print(f"  ok   promtool check rules: {' '.join(summary)}")
    if unit_tests:
        test = os.path.join(tmp, os.path.basename(unit_tests))
        shutil.copyfile(os.path.join(HERE, unit_tests), test)
        p = run([promtool, "test", "rules", test], check=False)
        if p.returncode != 0:
            raise Failure(f"promtool test rules {unit_tests} failed:\n{p.stdout}{p.stderr}")
        print(f"  ok   promtool test rules {unit_tests}: the alerts fire (and stay quiet) as expected")


def run_case(case, renderer, node, args, schema, defaults):
    name = case["name"]
    # One directory per case, emptied first: what the last run rendered stays for a look.
    tmp = os.path.join(args.work_dir, "cases", name)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    values_file = os.path.join(VALUES_DIR, case["values"]) if case["values"] else None
    user = yaml.safe_load(open(values_file)) if values_file else {}
    merged = coalesce(user or {}, defaults)
    case["config"] = merged.get("config")
    case["admin"] = merged.get("admin")
    merged_file = os.path.join(tmp, "values.json")
    with open(merged_file, "w") as f:
        json.dump(merged, f, indent=2)

    print(f"== {name}: {case['values'] or 'values.yaml'}", flush=True)
    v = node.validate("values", schema, merged_file)
    if "schema_fails" in case:
        out = v.stdout + v.stderr
        print(out.replace("  FAIL ", "  refused as expected: "), end="")
        if v.returncode == 0:
            raise Failure("the schema accepted values it must refuse")
        missing = [k for k in case["schema_fails"] if f"values.{k}:" not in out]
        if missing:
            raise Failure(f"the schema did not refuse: {', '.join(missing)}")
        expect(True, f"values.schema.json refuses {', '.join(case['schema_fails'])}")
        if renderer.helm:
            rc, _, err = renderer.render(values_file, case["release"], "default", os.path.join(tmp, "NOTES.txt"))
            expect(rc != 0, "helm refuses the values too")
        return
    if v.returncode != 0:
        raise Failure(f"values do not match values.schema.json:\n{v.stdout}{v.stderr}")
    print(v.stdout, end="")

    namespace = "edge" if name != "defaults" else "default"
    notes = os.path.join(tmp, "NOTES.txt")
    rc, manifests, err = renderer.render(values_file, case["release"], namespace, notes)
    if "render_fails" in case:
        print(f"  rendering failed as expected: {err.strip()}")
        if rc == 0:
            raise Failure("rendering succeeded; it must fail")
        if case["render_fails"] not in err:
            raise Failure(f"rendering failed without the expected message: {case['render_fails']!r}")
        expect(True, "rendering fails with the expected message")
        return
    if rc != 0:
        raise Failure(f"rendering failed:\n{err}")
    out = os.path.join(tmp, "manifests.yaml")
    with open(out, "w") as f:
        f.write(manifests)
    if not renderer.helm:
        expect(os.path.getsize(notes) > 0, "NOTES.txt renders")
    m = node.validate("manifests", out, "--expect", ",".join(case["kinds"]))
    print(m.stdout, end="")
    if m.returncode != 0:
        raise Failure(f"rendered objects are not valid:\n{m.stderr}")
    objs = docs_of(manifests)
    assertions(case, objs)

    config_text = one(objs, "ConfigMap")["data"]["sluice.yaml"]
    if args.sluice:
        sluice_check(args.sluice, config_text, tmp, merged.get("tls", {}).get("secrets", []))
    else:
        print("  skip sluice --check (no --sluice given)")
    rules = [o for o in objs if o["kind"] == "PrometheusRule"]
    for r in rules:
        promtool_check(args.promtool, r, tmp, case.get("alert_tests"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chart", default=os.path.join(os.path.dirname(HERE), "sluice"))
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--sluice", default=os.environ.get("SLUICE_BIN", ""))
    ap.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    ap.add_argument("--case", action="append", help="run only these cases")
    args = ap.parse_args()
    args.work_dir = os.path.abspath(args.work_dir)
    os.makedirs(args.work_dir, exist_ok=True)
    for tool in ("node", "npm", "openssl", args.promtool) + (() if shutil.which("helm") else ("go",)):
        if not shutil.which(tool):
            print(f"missing tool: {tool} (run scripts/install-deps.sh)", file=sys.stderr)
            return 1
    if args.sluice and not os.access(args.sluice, os.X_OK):
        print(f"--sluice {args.sluice}: not an executable", file=sys.stderr)
        return 1

    try:
        renderer = Renderer(args.chart, args.work_dir)
        node = Node(args.work_dir)
    except Failure as e:
        print(f"FAIL setup: {e}", file=sys.stderr)
        return 1
    print(f"renderer: {renderer.describe()}")
    schema = os.path.join(args.chart, "values.schema.json")
    defaults = yaml.safe_load(open(os.path.join(args.chart, "values.yaml")))
    failed = []
    for case in CASES:
        if args.case and case["name"] not in args.case:
            continue
        try:
            run_case(case, renderer, node, args, schema, defaults)
        except Failure as e:
            print(f"FAIL {case['name']}: {e}", flush=True)
            failed.append(case["name"])
    if failed:
        print(f"\n{len(failed)} case(s) failed: {', '.join(failed)}")
        return 1
    print("\nall chart checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
