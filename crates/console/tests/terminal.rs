//! Interactive sessions (`GET /api/v1/containers/{name}/terminal`), one-shot execs that
//! time out, and followed logs, against the real Docker engine.

mod common;

use common::ws::{open, open_with, read_until, type_in};
use common::{eventually, spawn_app, spawn_with, test_config, test_image, TestApp};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::http::header::{AUTHORIZATION, COOKIE, ORIGIN};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_session_types_resizes_and_exits_with_the_code() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    app.create(&token, json!({"name": "t", "image": test_image().await}))
        .await;
    let path = format!("/api/v1/containers/{alice}-t/terminal?cols=100&rows=30");
    let mut ws = open(&app, &path, &token).await;
    type_in(&mut ws, "echo $((6*7))\n").await;
    read_until(&mut ws, "42").await;
    type_in(&mut ws, "stty size\n").await;
    read_until(&mut ws, "30 100").await;
    ws.send(Message::Text(
        json!({"type": "resize", "cols": 120, "rows": 40})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    type_in(&mut ws, "stty size\n").await;
    read_until(&mut ws, "40 120").await;
    type_in(&mut ws, "exit 3\n").await;
    let rest = read_until(&mut ws, "\"type\":\"exit\"").await;
    let exit: Value = serde_json::from_str(&rest[rest.rfind('{').unwrap()..]).unwrap();
    assert_eq!(exit, json!({"type": "exit", "code": 3}));
    let end = tokio::time::timeout(Duration::from_secs(60), ws.next())
        .await
        .unwrap();
    assert!(matches!(end, Some(Ok(Message::Close(_))) | None), "{end:?}");

    // A command of its own, and the session was audited with who and which container.
    let cmd = format!("/api/v1/containers/{alice}-t/terminal?cmd=echo%20one%3B%20exit%205");
    let mut ws = open(&app, &cmd, &token).await;
    let rest = read_until(&mut ws, "\"type\":\"exit\"").await;
    assert!(rest.contains("one"), "{rest}");
    assert!(rest.contains("\"code\":5"), "{rest}");
    let (status, audit) = app.get("/api/v1/admin/audit?limit=500", &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "container.terminal_start"
                && e["actor"] == alice.as_str()
                && e["target"] == format!("{alice}-t")
                && e["detail"].as_str().unwrap().contains("cmd=echo")),
        "{audit}"
    );
    // Its end too, with how it ended.
    eventually(10, "the end of the session in the audit log", || async {
        let (_, audit) = app
            .get(
                "/api/v1/admin/audit?action=container.terminal_end",
                &app.admin,
            )
            .await;
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == format!("{alice}-t") && e["detail"] == "exited with code 5")
    })
    .await;
}

#[tokio::test]
async fn sessions_are_refused_before_the_upgrade() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let (_bob, bob_token) = app.student().await;
    app.create(&token, json!({"name": "t", "image": test_image().await}))
        .await;
    let path = format!("/api/v1/containers/{alice}-t/terminal");
    let bearer = |t: &str| vec![(AUTHORIZATION, format!("Bearer {t}"))];

    assert_eq!(
        open_with(&app, &path, &bearer(&bob_token)).await.err(),
        Some(404)
    );
    assert_eq!(open_with(&app, &path, &[]).await.err(), Some(401));
    let bad = format!("{path}?cols=0");
    assert_eq!(
        open_with(&app, &bad, &bearer(&token)).await.err(),
        Some(400)
    );
    let bad = format!("{path}?rows=5000");
    assert_eq!(
        open_with(&app, &bad, &bearer(&token)).await.err(),
        Some(400)
    );
    // Without upgrade headers: a JSON 400 that says what the route is.
    let (status, body) = app.get(&path, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "websocket_required", "{body}");

    // With the session cookie, only from the console's own pages.
    let host = app.base.trim_start_matches("http://").to_string();
    let cookie = format!("wm_session={token}");
    let foreign = vec![
        (COOKIE, cookie.clone()),
        (ORIGIN, "http://evil.example".to_string()),
    ];
    assert_eq!(open_with(&app, &path, &foreign).await.err(), Some(403));
    let own = vec![(COOKIE, cookie), (ORIGIN, format!("http://{host}"))];
    let mut ws = open_with(&app, &path, &own)
        .await
        .expect("same origin opens");
    type_in(&mut ws, "echo $((6*7))\n").await;
    read_until(&mut ws, "42").await;
    drop(ws);

    // A stopped container has no session.
    let (status, body) = app
        .post(
            &format!("/api/v1/containers/{alice}-t/stop"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        open_with(&app, &path, &bearer(&token)).await.err(),
        Some(409)
    );
}

