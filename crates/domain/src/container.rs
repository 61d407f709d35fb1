//! Container names, environment variables and guest ports, in both of the report's forms
//! (one space-separated string) and as JSON arrays.

use crate::{excerpt, ParseError, UserName};
use serde::Serialize;
use std::fmt;

/// The name a user gives a container: a DNS label (RFC 1123), so it can also name a
/// Kubernetes object. 1 to 63 lowercase letters, digits and `-`, not starting or ending
/// with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ShortName(String);

impl ShortName {
    /// The longest short name a create takes: with the longest user name
    /// ([`UserName::MAX_LEN`]) the full name still fits in [`ContainerName::MAX_LEN`], so
    /// the rule is the same for everyone (and the API document can state it).
    pub const MAX_NEW_LEN: usize = ContainerName::MAX_LEN - UserName::MAX_LEN - 1;

    /// [`ShortName::parse_new`]'s rule as a regular expression (the API document's).
    pub const PATTERN: &'static str = "^[a-z0-9](?:[-a-z0-9]{0,28}[a-z0-9])?$";

    /// A name as stored or sent by an agent: any DNS label that fits a full name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_dns_label(s, "name", &CONTAINER)?;
        Ok(Self(s.to_string()))
    }

    /// A name for a new container: a DNS label of at most [`Self::MAX_NEW_LEN`].
    pub fn parse_new(s: &str) -> Result<Self, ParseError> {
        Self::parse_new_as(s, &CONTAINER)
    }

    /// A name for a new VM: the rule of [`Self::parse_new`], its errors in words about VMs
    /// (the reasons `vm_empty`, `vm_too_long`, `vm_bad_char`, `vm_bad_edge`).
    pub fn parse_new_vm(s: &str) -> Result<Self, ParseError> {
        Self::parse_new_as(s, &VM)
    }

    fn parse_new_as(s: &str, words: &Words) -> Result<Self, ParseError> {
        check_dns_label(s, "name", words)?;
        if s.len() > Self::MAX_NEW_LEN {
            return Err(ParseError::new(
                "name",
                format!(
                    "{} is longer than {} characters",
                    words.what,
                    Self::MAX_NEW_LEN
                ),
            )
            .because(words.too_long, [("max", Self::MAX_NEW_LEN.to_string())]));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The words of a name's errors: what it names, and the reason of each rule it breaks.
struct Words {
    what: &'static str,
    empty: &'static str,
    too_long: &'static str,
    bad_char: &'static str,
    bad_edge: &'static str,
}

const CONTAINER: Words = Words {
    what: "the container name",
    empty: "empty",
    too_long: "too_long",
    bad_char: "bad_char",
    bad_edge: "bad_edge",
};

const VM: Words = Words {
    what: "the VM name",
    empty: "vm_empty",
    too_long: "vm_too_long",
    bad_char: "vm_bad_char",
    bad_edge: "vm_bad_edge",
};

fn check_dns_label(s: &str, field: &'static str, words: &Words) -> Result<(), ParseError> {
    let what = words.what;
    let err = |m: String| ParseError::new(field, m);
    if s.is_empty() {
        return Err(err(format!("{what} is empty")).because(words.empty, []));
    }
    if s.len() > ContainerName::MAX_LEN {
        return Err(err(format!(
            "{what} is longer than {} characters",
            ContainerName::MAX_LEN
        ))
        .because(
            words.too_long,
            [("max", ContainerName::MAX_LEN.to_string())],
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(err(format!(
            "{what} {:?} contains {:?}; use lowercase letters, digits and '-'",
            excerpt(s),
            c
        ))
        .because(
            words.bad_char,
            [("value", excerpt(s)), ("char", c.to_string())],
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(err(format!(
            "{what} {:?} must start and end with a letter or digit",
            excerpt(s)
        ))
        .because(words.bad_edge, [("value", excerpt(s))]));
    }
    Ok(())
}

impl fmt::Display for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A container's full name, `<owner>-<short name>`: unique on every host because the
/// owner's name is part of it, and at most 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ContainerName(String);

impl ContainerName {
    pub const MAX_LEN: usize = 63;

    pub fn new(owner: &UserName, short: &ShortName) -> Result<Self, ParseError> {
        let full = format!("{}-{}", owner.as_str(), short.as_str());
        if full.len() > Self::MAX_LEN {
            return Err(ParseError::new(
                "name",
                format!(
                    "the full container name {:?} is longer than {} characters; \
                     use a short name of at most {} characters",
                    excerpt(&full),
                    Self::MAX_LEN,
                    Self::MAX_LEN - owner.as_str().len() - 1
                ),
            )
            .because(
                "full_too_long",
                [
                    ("value", excerpt(&full)),
                    ("max", Self::MAX_LEN.to_string()),
                    (
                        "short_max",
                        (Self::MAX_LEN - owner.as_str().len() - 1).to_string(),
                    ),
                ],
            ));
        }
        Ok(Self(full))
    }

    /// Parses a full name as it appears in a path. Only the character set and length are
    /// checked: whose it is, is the store's question.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty()
            || s.len() > Self::MAX_LEN
            || !s.starts_with(|c: char| c.is_ascii_lowercase())
            || !s
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        {
            return Err(ParseError::new(
                "name",
                format!("{:?} is not a container name", excerpt(s)),
            )
            .because("not_a_name", [("value", excerpt(s))]));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which container: its owner and its short name. This pair is a container's identity.
/// The full name `<owner>-<short name>` is only how people see it: user names may hold
/// `-`, so two pairs can share one full name (`ab-c` + `web` and `ab` + `c-web`), and
/// nothing is keyed by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct ContainerKey {
    pub owner: UserName,
    pub short: ShortName,
}

impl ContainerKey {
    /// The key of `owner`'s container `short`; refused when its full name would be
    /// longer than [`ContainerName::MAX_LEN`].
    pub fn new(owner: &UserName, short: &ShortName) -> Result<Self, ParseError> {
        ContainerName::new(owner, short)?;
        Ok(Self {
            owner: owner.clone(),
            short: short.clone(),
        })
    }

    /// The full name, `<owner>-<short name>`.
    pub fn full_name(&self) -> ContainerName {
        ContainerName(format!("{}-{}", self.owner.as_str(), self.short.as_str()))
    }

    /// The short name, when `full` is `owner`'s full name `<owner>-<short>`.
    pub fn of_full_name(owner: &UserName, full: &str) -> Option<Self> {
        let short = full
            .strip_prefix(owner.as_str())?
            .strip_prefix('-')
            .and_then(|s| ShortName::parse(s).ok())?;
        Self::new(owner, &short).ok()
    }
}

impl fmt::Display for ContainerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.owner.as_str(), self.short.as_str())
    }
}

/// One environment variable, `KEY=value`. The key is a POSIX shell name so that every
/// image's shell can read it; the value may hold anything but NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    key: String,
    value: String,
}

/// At most this many variables per container.
pub const MAX_ENV_VARS: usize = 128;
const MAX_ENV_KEY: usize = 256;
const MAX_ENV_VALUE: usize = 32 * 1024;

impl EnvVar {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = |m: String| ParseError::new("env", m);
        let Some((key, value)) = s.split_once('=') else {
            return Err(
                err(format!("{:?} is not KEY=value: it has no '='", excerpt(s)))
                    .because("no_equals", [("value", excerpt(s))]),
            );
        };
        if key.is_empty() {
            return Err(err(format!("{:?} has no name before '='", excerpt(s)))
                .because("no_key", [("value", excerpt(s))]));
        }
        if key.len() > MAX_ENV_KEY {
            return Err(err(format!(
                "the variable name {:?} is longer than {MAX_ENV_KEY} characters",
                excerpt(key)
            ))
            .because(
                "key_too_long",
                [("value", excerpt(key)), ("max", MAX_ENV_KEY.to_string())],
            ));
        }
        let valid_key = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(err(format!(
                "{:?} is not a variable name: use letters, digits and '_', not starting with a digit",
                excerpt(key)
            ))
            .because("bad_key", [("value", excerpt(key))]));
        }
        if value.len() > MAX_ENV_VALUE {
            return Err(err(format!(
                "the value of {key} is longer than {MAX_ENV_VALUE} bytes"
            ))
            .because(
                "value_too_long",
                [("key", key.to_string()), ("max", MAX_ENV_VALUE.to_string())],
            ));
        }
        if value.contains('\0') {
            return Err(err(format!("the value of {key} contains a NUL character"))
                .because("value_nul", [("key", key.to_string())]));
        }
        Ok(Self {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

impl Serialize for EnvVar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

crate::deserialize_by_parse!(EnvVar, String, |s: String| EnvVar::parse(&s));
crate::deserialize_by_parse!(ShortName, String, |s: String| ShortName::parse(&s));
crate::deserialize_by_parse!(ContainerName, String, |s: String| ContainerName::parse(&s));

impl fmt::Display for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// Parses environment variables from either form; a key given twice is refused, because
/// which of the two wins would be a guess.
pub fn parse_env_list<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<EnvVar>, ParseError> {
    let mut out: Vec<EnvVar> = Vec::new();
    for item in items {
        let var = EnvVar::parse(item)?;
        if out.iter().any(|v| v.key == var.key) {
            return Err(
                ParseError::new("env", format!("the variable {} is given twice", var.key))
                    .because("twice", [("key", var.key.clone())]),
            );
        }
        out.push(var);
        if out.len() > MAX_ENV_VARS {
            return Err(ParseError::new(
                "env",
                format!("more than {MAX_ENV_VARS} environment variables"),
            )
            .because("too_many", [("max", MAX_ENV_VARS.to_string())]));
        }
    }
    Ok(out)
}

/// Environment variables written as one line, `KEY=value` pairs separated by spaces, the
/// way a shell reads them: `'…'` keeps everything literally, `"…"` too except that `\"`,
/// `\\`, `\$` and `` \` `` stand for the character, and outside quotes a backslash keeps the
/// next character (a space too). So `MSG="hello world" A=x\ y` is two variables. This is
/// the one reading of the string form, for the API, the web form and the command line.
pub fn parse_env_string(s: &str) -> Result<Vec<EnvVar>, ParseError> {
    let words = shell_words(s).map_err(|e| {
        let because = ParseError::new("env", e.to_string());
        match e {
            QuotingError::Unclosed(q) => because.because("unclosed", [("quote", q.to_string())]),
            QuotingError::TrailingBackslash => because.because("trailing_backslash", []),
        }
    })?;
    parse_env_list(words.iter().map(String::as_str))
}

/// What keeps a line from being split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotingError {
    /// A `'` or `"` was opened and never closed.
    #[error("the quote {0} is opened but never closed: close it, or put a backslash before it")]
    Unclosed(char),
    /// The line ends with a backslash that has nothing to keep.
    #[error("the line ends with a backslash")]
    TrailingBackslash,
}

/// Splits a line into words as a POSIX shell does, without expanding anything (see
/// [`parse_env_string`]).
pub fn shell_words(s: &str) -> Result<Vec<String>, QuotingError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word may be empty (`""`), so whether one was begun is kept apart from its text.
    let mut begun = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if begun {
                    words.push(std::mem::take(&mut word));
                    begun = false;
                }
            }
            '\'' => {
                begun = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(QuotingError::Unclosed('\'')),
                    }
                }
            }
            '"' => {
                begun = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(QuotingError::Unclosed('"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(QuotingError::Unclosed('"')),
                    }
                }
            }
            '\\' => {
                begun = true;
                word.push(chars.next().ok_or(QuotingError::TrailingBackslash)?);
            }
            c => {
                begun = true;
                word.push(c);
            }
        }
    }
    if begun {
        words.push(word);
    }
    Ok(words)
}

