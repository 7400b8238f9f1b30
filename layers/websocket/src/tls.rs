//! The client TLS configuration shared by the WebSocket connector and the HTTP client: one
//! rustls [`ClientConfig`] built once from the webpki roots, the platform's roots and extra
//! roots.
//!
//! [`ClientTls`] is built once per process (or per stack) and handed to every
//! [`WebSocketConfig`](crate::WebSocketConfig); the facade gives the same roots to its HTTP
//! client with [`ClientTls::with_alpn`]. An extra root is always trusted *in addition* to the
//! webpki and platform roots that are enabled.
//!
//! The default ([`ClientTls::default`]) trusts the webpki roots and does no I/O, so the
//! WebSocket and the HTTP client of a stack agree on their roots without anyone reading files.
//! The platform's roots are opt-in ([`ClientTlsBuilder::native_roots`]) and read from the system
//! at most once per process. Reading them is blocking file I/O, so
//! [`ClientTlsBuilder::build_async`] does it on tokio's blocking pool;
//! [`ClientTlsBuilder::build`] does it on the calling thread (call it before the runtime starts
//! or from [`spawn_blocking`](tokio::task::spawn_blocking)). A configuration without a
//! `ClientTls` uses the default.
//!
//! # Example
//!
//! ```
//! use wsfirst_websocket::{WebSocketConfig, tls::ClientTls};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsfirst_websocket::ConfigError> {
//! # let private_ca = rustls_pki_types::CertificateDer::from(
//! #     rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap().cert.der().to_vec(),
//! # );
//! let tls = ClientTls::builder()
//!     .native_roots(true) // the webpki roots, the platform's, and:
//!     .extra_root(private_ca)
//!     .build_async()
//!     .await?;
//! // Every route's configuration shares it.
//! let config = WebSocketConfig::builder().tls(tls.clone()).build()?;
//! assert!(config.tls().is_some());
//!
//! // The WebSocket speaks HTTP/1.1 only; the HTTP client may negotiate HTTP/2 with the same roots.
//! assert_eq!(tls.client_config().alpn_protocols, [b"http/1.1".to_vec()]);
//! let http = tls.with_alpn(vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
//! assert_eq!(http.alpn_protocols.len(), 2);
//! # Ok(())
//! # }
//! ```

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;

use crate::{ConfigError, error::CONFIG};

/// The ALPN protocol of the WebSocket's HTTP/1.1 upgrade: a WebSocket never negotiates HTTP/2.
const WEBSOCKET_ALPN: &[u8] = b"http/1.1";

/// A rustls client configuration for `wss://` (and `https://`): the trusted roots and the crypto
/// provider (ring), built once and shared by `Arc`.
///
/// Cloning is cheap and shares the configuration. Build it with [`ClientTls::builder`], or wrap
/// a complete configuration (client certificates, a custom verifier) with
/// [`ClientTls::from_config`].
#[derive(Clone)]
pub struct ClientTls {
    /// The configuration of the WebSocket connector: ALPN `http/1.1` only.
    config: Arc<ClientConfig>,
    /// How many roots are trusted, when this crate built the configuration.
    roots: Option<usize>,
}

impl ClientTls {
    /// Starts a configuration trusting the webpki roots.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// Uses `config` as it is (roots, client certificates, verifier), except its ALPN protocols:
    /// the WebSocket connector offers only `http/1.1`.
    pub fn from_config(config: impl Into<Arc<ClientConfig>>) -> Self {
        let mut config = config.into();
        if config.alpn_protocols != [WEBSOCKET_ALPN] {
            Arc::make_mut(&mut config).alpn_protocols = vec![WEBSOCKET_ALPN.to_vec()];
        }
        Self {
            config,
            roots: None,
        }
    }

    /// The shared configuration, as the WebSocket connector uses it (ALPN `http/1.1` only, so
    /// a server never answers with HTTP/2).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// A copy of the configuration with these ALPN protocols, for an HTTP client: it shares the
    /// roots, the certificate verifier and the session cache. `hyper-rustls` wants an empty list
    /// (it sets the protocols itself); a client negotiating HTTP/2 by hand passes
    /// `[b"h2", b"http/1.1"]`.
    pub fn with_alpn(&self, protocols: Vec<Vec<u8>>) -> ClientConfig {
        let mut config = ClientConfig::clone(&self.config);
        config.alpn_protocols = protocols;
        config
    }

