//! WebSocket sessions of the terminal protocol: containers' terminals and VMs' serial
//! consoles.

use super::TestApp;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a session with these headers; the handshake's HTTP status when it is refused.
pub async fn open_with(
    app: &TestApp,
    path: &str,
    headers: &[(reqwest::header::HeaderName, String)],
) -> Result<Socket, u16> {
    let url = app.url(path).replacen("http://", "ws://", 1);
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(k.clone(), v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

pub async fn open(app: &TestApp, path: &str, token: &str) -> Socket {
    open_with(app, path, &[(AUTHORIZATION, format!("Bearer {token}"))])
        .await
        .expect("the session opens")
}

/// Reads output until it contains `needle`; panics after a generous bound.
pub async fn read_until(ws: &mut Socket, needle: &str) -> String {
    read_until_within(ws, needle, 60).await
}

/// As [`read_until`], waiting up to `secs` seconds.
pub async fn read_until_within(ws: &mut Socket, needle: &str, secs: u64) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(secs), async {
        while let Some(msg) = ws.next().await {
            match msg.expect("a frame") {
                Message::Binary(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                Message::Text(t) => seen.push_str(&t),
                _ => {}
            }
            if seen.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "waiting for {needle:?}, got {seen:?}");
    seen
}

pub async fn type_in(ws: &mut Socket, text: &str) {
    ws.send(Message::Binary(text.as_bytes().to_vec().into()))
        .await
        .unwrap();
}
