//! Where the engine may be sent on a user's behalf: registries of pulls, URLs of builds,
//! the GitLab of a CI runner.
//!
//! The engine fetches from the host's own network namespace, so a registry named
//! `127.0.0.1:2375`, `169.254.169.254` or one of the host's own addresses would let a user
//! probe (and read) services that listen only for the host. [`EgressRule::check`] refuses a
//! destination when any address its name resolves to is loopback, link-local, unspecified,
//! multicast or broadcast (also in their IPv4-mapped and other embedded IPv6 forms), one of
//! this machine's interface addresses, or inside one of this machine's container networks,
//! unless an administrator allows the host (or `host:port`) by name
//! (`docker.egress_allowed`, `WM_EGRESS_ALLOWED`).
//!
//! Numeric hosts are read the way browsers and `inet_aton` read them, so `2130706433`,
//! `0x7f.1`, `0177.0.0.1` and `127.1` are all 127.0.0.1.
//!
//! Not defended: a name whose DNS answer changes between this check and the engine's own
//! look-up (DNS rebinding with a very short TTL). Allow-listing by name is the way to admit a
//! registry that really lives on the host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Registry host of Docker Hub, the registry of references without a registry part.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// How long a name may take to resolve before it counts as unresolvable.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the engine may not be sent to an address: what it is, on the host's own network.
/// Its [`Near::code`] is the key by which the console says it (the param `near`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Near {
    Loopback,
    Unspecified,
    LinkLocal,
    Multicast,
    Broadcast,
    OwnAddress,
    ContainerNetwork,
}

impl Near {
    pub const ALL: [Near; 7] = [
        Near::Loopback,
        Near::Unspecified,
        Near::LinkLocal,
        Near::Multicast,
        Near::Broadcast,
        Near::OwnAddress,
        Near::ContainerNetwork,
    ];

    /// Its key: `loopback`, `unspecified`, `link_local`, `multicast`, `broadcast`,
    /// `own_address`, `container_network`.
    pub fn code(self) -> &'static str {
        match self {
            Near::Loopback => "loopback",
            Near::Unspecified => "unspecified",
            Near::LinkLocal => "link_local",
            Near::Multicast => "multicast",
            Near::Broadcast => "broadcast",
            Near::OwnAddress => "own_address",
            Near::ContainerNetwork => "container_network",
        }
    }
}

impl std::fmt::Display for Near {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Near::Loopback => "it is the host itself (loopback)",
            Near::Unspecified => "it is the unspecified address",
            Near::LinkLocal => "it is a link-local address",
            Near::Multicast => "it is a multicast address",
            Near::Broadcast => "it is the broadcast address",
            Near::OwnAddress => "it is one of this host's own addresses",
            Near::ContainerNetwork => "it is on one of this host's container networks",
        })
    }
}

/// Why a destination is refused.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The host resolves to an address the engine must not be sent to.
    #[error("{host} is not allowed: {reason}")]
    Forbidden { host: String, reason: Near },
    /// The host, port or URL cannot be read.
    #[error("invalid address: {0}")]
    Invalid(String),
    /// The name has no address.
    #[error("{0} could not be resolved")]
    Unresolvable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowed {
    host: String,
    port: Option<u16>,
}

/// The names an administrator allows even though they lead to the host's own network.
#[derive(Debug, Clone, Default)]
pub struct EgressRule {
    allowed: Vec<Allowed>,
}

impl EgressRule {
    /// Entries are `host` (any port) or `host:port`; an IPv6 literal is written in brackets,
    /// `[::1]:5000`. Entries that cannot be read are ignored (the settings check them first,
    /// see [`EgressRule::parse_entry`]).
    pub fn new(allowed: Vec<String>) -> Self {
        Self {
            allowed: allowed
                .iter()
                .filter_map(|e| Self::parse_entry(e).ok())
                .collect(),
        }
    }

    /// Checks one entry of the allow list.
    pub fn validate_entry(entry: &str) -> Result<(), String> {
        Self::parse_entry(entry).map(|_| ())
    }

    fn parse_entry(entry: &str) -> Result<Allowed, String> {
        let (host, port) = split_host_port(entry.trim())
            .ok_or_else(|| format!("{entry:?} must be a host or host:port"))?;
        if host.is_empty() {
            return Err(format!("{entry:?} must name a host"));
        }
        Ok(Allowed {
            host: normalize_host(host),
            port,
        })
    }

