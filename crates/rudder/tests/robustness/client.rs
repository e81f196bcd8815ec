//! A raw HTTP/2 client for the robustness tests: exact paths (`..`, encodings, long segments
//! reach the server as written), streamed bodies that are never held in memory, many streams
//! on a few connections, and client certificates for any user the cluster CA signs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::common::Server;

/// A request body: whole or streamed.
pub type ReqBody = BoxBody<Bytes, std::io::Error>;

/// A whole request body.
pub fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// TLS presenting `cert_pem`/`key_pem` and trusting the server's CA, HTTP/2 only.
fn tls(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("CA certificate");
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(|c| c.expect("certificate PEM"))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client certificate");
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// The server's certificate authority, loaded from its data directory.
fn pki(s: &Server) -> rudder_pki::Pki {
    rudder_pki::Pki::load_or_create(&s.data_dir().join("pki"), &Default::default())
        .expect("the server's PKI")
}

/// TLS as the admin (`system:masters`).
pub fn admin_tls(s: &Server) -> Arc<rustls::ClientConfig> {
    let pki = pki(s);
    let (cert, key) = pki.admin_pem();
    tls(pki.ca_cert_pem(), cert, key)
}

/// TLS as user `cn` in `groups`, with a certificate the cluster CA signs now.
pub fn user_tls(s: &Server, cn: &str, groups: &[&str]) -> Arc<rustls::ClientConfig> {
    let pki = pki(s);
    let (cert, key) = pki
        .issue_client_cert(cn, groups, 1)
        .expect("client certificate");
    tls(pki.ca_cert_pem(), &cert, &key)
}

/// One HTTP/2 connection.
#[derive(Clone)]
pub struct Conn {
    port: u16,
    send: SendRequest<ReqBody>,
}

/// An answer, body read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON, or `Null`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text (for failure messages).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(2000)]).into_owned()
    }
}

impl Conn {
    /// Connects to the server on loopback.
    pub async fn open(port: u16, tls: Arc<rustls::ClientConfig>) -> Result<Self, String> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .max_concurrent_reset_streams(100_000)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(Self { port, send })
    }

    /// Sends a request; returns the response with its body still streaming.
    pub async fn start(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1:{}{path}", self.port));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body)
            .map_err(|e| format!("request {path:?}: {e}"))?;
        let mut send = self.send.clone();
        send.ready().await.map_err(|e| format!("connection: {e}"))?;
        send.send_request(req)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))
    }

    /// Sends a request and reads the whole answer (at most 60 s: a hang is a failure).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Result<Answer, String> {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| vec![("content-type", ct)])
            .unwrap_or_default();
        let body = full(body.into());
        let fut = async {
            let resp = self.start(method, path, &headers, body).await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer to {method} {path}: {e}"))?
                .to_bytes();
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .map_err(|_| format!("{method} {path}: no answer in 60 s"))?
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Answer, String> {
        self.call("GET", path, None, Bytes::new()).await
    }
}

/// Asserts `a` is a well-formed `Status` failure with its HTTP code.
pub fn assert_status(a: &Answer, what: &str) {
    let s = a.json();
    assert_eq!(s["kind"], "Status", "{what}: not a Status: {}", a.text());
    assert_eq!(s["status"], "Failure", "{what}: {}", a.text());
    assert_eq!(s["code"], a.status, "{what}: {}", a.text());
    assert!(s["reason"].is_string(), "{what}: {}", a.text());
}

/// The server's process id, found by its data directory on its command line.
pub fn server_pid(s: &Server) -> Option<u32> {
    let needle = s.data_dir().to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (args.iter().any(|a| a == "server") && args.contains(&needle)).then_some(pid)
    })
}

/// Resident memory of `pid` in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
