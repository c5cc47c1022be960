// Validates what the sluice chart renders, without a cluster.
//
//   node validate.mjs manifests FILE.yaml [--expect Kind,Kind,...]
//     Every object of the multi-document stream against the Kubernetes OpenAPI schemas
//     (kubernetes-models) or the Prometheus Operator CRD schemas
//     (@kubernetes-models/prometheus-operator); fields the schema does not know are errors, as
//     with kubectl's strict field validation; plus what the API server checks beyond the schema
//     (name and label syntax, port names, duplicates) and that the objects fit together
//     (selectors, named ports, volumes). --expect: exactly these kinds must be present.
//
//   node validate.mjs values SCHEMA.json VALUES.json
//     The (coalesced) values against values.schema.json, with ajv (JSON Schema draft-07), as
//     helm does before rendering.
//
// Exit status 0 when everything is valid, 1 with one line per problem otherwise.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import Ajv from "ajv";

const problems = [];
const problem = (where, msg) => problems.push(`${where}: ${msg}`);

function finish(okMessage) {
  if (problems.length) {
    for (const p of problems) console.error(`  FAIL ${p}`);
    process.exit(1);
  }
  console.log(okMessage);
}

// --- values ----------------------------------------------------------------------------------

function checkValues(schemaFile, valuesFile) {
  const schema = JSON.parse(readFileSync(schemaFile, "utf8"));
  const values = JSON.parse(readFileSync(valuesFile, "utf8"));
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  const validate = ajv.compile(schema);
  if (!validate(values)) {
    for (const e of validate.errors) {
      const extra = e.params?.additionalProperty ? ` '${e.params.additionalProperty}'` : "";
      const allowed = e.params?.allowedValues ? ` (${e.params.allowedValues.join(", ")})` : "";
      problem(`values${e.instancePath.replaceAll("/", ".")}`, `${e.message}${extra}${allowed}`);
    }
  }
  finish(`  ok   ${valuesFile} matches ${schemaFile}`);
}

// --- schema validation with unknown-field detection ------------------------------------------