#[tokio::test]
async fn closing_the_socket_ends_the_sessions_processes() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    app.create(&token, json!({"name": "t", "image": test_image().await}))
        .await;
    let container = format!("{alice}-t");
    let mut ws = open(
        &app,
        &format!("/api/v1/containers/{alice}-t/terminal"),
        &token,
    )
    .await;
    type_in(&mut ws, "sleep 1000\n").await;
    eventually(60, "the session's sleep runs", || async {
        app.processes(&token, &container)
            .await
            .contains("sleep 1000")
    })
    .await;
    ws.close(None).await.unwrap();
    drop(ws);
    eventually(60, "the session's sleep is gone", || async {
        !app.processes(&token, &container)
            .await
            .contains("sleep 1000")
    })
    .await;
}

#[tokio::test]
async fn an_exec_that_times_out_is_killed() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.exec_timeout_secs = 2;
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    app.create(&token, json!({"name": "t", "image": test_image().await}))
        .await;
    let container = format!("{alice}-t");
    let (status, out) = app
        .post(
            &format!("/api/v1/containers/{container}/exec"),
            &token,
            json!({"cmd": "sleep 1000"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["timed_out"], true, "{out}");
    eventually(60, "the timed-out sleep is gone", || async {
        !app.processes(&token, &container)
            .await
            .contains("sleep 1000")
    })
    .await;
}

#[tokio::test]
async fn followed_logs_stream_what_comes_later() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    app.create(&token, json!({"name": "t", "image": test_image().await}))
        .await;
    follow_sees_a_later_line(&app, &token, &format!("{alice}-t"), "late-line").await;
}

/// Follows the container's logs from now, writes `line` to its output, and reads the
/// followed stream until the line comes.
async fn follow_sees_a_later_line(app: &TestApp, token: &str, container: &str, line: &str) {
    let resp = app
        .client
        .get(app.url(&format!(
            "/api/v1/containers/{container}/logs?follow=true&tail=0"
        )))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.bytes_stream();
    let (status, out) = app
        .post(
            &format!("/api/v1/containers/{container}/exec"),
            token,
            json!({"cmd": format!("echo {line} > /proc/1/fd/1")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains(line) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{seen}");
}

#[tokio::test]
async fn sessions_and_followed_logs_cross_a_docker_agent() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    let engine = std::sync::Arc::new(wm_docker::DockerEngine::new(config.docker.clone()));
    let agent_token = "terminal-agent-token-0123456789abcdef";
    let (url, _agent) = common::agent(engine, None, agent_token);
    config.agents = vec![wm_agent::AgentEndpoint {
        id: "h1".to_string(),
        url,
    }];
    config.agent.token = Some(wm_console::config::Secret::new(agent_token));
    let app = common::spawn_with_agents(config, data).await;
    let (alice, token) = app.student().await;
    let c = app
        .create(&token, json!({"name": "t", "image": test_image().await}))
        .await;
    assert_eq!(c["host"], "h1", "{c}");
    let container = format!("{alice}-t");

    let path = format!("/api/v1/containers/{alice}-t/terminal?cols=90&rows=20");
    let mut ws = open(&app, &path, &token).await;
    type_in(&mut ws, "echo $((6*7))\n").await;
    read_until(&mut ws, "42").await;
    ws.send(Message::Text(
        json!({"type": "resize", "cols": 110, "rows": 33})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    type_in(&mut ws, "stty size\n").await;
    read_until(&mut ws, "33 110").await;
    type_in(&mut ws, "exit 3\n").await;
    let rest = read_until(&mut ws, "\"type\":\"exit\"").await;
    assert!(rest.contains("\"code\":3"), "{rest}");

    let mut ws = open(&app, &path, &token).await;
    type_in(&mut ws, "sleep 1000\n").await;
    eventually(60, "the session's sleep runs", || async {
        app.processes(&token, &container)
            .await
            .contains("sleep 1000")
    })
    .await;
    ws.close(None).await.unwrap();
    drop(ws);
    eventually(60, "the session's sleep is gone", || async {
        !app.processes(&token, &container)
            .await
            .contains("sleep 1000")
    })
    .await;

    follow_sees_a_later_line(&app, &token, &format!("{alice}-t"), "agent-line").await;
}

#[tokio::test]
async fn sessions_are_counted_and_bounded() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.terminal_max_sessions = 1;
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    app.create(&token, json!({"name": "t", "image": test_image().await}))
        .await;
    let path = format!("/api/v1/containers/{alice}-t/terminal");
    let mut ws = open(&app, &path, &token).await;
    type_in(&mut ws, "echo $((6*7))\n").await;
    read_until(&mut ws, "42").await;
    let bearer = vec![(AUTHORIZATION, format!("Bearer {token}"))];
    assert_eq!(open_with(&app, &path, &bearer).await.err(), Some(503));
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("wm_terminal_sessions 1"), "{metrics}");

    // Input beyond 64 KiB a message ends the session, and frees its place.
    let big = vec![b'x'; 100 * 1024];
    let _ = ws.send(Message::Binary(big.into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(ended, Ok(true));
    eventually(60, "the place is free again", || async {
        match open_with(&app, &path, &bearer).await {
            Ok(mut ws) => {
                let _ = ws.close(None).await;
                true
            }
            Err(_) => false,
        }
    })
    .await;
}