    /// Whether `host` (and `port`) is named in the allow list.
    pub fn is_allowed_by_name(&self, host: &str, port: u16) -> bool {
        let host = normalize_host(host);
        self.allowed
            .iter()
            .any(|a| a.host == host && a.port.is_none_or(|p| p == port))
    }

    /// Checks that the engine may be sent to `host` at `port`. `host` is a name, an IPv4
    /// address in any of its numeric forms, or an IPv6 address (brackets optional).
    pub async fn check(&self, host: &str, port: u16) -> Result<(), EgressError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if bare.is_empty() || bare.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EgressError::Invalid(format!("{host:?} is not a host name")));
        }
        if port == 0 {
            return Err(EgressError::Invalid(format!("{host}: port 0")));
        }
        if self.is_allowed_by_name(bare, port) {
            return Ok(());
        }
        let forbidden = |reason: Near| EgressError::Forbidden {
            host: host.to_string(),
            reason,
        };
        let host_net = HostNetwork::read();
        if let Some(ip) = literal_ip(bare)? {
            return match host_net.classify(ip) {
                Some(reason) => Err(forbidden(reason)),
                None => Ok(()),
            };
        }
        let name = normalize_host(bare);
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(EgressError::Invalid(format!("{host:?} is not a host name")));
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return Err(forbidden(Near::Loopback));
        }
        let lookup = tokio::net::lookup_host((name.as_str(), port));
        let addrs: Vec<IpAddr> = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
            .await
            .map_err(|_| EgressError::Unresolvable(host.to_string()))?
            .map_err(|_| EgressError::Unresolvable(host.to_string()))?
            .map(|a| a.ip())
            .collect();
        if addrs.is_empty() {
            return Err(EgressError::Unresolvable(host.to_string()));
        }
        for ip in addrs {
            if let Some(reason) = host_net.classify(ip) {
                return Err(forbidden(reason));
            }
        }
        Ok(())
    }

    /// Checks the host of an `http://`, `https://`, `git://`, `ssh://` URL or an scp-like
    /// git address (`git@host:group/project.git`).
    pub async fn check_url(&self, url: &str) -> Result<(), EgressError> {
        let (host, port) = url_host_port(url)?;
        self.check(&host, port).await
    }

    /// Checks the registry an image reference would be pulled from (`alpine` is Docker
    /// Hub; `registry.example.org:5000/team/app:1` is that registry).
    pub async fn check_image(&self, reference: &str) -> Result<(), EgressError> {
        let (host, port) = registry_of(reference)?;
        self.check(&host, port).await
    }

    /// [`EgressRule::check_image`] for a pull: Docker Hub, which no user names, is left to
    /// the engine (and its configured mirrors) when this machine cannot resolve it.
    pub async fn check_pull(&self, reference: &str) -> Result<(), EgressError> {
        let (host, port) = registry_of(reference)?;
        match self.check(&host, port).await {
            Err(EgressError::Unresolvable(_)) if host == DOCKER_HUB => Ok(()),
            r => r,
        }
    }
}

/// The registry host and port of an image reference, as the engine reads it: the first
/// path component is a registry when it has a `.` or `:` or is `localhost`. Without a port
/// the registry is reached over HTTPS (443).
pub fn registry_of(reference: &str) -> Result<(String, u16), EgressError> {
    let invalid = || EgressError::Invalid(format!("{reference:?} is not an image reference"));
    let reference = reference.trim();
    if reference.is_empty() || reference.chars().any(|c| c.is_whitespace()) {
        return Err(invalid());
    }
    let Some((first, _rest)) = reference.split_once('/') else {
        return Ok((DOCKER_HUB.into(), 443));
    };
    let is_domain = first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase());
    if !is_domain {
        return Ok((DOCKER_HUB.into(), 443));
    }
    if matches!(first, "docker.io" | "index.docker.io") {
        return Ok((DOCKER_HUB.into(), 443));
    }
    let (host, port) = split_host_port(first).ok_or_else(invalid)?;
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host.to_string(), port.unwrap_or(443)))
}

