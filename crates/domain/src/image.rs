//! Image references, following the grammar of the distribution project
//! (`[domain[:port]/]path[:tag][@digest]`).

use crate::{excerpt, ParseError};
use serde::Serialize;
use std::fmt;

/// A valid image reference, normalised so that one without tag or digest means `:latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ImageRef(String);

const MAX_TAG: usize = 128;

/// Parts of [`ImageRef::PATTERN`].
macro_rules! label {
    () => {
        "[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?"
    };
}
macro_rules! component {
    () => {
        "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    };
}

impl ImageRef {
    /// The longest reference taken, tag and digest included.
    pub const MAX_LEN: usize = 255;

    /// [`ImageRef::parse`]'s rule (apart from [`Self::MAX_LEN`]) as a regular expression:
    /// the API document's. A first part before a `/` is a registry (a host name with an
    /// optional port) or a path component without a dot; a name of one part is a path
    /// component.
    pub const PATTERN: &'static str = concat!(
        "^(?:(?:",
        label!(),
        "(?:\\.",
        label!(),
        ")*(?::[0-9]{1,5})?",
        "|[a-z0-9]+(?:(?:_|__|-+)[a-z0-9]+)*",
        ")/(?:",
        component!(),
        "/)*",
        component!(),
        "|",
        component!(),
        ")(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
    );

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = |(reason, why): (&'static str, &str)| {
            ParseError::new(
                "image",
                format!("{:?} is not a valid image reference: {why}", excerpt(s)),
            )
            .because(reason, [("value", excerpt(s))])
        };
        if s.is_empty() {
            return Err(
                ParseError::new("image", "the image reference is empty").because("empty", [])
            );
        }
        if s.len() > Self::MAX_LEN {
            return Err(bad(("too_long", "it is longer than 255 characters")));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            let hex = d
                .strip_prefix("sha256:")
                .ok_or_else(|| bad(("digest", "the digest must be sha256:<64 hex digits>")))?;
            if hex.len() != 64 || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
                return Err(bad(("digest", "the digest must be sha256:<64 hex digits>")));
            }
        }
        // A tag follows the last ':' that comes after the last '/'; an earlier ':' is a
        // registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= MAX_TAG
                && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(bad((
                    "tag",
                    "a tag is 1 to 128 letters, digits, '_', '.' or '-'",
                )));
            }
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        if parts.len() > 1 && is_domain(parts[0]) {
            let domain = parts.remove(0);
            check_domain(domain).map_err(&bad)?;
        }
        for p in &parts {
            if !is_path_component(p) {
                return Err(bad((
                    "path",
                    "each part of the name is lowercase letters and digits, separated by '.', '_', '__' or '-'",
                )));
            }
        }
        let normalised = if tag.is_none() && digest.is_none() {
            format!("{s}:latest")
        } else {
            s.to_string()
        };
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without tag or digest (`localhost:5000/alice/web`).
    pub fn name(&self) -> &str {
        let s = self.0.split('@').next().unwrap_or(&self.0);
        let last_slash = s.rfind('/').map_or(0, |i| i + 1);
        match s[last_slash..].rfind(':') {
            Some(i) => &s[..last_slash + i],
            None => s,
        }
    }

    /// The registry the image comes from: its host, or `docker.io` when none is named.
    pub fn registry(&self) -> &str {
        match self.name().split_once('/') {
            Some((first, _)) if is_domain(first) => first,
            _ => "docker.io",
        }
    }

    /// The repository path within its registry (`alice/web` for `localhost:5000/alice/web:1`).
    pub fn path(&self) -> &str {
        let name = self.name();
        match name.split_once('/') {
            Some((first, rest)) if is_domain(first) => rest,
            _ => name,
        }
    }
}

crate::deserialize_by_parse!(ImageRef, String, |s: String| ImageRef::parse(&s));

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first part of a name is a registry when it looks like a host: it has a dot or a
/// port, or is `localhost`, or has capitals (which a path may not).
fn is_domain(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

/// Refused with a reason and its English sentence.
fn check_domain(d: &str) -> Result<(), (&'static str, &'static str)> {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(("registry_port", "the registry port must be a number"));
        }
    }
    let ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(("registry", "the registry is not a valid host name"))
    }
}

fn is_path_component(p: &str) -> bool {
    if p.is_empty() {
        return false;
    }
    // Runs of lowercase alphanumerics joined by exactly one separator: '.', '_', '__' or
    // any number of '-'.
    let bytes = p.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        let cases = [
            ("busybox", "busybox:latest"),
            ("library/nginx:1.25", "library/nginx:1.25"),
            ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
            (
                "registry.ie.u-ryukyu.ac.jp/alice/web:v1",
                "registry.ie.u-ryukyu.ac.jp/alice/web:v1",
            ),
            ("a__b.c-d---e:T_1.x", "a__b.c-d---e:T_1.x"),
        ];
        for (input, want) in cases {
            assert_eq!(ImageRef::parse(input).unwrap().as_str(), want, "{input}");
        }
        let digest = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(ImageRef::parse(&digest).unwrap().as_str(), digest);
    }

    #[test]
    fn parts() {
        let r = ImageRef::parse("localhost:5000/alice/web:1").unwrap();
        assert_eq!(
            (r.name(), r.registry(), r.path()),
            ("localhost:5000/alice/web", "localhost:5000", "alice/web")
        );
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(
            (r.name(), r.registry(), r.path()),
            ("busybox", "docker.io", "busybox")
        );
        let d = format!("wm/alice/web@sha256:{}", "b".repeat(64));
        let r = ImageRef::parse(&d).unwrap();
        assert_eq!(
            (r.name(), r.registry(), r.path()),
            ("wm/alice/web", "docker.io", "wm/alice/web")
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "Busybox",
            "busy box",
            "a//b",
            "/a",
            "a/",
            "a:",
            "a:-x",
            "a..b",
            "a@sha256:abc",
            "a@md5:0000",
            "host:port/a",
            &format!("a:{}", "t".repeat(129)),
            &"a".repeat(256),
            "a;rm -rf /",
            "../etc",
        ] {
            assert_eq!(ImageRef::parse(bad).unwrap_err().field, "image", "{bad:?}");
        }
    }
}
