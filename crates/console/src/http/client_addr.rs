//! The client's address of a request, for the per-address login limit.
//!
//! The client's address is the TCP peer, unless the peer is one of the configured
//! `trusted_proxies`: then it is the right-most address of `Forwarded` (or
//! `X-Forwarded-For`) that is not itself a trusted proxy. A client cannot choose its own
//! address by sending the header, since only the proxies' additions are believed.

use super::Http;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// The client address of a request, when the server recorded it: the peer, or what the
/// trusted proxies say.
pub(crate) struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<Http> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, http: &Http) -> Result<Self, Infallible> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| client_address(c.0.ip(), &parts.headers, &http.config.trusted_proxies)),
        ))
    }
}

/// The client's address: the peer unless it is a trusted proxy, then the right-most
/// forwarded address that is not a trusted proxy. A forwarded entry that is not an
/// address (`unknown`, an obfuscated name) ends the walk at the proxy that added it.
pub(crate) fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(a));
    let mut current = peer.to_canonical();
    if !is_trusted(&current) {
        return current;
    }
    let chain = forwarded_chain(headers);
    for entry in chain.iter().rev() {
        match parse_forwarded_addr(entry) {
            Some(a) => current = a.to_canonical(),
            None => break,
        }
        if !is_trusted(&current) {
            break;
        }
    }
    current
}

/// The forwarded addresses in order, first client first: from `Forwarded` when present
/// (RFC 7239 `for=`), else from `X-Forwarded-For`.
fn forwarded_chain(headers: &HeaderMap) -> Vec<String> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .collect()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .map_or_else(String::new, |(_, v)| v.trim().to_string())
            })
            .collect();
    }
    values("x-forwarded-for")
}

/// `10.0.0.1`, `10.0.0.1:4711`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_forwarded_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(a);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(a, _)| a.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_addresses_only_from_trusted_proxies() {
        let trusted = vec![
            crate::config::parse_cidr("10.0.0.0/8").unwrap(),
            crate::config::parse_cidr("192.168.1.1").unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4")]);
        // An untrusted peer's header is ignored.
        assert_eq!(client_address(ip("5.5.5.5"), &xff, &trusted), ip("5.5.5.5"));
        assert_eq!(client_address(ip("5.5.5.5"), &xff, &[]), ip("5.5.5.5"));
        // The right-most untrusted address: what the client put first is not believed.
        assert_eq!(
            client_address(ip("10.0.0.1"), &xff, &trusted),
            ip("1.2.3.4")
        );
        let chain = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "192.168.1.1"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &chain, &trusted),
            ip("1.2.3.4")
        );
        let fwd = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https",
        )]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &fwd, &trusted),
            ip("2001:db8::7")
        );
        let garbage = headers(&[("x-forwarded-for", "1.2.3.4, unknown")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &garbage, &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        let mapped = headers(&[("x-forwarded-for", "::ffff:1.2.3.4")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &mapped, &trusted),
            ip("1.2.3.4")
        );
    }
}
