//! The gnostic `openapi.v2` protobuf messages (`OpenAPIv2.proto` of google/gnostic-models) as
//! `prost` structs: what kubectl 1.27/1.28 decode from `/openapi/v2`.
//!
//! Field numbers and wire types must match the upstream `.proto` exactly — kubectl decodes with
//! the generated Go code, so a wrong tag silently drops a field there. Names follow the `.proto`
//! (`_ref` becomes `x_ref`, as in the Go code's `XRef`). Recursive fields and large oneof variants
//! are boxed; boxing does not change the wire format.

mod document;
mod operation;
mod schema;

pub use document::*;
pub use operation::*;
pub use schema::*;
