//! A console in front of simulated docker hosts (`wm_agent::simulated`: the real agent
//! routes over loopback in front of in-memory hosts), as the scale benchmark runs it:
//! containers are created, listed, read and deleted through the API, land on the hosts
//! and leave them, and another student sees none of them.

mod common;

use common::{spawn_with_agents, test_config};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use wm_agent::simulated::SimulatedAgent;
use wm_backend::memory::MemoryBackend;
use wm_backend::ContainerBackend;

const TOKEN: &str = "simulated-agent-token-0123456789";
const HOSTS: usize = 3;

#[tokio::test]
async fn a_console_lends_from_simulated_hosts() {
    let mut agents = Vec::new();
    for i in 0..HOSTS {
        let host = MemoryBackend::new(format!("sim{i}"))
            .with_tag(wm_testkit::TEST_IMAGE)
            .with_port_range(41000 + i as u16 * 100, 41099 + i as u16 * 100);
        agents.push(SimulatedAgent::start(host, TOKEN).await.unwrap());
    }
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    let list: Vec<String> = agents.iter().map(SimulatedAgent::endpoint).collect();
    config.agents = wm_agent::AgentEndpoint::parse_list(&list.join(" ")).unwrap();
    config.agent.token = Some(wm_console::config::Secret::new(TOKEN));
    let app = spawn_with_agents(config, data).await;
    let (alice, token) = app.student().await;
    let (_bob, other) = app.student().await;

    // Created: each on one of the hosts, which holds it running with its port.
    let mut hosts = BTreeSet::new();
    for n in 0..6 {
        let c = app
            .create(
                &token,
                json!({"name": format!("c{n}"), "image": wm_testkit::TEST_IMAGE, "ports": [80]}),
            )
            .await;
        assert_eq!(c["status"], "running", "{c}");
        let host = c["host"].as_str().unwrap().to_string();
        let agent = agents.iter().find(|a| a.id == host).expect("a known host");
        let held = agent.host.list().await.unwrap();
        let on_host = held
            .iter()
            .find(|s| s.owner == alice && s.short_name == format!("c{n}"))
            .expect("the host holds it");
        assert_eq!(
            u64::from(on_host.ports[0].host),
            c["ports"][0]["host"].as_u64().unwrap()
        );
        hosts.insert(host);
    }
    assert!(hosts.len() > 1, "spread over the hosts: {hosts:?}");

    // Listed and read by their owner, and by no one else.
    let (status, listed) = app.get("/api/v1/containers", &token).await;
    assert_eq!(status, StatusCode::OK);
    let names: BTreeSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..6).map(|n| format!("{alice}-c{n}")).collect();
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    let (status, one) = app
        .get(&format!("/api/v1/containers/{alice}-c3"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["owner"], alice.as_str());
    assert_eq!(one["status"], "running");
    let (status, listed) = app.get("/api/v1/containers", &other).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([])));
    let (status, _) = app
        .get(&format!("/api/v1/containers/{alice}-c3"), &other)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .delete(&format!("/api/v1/containers/{alice}-c3"), &other)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleted: gone from the API and from every host.
    for n in 0..6 {
        let (status, body) = app
            .delete(&format!("/api/v1/containers/{alice}-c{n}"), &token)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (_, listed): (_, Value) = app.get("/api/v1/containers", &token).await;
    assert_eq!(listed, json!([]));
    for a in &agents {
        assert!(a.host.list().await.unwrap().is_empty(), "{} is empty", a.id);
    }
}