    /// How many root certificates are trusted (`None` for a configuration given to
    /// [`from_config`](Self::from_config)).
    pub fn root_count(&self) -> Option<usize> {
        self.roots
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ClientTls`]; see [`ClientTls::builder`].
///
/// Defaults: the webpki roots (Mozilla's, bundled by `webpki-roots`); no platform roots, no
/// extra root.
#[derive(Clone)]
pub struct ClientTlsBuilder {
    webpki: bool,
    native: bool,
    extra: Vec<CertificateDer<'static>>,
}

impl Default for ClientTlsBuilder {
    fn default() -> Self {
        Self {
            webpki: true,
            native: false,
            extra: Vec::new(),
        }
    }
}

impl fmt::Debug for ClientTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsBuilder")
            .field("webpki_roots", &self.webpki)
            .field("native_roots", &self.native)
            .field("extra_roots", &self.extra.len())
            .finish()
    }
}

impl ClientTlsBuilder {
    /// Trust the Mozilla roots bundled by `webpki-roots` (default on).
    pub fn webpki_roots(mut self, enabled: bool) -> Self {
        self.webpki = enabled;
        self
    }

    /// Trust the platform's root certificates too (default off; read once per process, with
    /// blocking I/O: prefer [`build_async`](Self::build_async)).
    pub fn native_roots(mut self, enabled: bool) -> Self {
        self.native = enabled;
        self
    }

    /// Also trust this root certificate (for example a private CA), in addition to the other
    /// roots: it never replaces them. Each call adds one.
    pub fn extra_root(mut self, certificate: CertificateDer<'static>) -> Self {
        self.extra.push(certificate);
        self
    }

    /// Builds the configuration. With the platform's roots enabled, the first build of the
    /// process reads them from the system: **blocking I/O**, so call it before the runtime
    /// starts or from [`spawn_blocking`](tokio::task::spawn_blocking), or use
    /// [`build_async`](Self::build_async).
    ///
    /// Fails when an extra root is not a valid certificate (`extra_root`) or when no root at all
    /// is trusted (`roots`).
    pub fn build(self) -> Result<ClientTls, ConfigError> {
        let native = if self.native {
            native_certs_blocking()
        } else {
            &[]
        };
        self.build_with(native)
    }

    /// Builds the configuration, reading the platform's roots (the first time in the process)
    /// on tokio's blocking pool, so an async worker never blocks. Needs a tokio runtime.
    pub async fn build_async(self) -> Result<ClientTls, ConfigError> {
        let native = if self.native {
            native_certs().await?
        } else {
            &[]
        };
        self.build_with(native)
    }

    fn build_with(self, native: &[CertificateDer<'static>]) -> Result<ClientTls, ConfigError> {
        let roots = root_store(self.webpki, native, &self.extra)?;
        let count = roots.len();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| ConfigError::invalid(CONFIG, "tls", error.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![WEBSOCKET_ALPN.to_vec()];
        Ok(ClientTls {
            config: Arc::new(config),
            roots: Some(count),
        })
    }
}

/// The trusted roots: the webpki roots if enabled, the platform's (those rustls can parse),
/// then every extra root.
fn root_store(
    webpki: bool,
    native: &[CertificateDer<'static>],
    extra: &[CertificateDer<'static>],
) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    if webpki {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots.add_parsable_certificates(native.iter().cloned());
    for (index, certificate) in extra.iter().enumerate() {
        roots.add(certificate.clone()).map_err(|error| {
            ConfigError::invalid(
                CONFIG,
                "extra_root",
                format!("certificate #{index} rejected: {error}"),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(ConfigError::invalid(
            CONFIG,
            "roots",
            "no root certificate is trusted: enable the webpki or platform roots, or add an extra root",
        ));
    }
    Ok(roots)
}

/// The platform's roots, read from the system at the first call of the process (blocking).
fn native_certs_blocking() -> &'static [CertificateDer<'static>] {
    static NATIVE: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    NATIVE.get_or_init(|| {
        #[cfg(test)]
        tests::LOADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let result = rustls_native_certs::load_native_certs();
        if !result.errors.is_empty() {
            tracing::debug!(
                errors = result.errors.len(),
                "some platform root certificates could not be loaded"
            );
        }
        result.certs
    })
}

/// The platform's roots, read on tokio's blocking pool the first time.
async fn native_certs() -> Result<&'static [CertificateDer<'static>], ConfigError> {
    tokio::task::spawn_blocking(native_certs_blocking)
        .await
        .map_err(|error| {
            ConfigError::invalid(
                CONFIG,
                "native_roots",
                format!("reading the platform's root certificates failed: {error}"),
            )
        })
}

impl Default for ClientTls {
    /// The webpki roots, no I/O; built once per process and shared.
    fn default() -> Self {
        static DEFAULT: OnceLock<ClientTls> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                ClientTls::builder()
                    .build()
                    .expect("the webpki roots and ring's default protocol versions always build")
            })
            .clone()
    }
}

/// The configuration of a [`WebSocketConfig`](crate::WebSocketConfig) that has none: the
/// default.
pub(crate) async fn default_tls() -> Result<&'static ClientTls, ConfigError> {
    static DEFAULT: OnceLock<ClientTls> = OnceLock::new();
    Ok(DEFAULT.get_or_init(ClientTls::default))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// How many times the platform's roots were read.
    pub(super) static LOADS: AtomicUsize = AtomicUsize::new(0);

    fn self_signed(name: &str) -> CertificateDer<'static> {
        let certified = rcgen::generate_simple_self_signed([name.to_owned()]).unwrap();
        certified.cert.der().clone()
    }

    #[test]
    fn extra_roots_are_added_to_the_webpki_roots_never_replacing_them() {
        let webpki = webpki_roots::TLS_SERVER_ROOTS.len();
        let one = root_store(true, &[], &[self_signed("a.test")]).unwrap();
        assert_eq!(one.len(), webpki + 1);
        let two = root_store(true, &[], &[self_signed("a.test"), self_signed("b.test")]).unwrap();
        assert_eq!(two.len(), webpki + 2);
        // Every webpki root is still there, in order, followed by the extra ones.
        for (kept, webpki) in two.roots.iter().zip(webpki_roots::TLS_SERVER_ROOTS) {
            assert_eq!(kept.subject, webpki.subject);
        }
        let only = root_store(false, &[], &[self_signed("a.test")]).unwrap();
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn platform_roots_are_added_too() {
        let platform = [self_signed("platform.test")];
        let store = root_store(true, &platform, &[self_signed("a.test")]).unwrap();
        assert_eq!(store.len(), webpki_roots::TLS_SERVER_ROOTS.len() + 2);
    }

    #[test]
    fn invalid_or_missing_roots_name_the_field() {
        let error =
            root_store(true, &[], &[self_signed("a.test"), vec![1, 2, 3].into()]).unwrap_err();
        assert_eq!(error.field(), "extra_root");
        assert!(error.to_string().contains("#1"), "{error}");
        let error = root_store(false, &[], &[]).unwrap_err();
        assert_eq!(error.field(), "roots");
        let error = ClientTls::builder()
            .webpki_roots(false)
            .native_roots(false)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "roots");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn platform_roots_are_read_once_per_process() {
        let builds = (0..4).map(|_| ClientTls::builder().native_roots(true).build_async());
        let sync = tokio::task::spawn_blocking(|| ClientTls::builder().native_roots(true).build());
        let results = futures_util::future::join_all(builds).await;
        let sync = sync.await.unwrap().unwrap();
        let roots = sync.root_count().unwrap();
        for result in results {
            assert_eq!(result.unwrap().root_count(), Some(roots));
        }
        assert_eq!(LOADS.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_default_trusts_the_webpki_roots_without_reading_the_platform() {
        let default = default_tls().await.unwrap();
        assert_eq!(
            default.root_count(),
            Some(webpki_roots::TLS_SERVER_ROOTS.len())
        );
        assert!(std::ptr::eq(default, default_tls().await.unwrap()));
        assert!(Arc::ptr_eq(
            &ClientTls::default().client_config(),
            &ClientTls::default().client_config()
        ));
    }

    #[test]
    fn the_websocket_never_offers_http2() {
        let tls = ClientTls::builder().native_roots(false).build().unwrap();
        assert_eq!(tls.client_config().alpn_protocols, [b"http/1.1".to_vec()]);
        let http = tls.with_alpn(vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(http.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(tls.client_config().alpn_protocols, [b"http/1.1".to_vec()]);
        // A configuration given whole is used with the WebSocket's ALPN only.
        let given = ClientTls::from_config(http);
        assert_eq!(given.client_config().alpn_protocols, [b"http/1.1".to_vec()]);
        assert_eq!(given.root_count(), None);
        // One shared configuration: clones hand out the same `Arc`.
        assert!(Arc::ptr_eq(
            &tls.client_config(),
            &tls.clone().client_config()
        ));
    }
}
