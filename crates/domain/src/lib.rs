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
    parse_env_list, parse_port_list, ContainerKey, ContainerName, EnvVar, GuestPort, ShortName,
    MAX_ENV_VARS,
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
