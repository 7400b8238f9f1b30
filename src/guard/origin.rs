//! [`AllowedOrigins`]: which web pages may open a client WebSocket.

use std::sync::Arc;

use http::{HeaderMap, header};

/// The origins (`scheme://host[:port]`, as browsers send them in `Origin`) whose pages may
/// open a client WebSocket besides the gateway's own; empty by default. Compared without
/// regard to case and to a trailing `/`. Cloning shares the list.
///
/// A request without `Origin` (an SDK, a command-line client) is not a browser's and passes;
/// one whose `Origin` names the same host and port as its `Host` passes too (a page served by
/// the gateway itself).
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use wsfirst::guard::AllowedOrigins;
///
/// let origins = AllowedOrigins::new(["https://app.example.com"]);
/// let mut headers = HeaderMap::new();
/// headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
/// assert!(origins.allows(&headers)); // no Origin: not a browser
/// headers.insert("origin", HeaderValue::from_static("https://evil.example"));
/// assert!(!origins.allows(&headers));
/// headers.insert("origin", HeaderValue::from_static("https://APP.example.com/"));
/// assert!(origins.allows(&headers));
/// headers.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
/// assert!(origins.allows(&headers)); // same origin
/// ```
#[derive(Clone, Debug, Default)]
pub struct AllowedOrigins {
    origins: Arc<[String]>,
}

impl AllowedOrigins {
    /// These origins, such as `https://app.example.com`.
    pub fn new<I, O>(origins: I) -> Self
    where
        I: IntoIterator<Item = O>,
        O: AsRef<str>,
    {
        Self {
            origins: origins
                .into_iter()
                .map(|origin| {
                    origin
                        .as_ref()
                        .trim()
                        .trim_end_matches('/')
                        .to_ascii_lowercase()
                })
                .collect(),
        }
    }

    /// Whether a request with these headers may proceed: no `Origin`, the same origin as its
    /// `Host`, or an origin of the list. Several `Origin` values, or one that is not text, are
    /// refused.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let Some(origin) = values.next() else {
            return true;
        };
        if values.next().is_some() {
            return false;
        }
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim().trim_end_matches('/');
        if self
            .origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return true;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok());
        host.is_some_and(|host| same_origin(origin, host))
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host and port of `host` (a `Host`
/// value), default ports filled in from the origin's scheme.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        // Such as `null` (a sandboxed page, a file).
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let with_port = |authority: &str| -> Option<(String, String)> {
        let uri_authority: http::uri::Authority = authority.parse().ok()?;
        let port = uri_authority
            .port_u16()
            .map_or_else(|| default_port.to_owned(), |port| port.to_string());
        Some((uri_authority.host().to_ascii_lowercase(), port))
    };
    match (with_port(authority), with_port(host.trim())) {
        (Some(origin), Some(host)) => origin == host,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_fills_in_default_ports() {
        assert!(same_origin("http://localhost", "localhost:80"));
        assert!(same_origin("https://gw.example", "GW.example"));
        assert!(!same_origin("http://localhost:3000", "localhost:8080"));
        assert!(!same_origin("https://localhost", "localhost:80"));
        assert!(!same_origin("null", "localhost"));
        assert!(!same_origin("http://[::1]:8080", "[::1]:9090"));
        assert!(same_origin("http://[::1]:8080", "[::1]:8080"));
    }

    #[test]
    fn two_origins_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "localhost".parse().unwrap());
        headers.append(header::ORIGIN, "http://localhost".parse().unwrap());
        assert!(AllowedOrigins::default().allows(&headers));
        headers.append(header::ORIGIN, "http://localhost".parse().unwrap());
        assert!(!AllowedOrigins::default().allows(&headers));
    }
}
