//! What a user is told when a pull fails.
//!
//! The engine's own error texts quote what the remote side answered (`manifest unknown:
//! <the registry's message>`, `error parsing HTTP 404 response body: ... "<the body>"`), so a
//! pull from an address of the host's own network would echo whatever answers there. A
//! failed pull is therefore told as one of a few fixed sentences; the engine's full text is
//! logged on the server, once, where it happens.

use std::fmt;

/// Why a pull failed, as far as a user is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailure {
    /// The registry has no such repository or tag.
    NotFound,
    /// The registry wants a login this installation does not have, or refused the one it has.
    Unauthorized,
    /// The registry could not be reached (name, connection, TLS, time-out).
    Unreachable,
    /// Refused by this installation's rules before anything was fetched.
    Refused,
    /// Anything else.
    Failed,
}

/// Sentences that start each fixed message, in the order of [`PullFailure::ALL`].
const LEADS: [&str; 5] = [
    "the image was not found in its registry",
    "the registry requires a login",
    "the registry could not be reached",
    "the pull was refused by this installation's rules",
    "the pull failed",
];

impl PullFailure {
    pub const ALL: [PullFailure; 5] = [
        PullFailure::NotFound,
        PullFailure::Unauthorized,
        PullFailure::Unreachable,
        PullFailure::Refused,
        PullFailure::Failed,
    ];

    /// Sorts an engine's error text. Only the class is kept; the text itself is never
    /// shown to a user.
    pub fn classify(engine_text: &str) -> Self {
        if let Some(ours) = Self::recognize(engine_text) {
            return ours;
        }
        let t = engine_text.to_ascii_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| t.contains(w));
        if any(&[
            "dial tcp",
            "connection refused",
            "no such host",
            "i/o timeout",
            "timeout",
            "tls:",
            "x509",
            "http response to https client",
            "connection reset",
            "no route to host",
            "network is unreachable",
            "eof",
            "deadline exceeded",
        ]) {
            PullFailure::Unreachable
        } else if any(&[
            "unauthorized",
            "authentication required",
            "no basic auth credentials",
            "incorrect username or password",
            "may require 'docker login'",
            "denied",
        ]) {
            // "pull access denied for x, repository does not exist or may require 'docker
            // login'" is the engine's answer for both.
            if t.contains("does not exist") {
                PullFailure::NotFound
            } else {
                PullFailure::Unauthorized
            }
        } else if any(&[
            "not found",
            "manifest unknown",
            "name unknown",
            "does not exist",
            "http 404",
        ]) {
            PullFailure::NotFound
        } else {
            PullFailure::Failed
        }
    }

    /// One of our own fixed messages, recognised again (after it crossed an agent).
    pub fn recognize(message: &str) -> Option<Self> {
        let m = message.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .zip(LEADS)
            .find(|(_, lead)| m.contains(lead))
            .map(|(f, _)| f)
    }

    /// A short machine-readable name: `not_found`, `unauthorized`, `unreachable`,
    /// `refused`, `failed`.
    pub fn code(self) -> &'static str {
        match self {
            PullFailure::NotFound => "not_found",
            PullFailure::Unauthorized => "unauthorized",
            PullFailure::Unreachable => "unreachable",
            PullFailure::Refused => "refused",
            PullFailure::Failed => "failed",
        }
    }

    /// The fixed sentence users see.
    pub fn message(self, image: &str) -> String {
        let lead = LEADS[Self::ALL.iter().position(|f| *f == self).unwrap_or(4)];
        let hint = match self {
            PullFailure::NotFound => "check the name and tag",
            PullFailure::Unauthorized => {
                "an administrator can configure a login for it, or the image may not exist"
            }
            PullFailure::Unreachable => "check the registry's name, or try again later",
            PullFailure::Refused => "an administrator can allow a registry on the host's own network by name (WM_EGRESS_ALLOWED)",
            PullFailure::Failed => "the administrators can find the details in the log",
        };
        format!("could not pull {image}: {lead}; {hint}")
    }

    /// The fixed message for an engine's text, which is logged here, once.
    pub fn from_engine(image: &str, engine_text: &str) -> String {
        let failure = Self::classify(engine_text);
        let shown = failure.message(image);
        // Only our own sentence (after a host's name) is not the engine's: a remote answer
        // that merely contains one of our phrases is still logged.
        if !engine_text.ends_with(&shown) {
            tracing::warn!(%image, engine_error = %engine_text, reason = failure.code(), "pull failed");
        }
        shown
    }
}

