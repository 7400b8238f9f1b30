//! Which request headers reach the HTTP upstream.

use http::{
    HeaderMap, HeaderName,
    header::{self, HeaderValue},
};
use wsfirst_core::headers;

/// Which of a request's headers are forwarded.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeaderPolicy {
    /// `Some`: forward only these; `None`: forward all but `deny`.
    pub(crate) allow: Option<Vec<HeaderName>>,
    pub(crate) deny: Vec<HeaderName>,
    pub(crate) fixed: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderPolicy {
    /// The headers to send upstream: the request's allowed end-to-end headers, without `Host`
    /// (the client sets it from the URL), hop-by-hop headers and the headers the `Connection`
    /// header names, plus the fixed headers (which replace request headers of the same name).
    pub(crate) fn forward(&self, incoming: &HeaderMap) -> HeaderMap {
        let named_by_connection: Vec<HeaderName> = incoming
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        let mut forwarded = HeaderMap::with_capacity(incoming.keys_len() + self.fixed.len());
        for (name, value) in incoming {
            let drop = name == header::HOST
                || headers::is_hop_by_hop(name)
                || named_by_connection.contains(name)
                || self.deny.contains(name)
                || self
                    .allow
                    .as_ref()
                    .is_some_and(|allow| !allow.contains(name));
            if !drop {
                forwarded.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &self.fixed {
            forwarded.insert(name.clone(), value.clone());
        }
        forwarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn drops_host_hop_by_hop_and_connection_named_headers() {
        let incoming = headers(&[
            ("host", "gateway.local"),
            ("authorization", "Bearer sk-1"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic abc"),
            ("upgrade", "h2c"),
            ("content-type", "application/json"),
            ("openai-beta", "a"),
            ("openai-beta", "b"),
        ]);
        let forwarded = HeaderPolicy::default().forward(&incoming);
        let names: Vec<&str> = forwarded.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["authorization", "content-type", "openai-beta"]);
        assert_eq!(forwarded.get_all("openai-beta").iter().count(), 2);
    }

    #[test]
    fn allow_deny_and_fixed_headers() {
        let incoming = headers(&[
            ("authorization", "Bearer sk-1"),
            ("x-internal", "secret"),
            ("user-agent", "client/1"),
        ]);
        let deny = HeaderPolicy {
            deny: vec![HeaderName::from_static("x-internal")],
            fixed: vec![(header::USER_AGENT, HeaderValue::from_static("wsfirst"))],
            ..HeaderPolicy::default()
        };
        let forwarded = deny.forward(&incoming);
        assert!(forwarded.get("x-internal").is_none());
        assert_eq!(forwarded["user-agent"], "wsfirst");
        assert_eq!(forwarded.get_all("user-agent").iter().count(), 1);
        let allow = HeaderPolicy {
            allow: Some(vec![header::AUTHORIZATION]),
            ..HeaderPolicy::default()
        };
        let forwarded = allow.forward(&incoming);
        let names: Vec<_> = forwarded.keys().cloned().collect();
        assert_eq!(names, [header::AUTHORIZATION]);
    }
}
