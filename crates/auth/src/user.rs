//! The authenticated user of a request, as upstream's `user.Info`.

use std::collections::BTreeMap;

/// The group every authenticated user is in.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The anonymous user's name.
pub const ANONYMOUS: &str = "system:anonymous";

/// Who made a request: attached to the request context for authorization and audit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`system:serviceaccount:ns:name`, a certificate's CN, ...).
    pub name: String,
    /// A unique id, when the authenticator knows one.
    pub uid: String,
    /// Groups, `system:authenticated` included once authenticated.
    pub groups: Vec<String>,
    /// Authenticator-specific facts (`authentication.kubernetes.io/pod-name`, ...).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups, nothing else.
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        Self {
            name: name.into(),
            groups,
            ..Default::default()
        }
    }

    /// The JSON `userInfo` of TokenReview and SelfSubjectReview.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = self.uid.clone().into();
        }
        if !self.extra.is_empty() {
            v["extra"] = serde_json::json!(self.extra);
        }
        v
    }
}

/// Adds `system:authenticated` unless present (upstream's `AuthenticatedGroupAdder`; not for
/// the anonymous user).
pub fn with_authenticated(mut user: UserInfo) -> UserInfo {
    if user.name != ANONYMOUS && !user.groups.iter().any(|g| g == ALL_AUTHENTICATED) {
        user.groups.push(ALL_AUTHENTICATED.to_owned());
    }
    user
}

/// Whether a bearer token looks like a JWT (three base64url parts), as opposed to a static or
/// bootstrap token.
pub fn is_bearer_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticated_group_added_once() {
        let cases = [
            (vec![], vec![ALL_AUTHENTICATED]),
            (vec!["a"], vec!["a", ALL_AUTHENTICATED]),
            (vec![ALL_AUTHENTICATED, "b"], vec![ALL_AUTHENTICATED, "b"]),
        ];
        for (groups, want) in cases {
            let u = with_authenticated(UserInfo::new(
                "u",
                groups.into_iter().map(String::from).collect(),
            ));
            assert_eq!(u.groups, want);
        }
        let anon = with_authenticated(UserInfo::new(ANONYMOUS, vec![]));
        assert!(anon.groups.is_empty());
    }

    #[test]
    fn jwt_shape() {
        let cases = [
            ("eyJhbGciOi.eyJpc3Mi.c2ln-_", true),
            ("abcdef.0123456789abcdef", false),
            ("a.b.", false),
            ("static-token", false),
            ("a.b.c=", false),
        ];
        for (token, want) in cases {
            assert_eq!(is_bearer_jwt(token), want, "{token}");
        }
    }
}
