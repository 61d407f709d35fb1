//! A backend's sentences for the user, with the keys by which the console says them in
//! the user's language ([`Why`]); and the sentences more than one backend says (the
//! in-memory backend mirrors Docker's checks), made in one place so that they say the same.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A backend's sentence for the user, with its key: the `reason` (snake_case) and the
/// values the sentence names (`params`), by which the console says it in the user's
/// language; `text` says it in English. A sentence that is not the backend's own (an
/// engine's text, a system error) has no key: `reason` is empty.
///
/// It reads as its text (`Display`, and `Deref` to `str` for matching an engine's words).
/// On the wire a keyed one is `{"reason", "params", "text"}`, one without a key its text
/// alone: what agents of older versions send, and what older consoles read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireWhy", into = "WireWhy")]
pub struct Why {
    pub reason: Cow<'static, str>,
    pub params: Vec<(Cow<'static, str>, String)>,
    pub text: String,
}

impl Why {
    /// The sentence `english` with its key.
    pub fn new<const N: usize>(
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Why {
            reason: Cow::Borrowed(reason),
            params: params
                .into_iter()
                .map(|(n, v)| (Cow::Borrowed(n), v))
                .collect(),
            text: english.into(),
        }
    }

    /// Whether it has a key (a backend's own sentence) rather than a text alone.
    pub fn is_keyed(&self) -> bool {
        !self.reason.is_empty()
    }
}

impl From<String> for Why {
    fn from(text: String) -> Self {
        Why {
            reason: Cow::Borrowed(""),
            params: Vec::new(),
            text,
        }
    }
}

impl From<&str> for Why {
    fn from(text: &str) -> Self {
        text.to_string().into()
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::ops::Deref for Why {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// How a [`Why`] travels: the keyed struct, or its text alone.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum WireWhy {
    Text(String),
    Keyed {
        reason: Cow<'static, str>,
        #[serde(default)]
        params: Vec<(Cow<'static, str>, String)>,
        text: String,
    },
}

impl From<Why> for WireWhy {
    fn from(w: Why) -> Self {
        if w.is_keyed() {
            WireWhy::Keyed {
                reason: w.reason,
                params: w.params,
                text: w.text,
            }
        } else {
            WireWhy::Text(w.text)
        }
    }
}

impl From<WireWhy> for Why {
    fn from(w: WireWhy) -> Self {
        match w {
            WireWhy::Text(text) => text.into(),
            WireWhy::Keyed {
                reason,
                params,
                text,
            } => Why {
                reason,
                params,
                text,
            },
        }
    }
}

/// A memory limit above the host's ceiling (or none).
pub fn memory_limit(max: i64) -> Why {
    Why::new(
        "memory_limit",
        [("max", max.to_string())],
        format!("memory limit must be between 1 byte and {max} bytes"),
    )
}

/// A CPU limit above the host's ceiling (or none).
pub fn cpu_limit(max: i64) -> Why {
    Why::new(
        "cpu_limit",
        [("max", max.to_string())],
        format!("CPU limit must be between 1 and {max} nano-CPUs"),
    )
}

/// A process limit above the host's ceiling (or none).
pub fn pids_limit(max: i64) -> Why {
    Why::new(
        "pids_limit",
        [("max", max.to_string())],
        format!("process limit must be between 1 and {max}"),
    )
}

/// A container name that is not its owner's and short name's.
pub fn container_name() -> Why {
    Why::new(
        "container_name",
        [],
        "the container name must be <owner>-<short name>",
    )
}

/// One GPU asked for twice by one container.
pub fn gpu_twice(gpu: &str) -> Why {
    Why::new(
        "gpu_twice",
        [("gpu", gpu.to_string())],
        format!("GPU {gpu} is asked for twice"),
    )
}

/// A GPU the host does not have; `known`: the ids of those it has.
pub fn no_gpu(gpu: &str, known: &[&str]) -> Why {
    if known.is_empty() {
        return Why::new(
            "no_gpu_none",
            [("gpu", gpu.to_string())],
            format!("this host has no GPU {gpu:?} (it has none)"),
        );
    }
    let known = known.join(", ");
    Why::new(
        "no_gpu",
        [("gpu", gpu.to_string()), ("known", known.clone())],
        format!("this host has no GPU {gpu:?} (its GPUs: {known})"),
    )
}

/// A GPU held by as many containers as may share it.
pub fn gpu_in_use(gpu: &str, holders: usize, share: u32) -> Why {
    Why::new(
        "gpu_in_use",
        [
            ("gpu", gpu.to_string()),
            ("holders", holders.to_string()),
            ("share", share.to_string()),
        ],
        format!(
            "GPU {gpu} is in use by {holders} container{} (it may be shared by {share}); \
             choose another GPU or try again when one is removed",
            if holders == 1 { "" } else { "s" },
        ),
    )
}

/// No free host port left in the host's range (`40000-40999`).
pub fn ports_full(range: impl std::fmt::Display) -> Why {
    let range = range.to_string();
    Why::new(
        "ports_full",
        [("range", range.clone())],
        format!("no free host port is left in {range} on this host; ask an administrator"),
    )
}

/// A path in a user's storage with `..` in it.
pub fn path_dotdot() -> Why {
    Why::new("path_dotdot", [], "a path may not contain '..'")
}

/// A path that is not in the user's storage.
pub fn storage_missing(path: &str) -> Why {
    Why::new(
        "storage_missing",
        [("path", path.to_string())],
        format!("{path} does not exist in your storage"),
    )
}

/// A file to write in the user's storage where a directory is.
pub fn storage_is_dir(path: &str) -> Why {
    Why::new(
        "storage_is_dir",
        [("path", path.to_string())],
        format!("{path} is a directory"),
    )
}

/// The root of a user's storage asked to be removed.
pub fn storage_root() -> Why {
    Why::new(
        "storage_root",
        [],
        "the root of your storage cannot be removed; remove what is in it",
    )
}

/// A user's storage to delete while a container of theirs uses it.
pub fn storage_in_use() -> Why {
    Why::new(
        "storage_in_use",
        [],
        "the storage is in use by a container of its owner; delete their containers first",
    )
}

/// A path that is not in the container.
pub fn path_missing(path: &str) -> Why {
    Why::new(
        "path_missing",
        [("path", path.to_string())],
        format!("{path} does not exist in the container"),
    )
}

/// A build's result over the largest image allowed (it has been removed).
pub fn build_too_large(size: i64, max: i64) -> Why {
    Why::new(
        "build_too_large",
        [("size", size.to_string()), ("max", max.to_string())],
        format!(
            "the image is {size} bytes, over the limit of {max} bytes for a build's result (WM_BUILD_IMAGE_MAX_BYTES); it was removed"
        ),
    )
}

/// A file's upload into a user's storage that ended before its end (`error`: how).
pub fn upload_broke(path: &str, error: impl std::fmt::Display) -> Why {
    Why::new(
        "upload_broke",
        [("path", path.to_string())],
        format!("the upload of {path} broke off: {error}"),
    )
}

/// Host ports lent for a container or VM that other programs turned out to hold, try
/// after try.
pub fn ports_held() -> Why {
    Why::new(
        "ports_held",
        [],
        "could not find free host ports; try again",
    )
}
