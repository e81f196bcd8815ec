//! The crate's error type: what a caller cannot proceed from, with upstream's texts where clients read them.

/// Why an API machinery operation failed.
///
/// Validators that upstream expresses as a list of problems (names, label keys) return
/// `Vec<String>` instead; the variants here are the failures an API handler turns into a
/// `Status` (400 Bad Request for selectors, 422/500 for patches, as the API server decides).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineryError {
    /// A `labelSelector` string or `metav1.LabelSelector` upstream would reject; the message is
    /// upstream's (for example `unable to parse requirement: <nil>: Invalid value: "a/b/c": …`).
    #[error("{0}")]
    InvalidLabelSelector(String),
    /// A `fieldSelector` string upstream cannot parse (for example
    /// `invalid selector: 'a'; can't understand 'a'`).
    #[error("{0}")]
    InvalidFieldSelector(String),
    /// A field selector names a field the kind does not support; `message` is upstream's text
    /// for that kind (`field label not supported: spec.foo`, …).
    #[error("{message}")]
    UnsupportedFieldLabel {
        /// The field label as the client sent it.
        field: String,
        /// Upstream's message for this kind.
        message: String,
    },
    /// An RFC 6902 JSON patch could not be applied; `index` is the failing operation.
    #[error("json patch operation {index}: {kind}")]
    JsonPatch {
        /// Zero-based index of the failing operation in the patch array.
        index: usize,
        /// What went wrong with it.
        kind: JsonPatchErrorKind,
    },
    /// The patch document itself is not of the shape the patch type needs (for example a JSON
    /// patch that is not an array, or a strategic merge patch that is not an object).
    #[error("{0}")]
    MalformedPatch(String),
    /// A strategic merge patch could not be applied; the message is upstream's where it has one
    /// (for example `map: map[…] does not contain declared merge key: name`).
    #[error("{0}")]
    StrategicMergePatch(String),
}

/// What went wrong with one RFC 6902 operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPatchErrorKind {
    /// The operation is not an object.
    #[error("operation is not an object")]
    NotAnObject,
    /// A member the operation needs (`op`, `path`, `from`, `value`) is absent or not a string.
    #[error("missing or invalid member '{0}'")]
    MissingMember(&'static str),
    /// `op` is not one of add, remove, replace, move, copy, test.
    #[error("unknown operation '{0}'")]
    UnknownOp(String),
    /// A JSON pointer does not start with '/' or has a bad '~' escape.
    #[error("invalid JSON pointer '{0}'")]
    InvalidPointer(String),
    /// The location (or its parent, for add) does not exist.
    #[error("path '{0}' does not exist")]
    PathNotFound(String),
    /// An array index is not a non-negative decimal number (or '-' where allowed).
    #[error("invalid array index '{index}' in '{path}'")]
    InvalidIndex {
        /// The offending reference token.
        index: String,
        /// The pointer it appeared in.
        path: String,
    },
    /// An array index is past the end of the array.
    #[error("array index {index} out of bounds (length {len}) in '{path}'")]
    IndexOutOfBounds {
        /// The index.
        index: usize,
        /// The array's length.
        len: usize,
        /// The pointer it appeared in.
        path: String,
    },
    /// The parent of the target is a scalar, so nothing can be added to or removed from it.
    #[error("parent of '{0}' is not an object or array")]
    NotAContainer(String),
    /// `move` whose `from` is a proper prefix of `path`.
    #[error("cannot move '{from}' into its own child '{path}'")]
    MoveIntoDescendant {
        /// Source location.
        from: String,
        /// Destination location.
        path: String,
    },
    /// A `test` operation found a different value (or nothing) at `path`.
    #[error("test failed: value at '{0}' differs")]
    TestFailed(String),
}
