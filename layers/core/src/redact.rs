//! URLs as they may be shown: without userinfo (`user:password@`), query string or fragment,
//! which can carry credentials (`?key=...`, signed URLs).
//!
//! wsfirst shows URLs this way wherever it displays them: the [`BreakerKey`](crate::BreakerKey)'s
//! endpoint (its `Display`, the admin JSON, metric labels), `Debug` of routes, route errors.
//! Use it for your own logs of a route's URLs.
//!
//! # Example
//!
//! ```
//! use wsfirst_core::redact;
//!
//! assert_eq!(
//!     redact::url("wss://user:pw@live.example/v1/ws?key=AIza-secret#top"),
//!     "wss://live.example/v1/ws",
//! );
//! let uri: http::Uri = "https://api.example/v1/responses?sig=abc".parse().unwrap();
//! assert_eq!(redact::uri(&uri), "https://api.example/v1/responses");
//! // Text that is not a URL is cut the same way, so error messages can use it too.
//! assert_eq!(redact::url("not a url?token=x"), "not a url");
//! ```

use std::borrow::Cow;

use http::Uri;

/// `text` without userinfo, query string and fragment; borrowed when there is nothing to remove.
///
/// Works on any text (a URL that does not parse included): everything from the first `?` or `#`
/// is cut, and so is everything up to the last `@` of the authority (the part after `://`, or
/// from the start without a scheme, up to the first `/`).
pub fn url(text: &str) -> Cow<'_, str> {
    let end = text.find(['?', '#']).unwrap_or(text.len());
    let head = &text[..end];
    let authority_start = head.find("://").map_or(0, |at| at + 3);
    let authority_end = head[authority_start..]
        .find('/')
        .map_or(head.len(), |at| authority_start + at);
    match head[authority_start..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!(
            "{}{}",
            &head[..authority_start],
            &head[authority_start + at + 1..]
        )),
        None => Cow::Borrowed(head),
    }
}

/// `uri` as [`url`] shows it.
pub fn uri(uri: &Uri) -> String {
    url(&uri.to_string()).into_owned()
}

/// Whether [`url`] removes anything from `text`.
pub(crate) fn hides_parts(text: &str) -> bool {
    url(text).len() != text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_query_and_fragment_are_cut() {
        let cases = [
            ("wss://api.example/v1/ws", "wss://api.example/v1/ws"),
            (
                "wss://u:p@api.example:8443/v1/ws",
                "wss://api.example:8443/v1/ws",
            ),
            ("wss://api.example/v1/ws?key=s", "wss://api.example/v1/ws"),
            ("wss://u@api.example?key=s", "wss://api.example"),
            ("https://a.example/p#x", "https://a.example/p"),
            // An `@` in the path or the query is not userinfo.
            ("https://a.example/@me?to=x@y", "https://a.example/@me"),
            // `@` in the password: up to the last one.
            ("https://u:p@ss@a.example/", "https://a.example/"),
            ("/relative?x=1", "/relative"),
            ("u:p@host/path", "host/path"),
            ("not a url", "not a url"),
            ("", ""),
        ];
        for (text, shown) in cases {
            assert_eq!(url(text), shown, "{text}");
            assert_eq!(hides_parts(text), text != shown, "{text}");
        }
        assert!(matches!(url("wss://a.example/v1"), Cow::Borrowed(_)));
    }

    #[test]
    fn parsed_uris_too() {
        let uri: Uri = "wss://user:secret@api.example/v1/ws?token=t0k"
            .parse()
            .unwrap();
        assert_eq!(super::uri(&uri), "wss://api.example/v1/ws");
    }
}
