//! Lending containers against the real Docker engine: the whole life of a container,
//! its hardening as the engine reports it, ports, ownership, and bad input.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;
use wm_testkit::{build_labelled_image, docker, inspect, unique};

fn host_port(c: &Value, guest: u64) -> u16 {
    c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["guest"] == guest)
        .unwrap_or_else(|| panic!("guest port {guest} in {c}"))["host"]
        .as_u64()
        .unwrap() as u16
}

#[tokio::test]
async fn a_container_from_create_to_delete() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    let c = app
        .create(
            &token,
            json!({"name": "web", "image": image, "env": "GREETING=hello WHO=world", "ports": "80 8080"}),
        )
        .await;
    let full = format!("{alice}-web");
    assert_eq!(c["name"], full.as_str());
    assert_eq!(c["owner"], alice.as_str());
    assert_eq!(c["image"], image);
    assert_eq!(c["backend"], "docker");
    assert_eq!(c["status"], "running");
    assert_eq!(c["env"], json!(["GREETING=hello", "WHO=world"]));
    assert!(c["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(c["created_at"].as_str().unwrap().contains('T'));
    let (p80, p8080) = (host_port(&c, 80), host_port(&c, 8080));
    assert_ne!(p80, p8080);
    let range = port_range(&app.config);
    assert!(
        (range.first..=range.last).contains(&p80),
        "{p80} outside {range}"
    );

    // The guest's httpd answers on its host port.
    let url = format!("http://127.0.0.1:{p80}/");
    let client = app.client.clone();
    eventually(20, "httpd answers on the host port", || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            match client.get(&url).send().await {
                Ok(r) => r
                    .text()
                    .await
                    .is_ok_and(|t| t.contains("hello from whalemountain")),
                Err(_) => false,
            }
        }
    })
    .await;

    // exec, with both forms of cmd.
    let path = format!("/api/v1/containers/{full}");
    let (status, out) = app
        .post(
            &format!("{path}/exec"),
            &token,
            json!({"cmd": "echo $GREETING $WHO; echo oops >&2; exit 3"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["stdout"], "hello world\n");
    assert_eq!(out["stderr"], "oops\n");
    assert_eq!(out["timed_out"], false);
    let (_, out) = app
        .post(
            &format!("{path}/exec"),
            &token,
            json!({"cmd": ["cat", "/www/index.html"]}),
        )
        .await;
    assert_eq!(out["stdout"], "hello from whalemountain\n");
    assert_eq!(out["exit_code"], 0);

    // GET and list.
    let (status, got) = app.get(&path, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["ports"], c["ports"]);
    let (_, list) = app.get("/api/v1/containers", &token).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], full.as_str());

    // stop and start.
    let (status, stopped) = app.post(&format!("{path}/stop"), &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "exited");
    let (status, body) = app
        .post(&format!("{path}/exec"), &token, json!({"cmd": "true"}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "exec in a stopped container: {body}"
    );
    let (status, started) = app.post(&format!("{path}/start"), &token, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(started["status"], "running");
    assert_eq!(
        started["ports"], c["ports"],
        "ports stay with the container"
    );

    // logs
    app.post(&format!("{path}/exec"), &token, json!({"cmd": "true"}))
        .await;
    let resp = app
        .client
        .get(app.url(&format!("{path}/logs?tail=5")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));

    // delete: the container, its ports and the owner's network go.
    let network = format!("{}-{alice}", app.instance);
    assert!(
        inspect("network", &network).is_some(),
        "the owner's network exists"
    );
    let (status, _) = app.delete(&path, &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(inspect("container", &app.engine_name(&alice, "web")).is_none());
    assert!(
        inspect("network", &network).is_none(),
        "the last container took its network along"
    );
    assert_eq!(app.get(&path, &token).await.0, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/api/v1/containers", &token).await;
    assert!(list.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn containers_are_hardened_as_the_engine_reports() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    app.create(
        &token,
        json!({"name": "box", "image": image, "ports": [80]}),
    )
    .await;
    let i = inspect("container", &app.engine_name(&alice, "box")).expect("the container exists");
    let h = &i["HostConfig"];
    assert_eq!(h["Privileged"], false);
    assert_eq!(h["CapDrop"], json!(["ALL"]));
    let added: HashSet<&str> = h["CapAdd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for cap in &added {
        assert!(wm_docker::CAPABILITY_CEILING.contains(cap), "{cap} added");
    }
    for dangerous in ["SYS_ADMIN", "NET_ADMIN", "NET_RAW", "SYS_PTRACE", "MKNOD"] {
        assert!(!added.contains(dangerous));
    }
    assert_eq!(h["SecurityOpt"], json!(["no-new-privileges:true"]));
    assert_eq!(h["Memory"], 64 << 20);
    assert_eq!(h["MemorySwap"], 64 << 20, "no swap beyond the limit");
    assert_eq!(h["NanoCpus"], 500_000_000);
    assert_eq!(h["PidsLimit"], 64);
    assert_eq!(h["NetworkMode"], format!("{}-{alice}", app.instance));
    assert_eq!(h["IpcMode"], "private");
    assert_eq!(h["PidMode"], "");
    assert!(
        h["Binds"].is_null() || h["Binds"] == json!([]),
        "{}",
        h["Binds"]
    );
    // The one mount is the owner's storage volume.
    let mounts = i["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Name"], format!("{}-{alice}-data", app.instance));
    assert_eq!(mounts[0]["Destination"], "/data");
    assert!(!i.to_string().contains("docker.sock"));
    let labels = &i["Config"]["Labels"];
    assert_eq!(labels["wm.managed"], "true");
    assert_eq!(labels["wm.owner"], alice.as_str());
    assert_eq!(labels["wm.name"], "box");
    assert_eq!(labels["wm.instance"], app.instance.as_str());
    let net = inspect("network", &format!("{}-{alice}", app.instance)).unwrap();
    assert_eq!(net["Labels"]["wm.owner"], alice.as_str());
    assert_eq!(net["Labels"]["wm.managed"], "true");

    // Inside: no capability to change the network or mount anything.
    let path = format!("/api/v1/containers/{alice}-box/exec");
    let (_, out) = app
        .post(&path, &token, json!({"cmd": "mount -t tmpfs none /mnt"}))
        .await;
    assert_ne!(out["exit_code"], 0, "mount must fail: {out}");
    let (_, out) = app
        .post(
            &path,
            &token,
            json!({"cmd": "grep CapEff /proc/self/status"}),
        )
        .await;
    assert!(
        !out["stdout"].as_str().unwrap().contains("0000003fffffffff"),
        "{out}"
    );
}

#[tokio::test]
async fn others_containers_are_not_found_and_admins_see_all() {
    let app = spawn_app().await;
    let (alice, alice_t) = app.student().await;
    let (_, bob_t) = app.student().await;
    let image = test_image().await;
    app.create(&alice_t, json!({"name": "private", "image": image}))
        .await;
    let path = format!("/api/v1/containers/{alice}-private");
    let missing = format!("/api/v1/containers/{alice}-nothing");

    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::DELETE, "", None),
        (Method::POST, "/start", Some(json!({}))),
        (Method::POST, "/stop", Some(json!({}))),
        (Method::POST, "/exec", Some(json!({"cmd": "id"}))),
        (Method::GET, "/logs", None),
    ] {
        let (status, theirs) = app
            .call(
                method.clone(),
                &format!("{path}{suffix}"),
                Some(&bob_t),
                body.clone(),
            )
            .await;
        let (status2, nothing) = app
            .call(
                method.clone(),
                &format!("{missing}{suffix}"),
                Some(&bob_t),
                body,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {suffix}");
        assert_eq!(status2, StatusCode::NOT_FOUND);
        assert_eq!(theirs["error"]["code"], nothing["error"]["code"]);
    }
    let form = reqwest::multipart::Form::new().text("path", "/tmp").part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x"),
    );
    let r = app
        .client
        .post(app.url(&format!("{path}/files")))
        .bearer_auth(&bob_t)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (_, bobs) = app.get("/api/v1/containers", &bob_t).await;
    assert!(bobs.as_array().unwrap().is_empty());
    let (_, bobs) = app.get("/api/v1/containers?all=true", &bob_t).await;
    assert!(
        bobs.as_array().unwrap().is_empty(),
        "all=true is for admins only"
    );
    assert!(
        inspect("container", &app.engine_name(&alice, "private")).is_some(),
        "bob's delete did nothing"
    );

    // Admins see and act on everyone's.
    let (_, all) = app.get("/api/v1/containers?all=true", &app.admin).await;
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["owner"] == alice.as_str()));
    let (status, got) = app.get(&path, &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["owner"], alice.as_str());
    assert_eq!(
        app.delete(&path, &app.admin).await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn files_are_uploaded_into_the_container() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    app.create(
        &token,
        json!({"name": "files", "image": test_image().await}),
    )
    .await;
    let base = format!("/api/v1/containers/{alice}-files");
    let upload = |form: reqwest::multipart::Form| {
        app.client
            .post(app.url(&format!("{base}/files")))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    let part = |name: &str, data: &[u8]| {
        reqwest::multipart::Part::bytes(data.to_vec()).file_name(name.to_string())
    };

    let form = reqwest::multipart::Form::new()
        .text("path", "/tmp/")
        .part("file", part("a.txt", b"first file\n"))
        .part("file", part("sub/b.txt", b"second file\n"));
    let r = upload(form).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["written"], json!(["/tmp/a.txt", "/tmp/sub/b.txt"]));
    let (_, out) = app
        .post(
            &format!("{base}/exec"),
            &token,
            json!({"cmd": "cat /tmp/a.txt /tmp/sub/b.txt"}),
        )
        .await;
    assert_eq!(out["stdout"], "first file\nsecond file\n");

    // Names that would leave the directory, and other bad forms: 400 and nothing written.
    for name in ["../escape.txt", "/etc/evil", "a/../../evil", "a\\b", ""] {
        let form = reqwest::multipart::Form::new()
            .text("path", "/tmp")
            .part("file", part(name, b"evil"));
        let r = upload(form).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name:?}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].as_str().is_some(), "{body}");
    }
    for (path, why) in [("tmp", "relative"), ("/tmp/../etc", "dotdot")] {
        let form = reqwest::multipart::Form::new()
            .text("path", path)
            .part("file", part("x.txt", b"x"));
        let r = upload(form).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{why}");
    }
    let no_path = reqwest::multipart::Form::new().part("file", part("x.txt", b"x"));
    assert_eq!(
        upload(no_path).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let no_file = reqwest::multipart::Form::new().text("path", "/tmp");
    assert_eq!(
        upload(no_file).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let missing_dir = reqwest::multipart::Form::new()
        .text("path", "/no/such/dir")
        .part("file", part("x.txt", b"x"));
    let r = upload(missing_dir).await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let not_multipart = app
        .client
        .post(app.url(&format!("{base}/files")))
        .bearer_auth(&token)
        .body("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (_, out) = app
        .post(
            &format!("{base}/exec"),
            &token,
            json!({"cmd": "ls /escape.txt /etc/evil /evil /tmp/x.txt /no 2>/dev/null | wc -l"}),
        )
        .await;
    assert_eq!(out["stdout"], "0\n", "nothing was written: {out}");
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.upload_max_bytes = 64 * 1024;
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    app.create(&token, json!({"name": "big", "image": test_image().await}))
        .await;
    let form = reqwest::multipart::Form::new().text("path", "/tmp").part(
        "file",
        reqwest::multipart::Part::bytes(vec![b'x'; 100 * 1024]).file_name("big.bin"),
    );
    let r = app
        .client
        .post(app.url(&format!("/api/v1/containers/{alice}-big/files")))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (_, out) = app
        .post(
            &format!("/api/v1/containers/{alice}-big/exec"),
            &token,
            json!({"cmd": "test -e /tmp/big.bin; echo $?"}),
        )
        .await;
    assert_eq!(out["stdout"], "1\n");
}

#[tokio::test]
async fn exec_is_bounded_in_time_and_output() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.exec_timeout_secs = 2;
    config.exec_max_output = 1000;
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    app.create(&token, json!({"name": "ex", "image": test_image().await}))
        .await;
    let path = format!("/api/v1/containers/{alice}-ex/exec");
    let (status, out) = app
        .post(&path, &token, json!({"cmd": "echo started; sleep 30"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out["timed_out"], true, "{out}");
    assert_eq!(out["exit_code"], Value::Null);
    assert_eq!(out["stdout"], "started\n");
    let (_, out) = app
        .post(&path, &token, json!({"cmd": "yes | head -c 5000"}))
        .await;
    assert_eq!(out["truncated"], true);
    assert_eq!(out["stdout"].as_str().unwrap().len(), 1000);
    for bad in [
        json!({"cmd": ""}),
        json!({"cmd": []}),
        json!({"cmd": [1, 2]}),
        json!({}),
        json!({"cmd": "x", "tty": true}),
    ] {
        let (status, body) = app.post(&path, &token, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    app.create(&token, json!({"name": "taken", "image": image}))
        .await;
    let long = "a".repeat(60);
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"name": "Bad_Name", "image": image}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({"name": "-x", "image": image}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({"name": "", "image": image}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({"name": long, "image": image}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({"name": "taken", "image": image}),
            StatusCode::CONFLICT,
            "",
        ),
        (
            json!({"name": "e1", "image": image, "env": "=value"}),
            StatusCode::BAD_REQUEST,
            "env",
        ),
        (
            json!({"name": "e2", "image": image, "env": "KEY"}),
            StatusCode::BAD_REQUEST,
            "env",
        ),
        (
            json!({"name": "e3", "image": image, "env": ["A=1", "A=2"]}),
            StatusCode::BAD_REQUEST,
            "env",
        ),
        (
            json!({"name": "e4", "image": image, "env": 42}),
            StatusCode::BAD_REQUEST,
            "env",
        ),
        (
            json!({"name": "p1", "image": image, "ports": "0"}),
            StatusCode::BAD_REQUEST,
            "ports",
        ),
        (
            json!({"name": "p2", "image": image, "ports": [65536]}),
            StatusCode::BAD_REQUEST,
            "ports",
        ),
        (
            json!({"name": "p3", "image": image, "ports": "http"}),
            StatusCode::BAD_REQUEST,
            "ports",
        ),
        (
            json!({"name": "p4", "image": image, "ports": "1 2 3 4 5 6 7 8 9"}),
            StatusCode::BAD_REQUEST,
            "ports",
        ),
        (
            json!({"name": "p5", "image": image, "ports": "80 80"}),
            StatusCode::BAD_REQUEST,
            "ports",
        ),
        (
            json!({"name": "i1", "image": "Not/A:Ref:x"}),
            StatusCode::BAD_REQUEST,
            "image",
        ),
        (
            json!({"name": "i2", "image": ""}),
            StatusCode::BAD_REQUEST,
            "image",
        ),
        (
            json!({"name": "i3", "image": "a;rm -rf /"}),
            StatusCode::BAD_REQUEST,
            "image",
        ),
        (
            json!({"name": "b1", "image": image, "backend": "vm"}),
            StatusCode::BAD_REQUEST,
            "backend",
        ),
        (
            json!({"name": "u1", "image": image, "privileged": true}),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            json!({"name": "u2", "image": image, "volumes": ["/:/host"]}),
            StatusCode::BAD_REQUEST,
            "",
        ),
    ];
    for (body, want, field) in cases {
        let (status, answer) = app.post("/api/v1/containers", &token, body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
        if !field.is_empty() {
            assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        }
    }
    // An unknown image: 404 naming the reference.
    let (status, answer) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "nope", "image": "no-such-image-here:1"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "image_not_found");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-image-here:1"));

    // Nothing but the first container exists, in the database or on the engine.
    let (_, list) = app.get("/api/v1/containers", &token).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(app.engine_containers(), [app.engine_name(&alice, "taken")]);
}

#[tokio::test]
async fn other_users_private_images_are_not_found_and_public_ones_are_usable() {
    let app = spawn_app().await;
    let (_, alice_t) = app.student().await;
    let (bob, bob_t) = app.student().await;
    let private = format!("wm-test-private-{}:1", unique(""));
    build_labelled_image(
        &private,
        &[("wm.owner", &bob), ("wm.instance", &app.instance)],
    );
    let (status, answer) = app
        .post(
            "/api/v1/containers",
            &alice_t,
            json!({"name": "steal", "image": private}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "image_not_found");
    // Its owner may use it, and anyone may use the public test image.
    app.create(&bob_t, json!({"name": "mine", "image": private}))
        .await;
    app.create(
        &alice_t,
        json!({"name": "public", "image": test_image().await}),
    )
    .await;
    docker(&["rm", "-f", &app.engine_name(&bob, "mine")]);
    docker(&["rmi", "-f", &private]);
}

#[tokio::test]
async fn concurrent_creates_never_share_a_host_port() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    let creates: Vec<_> = (0..6)
        .map(|i| {
            let (client, url, token) = (
                app.client.clone(),
                app.url("/api/v1/containers"),
                token.clone(),
            );
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"name": format!("c{i}"), "image": image, "ports": [80, 81]}))
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ports = HashSet::new();
    for t in creates {
        let (status, c) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{c}");
        for p in c["ports"].as_array().unwrap() {
            assert!(
                ports.insert(p["host"].as_u64().unwrap()),
                "host port given twice: {p}"
            );
        }
    }
    assert_eq!(ports.len(), 12);
    // And the engine agrees.
    let mut engine_ports = HashSet::new();
    for i in 0..6 {
        let c = inspect("container", &app.engine_name(&alice, &format!("c{i}"))).unwrap();
        for (_, b) in c["HostConfig"]["PortBindings"].as_object().unwrap() {
            engine_ports.insert(b[0]["HostPort"].as_str().unwrap().parse::<u64>().unwrap());
        }
    }
    assert_eq!(engine_ports, ports);
}

#[tokio::test]
async fn a_port_held_by_another_program_is_skipped() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    // Three ports; something else listens on the first.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let first = held.local_addr().unwrap().port();
    config.docker.port_range = Some(wm_docker::PortRange {
        first,
        last: first + 2,
    });
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let c = app
        .create(
            &token,
            json!({"name": "skip", "image": test_image().await, "ports": "80"}),
        )
        .await;
    assert_ne!(host_port(&c, 80), first);
    drop(held);
}

#[tokio::test]
async fn ports_are_released_on_delete() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let first = probe.local_addr().unwrap().port();
    drop(probe);
    // Room for exactly one port.
    config.docker.port_range = Some(wm_docker::PortRange { first, last: first });
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    app.create(
        &token,
        json!({"name": "one", "image": image, "ports": [80]}),
    )
    .await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "two", "image": image, "ports": [80]}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no port left: {body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no free host port"));
    assert_eq!(
        app.engine_containers(),
        [app.engine_name(&alice, "one")],
        "the failed create left nothing"
    );
    app.delete(&format!("/api/v1/containers/{alice}-one"), &token)
        .await;
    let c = app
        .create(
            &token,
            json!({"name": "two", "image": image, "ports": [80]}),
        )
        .await;
    assert_eq!(host_port(&c, 80), first);
}

#[tokio::test]
async fn reconcile_marks_gone_and_adopts() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    app.create(
        &token,
        json!({"name": "victim", "image": image, "ports": [80]}),
    )
    .await;
    // Removed behind our back.
    assert!(docker(&["rm", "-f", &app.engine_name(&alice, "victim")])
        .status
        .success());
    let (status, report) = app
        .post("/api/v1/admin/reconcile", &app.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["gone"], json!([format!("{alice}-victim")]));
    let (_, c) = app
        .get(&format!("/api/v1/containers/{alice}-victim"), &token)
        .await;
    assert_eq!(c["status"], "gone");
    assert_eq!(c["ports"], json!([]), "a gone container holds no ports");

    // Ours on the engine but not in the database: adopted once, never duplicated.
    let orphan = format!("{alice}-orphan");
    let labels = |owner: &str, name: &str| {
        [
            "--label".to_string(),
            "wm.managed=true".to_string(),
            "--label".to_string(),
            format!("wm.owner={owner}"),
            "--label".to_string(),
            format!("wm.name={name}"),
            "--label".to_string(),
            format!("wm.instance={}", app.instance),
            "--label".to_string(),
            "whalemountain.test=1".to_string(),
        ]
    };
    let mut args: Vec<String> = vec!["create".into(), "--name".into(), orphan.clone()];
    args.extend(labels(&alice, "orphan"));
    args.push(image.into());
    assert!(docker(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .status
        .success());
    // One whose owner has no account here: reported, not adopted.
    let stranger = format!("nobody{}-x", unique(""));
    let mut args: Vec<String> = vec!["create".into(), "--name".into(), stranger.clone()];
    args.extend(labels(stranger.trim_end_matches("-x"), "x"));
    args.push(image.into());
    assert!(docker(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .status
        .success());

    let (_, report) = app
        .post("/api/v1/admin/reconcile", &app.admin, json!({}))
        .await;
    assert_eq!(report["adopted"], json!([orphan]), "{report}");
    assert!(
        report["unknown"].to_string().contains(&stranger),
        "{report}"
    );
    let (_, again) = app
        .post("/api/v1/admin/reconcile", &app.admin, json!({}))
        .await;
    assert_eq!(again["adopted"], json!([]), "adopted once only");
    let (_, list) = app.get("/api/v1/containers", &token).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == orphan).count(),
        1,
        "{names:?}"
    );
    let (_, adopted) = app
        .get(&format!("/api/v1/containers/{orphan}"), &token)
        .await;
    assert_eq!(adopted["status"], "created");
}

#[tokio::test]
async fn mutating_calls_are_audited() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    app.create(&token, json!({"name": "aud", "image": test_image().await}))
        .await;
    app.post(
        "/api/v1/containers",
        &token,
        json!({"name": "Bad", "image": "x"}),
    )
    .await;
    app.delete(&format!("/api/v1/containers/{alice}-aud"), &token)
        .await;
    let (status, log) = app.get("/api/v1/admin/audit?limit=50", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    let entries = log.as_array().unwrap();
    let find = |action: &str, result: i64| {
        entries
            .iter()
            .any(|e| e["actor"] == alice.as_str() && e["action"] == action && e["result"] == result)
    };
    assert!(find("container.create", 201), "{log}");
    assert!(find("container.create", 400), "{log}");
    assert!(find("container.delete", 204), "{log}");
    assert!(entries.iter().any(|e| e["action"] == "container.delete"
        && e["target"] == format!("{alice}-aud")
        && e["source"] == "127.0.0.1"));
    assert!(entries
        .iter()
        .any(|e| e["action"] == "session.login" && e["actor"] == alice.as_str()));
    assert!(
        !entries
            .iter()
            .any(|e| e["detail"].as_str().unwrap_or_default().starts_with("GET")),
        "reads are not audited"
    );
    assert_eq!(
        app.get("/api/v1/admin/audit", &token).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn without_docker_the_console_starts_and_answers_503() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.docker.host = "unix:///nonexistent/docker.sock".into();
    let app = spawn_with(config, data).await;
    let (status, health) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["docker"]["reachable"], false);
    assert!(health["docker"]["error"].as_str().is_some());
    let (_, token) = app.student().await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "x", "image": "busybox"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no container host answers")
            && message.contains("container engine is unavailable"),
        "{message}"
    );
    // Nothing was recorded by the failed create; the list is readable.
    let (status, list) = app.get("/api/v1/containers", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));
    let (_, metrics) = app.call(Method::GET, "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap();
    let down = format!("wm_docker_up{{host=\"{}\"}} 0", app.config.docker.host_name);
    assert!(metrics.contains(&down), "{metrics}");
}

