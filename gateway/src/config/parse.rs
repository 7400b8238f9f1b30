//! Field parsers: the serde `deserialize_with` functions for durations, byte sizes, modes,
//! socket addresses, header names, header maps and provider hosts.

use std::{collections::BTreeMap, fmt, net::SocketAddr, time::Duration};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{
    Deserialize, Deserializer,
    de::{self, Visitor},
};
use wsfirst_core::{MAX_DURATION, RouteError, TransportMode};

/// A string parsed by `parse`; any other type is an error saying `expecting`.
fn de_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<F>(&'static str, F);
    impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            (self.1)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(V(expecting, parse))
}

pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_str(d, "a duration such as \"30s\" or \"10m\"", parse_duration).map(Some)
}

/// Parses a duration in human form (`"30s"`, `"1h 30m"`), at most [`MAX_DURATION`]: the layers
/// compute deadlines as `Instant::now() + duration`, which would overflow past the clock's range.
fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(duration) if duration <= MAX_DURATION => Ok(duration),
        Ok(_) => Err(format!("invalid duration {text:?}: longer than 100 years")),
        Err(_) => Err(format!("invalid duration {text:?}")),
    }
}

/// Parses a byte size: digits, then an optional unit (`B`, `KB`, `MB`, `GB`, `KiB`, `MiB`,
/// `GiB`, any ASCII case).
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(unit)
}

pub(super) fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte size such as 1048576, \"512KiB\", \"16MiB\" or \"1MB\"")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::custom(format!("invalid byte size {n}: negative")))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
            parse_bytes(s).ok_or_else(|| {
                E::custom(format!(
                    "invalid byte size {s:?}: expected a number of bytes with an optional unit B, KB, MB, GB, KiB, MiB or GiB"
                ))
            })
        }
    }
    d.deserialize_any(V).map(Some)
}

pub(super) fn de_mode<'de, D: Deserializer<'de>>(d: D) -> Result<TransportMode, D::Error> {
    de_str(d, "\"auto\", \"websocket\" or \"http\"", |s| {
        s.parse().map_err(|error: RouteError| error.to_string())
    })
}

pub(super) fn de_socket_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    de_required_socket_addr(d).map(Some)
}

pub(super) fn de_required_socket_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<SocketAddr, D::Error> {
    de_str(d, "a socket address such as \"127.0.0.1:8080\"", |s| {
        s.trim().parse().map_err(|_| {
            format!("invalid socket address {s:?}: expected ip:port such as \"127.0.0.1:8080\"")
        })
    })
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(name).map_err(|_| format!("invalid header name {name:?}"))
}

pub(super) fn de_header_name<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<HeaderName>, D::Error> {
    de_str(d, "a header name such as \"x-session-id\"", header_name).map(Some)
}

/// Whether a header's name says its value is a credential: `authorization`, `cookie`, or a
/// name containing `auth`, `key`, `token`, `secret`, `password` or `cookie` (`x-api-key`,
/// `api-key`, `x-auth-token`...). Such values are never shown in `Debug` or in a log line.
pub fn is_credential_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    ["auth", "key", "token", "secret", "password", "cookie"]
        .iter()
        .any(|word| name.contains(word))
}

/// Headers for `Debug`: each value is `Sensitive` when it is marked so, when its name is
/// credential-like ([`is_credential_header`]) or when `also` says so.
pub(crate) struct MaskedHeaders<'a, F> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) also: F,
}

impl<F: Fn(&HeaderName) -> bool> fmt::Debug for MaskedHeaders<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.headers {
            if value.is_sensitive() || is_credential_header(name) || (self.also)(name) {
                map.entry(name, &format_args!("Sensitive"));
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

pub(super) fn de_headers<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderMap, D::Error> {
    let raw = BTreeMap::<String, String>::deserialize(d)?;
    let mut headers = HeaderMap::with_capacity(raw.len());
    for (name, value) in raw {
        let name = header_name(&name).map_err(de::Error::custom)?;
        // The one list every layer asks: hop-by-hop headers and the handshake's own.
        if wsfirst_core::headers::is_reserved_for_websocket(&name) {
            return Err(de::Error::custom(format!(
                "header {name:?} is set by the websocket handshake and cannot be configured"
            )));
        }
        // `HeaderValue` also takes non-ASCII bytes, which the WebSocket builder (it takes `&str`)
        // could only receive as an empty value.
        let mut value = HeaderValue::try_from(value)
            .ok()
            .filter(|value| value.to_str().is_ok())
            .ok_or_else(|| {
                de::Error::custom(format!("invalid value for header {:?}", name.as_str()))
            })?;
        value.set_sensitive(is_credential_header(&name));
        headers.append(name, value);
    }
    Ok(headers)
}

pub(super) fn de_hosts<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    struct Hosts(Vec<String>);
    impl<'de> Deserialize<'de> for Hosts {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Vec<String>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a host name or a list of host names")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<String>, E> {
                    Ok(vec![s.to_owned()])
                }
                fn visit_seq<A: de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Vec<String>, A::Error> {
                    let mut hosts = Vec::new();
                    while let Some(host) = seq.next_element::<String>()? {
                        hosts.push(host);
                    }
                    Ok(hosts)
                }
            }
            d.deserialize_any(V).map(Hosts)
        }
    }
    let raw = BTreeMap::<String, Hosts>::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, Hosts(v))| (k, v)).collect())
}
