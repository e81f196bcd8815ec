//! ValidatingAdmissionPolicy (`admissionregistration.k8s.io/v1`) decisions, without IO: CEL
//! expressions compiled with cel-rust and evaluated over JSON (`expr`), a policy's
//! conditions, variables, validations and audit annotations (`policy`), which requests a
//! policy or binding selects (`matching`), and what a binding's parameters and
//! `validationActions` make of the result (`binding`). The API server gathers the objects
//! from its watch cache and turns the [`Outcome`] into a `Status`, warnings and audit
//! annotations.

pub mod binding;
pub mod expr;
pub mod matching;
pub mod policy;

pub use binding::{
    Denial, Outcome, ParamSource, VALIDATION_FAILURE_KEY, apply, reason_code, resolve_params,
};
pub use expr::{Expression, Inputs};
pub use matching::{Request, matches};
pub use policy::{CompiledPolicy, Evaluation, Failure, compile_errors};

/// Why a policy's expression cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The expression does not parse.
    #[error("compilation failed: {0}")]
    Compile(String),
}
