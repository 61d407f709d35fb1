//! The rules of whalemountain that hold whatever stores or runs the containers.
//!
//! Everything a user types reaches the rest of the system only through the `parse`
//! constructors here: past this crate nobody re-validates strings. The crate does no I/O
//! and knows nothing of HTTP, SQL, Docker or Kubernetes.

mod container;
mod dockerfile;
mod image;
mod status;
mod user;

pub use container::{
    parse_env_list, parse_env_string, parse_port_list, shell_words, ContainerKey, ContainerName,
    EnvVar, GuestPort, QuotingError, ShortName, MAX_ENV_VARS,
};
pub use dockerfile::Dockerfile;
pub use image::ImageRef;
pub use status::{Backend, ContainerStatus, Scope, StopReason};
pub use user::{Role, UserName};

/// Why a piece of user input was refused. The message is a sentence meant for the user,
/// in English; `reason` and `params` say the same for other languages, which have a
/// sentence per field and reason with the parameters in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Which input was wrong (`name`, `env`, `ports`, `image`, ...), for forms that mark it.
    pub field: &'static str,
    pub message: String,
    /// Which rule of the field the input broke (`empty`, `bad_char`, ...); empty when
    /// only the English message says it.
    pub reason: &'static str,
    /// The values the message names (`value`, `char`, `max`, ...), by name.
    pub params: Vec<(&'static str, String)>,
}

impl ParseError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
            reason: "",
            params: Vec::new(),
        }
    }

    /// The same error, saying which rule it broke and with which values.
    pub fn because<const N: usize>(
        mut self,
        reason: &'static str,
        params: [(&'static str, String); N],
    ) -> Self {
        self.reason = reason;
        self.params = params.into();
        self
    }
}

/// Deserializes a newtype through its `parse`, so data from the wire (an agent's answer,
/// a stored row) is held to the same rules as user input.
macro_rules! deserialize_by_parse {
    ($t:ty, $via:ty, $parse:expr) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <$via as serde::Deserialize>::deserialize(d)?;
                $parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use deserialize_by_parse;

/// Shows at most `max` characters of user input inside an error message, so an over-long
/// value does not turn into an over-long answer.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// The regular expressions the API document states agree with the parsers, on every
/// string of a small alphabet up to a length and on a corpus of long and tricky ones.
#[cfg(test)]
mod patterns {
    use super::*;

    /// The document says: matches `pattern`, at most `max` characters.
    fn agree(pattern: &str, max: usize, parse: impl Fn(&str) -> bool, inputs: &[String]) {
        let re = regex::Regex::new(pattern).unwrap();
        for s in inputs {
            let valid = re.is_match(s) && s.chars().count() <= max;
            assert_eq!(
                valid,
                parse(s),
                "{pattern} and the parser disagree on {s:?}"
            );
        }
    }

    /// Every string over `alphabet` up to `len` characters.
    fn all(alphabet: &str, len: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..len {
            last = last
                .iter()
                .flat_map(|s| alphabet.chars().map(move |c| format!("{s}{c}")))
                .collect();
            out.extend(last.iter().cloned());
        }
        out
    }

    #[test]
    fn short_names() {
        let mut inputs = all("a0-_A", 4);
        inputs.extend((25..40).map(|n| "a".repeat(n)));
        inputs.push(format!("a{}a", "-".repeat(28)));
        agree(
            ShortName::PATTERN,
            ShortName::MAX_NEW_LEN,
            |s| ShortName::parse_new(s).is_ok(),
            &inputs,
        );
    }

    #[test]
    fn user_names() {
        let mut inputs = all("a0-_.A", 4);
        inputs.extend((30..35).map(|n| "u".repeat(n)));
        agree(
            UserName::PATTERN,
            UserName::MAX_LEN,
            |s| UserName::parse(s).is_ok(),
            &inputs,
        );
    }

    #[test]
    fn image_references() {
        let mut inputs = all("a/.:_-A1", 5);
        let digest = format!("@sha256:{}", "0".repeat(64));
        for s in [
            "busybox",
            "a_b.c/d",
            "a.b/c",
            "Foo/bar",
            "localhost/x",
            "localhost:5000/a/b:1",
            "registry.ie.u-ryukyu.ac.jp/alice/web:v1",
            "a__b.c-d---e:T_1.x",
            "a___b",
            "-a/b",
            "a-/b",
            "host:123456/a",
            "a/b:c:d",
            "a:b/c",
            "a/b/c/d:e",
            "x:_tag",
            "x:.tag",
        ] {
            inputs.push(s.to_string());
            inputs.push(format!("{s}{digest}"));
        }
        inputs.push(format!("a{}", &digest[..digest.len() - 1]));
        inputs.push(format!("a:{}", "t".repeat(128)));
        inputs.push(format!("a:{}", "t".repeat(129)));
        inputs.extend((250..260).map(|n| "a".repeat(n)));
        agree(
            ImageRef::PATTERN,
            ImageRef::MAX_LEN,
            |s| ImageRef::parse(s).is_ok(),
            &inputs,
        );
    }
}
