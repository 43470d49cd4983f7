//! The one HTTP(S) client builder: the gateway's upstream ([`super::HttpUpstream`]) and
//! `deliberate eval --upstream` both build their pooled hyper client here, over rustls (ring,
//! the webpki roots) for `https://` and plain TCP for `http://`.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use deliberate::proxy::client::{ClientBuilder, HttpsClient};
//! use http_body_util::Full;
//!
//! let client: HttpsClient<Full<Bytes>> = ClientBuilder::new()
//!     .connect_timeout(Duration::from_secs(5))
//!     .http2(true)
//!     .pool(16, Duration::from_secs(30))
//!     .build()
//!     .unwrap();
//! # drop(client);
//! ```

use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled client for `http://` and `https://` URLs, sending request bodies of type `B`.
pub type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// TLS could not be set up (the crypto provider or the root certificates failed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// Settings of an [`HttpsClient`]; [`ClientBuilder::build`] makes one.
///
/// Defaults: connect timeout 10 s, HTTP/1.1 only, TCP_NODELAY, hyper's pool defaults.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    connect_timeout: Duration,
    http2: bool,
    pool: Option<(usize, Duration)>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder::new()
    }
}

impl ClientBuilder {
    /// The defaults.
    pub fn new() -> ClientBuilder {
        ClientBuilder {
            connect_timeout: Duration::from_secs(10),
            http2: false,
            pool: None,
        }
    }

    /// How long a TCP connect may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// Whether to offer HTTP/2 (by ALPN, on `https://`) besides HTTP/1.1.
    pub fn http2(mut self, yes: bool) -> ClientBuilder {
        self.http2 = yes;
        self
    }

    /// Idle connections kept per host, and for how long.
    pub fn pool(mut self, max_idle_per_host: usize, idle_timeout: Duration) -> ClientBuilder {
        self.pool = Some((max_idle_per_host, idle_timeout));
        self
    }

    /// The client.
    pub fn build<B>(&self) -> Result<HttpsClient<B>, TlsError>
    where
        B: http_body::Body + Send,
        B::Data: Send,
    {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| TlsError(e.to_string()))?
            .https_or_http();
        let https = if self.http2 {
            https.enable_http1().enable_http2().wrap_connector(http)
        } else {
            https.enable_http1().wrap_connector(http)
        };
        let mut builder = Client::builder(TokioExecutor::new());
        if let Some((max_idle, idle_timeout)) = self.pool {
            builder
                .pool_max_idle_per_host(max_idle)
                .pool_idle_timeout(idle_timeout);
        }
        Ok(builder.build(https))
    }
}
