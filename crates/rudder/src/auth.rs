//! Authentication flags of `rudder server` and the options they make for the API server.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

/// How clients authenticate (see `docs/security.md`).
#[derive(Args, Debug, Clone)]
pub struct AuthArgs {
    /// Static bearer tokens: a CSV file of `token,user,uid,"group1,group2"` lines.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// `iss` of service-account tokens.
    #[arg(long, default_value = rudder_auth::service_account::DEFAULT_ISSUER)]
    pub service_account_issuer: String,
    /// Audiences the API server accepts in service-account tokens (default: the issuer).
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,
}

/// The API server's authentication options: the token file read and parsed, the
/// service-account key pair from the PKI directory, the CA for node certificates.
pub fn options(
    args: &AuthArgs,
    pki: &Arc<rudder_pki::Pki>,
) -> Result<rudder_apiserver::AuthOptions> {
    let static_tokens = match &args.token_auth_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            rudder_auth::static_tokens::StaticTokens::parse(&text)
                .with_context(|| format!("--token-auth-file {}", path.display()))?
        }
        None => Default::default(),
    };
    let (key, public) = pki.service_account_key_pem();
    let audiences = if args.api_audiences.is_empty() {
        vec![args.service_account_issuer.clone()]
    } else {
        args.api_audiences.clone()
    };
    Ok(rudder_apiserver::AuthOptions {
        static_tokens,
        service_account: Some(rudder_apiserver::ServiceAccountOptions {
            signing_key_pem: key.to_owned(),
            public_key_pems: vec![public.to_owned()],
            issuer: args.service_account_issuer.clone(),
            audiences,
        }),
        ca: Some(pki.clone()),
    })
}
