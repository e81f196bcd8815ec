//! Sorting etcd-client errors into the [`StoreError`] cases callers act on.
//!
//! etcd reports "compacted" and "future revision" as gRPC `OutOfRange` with a fixed message and
//! no numbers, so they are recognised by message; the store fills in the revisions afterwards
//! (see `EtcdStore::revision_error`). Everything that means "this member or the network is not
//! answering right now" becomes [`StoreError::Unavailable`], which callers may retry.

use rudder_store::StoreError;
use tonic::Code;

/// What kind of failure an etcd-client error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// The requested revision is older than etcd's compaction revision.
    Compacted,
    /// The requested revision is newer than etcd's current revision.
    FutureRevision,
    /// Transient: no connection, member down, no leader, timeout.
    Unavailable,
    /// Anything else; reported as [`StoreError::Backend`].
    Other,
}

/// etcd's message for `ErrCompacted` (etcdserver/api/v3rpc/rpctypes), stable since etcd 3.0.
const COMPACTED_MSG: &str = "required revision has been compacted";
/// etcd's message for `ErrFutureRev`.
const FUTURE_REV_MSG: &str = "required revision is a future revision";

/// Classifies an error returned by etcd-client.
pub(crate) fn classify(err: &etcd_client::Error) -> ErrorClass {
    match err {
        etcd_client::Error::GRpcStatus(status) => classify_status(status.code(), status.message()),
        // Connection set-up failed, or the stream's request channel is gone (its task ended
        // because the connection broke).
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::WatchError(_) => ErrorClass::Unavailable,
        _ => ErrorClass::Other,
    }
}

fn classify_status(code: Code, message: &str) -> ErrorClass {
    if message.contains(COMPACTED_MSG) {
        return ErrorClass::Compacted;
    }
    if message.contains(FUTURE_REV_MSG) {
        return ErrorClass::FutureRevision;
    }
    match code {
        // etcd uses Unavailable for "no leader", "leader changed" and "request timed out";
        // tonic uses it for refused connections, Cancelled for its own request timeout, and
        // DeadlineExceeded for a deadline passed to the server.
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => ErrorClass::Unavailable,
        // A connection that breaks mid-request surfaces as Unknown/Internal carrying the
        // transport's message rather than a status etcd sent.
        Code::Unknown | Code::Internal if looks_like_transport(message) => ErrorClass::Unavailable,
        _ => ErrorClass::Other,
    }
}

fn looks_like_transport(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "transport",
        "connection",
        "h2 protocol",
        "broken pipe",
        "reset",
        "stream no longer needed",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Converts an error that is not about revisions (or whose revisions are not known) into a
/// [`StoreError`].
pub(crate) fn plain(err: etcd_client::Error) -> StoreError {
    match classify(&err) {
        ErrorClass::Unavailable => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Backend(err.to_string()),
    }
}

/// The error for a response that lacks something etcd always sends.
pub(crate) fn malformed(what: &str) -> StoreError {
    StoreError::Backend(format!("malformed etcd response: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
                ErrorClass::Compacted,
            ),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
                ErrorClass::FutureRevision,
            ),
            (
                Code::Unavailable,
                "etcdserver: no leader",
                ErrorClass::Unavailable,
            ),
            (
                Code::Unavailable,
                "etcdserver: request timed out",
                ErrorClass::Unavailable,
            ),
            (Code::Cancelled, "Timeout expired", ErrorClass::Unavailable),
            (Code::Unknown, "transport error", ErrorClass::Unavailable),
            (Code::Unknown, "something odd", ErrorClass::Other),
            (
                Code::InvalidArgument,
                "etcdserver: request is too large",
                ErrorClass::Other,
            ),
            (
                Code::PermissionDenied,
                "etcdserver: permission denied",
                ErrorClass::Other,
            ),
        ];
        for (code, msg, want) in cases {
            assert_eq!(classify_status(code, msg), want, "{code:?} {msg}");
        }
    }

    #[test]
    fn transport_errors_are_unavailable() {
        let err = etcd_client::Error::WatchError("channel closed".into());
        assert!(matches!(plain(err), StoreError::Unavailable(_)));
        let err = etcd_client::Error::InvalidArgs("bad".into());
        assert!(matches!(plain(err), StoreError::Backend(_)));
    }
}
