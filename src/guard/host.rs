//! [`AllowedHostsLayer`]: the request's `Host` must be one of the gateway's own names.

use std::sync::Arc;

use http::{Request, Response, StatusCode, header};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeader};
use tower_layer::Layer;

use super::refusal;

/// The host names a gateway answers to, for [`AllowedHostsLayer`]: `localhost` allows
/// `localhost` on any port, `localhost:8080` on that port only; compared without regard to
/// case. Cloning shares the list.
///
/// ```
/// use wsfirst::guard::AllowedHosts;
///
/// let hosts = AllowedHosts::new(["gateway.internal", "127.0.0.1:8080"]);
/// assert!(hosts.allows("Gateway.Internal:443"));
/// assert!(hosts.allows("127.0.0.1:8080"));
/// assert!(!hosts.allows("127.0.0.1:9090"));
/// assert!(!hosts.allows("rebound.attacker.example"));
/// ```
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    hosts: Arc<[String]>,
}

impl AllowedHosts {
    /// These names (with or without a port).
    pub fn new<I, H>(hosts: I) -> Self
    where
        I: IntoIterator<Item = H>,
        H: AsRef<str>,
    {
        Self {
            hosts: hosts
                .into_iter()
                .map(|host| host.as_ref().trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether `host` (a `Host` header's value or a URI's authority) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim();
        let name = strip_port(host);
        self.hosts.iter().any(|allowed| {
            if strip_port(allowed).len() == allowed.len() {
                allowed.eq_ignore_ascii_case(name)
            } else {
                allowed.eq_ignore_ascii_case(host)
            }
        })
    }
}

/// `host` without its `:port` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon)
            if !host[colon..].contains(']')
                && host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..colon]
        }
        _ => host,
    }
}

/// Answers `421 Misdirected Request` (code `host_not_allowed`) to a request whose `Host` (or,
/// in HTTP/2, `:authority`) is missing or not in the [`AllowedHosts`]: a page on a DNS name
/// that an attacker points at the gateway's address (DNS rebinding) names that name. Optional:
/// mount it when the gateway is reached under known names. Wraps services that answer with
/// axum's body. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct AllowedHostsLayer {
    hosts: AllowedHosts,
}

impl AllowedHostsLayer {
    /// A layer that allows these names; see [`AllowedHosts`].
    pub fn new<I, H>(hosts: I) -> Self
    where
        I: IntoIterator<Item = H>,
        H: AsRef<str>,
    {
        Self::from_hosts(AllowedHosts::new(hosts))
    }

    /// A layer that allows `hosts`.
    pub fn from_hosts(hosts: AllowedHosts) -> Self {
        Self { hosts }
    }
}

impl<S> Layer<S> for AllowedHostsLayer {
    type Service = ValidateRequestHeader<S, AllowedHosts>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateRequestHeader::custom(inner, self.hosts.clone())
    }
}

impl<B> ValidateRequest<B> for AllowedHosts {
    type ResponseBody = axum::body::Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<axum::body::Body>> {
        let host = match request.headers().get(header::HOST) {
            Some(value) => value.to_str().ok(),
            None => request
                .uri()
                .authority()
                .map(|authority| authority.as_str()),
        };
        if host.is_some_and(|host| self.allows(host)) {
            return Ok(());
        }
        Err(refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "this gateway does not answer to that host name",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ipv6_literals() {
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("localhost"), "localhost");
        let hosts = AllowedHosts::new(["[::1]", "localhost"]);
        assert!(hosts.allows("[::1]:8080"));
        assert!(hosts.allows("LOCALHOST"));
        assert!(!hosts.allows("localhost.attacker.example"));
        assert!(!hosts.allows(""));
    }

    #[test]
    fn a_missing_host_is_refused() {
        let mut check = AllowedHosts::new(["localhost"]);
        let mut request = Request::get("/").body(()).unwrap();
        let refused = check.validate(&mut request).unwrap_err();
        assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST);
        let mut request = Request::get("http://localhost:8080/").body(()).unwrap();
        assert!(check.validate(&mut request).is_ok());
    }
}
