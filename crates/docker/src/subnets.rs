//! Subnets for the per-user networks, from a pool the administrator gives.
//!
//! Docker's default address pools hold about 30 bridge networks, so a host with one
//! network per user runs out at about 30 users. With `network_pool` set, each user
//! network gets the first free `/network_prefix` subnet of the pool instead.

use std::net::Ipv4Addr;

/// An IPv4 network: its first address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IPv4 network like 10.201.0.0/16");
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let base = u32::from(addr);
        if base & !mask(prefix) != 0 {
            return Err(format!(
                "{s:?}: the address has bits set past the /{prefix}"
            ));
        }
        Ok(Self { base, prefix })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn last(&self) -> u32 {
        self.base | !mask(self.prefix)
    }

    fn overlaps(&self, other: &Cidr) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }

    /// The first `/prefix` subnet of `self` that overlaps none of `taken`.
    pub fn first_free(&self, prefix: u8, taken: &[Cidr]) -> Option<Cidr> {
        let size = 1u64 << (32 - u32::from(prefix));
        let count = 1u64 << (u32::from(prefix) - u32::from(self.prefix));
        (0..count)
            .map(|i| Cidr {
                base: self.base + (i * size) as u32,
                prefix,
            })
            .find(|c| !taken.iter().any(|t| t.overlaps(c)))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            Cidr::parse("10.201.0.0/16").unwrap().to_string(),
            "10.201.0.0/16"
        );
        for bad in [
            "10.201.0.1/16",
            "10.201.0.0",
            "10.201.0.0/33",
            "x/8",
            "::1/64",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn first_free_skips_what_overlaps() {
        let pool = Cidr::parse("10.201.0.0/16").unwrap();
        let p = |s| Cidr::parse(s).unwrap();
        assert_eq!(
            pool.first_free(26, &[]).unwrap().to_string(),
            "10.201.0.0/26"
        );
        let taken = [p("10.201.0.0/26"), p("10.201.0.128/25"), p("172.17.0.0/16")];
        assert_eq!(
            pool.first_free(26, &taken).unwrap().to_string(),
            "10.201.0.64/26"
        );
        // A big network elsewhere that covers the pool leaves nothing.
        assert!(pool.first_free(26, &[p("10.0.0.0/8")]).is_none());
        let small = p("10.201.0.0/30");
        assert!(small.first_free(30, &[p("10.201.0.0/31")]).is_none());
    }
}
