//! The Kubernetes manifests in `deploy/` against the real Kubernetes JSON schemas.
//!
//! Every YAML document of every `deploy/*.yaml` manifest is validated against the strict
//! schemas vendored in `deploy/schemas/` (Kubernetes 1.30 and 1.37, `additionalProperties:
//! false` on every object, so a misspelt or misplaced field fails; the ServiceMonitor against a
//! strict schema generated from prometheus-operator's CRD types). Then the cross-references no
//! schema can see: ports, labels, selectors and the volume mounts. The negative tests break a
//! copy of a real manifest in one place and require the validation to fail at that place.
//! No network, no root, no cluster: a few hundred milliseconds.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use jsonschema::Validator;
use serde::Deserialize;
use serde_json::{json, Value};

/// The Kubernetes versions whose schemas are vendored: the oldest the manifests claim (1.30
/// added `securityContext.appArmorProfile`) and the newest the schema package has.
const KUBERNETES_VERSIONS: [&str; 2] = ["v1.30.0", "v1.37.0"];

/// The manifests and the kinds each holds, in order; `prometheus-scrape-config.yaml` is a
/// Prometheus configuration fragment and `kustomization.yaml` kustomize's, not Kubernetes
/// objects: both are checked apart. `alerts/` holds the rules (xtask/tests/alerts.rs); its
/// PrometheusRule is validated here too.
const MANIFESTS: [(&str, &[&str]); 4] = [
    (
        "daemonset.yaml",
        &["Namespace", "ServiceAccount", "PriorityClass", "DaemonSet"],
    ),
    ("debug-pod.yaml", &["Pod"]),
    ("servicemonitor.yaml", &["Service", "ServiceMonitor"]),
    ("alerts/prometheusrule.yaml", &["PrometheusRule"]),
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy")
}

fn read_json(path: &Path) -> Value {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every document of a multi-document YAML file, as JSON values.
fn documents(text: &str) -> Result<Vec<Value>, String> {
    yaml_serde::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).map_err(|e| e.to_string()))
        .collect()
}

fn load_manifest(name: &str) -> Vec<Value> {
    let path = deploy_dir().join(name);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    documents(&text).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"))
}

/// The strict schemas, one validator per (apiVersion/kind), for one Kubernetes version plus
/// the ServiceMonitor.
struct Schemas {
    version: String,
    validators: BTreeMap<String, Validator>,
}

impl Schemas {
    fn load(version: &str) -> Schemas {
        let dir = deploy_dir().join("schemas");
        let kubernetes = read_json(&dir.join(format!("kubernetes-{version}-strict.json")));
        let defs = &kubernetes["$defs"];
        let mut validators = BTreeMap::new();
        for key in [
            "v1/Namespace",
            "v1/ServiceAccount",
            "v1/Service",
            "v1/Pod",
            "apps/v1/DaemonSet",
            "scheduling.k8s.io/v1/PriorityClass",
        ] {
            assert!(defs.get(key).is_some(), "{version}: no schema for {key}");
            // The kind's schema refers to its siblings as #/$defs/NAME: keep them beside it.
            let schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$ref": format!("#/$defs/{}", key.replace('/', "~1")),
                "$defs": defs,
            });
            validators.insert(key.to_owned(), compile(&schema, key));
        }
        let monitor = read_json(&dir.join("servicemonitor-monitoring.coreos.com-v1-strict.json"));
        validators.insert(
            "monitoring.coreos.com/v1/ServiceMonitor".to_owned(),
            compile(&monitor, "ServiceMonitor"),
        );
        let rule = read_json(&dir.join("prometheusrule-monitoring.coreos.com-v1-strict.json"));
        validators.insert(
            "monitoring.coreos.com/v1/PrometheusRule".to_owned(),
            compile(&rule, "PrometheusRule"),
        );
        Schemas {
            version: version.to_owned(),
            validators,
        }
    }

    /// The schema errors of one document (`path: message` each), or why it has no schema.
    fn errors(&self, doc: &Value) -> Vec<String> {
        let (Some(api_version), Some(kind)) = (doc["apiVersion"].as_str(), doc["kind"].as_str())
        else {
            return vec!["document without apiVersion and kind".to_owned()];
        };
        let key = format!("{api_version}/{kind}");
        let Some(validator) = self.validators.get(&key) else {
            return vec![format!("no schema vendored for {key}")];
        };
        validator
            .iter_errors(doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }
}

fn compile(schema: &Value, what: &str) -> Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .unwrap_or_else(|e| panic!("the {what} schema does not compile: {e}"))
}

fn all_schemas() -> Vec<Schemas> {
    KUBERNETES_VERSIONS
        .iter()
        .map(|v| Schemas::load(v))
        .collect()
}

