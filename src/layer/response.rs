//! Output enforcement of a buffered answer: the adapter hands every text of it to an
//! [`OutputFilter`].

use bytes::Bytes;

use super::error::Fault;
use super::exchange::Exchange;
use super::filter::{FilterState, OutputFilter};
use crate::wire::Answer;

/// Scans and rewrites an upstream answer.
pub(crate) fn enforce(body: &Bytes, ex: &mut Exchange) -> Result<Answer, Fault> {
    let adapter = ex.adapter;
    let facts = ex.facts.clone();
    let mut state = FilterState::default();
    let mut filter = OutputFilter {
        ex,
        state: &mut state,
    };
    adapter
        .answer(body, &facts, &mut filter)
        .map_err(|e| Fault::Protocol(format!("response body: {e}")))
}