/// A port inside the container, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct GuestPort(u16);

crate::deserialize_by_parse!(GuestPort, i64, GuestPort::new);

impl GuestPort {
    pub fn new(n: i64) -> Result<Self, ParseError> {
        match u16::try_from(n) {
            Ok(p) if p >= 1 => Ok(Self(p)),
            _ => Err(
                ParseError::new("ports", format!("port {n} is outside 1..65535"))
                    .because("out_of_range", [("port", n.to_string())]),
            ),
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        // Digits only: "+80", "0x50" and " 80" are not what anyone means by a port.
        if s.is_empty() || s.len() > 6 || !s.chars().all(|c| c.is_ascii_digit()) {
            return Err(
                ParseError::new("ports", format!("{:?} is not a port number", excerpt(s)))
                    .because("not_a_number", [("value", excerpt(s))]),
            );
        }
        Self::new(s.parse::<i64>().expect("at most six digits"))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// Checks a list of guest ports: no port twice, at most `max` ports.
pub fn parse_port_list(
    ports: impl IntoIterator<Item = GuestPort>,
    max: usize,
) -> Result<Vec<GuestPort>, ParseError> {
    let mut out: Vec<GuestPort> = Vec::new();
    for p in ports {
        if out.contains(&p) {
            return Err(
                ParseError::new("ports", format!("port {} is given twice", p.0))
                    .because("twice", [("port", p.0.to_string())]),
            );
        }
        out.push(p);
        if out.len() > max {
            return Err(ParseError::new(
                "ports",
                format!("more than {max} ports; ask an administrator if you need more"),
            )
            .because("too_many", [("max", max.to_string())]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserName {
        UserName::parse(s).unwrap()
    }

    /// A VM's name follows a container's rule, and its errors speak of a VM.
    #[test]
    fn a_vm_name_is_refused_in_words_about_vms() {
        for (bad, reason) in [
            ("", "vm_empty"),
            ("My_VM", "vm_bad_char"),
            ("vm-", "vm_bad_edge"),
            (&"a".repeat(40), "vm_too_long"),
        ] {
            let e = ShortName::parse_new_vm(bad).unwrap_err();
            assert_eq!((e.field, e.reason), ("name", reason), "{bad:?}");
            assert!(e.message.starts_with("the VM name"), "{}", e.message);
            assert!(!e.message.contains("container"), "{}", e.message);
            let c = ShortName::parse_new(bad).unwrap_err();
            assert!(c.message.starts_with("the container name"), "{}", c.message);
        }
        assert_eq!(
            ShortName::parse_new_vm("ubuntu-1").unwrap().as_str(),
            "ubuntu-1"
        );
    }

    #[test]
    fn short_names_are_dns_labels() {
        for ok in ["web", "a", "my-app-2", &"a".repeat(63)] {
            ShortName::parse(ok).unwrap();
        }
        for bad in [
            "",
            "-web",
            "web-",
            "Web",
            "we_b",
            "we.b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert_eq!(ShortName::parse(bad).unwrap_err().field, "name", "{bad:?}");
        }
    }

    #[test]
    fn full_name_prefixes_owner_and_fits_63() {
        let n = ContainerName::new(&user("alice"), &ShortName::parse("web").unwrap()).unwrap();
        assert_eq!(n.as_str(), "alice-web");
        let long = ShortName::parse(&"a".repeat(58)).unwrap();
        assert!(ContainerName::new(&user("alice"), &long).is_err());
        let fits = ShortName::parse(&"a".repeat(57)).unwrap();
        assert_eq!(
            ContainerName::new(&user("alice"), &fits)
                .unwrap()
                .as_str()
                .len(),
            63
        );
    }

    #[test]
    fn keys_share_full_names_but_not_identities() {
        let web = ShortName::parse("web").unwrap();
        let c_web = ShortName::parse("c-web").unwrap();
        let a = ContainerKey::new(&user("ab-c"), &web).unwrap();
        let b = ContainerKey::new(&user("ab"), &c_web).unwrap();
        assert_eq!(a.full_name(), b.full_name());
        assert_ne!(a, b);
        // A full name is read as one owner's.
        assert_eq!(ContainerKey::of_full_name(&user("ab"), "ab-c-web"), Some(b));
        assert_eq!(
            ContainerKey::of_full_name(&user("ab-c"), "ab-c-web"),
            Some(a)
        );
        assert_eq!(ContainerKey::of_full_name(&user("ab"), "abc-web"), None);
        assert_eq!(ContainerKey::of_full_name(&user("ab"), "ab-"), None);
        assert_eq!(ContainerKey::of_full_name(&user("ab"), "ab-c.web"), None);
        assert!(
            ContainerKey::new(&user("alice"), &ShortName::parse(&"a".repeat(58)).unwrap()).is_err()
        );
    }

    #[test]
    fn env_forms() {
        let v = parse_env_list("A=1 B_2=x=y C=".split_whitespace()).unwrap();
        assert_eq!(
            v.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["A=1", "B_2=x=y", "C="]
        );
        assert_eq!(
            EnvVar::parse("MSG=hello world").unwrap().value(),
            "hello world"
        );
        for bad in ["=value", "KEY", "1A=x", "A-B=x", "A\0=x", "A=\0"] {
            assert_eq!(EnvVar::parse(bad).unwrap_err().field, "env", "{bad:?}");
        }
        assert!(parse_env_list(["A=1", "A=2"]).is_err());
        let many: Vec<String> = (0..=MAX_ENV_VARS).map(|i| format!("V{i}=1")).collect();
        assert!(parse_env_list(many.iter().map(String::as_str)).is_err());
    }

    #[test]
    fn env_strings_are_read_as_a_shell_reads_them() {
        let vars = |s: &str| -> Vec<String> {
            parse_env_string(s)
                .unwrap_or_else(|e| panic!("{s:?}: {e}"))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(vars("A=1  B_2=x=y\tC="), ["A=1", "B_2=x=y", "C="]);
        assert!(vars("  ").is_empty());
        assert_eq!(vars("MSG=\"hello world\""), ["MSG=hello world"]);
        assert_eq!(vars("MSG='hello world' N=2"), ["MSG=hello world", "N=2"]);
        assert_eq!(vars("\"MSG=a b\""), ["MSG=a b"]);
        assert_eq!(vars("A=x\\ y"), ["A=x y"]);
        assert_eq!(vars("A='it'\\''s'"), ["A=it's"]);
        assert_eq!(
            vars("A=\"say \\\"hi\\\" \\\\ \\$HOME \\n\""),
            ["A=say \"hi\" \\ $HOME \\n"]
        );
        assert_eq!(vars("A='$HOME \\n \"'"), ["A=$HOME \\n \""]);
        assert_eq!(vars("A= B=\"\""), ["A=", "B="]);
        assert_eq!(vars("A=日本語\u{3000}B=x"), ["A=日本語", "B=x"]);
        assert_eq!(shell_words("A=\"open"), Err(QuotingError::Unclosed('"')));
        assert_eq!(shell_words("A='open"), Err(QuotingError::Unclosed('\'')));
        assert_eq!(shell_words("A=\"x\\"), Err(QuotingError::Unclosed('"')));
        assert_eq!(shell_words("A=x\\"), Err(QuotingError::TrailingBackslash));
        assert_eq!(shell_words("\"\" ''").unwrap(), ["", ""]);
        for bad in [
            "A=\"open", "A='open", "A=x\\", "\"\"", "KEY", "A=1 A=2", "1A=x",
        ] {
            let e = parse_env_string(bad).unwrap_err();
            assert_eq!(e.field, "env", "{bad:?}");
        }
        assert!(parse_env_string("A=\"open")
            .unwrap_err()
            .message
            .contains("never closed"));
    }

    #[test]
    fn ports() {
        assert_eq!(GuestPort::parse("80").unwrap().get(), 80);
        assert_eq!(GuestPort::new(65535).unwrap().get(), 65535);
        for bad in ["0", "65536", "-1", "+80", "http", "", "8 0", "99999999999"] {
            assert!(GuestPort::parse(bad).is_err(), "{bad:?}");
        }
        assert!(GuestPort::new(0).is_err());
        assert!(GuestPort::new(70000).is_err());
        let p = |n| GuestPort::new(n).unwrap();
        assert!(parse_port_list([p(80), p(80)], 8).is_err());
        assert!(parse_port_list([p(1), p(2), p(3)], 2).is_err());
        assert_eq!(parse_port_list([p(1), p(2)], 2).unwrap().len(), 2);
    }
}