#[test]
fn every_manifest_document_validates_against_the_strict_schemas() {
    let schemas = all_schemas();
    let mut validated = 0;
    for (name, kinds) in MANIFESTS {
        let docs = load_manifest(name);
        let found: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(found, kinds, "{name}: documents");
        for schemas in &schemas {
            for doc in &docs {
                let errors = schemas.errors(doc);
                assert!(
                    errors.is_empty(),
                    "{name}: {} {} fails the Kubernetes {} schema:\n{}",
                    doc["kind"],
                    doc["metadata"]["name"],
                    schemas.version,
                    errors.join("\n")
                );
                validated += 1;
            }
        }
    }
    // 8 documents, each against 2 Kubernetes versions.
    assert_eq!(validated, 16);
}

/// Every manifest in deploy/ is covered: a new one must be added to [`MANIFESTS`].
#[test]
fn no_manifest_is_left_unvalidated() {
    let mut names: Vec<String> = fs::read_dir(deploy_dir())
        .expect("deploy/ is listable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    names.sort();
    let mut expected: Vec<&str> = MANIFESTS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !n.contains('/'))
        .collect();
    expected.push("kustomization.yaml");
    expected.push("prometheus-scrape-config.yaml");
    expected.sort();
    assert_eq!(names, expected);
}

fn daemonset() -> Value {
    load_manifest("daemonset.yaml")
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("daemonset.yaml has a DaemonSet")
}

/// Breaks a copy of the real DaemonSet with `edit` and returns its errors under 1.37.
fn errors_after(schemas: &Schemas, edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut doc = daemonset();
    assert!(
        schemas.errors(&doc).is_empty(),
        "the unbroken DaemonSet must pass"
    );
    edit(&mut doc);
    schemas.errors(&doc)
}

