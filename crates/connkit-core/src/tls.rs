//! TLS configuration for `tls://` and `wss://` endpoints (rustls with the aws-lc-rs provider).
//!
//! ```no_run
//! use connkit_core::tls::{TlsClientConfig, TlsServerConfig};
//! # fn main() -> Result<(), connkit_core::Error> {
//! let server = TlsServerConfig::from_pem_files("cert.pem", "key.pem")?;
//! let client = TlsClientConfig::from_root_pem(&std::fs::read("ca.pem").unwrap())?
//!     .server_name("localhost");
//! # Ok(()) }
//! ```

use crate::error::{Error, ErrorKind, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_err(what: &str, e: impl Into<crate::error::BoxError>) -> Error {
    Error::with_source(ErrorKind::Tls, what.to_owned(), e)
}

fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_err(&format!("reading {what} certificates from PEM"), e))?;
    if certs.is_empty() {
        return Err(Error::new(
            ErrorKind::Tls,
            format!("no {what} certificate found in the PEM data"),
        ));
    }
    Ok(certs)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidConfig,
            format!("reading {}", path.display()),
            e,
        )
    })
}

/// Client-side TLS: which roots to trust, and optionally the name to verify.
#[derive(Clone)]
pub struct TlsClientConfig {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClientConfig {
    /// Trust the CA certificates in `pem` (one or more `CERTIFICATE` blocks).
    ///
    /// # Errors
    /// [`ErrorKind::Tls`] when the PEM holds no valid certificate.
    pub fn from_root_pem(pem: &[u8]) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs_from_pem(pem, "root")? {
            roots
                .add(cert)
                .map_err(|e| tls_err("adding a root certificate", e))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("choosing TLS versions", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::from_rustls(Arc::new(config)))
    }

    /// Trust the CA certificates in the PEM file at `path`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfig`] when the file cannot be read, [`ErrorKind::Tls`] when it
    /// holds no valid certificate.
    pub fn from_root_pem_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_root_pem(&read_file(path.as_ref())?)
    }

    /// Use a rustls configuration as it is (client certificates, custom verifiers, ALPN).
    #[must_use]
    pub fn from_rustls(config: Arc<rustls::ClientConfig>) -> Self {
        Self {
            config,
            server_name: None,
        }
    }

    /// Verify the server against this name instead of the endpoint's host.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
    }

    pub(crate) fn name_for(&self, host: &str) -> Result<ServerName<'static>> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned()).map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidConfig,
                format!("`{name}` is not a valid TLS server name"),
                e,
            )
        })
    }
}

/// Server-side TLS: the certificate chain and private key to present.
#[derive(Clone)]
pub struct TlsServerConfig {
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerConfig").finish_non_exhaustive()
    }
}

impl TlsServerConfig {
    /// Present the certificate chain in `cert_pem` (leaf first) with the private key in
    /// `key_pem` (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// [`ErrorKind::Tls`] when the PEM data holds no certificate or key, or they do not match.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let certs = certs_from_pem(cert_pem, "server")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| tls_err("reading the private key from PEM", e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("choosing TLS versions", e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls_err("using the certificate and key", e))?;
        Ok(Self::from_rustls(Arc::new(config)))
    }

    /// Like [`from_pem`](Self::from_pem), reading both from files.
    ///
    /// # Errors
    /// As [`from_pem`](Self::from_pem), and [`ErrorKind::InvalidConfig`] when a file cannot be
    /// read.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self> {
        Self::from_pem(&read_file(cert.as_ref())?, &read_file(key.as_ref())?)
    }

    /// Use a rustls configuration as it is (client authentication, ALPN, resumption).
    #[must_use]
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        Self { config }
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }
}
