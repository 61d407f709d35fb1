//! The closed sets of words the product stores and shows: a container's status, the
//! backend that runs it and a token's scope. Each has one string form, used by the
//! database, the REST API and the agents alike.

use crate::ParseError;
use std::fmt;

/// Declares a lowercase-serialised enum with `ALL`, `as_str`, `parse` and `Display`.
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $field:literal, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one string form (the database's, the API's and the agents').
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// # Errors
            /// When `s` is none of the values' string forms.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(ParseError::new(
                        $field,
                        format!(
                            "unknown {} {:?}; use one of: {}",
                            $what,
                            crate::excerpt(s),
                            [$($text),+].join(", ")
                        ),
                    )
                    .because(
                        "unknown",
                        [("value", crate::excerpt(s)), ("choices", [$($text),+].join(", "))],
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
    };
}

word_enum! {
    /// What a container is doing, as the console last saw it. The Docker states come from
    /// the engine; `pending`, `stopped` and `failed` from a Kubernetes pod; `creating`,
    /// `gone` and `unknown` are the console's own.
    ContainerStatus, "status", "container status" {
        /// The console is making it; no host has confirmed it yet.
        Creating => "creating",
        Created => "created",
        Running => "running",
        Paused => "paused",
        Restarting => "restarting",
        /// Stopped (Docker).
        Exited => "exited",
        Dead => "dead",
        /// It no longer exists on its host.
        Gone => "gone",
        /// Its host cannot be asked right now.
        Unknown => "unknown",
        /// Kubernetes: the pod is not running yet.
        Pending => "pending",
        /// Kubernetes: scaled to zero.
        Stopped => "stopped",
        /// Kubernetes: the pod failed.
        Failed => "failed",
    }
}

impl ContainerStatus {
    /// Whether the container is running or on its way to it (being created, restarting,
    /// paused): what placement counts on a host.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ContainerStatus::Creating
                | ContainerStatus::Created
                | ContainerStatus::Running
                | ContainerStatus::Restarting
                | ContainerStatus::Paused
        )
    }
}

word_enum! {
    /// Where a container runs.
    Backend, "backend", "backend" {
        /// A Docker engine, directly or through an agent.
        Docker => "docker",
        /// A Kubernetes cluster.
        Kubernetes => "kubernetes",
    }
}

word_enum! {
    /// What an API token may do.
    Scope, "scope", "scope" {
        /// Everything the user may do.
        All => "all",
        /// Only image builds (for CI jobs).
        Build => "build",
    }
}

word_enum! {
    /// Why the console itself stopped a container (shown until it is started again).
    StopReason, "stop_reason", "stop reason" {
        /// No activity for the installation's idle time.
        Idle => "idle",
        /// Its expiry date passed; it is deleted after the grace period.
        Expired => "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(
        all: &[T],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Result<T, ParseError>,
    ) where
        T: Copy
            + PartialEq
            + fmt::Debug
            + fmt::Display
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        for &v in all {
            let s = as_str(v);
            assert_eq!(parse(s).unwrap(), v);
            assert_eq!(v.to_string(), s);
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
            assert_eq!(s, s.to_lowercase());
        }
    }

    #[test]
    fn container_status_round_trips() {
        round_trips(
            ContainerStatus::ALL,
            ContainerStatus::as_str,
            ContainerStatus::parse,
        );
        let words: Vec<_> = ContainerStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            [
                "creating",
                "created",
                "running",
                "paused",
                "restarting",
                "exited",
                "dead",
                "gone",
                "unknown",
                "pending",
                "stopped",
                "failed"
            ]
        );
    }

    #[test]
    fn live_statuses_are_the_ones_placement_counts() {
        let live: Vec<_> = ContainerStatus::ALL
            .iter()
            .filter(|s| s.is_live())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            live,
            ["creating", "created", "running", "paused", "restarting"]
        );
    }

    #[test]
    fn backend_round_trips() {
        round_trips(Backend::ALL, Backend::as_str, Backend::parse);
        assert_eq!(Backend::ALL.len(), 2);
    }

    #[test]
    fn scope_round_trips() {
        round_trips(Scope::ALL, Scope::as_str, Scope::parse);
        assert_eq!(Scope::ALL.len(), 2);
        round_trips(StopReason::ALL, StopReason::as_str, StopReason::parse);
    }

    #[test]
    fn unknown_words_are_refused_with_the_choices() {
        let e = ContainerStatus::parse("Running").unwrap_err();
        assert_eq!(e.field, "status");
        assert!(e.message.contains("\"Running\""), "{}", e.message);
        assert!(e.message.contains("running"), "{}", e.message);
        assert!(Backend::parse("podman")
            .unwrap_err()
            .message
            .contains("docker, kubernetes"));
        assert!(Scope::parse("").is_err());
        assert!(serde_json::from_str::<ContainerStatus>("\"bogus\"").is_err());
    }
}