#[test]
fn a_misspelt_field_fails_validation_where_it_is() {
    let schemas = Schemas::load("v1.37.0");
    let container = "/spec/template/spec/containers/0";

    // readOnlyRootFilesystem misspelt: a field Kubernetes would otherwise drop without a word.
    let errors = errors_after(&schemas, |d| {
        let sc = d["spec"]["template"]["spec"]["containers"][0]["securityContext"]
            .as_object_mut()
            .expect("securityContext is an object");
        let value = sc
            .remove("readOnlyRootFilesystem")
            .expect("the field is set");
        sc.insert("readOnlyRootFilesytem".to_owned(), value);
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("{container}/securityContext: ")),
        "{errors:?}"
    );
    assert!(errors[0].contains("readOnlyRootFilesytem"), "{errors:?}");

    // The capitalisation matters too: `hostPid` is not `hostPID`.
    let errors = errors_after(&schemas, |d| {
        let spec = d["spec"]["template"]["spec"]
            .as_object_mut()
            .expect("pod spec is an object");
        let value = spec.remove("hostPID").expect("hostPID is set");
        spec.insert("hostPid".to_owned(), value);
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("/spec/template/spec: "), "{errors:?}");
    assert!(errors[0].contains("hostPid"), "{errors:?}");

    // A field at the wrong level: `readOnly` belongs to the volumeMount, not to hostPath.
    let errors = errors_after(&schemas, |d| {
        d["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["readOnly"] = json!(true);
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("/spec/template/spec/volumes/0/hostPath: "),
        "{errors:?}"
    );
}

#[test]
fn a_wrong_type_or_a_missing_required_field_fails_validation() {
    let schemas = Schemas::load("v1.30.0");
    let errors = errors_after(&schemas, |d| {
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!("9595");
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("/spec/template/spec/containers/0/ports/0/containerPort: "),
        "{errors:?}"
    );
    let errors = errors_after(&schemas, |d| {
        let container = d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .expect("container is an object");
        container.remove("name");
    });
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/spec/template/spec/containers/0: ")
                && e.contains("\"name\" is a required property")),
        "{errors:?}"
    );
    let mut wrong_kind = daemonset();
    wrong_kind["apiVersion"] = json!("extensions/v1beta1");
    assert_eq!(
        schemas.errors(&wrong_kind),
        ["no schema vendored for extensions/v1beta1/DaemonSet"]
    );
}

#[test]
fn a_misspelt_service_monitor_field_fails_validation() {
    let schemas = Schemas::load("v1.37.0");
    let mut monitor = load_manifest("servicemonitor.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ServiceMonitor")
        .expect("servicemonitor.yaml has a ServiceMonitor");
    assert!(schemas.errors(&monitor).is_empty());
    let endpoint = monitor["spec"]["endpoints"][0]
        .as_object_mut()
        .expect("endpoint is an object");
    let value = endpoint.remove("honorLabels").expect("honorLabels is set");
    endpoint.insert("honourLabels".to_owned(), value);
    let errors = schemas.errors(&monitor);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("/spec/endpoints/0: "), "{errors:?}");
    assert!(errors[0].contains("honourLabels"), "{errors:?}");
}

// What the schemas cannot see.

const PORT: u64 = 9595;

fn container(pod_spec: &Value) -> &Value {
    let containers = pod_spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

#[test]
fn the_daemonset_runs_serve_reachable_on_its_declared_port() {
    let ds = daemonset();
    let pod = &ds["spec"]["template"];
    let c = container(&pod["spec"]);
    assert_eq!(
        c["args"],
        json!([
            "serve",
            "--listen",
            format!("0.0.0.0:{PORT}"),
            "--tls-cert",
            "/etc/tracer/tls/tls.crt",
            "--tls-key",
            "/etc/tracer/tls/tls.key",
            "--auth-token-file",
            "/etc/tracer/auth/tokens",
            "--log-format",
            "json"
        ])
    );
    assert_eq!(
        c["ports"],
        json!([{"name": "metrics", "containerPort": PORT, "protocol": "TCP"}])
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "metrics", "scheme": "HTTPS"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics", "scheme": "HTTPS"})
    );
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], PORT.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(annotations["prometheus.io/scheme"], "https");
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );

    // The Service selects these pods and names the same port; the ServiceMonitor that port.
    let docs = load_manifest("servicemonitor.yaml");
    let service = &docs[0];
    let monitor = &docs[1];
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(service["spec"]["ports"][0]["port"], PORT);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([service["metadata"]["namespace"]])
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(
        service["metadata"]["namespace"],
        ds["metadata"]["namespace"]
    );
    // Scrapes over TLS with the token from the Secrets the DaemonSet mounts.
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(
        endpoint["authorization"],
        json!({"type": "Bearer", "credentials": {"name": "tracer-auth", "key": "token"}})
    );
    assert_eq!(
        endpoint["tlsConfig"],
        json!({"serverName": "tracer.tracer.svc", "ca": {"secret": {"name": "tracer-tls", "key": "ca.crt"}}})
    );
    let secrets: Vec<&Value> = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| {
            v["secret"]["secretName"]
                .as_str()
                .map(|_| &v["secret"]["secretName"])
        })
        .collect();
    assert_eq!(secrets, [&json!("tracer-tls"), &json!("tracer-auth")]);

    // The plain Prometheus job keeps the pods by the annotation and port name used here.
    let scrape = load_manifest("prometheus-scrape-config.yaml");
    assert_eq!(scrape.len(), 1);
    let job = &scrape[0]["scrape_configs"][0];
    assert_eq!(job["scheme"], "https");
    assert_eq!(
        job["bearer_token_file"],
        "/etc/prometheus/secrets/tracer-auth/token"
    );
    assert_eq!(
        job["tls_config"],
        json!({"ca_file": "/etc/prometheus/secrets/tracer-tls/ca.crt", "server_name": "tracer.tracer.svc"})
    );
    assert_eq!(job["kubernetes_sd_configs"][0]["role"], "pod");
    assert_eq!(
        job["kubernetes_sd_configs"][0]["namespaces"]["names"],
        json!([ds["metadata"]["namespace"]])
    );
    let keeps: Vec<(&Value, &Value)> = job["relabel_configs"]
        .as_array()
        .expect("relabel_configs")
        .iter()
        .filter(|r| r["action"] == "keep")
        .map(|r| (&r["source_labels"][0], &r["regex"]))
        .collect();
    assert_eq!(
        keeps,
        [
            (
                &json!("__meta_kubernetes_pod_annotation_prometheus_io_scrape"),
                &json!(annotations["prometheus.io/scrape"])
            ),
            (
                &json!("__meta_kubernetes_pod_container_port_name"),
                &c["ports"][0]["name"]
            ),
        ]
    );
}

