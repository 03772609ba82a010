//! TLS for every listener and uplink, on rustls with the ring provider.
//!
//! Server certificates are served through a resolver whose key can be swapped at run
//! time, so `reload()` (on SIGHUP) changes the certificate for new connections without
//! restarting listeners or dropping sessions.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
pub use tokio_rustls::{TlsAcceptor, TlsConnector, server::TlsStream};
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("the private key in {path} is not usable: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where a listener's certificate chain and key live (PEM).
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn load_certified_key(
    files: &CertFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let pem_error = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| pem_error(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(&files.cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem_error(&files.key, e))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: files.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    // A key from another pair would load fine and then fail every handshake: refuse it
    // here so a reload keeps the working certificate instead.
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // The provider cannot tell for this key type: accept, as rustls does.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            warn!(cert = %files.cert.display(), "cannot check that the TLS key matches the certificate");
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(e) => Err(TlsError::Config(e)),
    }
}

/// The certificate a server presents, replaceable while it runs.
pub struct ReloadableCert {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("files", &self.files)
            .finish()
    }
}

impl ReloadableCert {
    /// Read the files again; on error the current certificate stays in place.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.files, &self.provider)?;
        self.current.store(Arc::new(key));
        info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A TLS server set-up: the acceptor to wrap accepted sockets, and the handle to reload.
#[derive(Clone)]
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    pub cert: Arc<ReloadableCert>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.cert)
            .finish()
    }
}

impl ServerTls {
    pub fn load(files: CertFiles) -> Result<Self, TlsError> {
        Self::load_with_alpn(files, Vec::new())
    }

    /// Offering these ALPN protocols: gRPC clients insist on `h2`.
    pub fn load_with_alpn(files: CertFiles, alpn: Vec<Vec<u8>>) -> Result<Self, TlsError> {
        let provider = provider();
        let key = load_certified_key(&files, &provider)?;
        let cert = Arc::new(ReloadableCert {
            files,
            provider: provider.clone(),
            current: ArcSwap::from_pointee(key),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(cert.clone());
        config.alpn_protocols = alpn;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert,
        })
    }
}

/// A TLS client set-up for uplinks: trusts `ca_file` if given (operators often use a
/// private CA), else the public web PKI roots.
#[derive(Clone)]
pub struct ClientTls {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// The certificates of a PEM file, for trusting a private CA.
fn read_ca(path: &Path, roots: &mut RootCertStore) -> Result<(), TlsError> {
    let pem_error = |e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let before = roots.len();
    for cert in CertificateDer::pem_file_iter(path).map_err(pem_error)? {
        roots.add(cert.map_err(pem_error)?)?;
    }
    if roots.len() == before {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn client_config(roots: RootCertStore) -> Result<ClientConfig, TlsError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client set-up for HTTPS callbacks: the public web PKI roots, plus the CA(s) in
/// `extra_ca` (callback URLs are mostly public sites, some on a private CA).
pub fn https_client_config(extra_ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        read_ca(path, &mut roots)?;
    }
    client_config(roots)
}

impl ClientTls {
    pub fn new(server_name: &str, ca_file: Option<&Path>) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => read_ca(path, &mut roots)?,
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = client_config(roots)?;
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::ServerName(server_name.to_owned()))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("key pair");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("self-signed");
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write cert");
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
        (cert, key)
    }

    fn files(dir: &Path, cert: &str, key: &str) -> CertFiles {
        CertFiles {
            cert: dir.join(format!("{cert}.crt")),
            key: dir.join(format!("{key}.key")),
        }
    }

    #[test]
    fn a_key_of_another_pair_is_refused_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_pair(dir.path(), "a");
        write_pair(dir.path(), "b");
        assert!(ServerTls::load(files(dir.path(), "a", "a")).is_ok());
        let error = ServerTls::load(files(dir.path(), "a", "b")).expect_err("mismatch");
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
    }

    #[test]
    fn a_reload_with_a_mismatched_key_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_a, _) = write_pair(dir.path(), "a");
        let (_, key_b) = write_pair(dir.path(), "b");
        let server = ServerTls::load(files(dir.path(), "a", "a")).expect("load");
        let before = server.cert.current.load_full();
        // The key file is replaced by b's key, the certificate stays a's.
        std::fs::write(dir.path().join("a.key"), key_b.serialize_pem()).expect("write");
        let error = server.cert.reload().expect_err("mismatch refused");
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
        let after = server.cert.current.load_full();
        assert!(Arc::ptr_eq(&before, &after));
        assert_eq!(after.cert[0].as_ref(), cert_a.der().as_ref());
    }
}