/// Host and port of a URL the engine or a runner would fetch.
pub fn url_host_port(url: &str) -> Result<(String, u16), EgressError> {
    let invalid = |why: &str| EgressError::Invalid(format!("{url:?}: {why}"));
    let url = url.trim();
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("contains spaces or control characters"));
    }
    let (authority, default_port) = if let Some((scheme, rest)) = url.split_once("://") {
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            "git" => 9418,
            "ssh" | "git+ssh" | "ssh+git" => 22,
            _ => return Err(invalid("only http, https, git and ssh URLs are allowed")),
        };
        // Browsers and most clients end the authority at any of these.
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        (&rest[..end], default_port)
    } else {
        // scp-like: [user@]host:path (a colon before any slash).
        let (authority, _path) = url
            .split_once(':')
            .filter(|(a, _)| !a.contains('/') && !a.is_empty())
            .ok_or_else(|| invalid("not a URL"))?;
        if authority.starts_with('[') {
            return Err(invalid("not a URL"));
        }
        (authority, 22)
    };
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_host_port(host_port).ok_or_else(|| invalid("bad host or port"))?;
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    Ok((host.to_string(), port.unwrap_or(default_port)))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; a bare IPv6 address (several colons) is a host.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(parse_port(p.strip_prefix(':')?)?))),
        };
    }
    match s.matches(':').count() {
        0 => Some((s, None)),
        1 => {
            let (h, p) = s.split_once(':')?;
            Some((h, Some(parse_port(p)?)))
        }
        _ => s.parse::<Ipv6Addr>().ok().map(|_| (s, None)),
    }
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok().filter(|&p| p > 0)
}

fn normalize_host(h: &str) -> String {
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// The address a host names literally, if it is numeric. A host that looks numeric but is
/// not a valid address (`256.0.0.1`, `1.2.3.4.5`) is invalid rather than a name.
fn literal_ip(host: &str) -> Result<Option<IpAddr>, EgressError> {
    if host.contains(':') {
        return host
            .split('%')
            .next()
            .and_then(|h| h.parse::<Ipv6Addr>().ok())
            .map(|ip| Some(IpAddr::V6(ip)))
            .ok_or_else(|| EgressError::Invalid(format!("{host:?} is not an IPv6 address")));
    }
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    let last = trimmed.rsplit('.').next().unwrap_or("");
    let looks_numeric = !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || ((last.starts_with("0x") || last.starts_with("0X"))
                && last[2..].bytes().all(|b| b.is_ascii_hexdigit())));
    if !looks_numeric {
        return Ok(None);
    }
    parse_ipv4_loose(trimmed)
        .map(|ip| Some(IpAddr::V4(ip)))
        .ok_or_else(|| EgressError::Invalid(format!("{host:?} is not an IPv4 address")))
}

/// An IPv4 address in any form `inet_aton` and browsers accept: one to four parts, each
/// decimal, hexadecimal (`0x`) or octal (leading `0`), the last filling the remaining bytes.
pub fn parse_ipv4_loose(s: &str) -> Option<Ipv4Addr> {
    let s = s.strip_suffix('.').unwrap_or(s);
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or(p.strip_prefix("0X")) {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        let n = if digits.is_empty() {
            if radix == 16 {
                0 // "0x" alone is zero for browsers
            } else {
                return None;
            }
        } else {
            u64::from_str_radix(digits, radix).ok()?
        };
        nums.push(n);
    }
    let (last, init) = nums.split_last()?;
    if init.iter().any(|&n| n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - init.len() as u32);
    if *last >= 1u64 << rest_bits {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in init.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from((v | last) as u32))
}

/// This machine's own addresses and container networks, read from `/proc` without sending
/// anything.
#[derive(Debug, Default, Clone)]
pub struct HostNetwork {
    own: Vec<IpAddr>,
    /// IPv4 networks (address, mask) routed to the engine's bridges (`docker0`, `br-*`).
    bridges: Vec<(u32, u32)>,
}

