//! TLS for `tracer serve`: rustls (ring provider) with a certificate resolver whose certificate
//! and key are re-read when their files change ([`CertFiles::reload`]), so a cert-manager or
//! Secret rotation needs no restart. Every new handshake gets the newest pair; open connections
//! keep the one they started with.

use std::{
    path::Path,
    sync::{Arc, RwLock},
};

use anyhow::{anyhow, Result};
use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};

use crate::modes::reload::Watched;

/// A certificate chain and its key from PEM text; one sentence when they are not usable.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate file is not PEM ({e})"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no CERTIFICATE block".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key file holds no usable private key ({e})"))?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map_err(|e| format!("the certificate and key do not make a pair ({e})"))
}

/// Hands every handshake the newest certificate.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// The certificate and key files and the resolver they feed.
#[derive(Debug)]
pub struct CertFiles {
    cert: Watched,
    key: Watched,
    resolver: Arc<Resolver>,
    /// The last reload's error, logged once until the files change again.
    failing: bool,
}

impl CertFiles {
    /// Reads both files at start: any problem is an error.
    pub fn open(cert: &Path, key: &Path) -> Result<CertFiles> {
        let (cert_w, cert_pem) = Watched::open(cert, "TLS certificate")?;
        let (key_w, key_pem) = Watched::open(key, "TLS key")?;
        let pair = certified_key(&cert_pem, &key_pem).map_err(|e| {
            anyhow!(
                "cannot serve TLS with {} and {}: {e}; give a PEM certificate chain and its PEM \
                 private key",
                cert.display(),
                key.display()
            )
        })?;
        Ok(CertFiles {
            cert: cert_w,
            key: key_w,
            resolver: Arc::new(Resolver {
                current: RwLock::new(Arc::new(pair)),
            }),
            failing: false,
        })
    }

    /// The rustls server configuration (HTTP/1.1 over TLS 1.2 or 1.3).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("setting up TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Re-reads the pair if either file changed; the line to log, if any. A pair that does not
    /// load (e.g. the certificate written before its key) keeps the previous one in use.
    pub fn reload(&mut self) -> Option<String> {
        let cert_changed = self.cert.poll().is_some();
        let key_changed = self.key.poll().is_some();
        if !cert_changed && !key_changed {
            return None;
        }
        match certified_key(self.cert.current(), self.key.current()) {
            Ok(pair) => {
                if let Ok(mut current) = self.resolver.current.write() {
                    *current = Arc::new(pair);
                }
                self.failing = false;
                Some(format!(
                    "tracer: TLS certificate {} re-read; new connections get it",
                    self.cert.path().display()
                ))
            }
            Err(e) if !self.failing => {
                self.failing = true;
                Some(format!(
                    "tracer: TLS files changed but {e}; the previous certificate stays in use"
                ))
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pem_that_is_not_a_pair_is_named_for_what_is_wrong() {
        assert_eq!(
            certified_key(b"", b"").unwrap_err(),
            "the certificate file holds no CERTIFICATE block"
        );
        let cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let e = certified_key(cert, b"nothing here").unwrap_err();
        assert!(
            e.starts_with("the key file holds no usable private key"),
            "{e}"
        );
    }
}
