//! Small helpers every layer may use: clocks, identifiers, host names.

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix milliseconds now (activity samples).
pub(crate) fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix microseconds now (orders the audit log).
pub(crate) fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Unix seconds as RFC 3339.
pub(crate) fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Unix microseconds as RFC 3339.
pub(crate) fn rfc3339_micros(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t) * 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A random identifier for rows that need one.
pub(crate) fn new_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A host as compared here: lowercase, without IPv6 brackets or a final dot.
pub(crate) fn normalize_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The host of `host[:port]` (or `[v6]:port`), normalized.
pub(crate) fn host_without_port(authority: &str) -> String {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if a.matches(':').count() == 1 {
        a.split(':').next().unwrap_or("")
    } else {
        // No port, or a bare IPv6 address.
        a
    };
    normalize_host(host)
}

/// Whether `host` (as a request names it) is one of the link `addresses`.
pub(crate) fn is_link_address<'a>(
    host: &str,
    mut addresses: impl Iterator<Item = &'a str>,
) -> bool {
    let host = host_without_port(host);
    !host.is_empty() && addresses.any(|a| host_without_port(a) == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_compare_without_port_case_or_brackets() {
        assert_eq!(host_without_port("VM:8080"), "vm");
        assert_eq!(host_without_port("[::1]:80"), "::1");
        assert_eq!(host_without_port("::1"), "::1");
        assert_eq!(host_without_port("192.0.2.2"), "192.0.2.2");
        assert_eq!(host_without_port("wm.example.org.:443"), "wm.example.org");
        let links = ["127.0.0.1", "Blade1"];
        assert!(is_link_address("127.0.0.1:4000", links.into_iter()));
        assert!(is_link_address("blade1", links.into_iter()));
        assert!(!is_link_address("localhost:4000", links.into_iter()));
        assert!(!is_link_address("", links.into_iter()));
    }
}