impl HostNetwork {
    pub fn read() -> Self {
        let mut own: Vec<IpAddr> = std::fs::read_to_string("/proc/net/fib_trie")
            .map(|s| parse_fib_trie(&s))
            .unwrap_or_default()
            .into_iter()
            .map(IpAddr::V4)
            .collect();
        own.extend(
            std::fs::read_to_string("/proc/net/if_inet6")
                .map(|s| parse_if_inet6(&s))
                .unwrap_or_default()
                .into_iter()
                .map(IpAddr::V6),
        );
        let bridges = std::fs::read_to_string("/proc/net/route")
            .map(|s| parse_bridge_routes(&s))
            .unwrap_or_default();
        Self { own, bridges }
    }

    /// Why the engine must not be sent to `ip`, or `None` if it may.
    pub fn classify(&self, ip: IpAddr) -> Option<Near> {
        if let Some(reason) = classify_special(ip) {
            return Some(reason);
        }
        let ip = canonical(ip);
        if self.own.iter().any(|o| canonical(*o) == ip) {
            return Some(Near::OwnAddress);
        }
        if let IpAddr::V4(v4) = ip {
            if self.on_bridge(v4) {
                return Some(Near::ContainerNetwork);
            }
        }
        None
    }

    fn on_bridge(&self, v4: Ipv4Addr) -> bool {
        let v = u32::from(v4);
        self.bridges.iter().any(|&(net, mask)| v & mask == net)
    }

    /// The first of this machine's own IPv4 addresses that other machines could reach it
    /// at: not loopback, link-local or the like, nor on one of its container networks.
    pub fn reachable_v4(&self) -> Option<Ipv4Addr> {
        self.own.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) if classify_special(*ip).is_none() && !self.on_bridge(*v4) => Some(*v4),
            _ => None,
        })
    }
}

/// An IPv6 address that embeds an IPv4 one, as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`) address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..5] == [0; 5] && (s[5] == 0xffff || (s[5] == 0 && u32::from(tail) > 1)) {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// Addresses that are never a registry, whatever the host: loopback, link-local,
/// unspecified, "this network", multicast, broadcast.
pub fn classify_special(ip: IpAddr) -> Option<Near> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return classify_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some(Near::Loopback)
            } else if v6.is_unspecified() {
                Some(Near::Unspecified)
            } else if first & 0xffc0 == 0xfe80 {
                Some(Near::LinkLocal)
            } else if v6.is_multicast() {
                Some(Near::Multicast)
            } else {
                None
            }
        }
    }
}

fn classify_v4(v4: Ipv4Addr) -> Option<Near> {
    if v4.is_loopback() {
        Some(Near::Loopback)
    } else if v4.octets()[0] == 0 {
        Some(Near::Unspecified)
    } else if v4.is_link_local() {
        Some(Near::LinkLocal)
    } else if v4.is_multicast() {
        Some(Near::Multicast)
    } else if v4.is_broadcast() {
        Some(Near::Broadcast)
    } else {
        None
    }
}

