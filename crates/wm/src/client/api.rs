//! The console's REST API v1 as the client reaches it: one `reqwest` client (rustls on
//! ring, the system's roots), the bearer token, `Accept-Language`, and error answers
//! (`{error: {code, message}}`) turned into [`Failure`]s with their exit codes.

use super::failure::{Failure, Kind};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The language of the client's own messages and the one it asks the server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Ja,
}

impl Lang {
    /// From the locale, as `gettext` reads it: `LC_ALL`, `LC_MESSAGES`, then `LANG`.
    pub(crate) fn from_env() -> Lang {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        if locale.starts_with("ja") {
            Lang::Ja
        } else {
            Lang::En
        }
    }

    pub(crate) fn pick<'a>(self, en: &'a str, ja: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Ja => ja,
        }
    }

    fn accept_language(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja, en;q=0.5",
        }
    }
}

pub(crate) struct Api {
    http: reqwest::Client,
    base: reqwest::Url,
    token: Option<String>,
    pub(crate) lang: Lang,
}

impl Api {
    pub(crate) fn new(url: &str, token: Option<String>, lang: Lang) -> Result<Api, Failure> {
        let base = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                Failure::new(
                    Kind::Usage,
                    format!(
                        "{}: {url:?}",
                        lang.pick(
                            "not a console address like https://wm.example.org",
                            "コンソールのアドレス (例: https://wm.example.org) ではありません"
                        )
                    ),
                )
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(std::time::Duration::from_secs(15))
            .user_agent(concat!("wm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::new(Kind::Other, e.to_string()))?;
        Ok(Api {
            http,
            base,
            token,
            lang,
        })
    }

    /// `/api/v1/` and the path's segments, each percent-encoded (an image reference's
    /// `/` and `:` stay inside its segment).
    pub(crate) fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        let mut rb = self.http.request(method, url).header(
            reqwest::header::ACCEPT_LANGUAGE,
            self.lang.accept_language(),
        );
        if let Some(token) = &self.token {
            rb = rb.bearer_auth(token);
        }
        rb
    }

    pub(crate) fn get(&self, segments: &[&str]) -> RequestBuilder {
        self.request(Method::GET, segments)
    }

    pub(crate) fn post(&self, segments: &[&str]) -> RequestBuilder {
        self.request(Method::POST, segments)
    }

    /// Sends; an error answer becomes a [`Failure`] carrying the server's message.
    pub(crate) async fn send(&self, rb: RequestBuilder) -> Result<Response, Failure> {
        let resp = self.reach(rb).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.refusal(resp).await)
    }

    /// Asks for a WebSocket on the request's connection (over its TLS and token) and
    /// answers the upgraded connection; a refusal becomes a [`Failure`] as in [`Api::send`].
    pub(crate) async fn upgrade(&self, rb: RequestBuilder) -> Result<reqwest::Upgraded, Failure> {
        let resp = self.reach(wm_agent::client::websocket_request(rb)).await?;
        if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            return Err(self.refusal(resp).await);
        }
        resp.upgrade()
            .await
            .map_err(|e| Failure::new(Kind::Other, error_chain(&e)))
    }

    async fn reach(&self, rb: RequestBuilder) -> Result<Response, Failure> {
        rb.send().await.map_err(|e| {
            Failure::new(
                Kind::Other,
                format!(
                    "{} {}: {}",
                    self.lang
                        .pick("cannot reach the console at", "コンソールに接続できません:"),
                    self.base,
                    error_chain(&e)
                ),
            )
        })
    }

    /// What an answer that is not the one asked for says, as a [`Failure`].
    async fn refusal(&self, resp: Response) -> Failure {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(String::from))
            .unwrap_or_else(|| format!("{status}: {}", text.trim()));
        let kind = Kind::of_status(status);
        // A login's own 401 is a wrong password; any other asks for a new login.
        let message = if kind == Kind::NotLoggedIn && self.token.is_some() {
            format!(
                "{message} ({})",
                self.lang.pick(
                    "log in with `wm login`",
                    "`wm login` でログインしてください"
                )
            )
        } else {
            message
        };
        Failure::new(kind, message)
    }

    pub(crate) async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T, Failure> {
        self.send(rb)
            .await?
            .json()
            .await
            .map_err(|e| Failure::new(Kind::Other, format!("unexpected answer: {e}")))
    }
}

/// reqwest's message alone says "error sending request"; the cause says why.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
