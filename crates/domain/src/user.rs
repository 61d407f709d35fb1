//! Account names and roles.

use crate::{excerpt, ParseError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An account name: 1 to 32 characters, lowercase ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter. It prefixes container and network names on Docker hosts, so it
/// must be a valid part of both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    pub const MAX_LEN: usize = 32;

    /// [`UserName::parse`]'s rule as a regular expression (the API document's).
    pub const PATTERN: &'static str = "^[a-z][-a-z0-9_.]{0,31}$";

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = |m: String| ParseError::new("username", m);
        if s.is_empty() {
            return Err(err("the user name is empty".into()).because("empty", []));
        }
        if s.len() > Self::MAX_LEN {
            return Err(err(format!(
                "the user name is longer than {} characters",
                Self::MAX_LEN
            ))
            .because("too_long", [("max", Self::MAX_LEN.to_string())]));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(err(format!(
                "the user name {:?} must start with a lowercase letter",
                excerpt(s)
            ))
            .because("bad_start", [("value", excerpt(s))]));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(*c)))
        {
            return Err(err(format!(
                "the user name {:?} contains {:?}; use lowercase letters, digits, '-', '_' and '.'",
                excerpt(s),
                c
            ))
            .because("bad_char", [("value", excerpt(s)), ("char", c.to_string())]));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

crate::deserialize_by_parse!(UserName, String, |s: String| UserName::parse(&s));

/// What a person may do. Teachers are students with more quota in later issues; admins may
/// see and act on everyone's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Teacher,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "student" => Ok(Role::Student),
            "teacher" => Ok(Role::Teacher),
            "admin" => Ok(Role::Admin),
            other => Err(ParseError::new(
                "role",
                format!(
                    "unknown role {:?}; use student, teacher or admin",
                    excerpt(other)
                ),
            )
            .because("unknown", [("value", excerpt(other))])),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_department_style_names() {
        for ok in ["alice", "e205701", "k.tanaka", "a_b-c", &"a".repeat(32)] {
            assert_eq!(UserName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "Alice",
            "1abc",
            "-x",
            "a b",
            "a/b",
            "x)(|(uid=*",
            "*",
            "ä",
            &"a".repeat(33),
        ] {
            let e = UserName::parse(bad).unwrap_err();
            assert_eq!(e.field, "username", "{bad:?}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::Student, Role::Teacher, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()).unwrap(), r);
        }
        assert!(Role::parse("root").is_err());
    }
}
