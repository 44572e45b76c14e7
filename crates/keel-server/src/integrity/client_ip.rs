//! The client's IP address, for per-IP rate limits: the socket peer, or, when the peer is
//! a trusted proxy, the nearest untrusted hop of `X-Forwarded-For`.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Proxies whose `X-Forwarded-For` is believed (`trusted_proxies`: IPs or CIDR networks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8, 127.0.0.1, ::1`; empty text trusts no proxy.
    pub fn parse(text: &str) -> Result<TrustedProxies, &'static str> {
        let mut nets = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = match part.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => part
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| "comma-separated IP addresses or CIDR networks")?,
            };
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that came from `peer` with these headers: starting at
    /// the peer, step left through `X-Forwarded-For` while the current hop is trusted.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// The rate-limit key of an address: IPv4 whole, IPv6 by its /64 (one subscriber's block).
pub fn ip_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            proxies.client_ip(ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").unwrap();
        // A client-supplied (spoofed) first entry is never reached past an untrusted hop.
        let headers = forwarded(&["1.1.1.1, 203.0.113.9", "192.0.2.1"]);
        assert_eq!(
            proxies.client_ip(ip("10.1.2.3"), &headers),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn only_trusted_hops_means_the_leftmost_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let headers = forwarded(&["10.0.0.7, 10.0.0.8"]);
        assert_eq!(proxies.client_ip(ip("10.0.0.9"), &headers), ip("10.0.0.7"));
        let empty = HeaderMap::new();
        assert_eq!(proxies.client_ip(ip("10.0.0.9"), &empty), ip("10.0.0.9"));
    }

    #[test]
    fn a_garbled_hop_stops_the_walk_and_ports_and_brackets_are_understood() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let headers = forwarded(&["203.0.113.1, not-an-ip"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &headers),
            ip("127.0.0.1")
        );
        let headers = forwarded(&["[2001:db8::1]:443"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &headers),
            ip("2001:db8::1")
        );
        let headers = forwarded(&["203.0.113.1:8080"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &headers),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let headers = forwarded(&["203.0.113.1"]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), &headers),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn bad_proxy_lists_are_refused() {
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
        let parsed = TrustedProxies::parse("10.1.2.3/8").unwrap();
        assert_eq!(parsed, TrustedProxies::parse("10.0.0.0/8").unwrap());
    }

    #[test]
    fn ipv6_addresses_share_a_key_per_64() {
        assert_eq!(ip_key(ip("203.0.113.5")), "203.0.113.5");
        assert_eq!(ip_key(ip("::ffff:203.0.113.5")), "203.0.113.5");
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(ip_key(ip("2001:db8:1:2:bbbb::9")), "2001:db8:1:2::/64");
        assert_ne!(ip_key(ip("2001:db8:1:3::1")), ip_key(ip("2001:db8:1:2::1")));
    }
}
