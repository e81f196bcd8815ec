//! `rudder agent`: this machine joins a running cluster as a node. With a bootstrap token from
//! `rudder token create` it pins the cluster's CA by hash, obtains a client certificate and a
//! serving certificate for its endpoint through CertificateSigningRequests, writes its own
//! kubeconfig, and runs the same node agent as `rudder server` does in-process. Later starts
//! reuse the credentials in its data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};

use crate::node::NodeArgs;

const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The API server to join, e.g. `https://10.0.0.1:6443`. Several (comma-separated or the
    /// flag repeated) for a highly available cluster: the node joins through the first that
    /// answers and its client fails over between all of them.
    #[arg(long, value_delimiter = ',', required_unless_present = "kubeconfig")]
    pub server: Vec<String>,
    /// With `--simulate N`: the credentials the simulated nodes act with, instead of joining
    /// with a token. Its identity must be allowed to manage every node, lease and pod (the
    /// server's admin kubeconfig, or one bound to such a ClusterRole): a joined node's own
    /// credentials let the Node authorizer accept only that node's objects. With `--server`,
    /// the nodes talk to those servers (failing over) instead of the kubeconfig's.
    #[arg(long, conflicts_with = "token")]
    pub kubeconfig: Option<PathBuf>,
    /// A bootstrap token from `rudder token create` (needed only to join, not to restart).
    #[arg(long, env = "RUDDER_TOKEN")]
    pub token: Option<String>,
    /// The cluster CA's pin, as `rudder token create` prints it (`sha256:...`).
    #[arg(long)]
    pub ca_cert_hash: Option<String>,
    /// The cluster CA certificate, instead of `--ca-cert-hash`.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Directory for the node's credentials, images, containers and pod state.
    #[arg(long, default_value = ".rudder-agent", env = "RUDDER_AGENT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The cluster's pod range, as the server's `--cluster-cidr`: the service proxy masquerades
    /// pod traffic leaving it and leaves pod-to-pod traffic between nodes alone. Without it
    /// the node's own pod subnet is taken for the range, and pods reaching pods on other nodes
    /// appear with the node's address.
    #[arg(long)]
    pub cluster_cidr: Option<ipnet::Ipv4Net>,
    #[command(flatten)]
    pub node: NodeArgs,
    /// `--simulate N` (`--simulate-nodes N`): run N simulated nodes instead of this machine's.
    #[command(flatten)]
    pub simulate: crate::simulate::SimulateArgs,
}

/// Where the node keeps its credentials.
struct Files {
    kubeconfig: PathBuf,
    ca: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files {
            kubeconfig: dir.join("kubeconfig"),
            ca: dir.join("pki/ca.crt"),
            serving_cert: dir.join("pki/serving.crt"),
            serving_key: dir.join("pki/serving.key"),
        }
    }

    fn complete(&self) -> bool {
        [
            &self.kubeconfig,
            &self.ca,
            &self.serving_cert,
            &self.serving_key,
        ]
        .iter()
        .all(|p| p.exists())
    }
}

pub async fn run(args: AgentArgs) -> Result<()> {
    if args.simulate.simulate_nodes > 0 {
        let kubeconfig = args.kubeconfig.as_deref().context(
            "--simulate needs --kubeconfig: simulated nodes act for many nodes, which a joined \
             node's credentials may not (the Node authorizer limits them to their own node)",
        )?;
        return crate::simulate::run_alone(&args.simulate, kubeconfig, &args.server).await;
    }
    if args.kubeconfig.is_some() {
        bail!("--kubeconfig is for --simulate; a machine joins with --server and --token");
    }
    anyhow::ensure!(
        !args.server.is_empty(),
        "--server is needed to join a cluster"
    );
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let files = Files::in_dir(&data_dir);
    if files.complete() {
        tracing::info!("[1/2] using the credentials in {}", data_dir.display());
    } else {
        let server = join_any(&args, &files).await?;
        tracing::info!("[1/2] joined the cluster at {server}");
    }
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let tls = rudder_pki::serving_config(
        &read(&files.ca)?,
        &read(&files.serving_cert)?,
        &read(&files.serving_key)?,
    )
    .context("the node endpoint's TLS")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    if args.cluster_cidr.is_none() && !args.node.disable_proxy {
        tracing::warn!(
            "no --cluster-cidr: the proxy takes this node's pod subnet for the pod range and masquerades pod traffic to other nodes"
        );
    }
    let task = crate::node::start(
        &args.node,
        &data_dir,
        &files.kubeconfig,
        &args.server,
        tls,
        args.cluster_cidr,
        rx,
    )
    .await?;
    tracing::info!("[2/2] node agent running");
    crate::server::wait_for_signal().await;
    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    Ok(())
}

/// Joins through the first of `--server` that lets it; returns that server.
async fn join_any<'a>(args: &'a AgentArgs, files: &Files) -> Result<&'a str> {
    let mut failures = Vec::new();
    for server in &args.server {
        match join(args, server, files).await {
            Ok(()) => return Ok(server),
            Err(e) => {
                tracing::warn!(%server, error = %format!("{e:#}"), "could not join through this server");
                failures.push(format!("{server}: {e:#}"));
            }
        }
    }
    bail!("could not join the cluster: {}", failures.join("; "))
}

