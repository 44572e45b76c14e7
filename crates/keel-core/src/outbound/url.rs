//! Which URLs an endpoint may have: absolute `http` or `https`, with a host, no
//! credentials, and (unless the operator allows them) no loopback, private, link-local or
//! otherwise internal address, so an endpoint cannot be pointed at Keel's own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute http(s) URL with a host, or too long.
    #[error(
        "url must be an absolute http:// or https:// URL with a host, at most 2048 characters"
    )]
    Malformed,
    /// Has `user:password@`.
    #[error("url must not contain credentials")]
    Credentials,
    /// Names a loopback, private, link-local or internal address or host.
    #[error(
        "url points at a private or internal address; set webhook_allow_private_urls to allow it"
    )]
    Private,
}

/// Checks an endpoint URL. Host names are not resolved here (DNS can change); the literal
/// addresses and `localhost` names are what this refuses.
pub fn check_endpoint_url(url: &str, allow_private: bool) -> Result<(), UrlError> {
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::Malformed);
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(UrlError::Malformed)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    let host = host_of(authority).ok_or(UrlError::Malformed)?;
    if allow_private {
        return Ok(());
    }
    let lower = host.to_ascii_lowercase();
    let internal_name = lower == "localhost"
        || lower.ends_with(".localhost")
        || lower.ends_with(".local")
        || lower.ends_with(".internal");
    let internal_ip = lower.parse::<IpAddr>().is_ok_and(|ip| is_internal(&ip));
    if internal_name || internal_ip {
        return Err(UrlError::Private);
    }
    Ok(())
}

/// The host of `host[:port]` or `[v6]:port`; `None` when empty or the port is not a number.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(port) = port {
        port.parse::<u16>().ok()?;
    }
    (!host.is_empty()).then_some(host)
}

fn is_internal(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(&v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || *v6 == Ipv6Addr::UNSPECIFIED
        }
    }
}

fn internal_v4(v4: &Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_http_and_https_urls_are_accepted() {
        for ok in [
            "https://example.com/hooks",
            "http://example.com:8080/x?y=1",
            "https://93.184.216.34/hook",
            "https://[2606:2800:220:1::]/hook",
        ] {
            assert_eq!(check_endpoint_url(ok, false), Ok(()), "{ok}");
        }
    }

    #[test]
    fn other_schemes_and_malformed_urls_are_refused() {
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://",
            "https:///path",
            "https://example.com:99999/",
            "https://exa mple.com/",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                check_endpoint_url(bad, true),
                Err(UrlError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            check_endpoint_url("https://u:p@example.com/", true),
            Err(UrlError::Credentials)
        );
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        for internal in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.5.4/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://api.internal/",
        ] {
            assert_eq!(
                check_endpoint_url(internal, false),
                Err(UrlError::Private),
                "{internal}"
            );
            assert_eq!(check_endpoint_url(internal, true), Ok(()), "{internal}");
        }
    }
}
