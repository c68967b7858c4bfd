//! TLS for every protocol (rustls with the ring provider), from a PEM
//! certificate chain and key. Handshakes happen in `gate`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::ServerError;

/// Certificate and key, loaded once and shared by the protocols.
#[derive(Clone)]
pub struct Tls {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn bad(path: &Path, what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls {
        message: format!("cannot read the TLS {what} {}: {e}", path.display()),
    }
}

impl Tls {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1), and checks that they belong together.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, ServerError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, "certificate", e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, "certificate", e))?;
        if chain.is_empty() {
            return Err(bad(cert, "certificate", "no CERTIFICATE block in it"));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, "key", e))?;
        let tls = Tls {
            chain,
            key: Arc::new(key_der),
        };
        // Building a config checks that the key matches the certificate.
        tls.acceptor(&[]).map_err(|e| ServerError::Tls {
            message: format!(
                "the TLS key {} does not fit the certificate {}: {e}",
                key.display(),
                cert.display()
            ),
        })?;
        Ok(tls)
    }

    /// An acceptor offering `alpn` protocols (`h2` for gRPC).
    pub fn acceptor(&self, alpn: &[&[u8]]) -> Result<TlsAcceptor, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