#[test]
fn the_daemonset_has_the_minimum_privileges_and_read_only_host_mounts() {
    let ds = daemonset();
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(spec["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    // The PriorityClass it names ships beside it, below system-node-critical, never the default.
    let class = load_manifest("daemonset.yaml")
        .into_iter()
        .find(|d| d["kind"] == "PriorityClass")
        .expect("daemonset.yaml has a PriorityClass");
    assert_eq!(spec["priorityClassName"], class["metadata"]["name"]);
    assert_eq!(class["globalDefault"], false);
    let value = class["value"].as_u64().expect("value");
    assert!(value > 0 && value < 2_000_001_000, "{value}");
    // The node's name from the downward API: the metrics' `node` label (serve's default).
    let env = &container(spec)["env"];
    assert_eq!(
        env,
        &json!([{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}])
    );
    let c = container(spec);
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["runAsUser"], 0);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    let added = sc["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add");
    let mut added: Vec<&str> = added.iter().filter_map(Value::as_str).collect();
    added.sort_unstable();
    assert_eq!(
        added,
        [
            "BPF",
            "NET_ADMIN",
            "NET_RAW",
            "PERFMON",
            "SYSLOG",
            "SYS_ADMIN",
            "SYS_PTRACE",
            "SYS_RESOURCE"
        ]
    );
    // The API server refuses allowPrivilegeEscalation: false together with SYS_ADMIN.
    assert!(sc.get("allowPrivilegeEscalation").is_none());

    // Requests and limits are set, limits above requests.
    let resources = &c["resources"];
    assert_eq!(
        resources["requests"],
        json!({"cpu": "100m", "memory": "128Mi"})
    );
    assert_eq!(
        resources["limits"],
        json!({"cpu": "500m", "memory": "256Mi"})
    );

    // Every hostPath is mounted, read-only, at the path the tracer reads on the node; the two
    // Secrets (TLS, tokens) read-only where the args point.
    let mounts: BTreeMap<&str, &Value> = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| (m["name"].as_str().expect("mount name"), m))
        .collect();
    let volumes = spec["volumes"].as_array().expect("volumes");
    assert_eq!(mounts.len(), volumes.len());
    for volume in volumes {
        let name = volume["name"].as_str().expect("volume name");
        let mount = mounts
            .get(name)
            .unwrap_or_else(|| panic!("volume {name} is not mounted"));
        assert_eq!(mount["readOnly"], true, "{name}");
        if let Some(secret) = volume["secret"]["secretName"].as_str() {
            assert_eq!(volume["secret"]["defaultMode"], 0o400, "{name}");
            let expected = match secret {
                "tracer-tls" => "/etc/tracer/tls",
                "tracer-auth" => "/etc/tracer/auth",
                other => panic!("unexpected Secret {other}"),
            };
            assert_eq!(mount["mountPath"], expected, "{name}");
            continue;
        }
        let host_path = volume["hostPath"]["path"]
            .as_str()
            .expect("only hostPath and Secret volumes");
        assert_eq!(mount["mountPath"], host_path, "{name}");
    }
    let mut paths: Vec<&str> = mounts
        .values()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/etc/tracer/auth",
            "/etc/tracer/tls",
            "/lib/modules",
            "/sys/fs/bpf",
            "/sys/kernel/debug",
            "/sys/kernel/tracing",
            "/var/lib/kubelet/pods",
            "/var/log/pods",
        ]
    );
}

#[test]
fn the_debug_pod_is_privileged_and_bounded_in_time() {
    let pod = load_manifest("debug-pod.yaml").remove(0);
    let spec = &pod["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["activeDeadlineSeconds"], 3600);
    let c = container(spec);
    assert_eq!(c["securityContext"]["privileged"], true);
    assert_eq!(c["command"], json!(["sleep", "3600"]));
    assert_eq!(
        spec["nodeName"], "NODE_NAME",
        "the placeholder the README's sed replaces"
    );
    // The DaemonSet's Secrets, when they exist, for `tracer cluster` against guarded sidecars.
    let optional: Vec<(&Value, &Value)> = spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter(|v| v.get("secret").is_some())
        .map(|v| (&v["secret"]["secretName"], &v["secret"]["optional"]))
        .collect();
    assert_eq!(
        optional,
        [
            (&json!("tracer-tls"), &json!(true)),
            (&json!("tracer-auth"), &json!(true))
        ]
    );
}

/// The image is set in one place: kustomization.yaml's `images:` names the DaemonSet's image;
/// with kubectl at hand, the rendered DaemonSet carries the image set there.
#[test]
fn the_kustomization_sets_the_image_in_one_place() {
    let k = load_manifest("kustomization.yaml").remove(0);
    assert_eq!(k["kind"], "Kustomization");
    let resources: Vec<&str> = k["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for r in &resources {
        assert!(deploy_dir().join(r).is_file(), "{r} is not in deploy/");
    }
    assert_eq!(resources, ["daemonset.yaml"]);
    let image = container(&daemonset()["spec"]["template"]["spec"])["image"]
        .as_str()
        .expect("image")
        .to_owned();
    let name = image.split(':').next().expect("name");
    assert_eq!(
        k["images"][0]["name"], name,
        "kustomize matches the image by name"
    );
    let want = format!(
        "{}:{}",
        k["images"][0]["newName"].as_str().expect("newName"),
        k["images"][0]["newTag"].as_str().expect("newTag")
    );
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(deploy_dir())
        .output()
    else {
        eprintln!("the rendering part skipped: kubectl is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = documents(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
    let ds = rendered
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    assert_eq!(
        container(&ds["spec"]["template"]["spec"])["image"],
        want.as_str()
    );
}
