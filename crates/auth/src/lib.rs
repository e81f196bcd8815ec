//! Authentication decisions without IO: who a credential says its holder is.
//!
//! - [`UserInfo`]: the user a request is made by (name, uid, groups, extra), as upstream's
//!   `user.Info`.
//! - [`static_tokens`]: the `--token-auth-file` CSV format (`token,user,uid,"group1,group2"`).
//! - [`service_account`]: service-account JWTs (ES256 or RS256) — issuing the claims of a
//!   TokenRequest, verifying signature, issuer, audience and validity times. Whether the bound
//!   objects still exist is the caller's question ([`service_account::Claims::bound_objects`]).
//! - [`bootstrap`]: kubeadm's bootstrap tokens (`abcdef.0123456789abcdef`) and the Secret that
//!   stores one.
//!
//! - [`rbac`]: authorization — RBAC rules, bindings and aggregation, the Node authorizer, the
//!   default roles.
//!
//! The API server does the IO (reading files, looking objects up); this crate only decides.

pub mod bootstrap;
pub mod rbac;
pub mod service_account;
pub mod static_tokens;
mod user;

pub use user::{
    ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, UserInfo, is_bearer_jwt, with_authenticated,
};

/// Why a credential was not accepted. Every variant ends in a 401 for the client; the text is
/// for the server's log and TokenReview's `status.error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not in any known format or is not known.
    #[error("invalid bearer token")]
    Invalid,
    /// The token's signature, header or claims could not be verified.
    #[error("invalid token: {0}")]
    Malformed(String),
    /// The token was issued by someone else.
    #[error("token issuer {0:?} is not accepted")]
    Issuer(String),
    /// None of the token's audiences is one this server accepts.
    #[error("token audiences {token:?} do not include any of {accepted:?}")]
    Audience {
        /// What the token is for.
        token: Vec<String>,
        /// What the server accepts.
        accepted: Vec<String>,
    },
    /// The token has expired.
    #[error("token has expired")]
    Expired,
    /// The token is not valid yet.
    #[error("token is not valid yet")]
    NotYetValid,
    /// An object the token is bound to is gone, being deleted, or was replaced.
    #[error("{0}")]
    Revoked(String),
}
