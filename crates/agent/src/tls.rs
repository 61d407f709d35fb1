//! HTTPS between the console and its agents, with client certificates as an option.
//!
//! Both sides use rustls with the `ring` provider, like every TLS user in the process.

use axum::serve::Listener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no private key in it", path.display()))
}

fn roots(ca: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    Ok(roots)
}

/// The agent's TLS: its certificate and key, and the CA client certificates must come
/// from when mutual TLS is wanted.
pub fn server_config(
    cert: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| format!("client CA {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(certs(cert)?, key(key_file)?)
        .map_err(|e| format!("{}: {e}", cert.display()))
}

/// The console's own HTTPS: its certificate chain and key, read again from their files
/// when either changes (checked at most every few seconds, at a handshake), so a renewed
/// certificate (certbot, an ACME client, a department CA) is served without a restart. A
/// pair that does not load keeps the last good one, with a warning.
pub fn reloading_server_config(
    cert: &Path,
    key_file: &Path,
) -> Result<rustls::ServerConfig, String> {
    let resolver = ReloadingCert::new(cert, key_file)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// How often the files are looked at again.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct ReloadingCert {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    state: std::sync::Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    certified: Arc<rustls::sign::CertifiedKey>,
    stamps: (Option<std::time::SystemTime>, Option<std::time::SystemTime>),
    checked: std::time::Instant,
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl ReloadingCert {
    fn new(cert: &Path, key_file: &Path) -> Result<Self, String> {
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key_file.to_path_buf(),
            state: std::sync::Mutex::new(Loaded {
                stamps: (modified(cert), modified(key_file)),
                certified: Arc::new(Self::load(cert, key_file)?),
                checked: std::time::Instant::now(),
            }),
        })
    }

    fn load(cert: &Path, key_file: &Path) -> Result<rustls::sign::CertifiedKey, String> {
        let key = provider()
            .key_provider
            .load_private_key(key(key_file)?)
            .map_err(|e| format!("{}: {e}", key_file.display()))?;
        let certified = rustls::sign::CertifiedKey::new(certs(cert)?, key);
        certified
            .keys_match()
            .map_err(|e| format!("{} and {}: {e}", cert.display(), key_file.display()))?;
        Ok(certified)
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= RELOAD_CHECK {
            state.checked = std::time::Instant::now();
            let stamps = (modified(&self.cert), modified(&self.key));
            if stamps != state.stamps {
                match Self::load(&self.cert, &self.key) {
                    Ok(c) => {
                        tracing::info!(cert = %self.cert.display(), "loaded the renewed TLS certificate");
                        state.certified = Arc::new(c);
                        state.stamps = stamps;
                    }
                    // Mid-renewal (the certificate written, the key not yet): try again later.
                    Err(e) => {
                        tracing::warn!(error = %e, "the changed TLS certificate does not load; keeping the last one")
                    }
                }
            }
        }
        Some(state.certified.clone())
    }
}

/// The console's TLS towards its agents: the CA their certificates come from, and its own
/// certificate and key for agents that require one.
pub fn client_config(
    ca: &Path,
    client_cert: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca)?);
    match client_cert {
        Some((cert, k)) => builder
            .with_client_auth_cert(certs(cert)?, key(k)?)
            .map_err(|e| format!("{}: {e}", cert.display())),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// A listener that hands out connections after their TLS handshake. Handshakes run side
/// by side, so a client that stalls its handshake holds up nobody, and one that fails or
/// stalls past the time-out is dropped.
pub struct TlsListener {
    local: std::net::SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let tls = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, addr)).await;
                        }
                        Ok(Err(e)) => tracing::info!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::info!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local,
            ready,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task is gone only when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