/// Obtains the node's certificates and writes its kubeconfig.
async fn join(args: &AgentArgs, server: &str, files: &Files) -> Result<()> {
    let token = args
        .token
        .clone()
        .context("--token is needed to join a cluster (rudder token create prints one)")?;
    let ca = match (&args.ca_cert, &args.ca_cert_hash) {
        (Some(path), _) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, Some(pin)) => fetch_pinned_ca(server, pin).await?,
        (None, None) => bail!("--ca-cert-hash (or --ca-cert) is needed to trust the server"),
    };
    let name = args.node.name();
    let user = format!("system:node:{name}");

    // A client certificate, asked for with the bootstrap token.
    let (csr, client_key) = rudder_pki::certificate_request(&user, &["system:nodes"], &[])?;
    let bootstrap = client(server, &ca, Credentials::Token(token)).await?;
    let client_cert = certificate(&bootstrap, &name, &csr, CLIENT_SIGNER, "client auth").await?;
    let kubeconfig =
        rudder_pki::kubeconfig::render(server, &ca, &client_cert, &client_key, &user, "rudder");

    // A serving certificate for the node's endpoint, asked for as the node itself.
    let machine = rudder_node::machine::Machine::detect(&args.data_dir).ok();
    let mut sans = vec![name.clone(), "localhost".into(), "127.0.0.1".into()];
    if let Some(m) = &machine {
        sans.push(m.hostname.clone());
        sans.extend(m.internal_ip.clone());
    }
    sans.sort();
    sans.dedup();
    let (csr, serving_key) = rudder_pki::certificate_request(&user, &["system:nodes"], &sans)?;
    let node = client(
        server,
        &ca,
        Credentials::Certificate(client_cert.clone(), client_key.clone()),
    )
    .await?;
    let serving_cert = certificate(&node, &name, &csr, SERVING_SIGNER, "server auth").await?;

    if let Some(dir) = files.ca.parent() {
        std::fs::create_dir_all(dir)?;
    }
    rudder_pki::write_secret_file(&files.ca, &ca)?;
    rudder_pki::write_secret_file(&files.serving_cert, &serving_cert)?;
    rudder_pki::write_secret_file(&files.serving_key, &serving_key)?;
    rudder_pki::write_secret_file(&files.kubeconfig, &kubeconfig)?;
    Ok(())
}

enum Credentials {
    Token(String),
    Certificate(String, String),
}

async fn client(server: &str, ca_pem: &str, creds: Credentials) -> Result<kube::Client> {
    let mut config = kube::Config::new(server.parse().context("--server is not a URL")?);
    let der = rudder_pki::certificate_der(ca_pem).context("the CA is not a PEM certificate")?;
    config.root_cert = Some(vec![der]);
    match creds {
        Credentials::Token(t) => config.auth_info.token = Some(t.into()),
        Credentials::Certificate(cert, key) => {
            config.auth_info.client_certificate_data = Some(STANDARD.encode(cert));
            config.auth_info.client_key_data = Some(STANDARD.encode(key).into());
        }
    }
    kube::Client::try_from(config).context("API client")
}

/// Creates a CSR and returns the issued certificate (the server approves node requests at once).
async fn certificate(
    client: &kube::Client,
    node: &str,
    csr_pem: &str,
    signer: &str,
    usage: &str,
) -> Result<String> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let suffix: String = (0..6)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let kind = if signer == SERVING_SIGNER {
        "serving"
    } else {
        "client"
    };
    let name = format!("node-csr-{node}-{kind}-{suffix}");
    let csr: CertificateSigningRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": STANDARD.encode(csr_pem),
            "signerName": signer,
            "usages": ["digital signature", "key encipherment", usage],
        },
    }))?;
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .with_context(|| format!("creating the CertificateSigningRequest {name}"))?;
    let mut current = created;
    for _ in 0..60 {
        if let Some(cert) = current.status.as_ref().and_then(|s| s.certificate.as_ref()) {
            return String::from_utf8(cert.0.clone()).context("the certificate is not PEM");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        current = api.get(&name).await?;
    }
    bail!("CertificateSigningRequest {name} was not approved within 30 s")
}

/// The cluster CA as the server presents it, accepted only if its pin matches `pin`.
async fn fetch_pinned_ca(server: &str, pin: &str) -> Result<String> {
    let uri: http::Uri = server.parse().context("--server is not a URL")?;
    let host = uri.host().context("--server has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let chain = peer_chain(&host, port).await?;
    for der in &chain {
        if rudder_pki::ca_cert_hash_der(der).as_deref() == Some(pin) {
            return Ok(rudder_pki::certificate_pem(der));
        }
    }
    bail!("the server at {server} does not present a CA with the pin {pin}")
}

/// The certificates the server presents, read without trusting them (they are checked against
/// the pin by the caller, and every later connection verifies the server against that CA).
async fn peer_chain(host: &str, port: u16) -> Result<Vec<Vec<u8>>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .context("TLS handshake with the server")?;
    Ok(tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect())
}

/// Accepts any server certificate: only for reading the chain before pinning it.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
