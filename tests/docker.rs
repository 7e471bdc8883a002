//! The deployment files: no Docker engine runs here, so the compose file is
//! parsed as YAML and checked, and each sluice service's source and sink are
//! checked with sluice's own parsers.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec().map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn after(args: &[String], flag: &str) -> String {
    let i = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} missing in {args:?}"));
    args[i + 1].clone()
}

#[test]
fn compose_runs_kafka_a_topic_job_a_producer_and_sluice_in_both_modes() {
    let docs = YamlLoader::load_from_str(&repo("docker/compose.yaml")).expect("compose.yaml is YAML");
    let services = &docs[0]["services"];
    assert!(services.as_hash().is_some(), "services missing");

    let kafka = &services["kafka"];
    assert!(kafka["image"].as_str().unwrap().starts_with("apache/kafka:"));
    let roles = kafka["environment"]["KAFKA_PROCESS_ROLES"].as_str().unwrap();
    assert!(roles.contains("broker") && roles.contains("controller"), "KRaft mode: {roles}");

    let topics = &services["create-topics"];
    assert_eq!(topics["depends_on"]["kafka"]["condition"].as_str(), Some("service_healthy"));
    let script = strings(&topics["command"]).join(" ");
    for t in ["lines", "counts-per-event", "counts-micro-batch"] {
        assert!(script.contains(t), "topic {t} is created: {script}");
    }
    assert!(services["produce"]["image"].as_str().unwrap().starts_with("apache/kafka:"));

    let mut modes = Vec::new();
    for name in ["per-event", "micro-batch"] {
        let s = &services[name];
        assert_eq!(s["image"].as_str(), Some("sluice:latest"), "{name}");
        let args = strings(&s["command"]);
        assert_eq!(args[0], "run");
        let source: sluice::source::SourceSpec = after(&args, "--source").parse().expect("a valid source");
        let sluice::source::SourceSpec::Kafka(k) = source else { panic!("{name} reads Kafka") };
        assert_eq!((k.brokers.as_str(), k.topics.as_slice()), ("kafka:9092", ["lines".to_string()].as_slice()));
        assert!(k.group.is_some(), "{name} uses a consumer group");
        let sink: sluice::config::SinkSpec = after(&args, "--sink").parse().expect("a valid sink");
        assert!(matches!(sink, sluice::config::SinkSpec::Kafka { .. }), "{name} writes to Kafka");
        assert!(after(&args, "--report").starts_with("/work/out/"));
        modes.push((after(&args, "--mode"), k.group));
    }
    assert_eq!(modes[0].0, "per-event");
    assert_eq!(modes[1].0, "micro-batch");
    assert_ne!(modes[0].1, modes[1].1, "each mode in its own group, so each reads every message");
    assert_eq!(services["per-event"]["build"]["dockerfile"].as_str(), Some("docker/Dockerfile"));
}

#[test]
fn the_image_is_multi_stage_and_runs_sluice_as_a_user_without_privileges() {
    let text = repo("docker/Dockerfile");
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "builder, then runtime: {stages:?}");
    assert!(stages[0].contains(" AS build"));
    assert!(text.contains("COPY --from=build"));
    let user = text.lines().rfind(|l| l.starts_with("USER ")).expect("a USER line");
    assert_ne!(user.trim(), "USER root");
    assert!(text.contains("ENTRYPOINT [\"sluice\"]"));
}