/// Texts of the engine that quote what a registry answered while a build pulled its base
/// image.
const PULL_TEXTS: &[&str] = &[
    "manifest for ",
    "manifest unknown",
    "pull access denied",
    "error parsing HTTP",
    "Get \"",
    "Head \"",
    "unauthorized:",
    "received unexpected HTTP status",
    "error unmarshalling content",
    "toomanyrequests",
    "denied:",
];

/// A build's error as users see it: the engine's text, except where it quotes what a
/// fetched URL (`ADD <url>`: `failed to GET <url> with status 404 ...: <the body>`) or the
/// registry of a base image answered; those become fixed sentences, and the engine's text
/// is logged here.
pub fn build_error_text(engine_text: &str) -> String {
    if let Some(i) = engine_text.find("failed to GET ") {
        let rest = &engine_text[i + "failed to GET ".len()..];
        let url = rest.split_whitespace().next().unwrap_or_default();
        // The status line's reason phrase is the remote's too: only the number is kept.
        let status: String = rest
            .find(" with status ")
            .map(|j| {
                rest[j + " with status ".len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect()
            })
            .unwrap_or_default();
        tracing::warn!(engine_error = %engine_text, "a build's download failed");
        return if status.is_empty() {
            format!("ADD failed: {url} could not be fetched")
        } else {
            format!("ADD failed: fetching {url} answered HTTP {status}")
        };
    }
    if engine_text.contains("error downloading") {
        tracing::warn!(engine_error = %engine_text, "a build's download failed");
        return "ADD failed: a URL could not be fetched".into();
    }
    if PULL_TEXTS.iter().any(|t| engine_text.contains(t)) {
        return PullFailure::from_engine("the base image", engine_text);
    }
    engine_text.to_string()
}

impl fmt::Display for PullFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_errors_lose_what_the_remote_said() {
        let add =
            "ADD failed: failed to GET http://127.0.0.1:9/f with status 404 SECRET: SECRET body";
        assert_eq!(
            build_error_text(add),
            "ADD failed: fetching http://127.0.0.1:9/f answered HTTP 404"
        );
        let base = "manifest for r:5000/x:1 not found: manifest unknown: SECRET";
        let shown = build_error_text(base);
        assert!(shown.starts_with("could not pull the base image: the image was not found"));
        assert!(!shown.contains("SECRET"));
        // The user's own failures stay as the engine tells them.
        let run = "The command '/bin/sh -c false' returned a non-zero code: 1";
        assert_eq!(build_error_text(run), run);
        let copy = "COPY failed: file not found in build context or excluded by .dockerignore: stat x: file does not exist";
        assert_eq!(build_error_text(copy), copy);
    }

    #[test]
    fn engine_texts_become_fixed_messages() {
        let cases = [
            ("manifest for r:5000/x:1 not found: manifest unknown: SECRET", PullFailure::NotFound),
            ("pull access denied for x, repository does not exist or may require 'docker login': denied: requested access to the resource is denied", PullFailure::NotFound),
            ("unauthorized: authentication required", PullFailure::Unauthorized),
            ("Get \"https://r/v2/\": dial tcp 127.0.0.1:9: connect: connection refused", PullFailure::Unreachable),
            ("Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host", PullFailure::Unreachable),
            ("error parsing HTTP 404 response body: invalid character 'M' looking for beginning of value: \"SECRET\"", PullFailure::NotFound),
            ("received unexpected HTTP status: 500 Internal Server Error", PullFailure::Failed),
        ];
        for (text, want) in cases {
            assert_eq!(PullFailure::classify(text), want, "{text}");
            let shown = PullFailure::from_engine("r:5000/x:1", text);
            assert!(!shown.contains("SECRET"), "{shown}");
            assert_eq!(PullFailure::recognize(&shown), Some(want), "{shown}");
            assert_eq!(PullFailure::classify(&shown), want, "{shown}");
        }
    }
}