const modules = {
  v1: "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "autoscaling/v2": "kubernetes-models/autoscaling/v2",
  "policy/v1": "kubernetes-models/policy/v1",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

// The generated validators read every property their schema defines (`data.name`) and
// enumerate the keys of free-form maps (labels). Running one over a Proxy that records this
// tells which keys of an object the schema does not define: an object the validator read some
// properties of, but never enumerated, has unknown fields if it has keys that were never read.
// (An object it did not look into at all is free-form to the schema and left alone.)
function tracked(root) {
  const records = new WeakMap();
  const proxies = new WeakMap();
  const wrap = (target) => {
    if (target === null || typeof target !== "object") return target;
    if (proxies.has(target)) return proxies.get(target);
    const rec = { read: new Set(), enumerated: false };
    records.set(target, rec);
    const p = new Proxy(target, {
      get(t, key, receiver) {
        if (typeof key === "string") rec.read.add(key);
        return wrap(Reflect.get(t, key, receiver));
      },
      has(t, key) {
        if (typeof key === "string") rec.read.add(key);
        return Reflect.has(t, key);
      },
      getOwnPropertyDescriptor(t, key) {
        if (typeof key === "string") rec.read.add(key);
        return Reflect.getOwnPropertyDescriptor(t, key);
      },
      ownKeys(t) {
        rec.enumerated = true;
        return Reflect.ownKeys(t);
      },
    });
    proxies.set(target, p);
    return p;
  };
  const unknown = [];
  const walk = (value, path) => {
    if (value === null || typeof value !== "object") return;
    if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${path}[${i}]`));
      return;
    }
    const rec = records.get(value);
    if (rec && !rec.enumerated && rec.read.size > 0) {
      for (const k of Object.keys(value)) {
        if (!rec.read.has(k)) unknown.push(`${path}.${k}`);
      }
    }
    for (const [k, v] of Object.entries(value)) walk(v, `${path}.${k}`);
  };
  return { proxy: wrap(root), unknownFields: () => (walk(root, ""), unknown) };
}

async function schemaCheck(obj, where) {
  const mod = modules[obj.apiVersion];
  if (!mod) {
    problem(where, `apiVersion ${obj.apiVersion} is not one this check knows`);
    return;
  }
  const Model = (await import(mod))[obj.kind];
  if (!Model) {
    problem(where, `no kind ${obj.kind} in ${obj.apiVersion}`);
    return;
  }
  const t = tracked(obj);
  try {
    Model.prototype.validate.call(t.proxy);
  } catch (e) {
    const errors = e.errors ?? [{ instancePath: "", message: e.message }];
    for (const err of errors) {
      const params = err.params?.allowedValues ? ` (${err.params.allowedValues.join(", ")})` : "";
      problem(where, `${err.instancePath || "/"} ${err.message}${params}`);
    }
    return;
  }
  for (const f of t.unknownFields()) problem(where, `unknown field ${f.slice(1)}`);
}

// --- what the API server checks beyond the OpenAPI schema ------------------------------------

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dns1035Label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const labelName = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function checkLabels(labels, where) {
  for (const [k, v] of Object.entries(labels ?? {})) {
    const slash = k.lastIndexOf("/");
    const prefix = slash >= 0 ? k.slice(0, slash) : "";
    const name = slash >= 0 ? k.slice(slash + 1) : k;
    if (prefix && (prefix.length > 253 || !dns1123Subdomain.test(prefix))) {
      problem(where, `label key '${k}': bad prefix`);
    }
    if (name.length > 63 || !labelName.test(name)) problem(where, `label key '${k}' is not valid`);
    if (typeof v !== "string" || v.length > 63 || !labelValue.test(v)) {
      problem(where, `label ${k}: value '${v}' is not valid (at most 63 characters, alphanumeric, '-', '_', '.')`);
    }
  }
}

function checkName(name, where, { label = false, dns1035 = false } = {}) {
  if (typeof name !== "string") return;
  if (dns1035 && !(name.length <= 63 && dns1035Label.test(name))) {
    problem(where, `name '${name}' must be a DNS-1035 label (at most 63 characters, lowercase alphanumeric or '-', starting with a letter)`);
  } else if (label && !(name.length <= 63 && dns1123Label.test(name))) {
    problem(where, `name '${name}' must be a DNS-1123 label (at most 63 characters)`);
  } else if (!(name.length <= 253 && dns1123Subdomain.test(name))) {
    problem(where, `name '${name}' must be a DNS-1123 subdomain`);
  }
}

// Kubernetes' IsValidPortName (IANA_SVC_NAME).
function checkPortName(name, where) {
  if (
    name.length > 15 ||
    !/^[a-z0-9-]+$/.test(name) ||
    !/[a-z]/.test(name) ||
    name.startsWith("-") ||
    name.endsWith("-") ||
    name.includes("--")
  ) {
    problem(where, `port name '${name}' is not a valid IANA_SVC_NAME (at most 15 characters, lowercase alphanumeric and '-', a letter among them, no '-' at either end or twice in a row)`);
  }
}

function unique(items, where, what) {
  const seen = new Set();
  for (const i of items) {
    if (seen.has(i)) problem(where, `duplicate ${what} ${i}`);
    seen.add(i);
  }
}

function matches(selector, labels) {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

function apiServerChecks(obj, where) {
  const md = obj.metadata ?? {};
  checkName(md.name, where, { dns1035: obj.kind === "Service" });
  checkLabels(md.labels, `${where} metadata.labels`);
  if (obj.kind === "Deployment") {
    const tpl = obj.spec.template;
    checkLabels(tpl.metadata?.labels, `${where} spec.template.metadata.labels`);
    if (!matches(obj.spec.selector?.matchLabels, tpl.metadata?.labels)) {
      problem(where, "spec.selector does not match the pod template's labels");
    }
    const pod = tpl.spec;
    const volumes = (pod.volumes ?? []).map((v) => v.name);
    volumes.forEach((v) => checkName(v, `${where} volume`, { label: true }));
    unique(volumes, where, "volume name");
    for (const c of pod.containers) {
      const ports = c.ports ?? [];
      ports.forEach((p) => p.name !== undefined && checkPortName(p.name, `${where} container ${c.name}`));
      unique(ports.map((p) => p.name), `${where} container ${c.name}`, "port name");
      unique(ports.map((p) => `${p.containerPort}/${p.protocol ?? "TCP"}`), `${where} container ${c.name}`, "container port");
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.includes(m.name)) problem(where, `volumeMount ${m.mountPath} refers to no volume '${m.name}'`);
      }
      unique((c.volumeMounts ?? []).map((m) => m.mountPath), `${where} container ${c.name}`, "mountPath");
      for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const port = c[probe]?.httpGet?.port;
        if (typeof port === "string" && !ports.some((p) => p.name === port)) {
          problem(where, `${probe} uses port '${port}', which the container does not name`);
        }
      }
    }
    for (const tsc of pod.topologySpreadConstraints ?? []) {
      if (!matches(tsc.labelSelector?.matchLabels, tpl.metadata?.labels)) {
        problem(where, `topologySpreadConstraint on ${tsc.topologyKey} does not select the pods`);
      }
    }
  }
  if (obj.kind === "Service") {
    const ports = obj.spec.ports ?? [];
    if (ports.length > 1) ports.forEach((p) => checkName(p.name ?? "", `${where} port`, { label: true }));
    unique(ports.map((p) => p.name), where, "port name");
    unique(ports.map((p) => `${p.port}/${p.protocol ?? "TCP"}`), where, "port");
    if (obj.spec.type === "ClusterIP" && ports.some((p) => p.nodePort !== undefined)) {
      problem(where, "nodePort on a ClusterIP Service");
    }
  }
}

// Objects that refer to each other: Service -> pods, named target ports; ServiceMonitor ->
// Service and port; HPA -> Deployment; PDB and NetworkPolicy -> pods; mounts -> ConfigMap.
function crossChecks(objs) {
  const byKind = (k) => objs.filter((o) => o.kind === k);
  const deployments = byKind("Deployment");
  const podOf = (selector) =>
    deployments.find((d) => matches(selector, d.spec.template.metadata?.labels));
  for (const svc of byKind("Service")) {
    const where = `Service/${svc.metadata.name}`;
    const d = podOf(svc.spec.selector);
    if (!d) {
      problem(where, "selector matches no Deployment's pods");
      continue;
    }
    const names = d.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
    for (const p of svc.spec.ports ?? []) {
      if (typeof p.targetPort === "string" && !names.includes(p.targetPort)) {
        problem(where, `targetPort '${p.targetPort}' is not a container port name`);
      }
    }
  }
  for (const sm of byKind("ServiceMonitor")) {
    const where = `ServiceMonitor/${sm.metadata.name}`;
    const svcs = byKind("Service").filter((s) => matches(sm.spec.selector?.matchLabels, s.metadata.labels));
    if (svcs.length !== 1) {
      problem(where, `selector matches ${svcs.length} Services, expected exactly one`);
      continue;
    }
    for (const ep of sm.spec.endpoints) {
      if (!(svcs[0].spec.ports ?? []).some((p) => p.name === ep.port)) {
        problem(where, `endpoint port '${ep.port}' is not a port of Service/${svcs[0].metadata.name}`);
      }
    }
  }
  for (const hpa of byKind("HorizontalPodAutoscaler")) {
    const ref = hpa.spec.scaleTargetRef;
    const d = deployments.find((x) => x.metadata.name === ref.name);
    if (ref.kind !== "Deployment" || !d) problem(`HorizontalPodAutoscaler/${hpa.metadata.name}`, `scaleTargetRef ${ref.kind}/${ref.name} is not rendered`);
    else if (d.spec.replicas !== undefined) problem(`Deployment/${d.metadata.name}`, "sets replicas although an HPA scales it");
  }
  for (const o of [...byKind("PodDisruptionBudget"), ...byKind("NetworkPolicy")]) {
    const sel = o.kind === "NetworkPolicy" ? o.spec.podSelector : o.spec.selector;
    if (!podOf(sel?.matchLabels)) problem(`${o.kind}/${o.metadata.name}`, "selects no Deployment's pods");
  }
  const configMaps = byKind("ConfigMap").map((c) => c.metadata.name);
  for (const d of deployments) {
    for (const v of d.spec.template.spec.volumes ?? []) {
      if (v.configMap && !configMaps.includes(v.configMap.name)) {
        problem(`Deployment/${d.metadata.name}`, `volume ${v.name} mounts ConfigMap ${v.configMap.name}, which is not rendered`);
      }
    }
  }
  const seen = new Set();
  for (const o of objs) {
    const id = `${o.kind}/${o.metadata?.name}`;
    if (seen.has(id)) problem(id, "rendered twice");
    seen.add(id);
  }
}

async function checkManifests(file, expect) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  const objs = [];
  for (const doc of docs) {
    if (doc.errors.length) {
      for (const e of doc.errors) problem(file, `YAML: ${e.message}`);
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    objs.push(obj);
  }
  for (const obj of objs) {
    const where = `${obj.kind}/${obj.metadata?.name}`;
    const before = problems.length;
    await schemaCheck(obj, where);
    apiServerChecks(obj, where);
    if (problems.length === before) console.log(`  ok   ${obj.apiVersion} ${where}`);
  }
  crossChecks(objs);
  if (expect) {
    const got = objs.map((o) => o.kind).sort();
    const want = expect.split(",").filter(Boolean).sort();
    if (got.join(",") !== want.join(",")) {
      problem(file, `rendered kinds [${got.join(", ")}], expected [${want.join(", ")}]`);
    }
  }
  finish(`  ok   ${objs.length} object(s) in ${file}`);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "values" && args.length === 2) {
  checkValues(args[0], args[1]);
} else if (mode === "manifests" && (args.length === 1 || (args.length === 3 && args[1] === "--expect"))) {
  await checkManifests(args[0], args[2]);
} else {
  console.error("usage: validate.mjs manifests FILE [--expect Kind,...] | values SCHEMA VALUES");
  process.exit(2);
}
