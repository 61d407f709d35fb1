//! What both sides of the protocol agree on: error bodies, stream lines, status codes.

use serde::{Deserialize, Serialize};
use wm_backend::BackendError;

/// The body of every failed answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: BackendError,
}

/// One line of an NDJSON stream.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Line<T> {
    Ok(T),
    Err(BackendError),
}

/// The status an error is sent with; the body carries the error itself.
pub fn status_of(e: &BackendError) -> u16 {
    match e {
        BackendError::NoSuchContainer
        | BackendError::NoSuchImage(_)
        | BackendError::NoSuchFile(_) => 404,
        BackendError::NameTaken(_) => 409,
        BackendError::Policy(_) => 403,
        BackendError::Refused(_) => 422,
        BackendError::Unavailable(_) | BackendError::Exhausted(_) | BackendError::Storage(_) => 503,
        BackendError::Engine(_) => 502,
    }
}

/// The query of a container listing: one owner's only, when given (an agent that does
/// not know it answers every container, which the console filters alike).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ListQuery {
    pub owner: Option<String>,
}

/// The query of calls that name an image or a directory.
#[derive(Debug, Serialize, Deserialize)]
pub struct RefQuery {
    #[serde(rename = "ref")]
    pub reference: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DirQuery {
    pub dir: String,
}

/// The query of calls that name a path (in a container, or in a user's storage).
#[derive(Debug, Serialize, Deserialize)]
pub struct PathQuery {
    pub path: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TailQuery {
    pub tail: u32,
    /// Stream until the container stops or the client goes away.
    #[serde(default)]
    pub follow: bool,
}

/// The query of a terminal session (a WebSocket: binary frames carry the terminal's
/// bytes both ways; text frames carry `{"type":"resize",...}` to the agent and one
/// `{"type":"exit","code":N}` back, as [`wm_backend::TerminalInput`] and
/// [`wm_backend::TerminalOutput`] serialise them).
#[derive(Debug, Serialize, Deserialize)]
pub struct TerminalQuery {
    pub cols: u16,
    pub rows: u16,
    /// A JSON array of strings; absent: the image's shell.
    pub cmd: Option<String>,
}

/// A build's request travels in the query; the body is the context.
#[derive(Debug, Serialize, Deserialize)]
pub struct BuildQuery {
    /// A JSON [`wm_backend::BuildRequest`].
    pub request: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PullRequest {
    pub image: wm_domain::ImageRef,
    pub auth: Option<wm_backend::RegistryAuth>,
}

/// What `/healthz` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub host: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wm_backend::Why;

    /// A keyed sentence crosses with its key; one without a key crosses as a plain string,
    /// which is what an older agent sends (read as a sentence without a key) and what an
    /// older console reads.
    #[test]
    fn errors_cross_with_their_key_and_old_agents_are_read() {
        let keyed = BackendError::Policy(Why::new(
            "no_gpu",
            [("gpu", "3".into()), ("known", "0, 1".into())],
            "this host has no GPU \"3\" (its GPUs: 0, 1)",
        ));
        let wire = serde_json::to_string(&ErrorBody {
            error: keyed.clone(),
        })
        .unwrap();
        let back: ErrorBody = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.error, keyed);

        let old = r#"{"error":{"Policy":"this host has no GPU \"3\" (its GPUs: 0, 1)"}}"#;
        let read: ErrorBody = serde_json::from_str(old).unwrap();
        match read.error {
            BackendError::Policy(why) => {
                assert!(!why.is_keyed());
                assert_eq!(why.text, "this host has no GPU \"3\" (its GPUs: 0, 1)");
            }
            other => panic!("{other:?}"),
        }
        let unkeyed = BackendError::Refused("no".into());
        assert_eq!(
            serde_json::to_string(&Line::<u8>::Err(unkeyed)).unwrap(),
            r#"{"err":{"Refused":"no"}}"#
        );
        let line: Line<u8> = serde_json::from_str(r#"{"err":{"Refused":"no"}}"#).unwrap();
        assert!(matches!(line, Line::Err(BackendError::Refused(w)) if w.text == "no"));
    }
}
