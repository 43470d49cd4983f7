//! The response body type every backend of the proxy answers with.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

use crate::layer::BoxError;

/// The body every upstream (an HTTP endpoint or the echo) answers with.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;
