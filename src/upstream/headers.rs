//! Which request headers reach the HTTP upstream: the request's [`HeaderPolicy`] (the route's,
//! the one its WebSocket handshake uses), or the default route's.

use http::HeaderMap;
use wsfirst_core::{Transport, headers::HeaderPolicy};
use wsfirst_websocket::WebSocketConfig;

/// The policy of a request without a [`HeaderPolicy`] extension: a default route's, the one
/// of [`WebSocketConfig::default`] (the Responses API's headers).
pub(crate) fn default_policy() -> HeaderPolicy {
    WebSocketConfig::default().headers().clone()
}

/// The headers sent upstream for a request with these `headers` and `extensions`: the request's
/// policy, else `default`, over HTTP. Never `Host` or `Content-Length` (the client sets them from
/// the URL and the body, so a replayed body always matches its length).
pub(crate) fn outgoing(
    headers: &HeaderMap,
    extensions: &http::Extensions,
    default: &HeaderPolicy,
) -> HeaderMap {
    extensions
        .get::<HeaderPolicy>()
        .unwrap_or(default)
        .headers_for(headers, Transport::Http)
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue, header};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_default_forwards_the_responses_headers_and_the_body_s() {
        let incoming = headers(&[
            ("host", "gateway.local"),
            ("authorization", "Bearer sk-1"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("content-length", "2"),
            ("proxy-authorization", "Basic abc"),
            ("upgrade", "h2c"),
            ("cookie", "session=1"),
            ("x-request-id", "42"),
            ("content-type", "application/json"),
            ("openai-beta", "a"),
            ("openai-beta", "b"),
        ]);
        let forwarded = outgoing(&incoming, &http::Extensions::new(), &default_policy());
        let names: Vec<&str> = forwarded.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["authorization", "openai-beta", "content-type"]);
        assert_eq!(forwarded.get_all("openai-beta").iter().count(), 2);
    }

    #[test]
    fn the_request_s_policy_wins() {
        let incoming = headers(&[
            ("authorization", "Bearer sk-1"),
            ("x-team", "blue"),
            ("content-type", "application/json"),
        ]);
        let policy = HeaderPolicy::builder()
            .forward_header(HeaderName::from_static("x-team"))
            .static_header(header::USER_AGENT, HeaderValue::from_static("wsfirst"))
            .build()
            .unwrap();
        let mut extensions = http::Extensions::new();
        extensions.insert(policy);
        let forwarded = outgoing(&incoming, &extensions, &default_policy());
        let names: Vec<&str> = forwarded.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-team", "content-type", "user-agent"]);
    }
}