/// The local (`/32 host LOCAL`) addresses of `/proc/net/fib_trie`.
fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(ip) = t.strip_prefix("|-- ") {
            last = ip.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(ip) = last {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

/// The addresses of `/proc/net/if_inet6` (32 hex digits first on each line).
fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(Ipv6Addr::from)
        .collect()
}

/// The IPv4 networks routed to the engine's bridges, from `/proc/net/route` (fields in
/// host byte order, written as hex of the little-endian value).
fn parse_bridge_routes(text: &str) -> Vec<(u32, u32)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let iface = *f.first()?;
            if !(iface.starts_with("docker") || iface.starts_with("br-")) {
                return None;
            }
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?.swap_bytes();
            (mask != 0).then_some((dest & mask, mask))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allowed: &[&str]) -> EgressRule {
        EgressRule::new(allowed.iter().map(|s| s.to_string()).collect())
    }

    fn forbidden(r: Result<(), EgressError>) -> bool {
        matches!(r, Err(EgressError::Forbidden { .. }))
    }

    #[test]
    fn numeric_ipv4_forms_are_read_like_browsers() {
        let lo = Ipv4Addr::new(127, 0, 0, 1);
        for form in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0x7f.1",
            "127.1",
            "127.0.1",
            "0177.0.0.1",
            "0177.1",
            "017700000001",
            "127.0.0.1.",
            "0x7F.0.0.0x1",
        ] {
            assert_eq!(parse_ipv4_loose(form), Some(lo), "{form}");
        }
        assert_eq!(
            parse_ipv4_loose("169.254.43518"),
            Some(Ipv4Addr::new(169, 254, 169, 254))
        );
        for bad in ["256.0.0.1", "1.2.3.4.5", "4294967296", "08.0.0.1", "1..1"] {
            assert_eq!(parse_ipv4_loose(bad), None, "{bad}");
        }
    }

    #[test]
    fn special_addresses_are_classified_in_every_form() {
        let net = HostNetwork::default();
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "febf::1",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "64:ff9b::127.0.0.1",
            "2002:7f00:1::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(net.classify(ip).is_some(), "{ip} should be refused");
        }
        for ip in ["93.184.216.34", "10.1.2.3", "2001:db8::1", "::ffff:8.8.8.8"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(net.classify(ip), None, "{ip} should pass");
        }
    }

    #[test]
    fn own_addresses_and_bridges_are_read_from_proc_text() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.2.0/24 2 0 2\n        |-- 10.0.2.0\n           /24 link UNICAST\n        |-- 10.0.2.15\n           /32 host LOCAL\n";
        assert_eq!(parse_fib_trie(fib), vec![Ipv4Addr::new(10, 0, 2, 15)]);
        let v6 = "fe800000000000000000000000000001 02 40 20 80 eth0\n20010db8000000000000000000000005 02 40 00 80 eth0\n";
        assert_eq!(
            parse_if_inet6(v6),
            vec![
                "fe80::1".parse::<Ipv6Addr>().unwrap(),
                "2001:db8::5".parse().unwrap()
            ]
        );
        let route = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\neth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\ndocker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let bridges = parse_bridge_routes(route);
        assert_eq!(bridges, vec![(0xAC11_0000, 0xFFFF_0000)]);
        let net = HostNetwork {
            own: vec!["10.0.2.15".parse().unwrap(), "2001:db8::5".parse().unwrap()],
            bridges,
        };
        for ip in ["10.0.2.15", "::ffff:10.0.2.15", "2001:db8::5", "172.17.0.3"] {
            assert!(net.classify(ip.parse().unwrap()).is_some(), "{ip}");
        }
        assert_eq!(net.classify("10.0.2.16".parse().unwrap()), None);
        assert_eq!(net.reachable_v4(), Some(Ipv4Addr::new(10, 0, 2, 15)));
        let only_local = HostNetwork {
            own: vec![
                "127.0.0.1".parse().unwrap(),
                "169.254.1.1".parse().unwrap(),
                "172.17.0.1".parse().unwrap(),
                "2001:db8::5".parse().unwrap(),
            ],
            bridges: net.bridges.clone(),
        };
        assert_eq!(only_local.reachable_v4(), None);
    }

    #[test]
    fn this_machines_addresses_are_found() {
        let net = HostNetwork::read();
        assert!(net.own.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[tokio::test]
    async fn loopback_in_every_spelling_is_refused() {
        let r = rule(&[]);
        for host in [
            "127.0.0.1",
            "2130706433",
            "0x7f.1",
            "127.1",
            "0177.0.0.1",
            "[::1]",
            "::1",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "localhost",
            "LOCALHOST.",
            "registry.localhost",
            "169.254.169.254",
            "[fe80::1]",
            "0.0.0.0",
            "0",
        ] {
            assert!(forbidden(r.check(host, 5000).await), "{host}");
        }
        assert!(matches!(
            r.check("256.1.1.1", 80).await,
            Err(EgressError::Invalid(_))
        ));
        assert!(matches!(
            r.check("bad host", 80).await,
            Err(EgressError::Invalid(_))
        ));
        assert!(r.check("93.184.216.34", 443).await.is_ok());
    }

    #[tokio::test]
    async fn localhost_resolves_only_to_refused_addresses() {
        // Refused by name before any look-up; and what the resolver makes of it is refused
        // too, should the name ever reach it.
        let addrs: Vec<IpAddr> = tokio::net::lookup_host(("localhost", 80))
            .await
            .unwrap()
            .map(|a| a.ip())
            .collect();
        assert!(!addrs.is_empty());
        let net = HostNetwork::read();
        for ip in addrs {
            assert!(net.classify(ip).is_some(), "localhost -> {ip}");
        }
        assert!(forbidden(rule(&[]).check("localhost", 80).await));
        assert!(rule(&["localhost:5000"])
            .check("localhost", 5000)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn names_are_resolved_with_the_system_resolver() {
        // `localhost` is refused by name; `ip6-localhost` and the machine's own host name
        // come from /etc/hosts and must be refused for what they resolve to.
        let r = rule(&[]);
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let mut tried = 0;
        for line in hosts.lines() {
            let mut f = line.split('#').next().unwrap_or("").split_whitespace();
            let Some(addr) = f.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            if !addr.is_loopback() {
                continue;
            }
            for name in f.filter(|n| !n.contains("localhost")) {
                tried += 1;
                assert!(forbidden(r.check(name, 80).await), "{name} -> {addr}");
            }
        }
        // The machine's own host name resolves to one of its own addresses.
        let own = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let own = own.trim();
        if !own.is_empty() && tokio::net::lookup_host((own, 80)).await.is_ok() {
            tried += 1;
            assert!(forbidden(r.check(own, 80).await), "{own}");
        }
        assert!(tried > 0, "no name on this machine resolves to itself");
        assert!(matches!(
            r.check("no-such-host.invalid", 80).await,
            Err(EgressError::Unresolvable(_))
        ));
    }

    #[tokio::test]
    async fn the_allow_list_admits_by_name_and_port() {
        let r = rule(&["127.0.0.1:5000", "Registry.Local", "[::1]:6000"]);
        assert!(r.check("127.0.0.1", 5000).await.is_ok());
        assert!(forbidden(r.check("127.0.0.1", 5001).await));
        // Allowed by name means that name: another spelling is not on the list.
        assert!(forbidden(r.check("127.1", 5000).await));
        assert!(r.check("registry.local", 1234).await.is_ok());
        assert!(r.check("registry.local.", 443).await.is_ok());
        assert!(r.check("[::1]", 6000).await.is_ok());
        assert!(r.check("::1", 6000).await.is_ok());
        assert!(forbidden(r.check("[::1]", 6001).await));
        assert!(EgressRule::validate_entry("host:99999").is_err());
        assert!(EgressRule::validate_entry("host:").is_err());
        assert!(EgressRule::validate_entry("[::1]").is_ok());
    }

    #[tokio::test]
    async fn urls_and_references_name_their_host() {
        let r = rule(&["127.0.0.1:8929"]);
        for url in [
            "http://127.0.0.1/",
            "https://localhost:8443/x",
            "http://[::1]:80/",
            "http://[::ffff:127.0.0.1]/",
            "http://user:pw@169.254.169.254/latest",
            "http://2130706433/",
            "http://0x7f.1:8080/",
            "git://127.1/repo.git",
            "ssh://git@[::1]/repo.git",
            "git@127.0.0.1:group/repo.git",
            "http://127.0.0.1\\@example.org/",
        ] {
            assert!(forbidden(r.check_url(url).await), "{url}");
        }
        assert!(r.check_url("http://127.0.0.1:8929/").await.is_ok());
        for bad in [
            "ftp://example.org/",
            "file:///etc/passwd",
            "/just/a/path",
            "",
        ] {
            assert!(
                matches!(r.check_url(bad).await, Err(EgressError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(registry_of("alpine").unwrap(), (DOCKER_HUB.into(), 443));
        assert_eq!(
            registry_of("library/alpine:3").unwrap(),
            (DOCKER_HUB.into(), 443)
        );
        assert_eq!(
            registry_of("docker.io/library/alpine").unwrap(),
            (DOCKER_HUB.into(), 443)
        );
        assert_eq!(
            registry_of("reg.example.org:5000/a/b:1").unwrap(),
            ("reg.example.org".into(), 5000)
        );
        assert_eq!(registry_of("[::1]:5000/x").unwrap(), ("::1".into(), 5000));
        assert!(forbidden(r.check_image("localhost:5000/x").await));
        assert!(forbidden(r.check_image("2130706433:5000/x").await));
        assert!(forbidden(r.check_image("[::ffff:127.0.0.1]:5000/x").await));
        assert!(r.check_image("127.0.0.1:8929/x:1").await.is_ok());
    }
}