#[tokio::test]
async fn only_configured_mounts_reach_a_container() {
    let data = tempfile::tempdir().unwrap();
    let homes = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.docker.mounts = vec![wm_docker::MountRule {
        source: format!("{}/{{owner}}", homes.path().display()),
        target: "/shared".into(),
        read_only: true,
    }];
    config.docker.storage.kind = wm_docker::storage::StorageKind::Off;
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    std::fs::create_dir(homes.path().join(&alice)).unwrap();
    std::fs::write(homes.path().join(&alice).join("hello"), "alice's file\n").unwrap();
    app.create(&token, json!({"name": "m", "image": test_image().await}))
        .await;
    let i = inspect("container", &app.engine_name(&alice, "m")).unwrap();
    let mounts = i["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(
        mounts[0]["Source"],
        format!("{}/{alice}", homes.path().display())
    );
    assert_eq!(mounts[0]["Destination"], "/shared");
    assert_eq!(mounts[0]["RW"], false);
    let path = format!("/api/v1/containers/{alice}-m/exec");
    let (_, out) = app
        .post(&path, &token, json!({"cmd": "cat /shared/hello"}))
        .await;
    assert_eq!(out["stdout"], "alice's file\n");
    let (_, out) = app
        .post(&path, &token, json!({"cmd": "echo x > /shared/new"}))
        .await;
    assert_ne!(out["exit_code"], 0, "read-only: {out}");

    let (_, metrics) = app.call(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("wm_containers{status=\"running\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn user_networks_take_their_subnets_from_the_pool() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    // Room for exactly two /28 networks, in a /27 of its own for this test.
    let third = uuid::Uuid::new_v4().as_bytes()[0];
    let pool = format!("10.213.{third}.32/27");
    config.docker.network_pool = Some(pool.clone());
    config.docker.network_prefix = 28;
    let app = spawn_with(config, data).await;
    let image = test_image().await;
    let mut subnets = Vec::new();
    for _ in 0..2 {
        let (user, token) = app.student().await;
        app.create(&token, json!({"name": "n", "image": image}))
            .await;
        let net = inspect("network", &format!("{}-{user}", app.instance)).unwrap();
        subnets.push(
            net["IPAM"]["Config"][0]["Subnet"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    subnets.sort();
    assert_eq!(
        subnets,
        [
            format!("10.213.{third}.32/28"),
            format!("10.213.{third}.48/28")
        ]
    );
    // The pool is full: a third user is told so, and nothing is left behind.
    let (user, token) = app.student().await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "n", "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&pool),
        "{body}"
    );
    assert!(inspect("network", &format!("{}-{user}", app.instance)).is_none());
    assert!(!app.engine_containers().iter().any(|c| c.starts_with(&user)));
}

#[tokio::test]
async fn a_mount_whose_directory_is_missing_says_so_and_leaves_the_name_free() {
    // A configured per-user mount whose directory does not exist yet.
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    let root = tempfile::tempdir().unwrap();
    config.docker.mounts = vec![wm_docker::MountRule {
        source: format!("{}/{{owner}}", root.path().display()),
        target: "/home/data".into(),
        read_only: false,
    }];
    let app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let image = test_image().await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "web", "image": image}),
        )
        .await;
    // What failed, in our words: not a name clash, and nothing of the host's paths.
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(m.contains("storage") && !m.contains("already have"), "{m}");
    assert!(!m.contains(&root.path().display().to_string()), "{m}");
    let (_, list) = app.get("/api/v1/containers", &token).await;
    assert_eq!(list, json!([]), "nothing recorded");
    // Once the directory exists, the same name is free.
    std::fs::create_dir(root.path().join(&alice)).unwrap();
    let c = app
        .create(&token, json!({"name": "web", "image": image}))
        .await;
    assert_eq!(c["status"], "running");
    app.delete(&format!("/api/v1/containers/{alice}-web"), &token)
        .await;
}
