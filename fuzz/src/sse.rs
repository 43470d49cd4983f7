//! The server-sent-events decoder on arbitrary bytes cut into arbitrary pieces.
//!
//! Oracles: the pieces decode to the same items (and the same error) as the whole stream; what
//! decodes re-encodes ([`encode_item`]) to a stream that decodes to the same items again.

use arbitrary::Unstructured;
use deliberate::wire::sse::{SseDecoder, SseError, SseEvent, SseItem, encode_event, encode_item};

/// What a decoder made of a stream: the items, the event the stream ended in, and the error.
type Decoded = (Vec<SseItem>, Option<SseEvent>, Option<SseError>);

fn decode(limit: usize, pieces: &[&[u8]]) -> Decoded {
    let mut dec = SseDecoder::new(limit);
    let mut items = Vec::new();
    for p in pieces {
        if let Err(e) = dec.push_into(p, &mut items) {
            return (items, None, Some(e));
        }
    }
    match dec.finish() {
        Ok(last) => (items, last, None),
        Err(e) => (items, None, Some(e)),
    }
}

/// The decoder against itself, whole and in pieces, and the encoder's round trip.
pub fn sse_decoder(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let limit = 16 + usize::from(u.arbitrary::<u16>().unwrap_or(4096) % 4096);
    let ncuts = usize::from(u.arbitrary::<u8>().unwrap_or(0) % 16);
    let mut cuts: Vec<usize> = (0..ncuts)
        .map(|_| usize::from(u.arbitrary::<u16>().unwrap_or(0)))
        .collect();
    let stream = u.take_rest();
    cuts.iter_mut().for_each(|c| *c = (*c).min(stream.len()));
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut prev = 0;
    for &c in &cuts {
        pieces.push(&stream[prev..c]);
        prev = c;
    }
    pieces.push(&stream[prev..]);

    let whole = decode(limit, &[stream]);
    let cut = decode(limit, &pieces);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let by_byte = decode(limit, &bytes);
    assert_eq!(whole.2, cut.2, "pieces {cuts:?} fail differently");
    assert_eq!(whole.2, by_byte.2, "byte by byte fails differently");
    if whole.2.is_none() {
        assert_eq!(whole, cut, "pieces {cuts:?} decode differently");
        assert_eq!(whole, by_byte, "byte by byte decodes differently");
    }
    let (items, last, _) = whole;

    // Re-encode what decoded; it must decode to the same items.
    let mut out = Vec::new();
    let mut encodable = Vec::new();
    for item in &items {
        if encode_item(item, &mut out).is_ok() {
            encodable.push(item.clone());
        }
    }
    if let Some(e) = &last {
        if encode_event(e, &mut out).is_ok() {
            encodable.push(SseItem::Event(e.clone()));
        }
    }
    let again = decode(usize::MAX, &[&out]);
    assert_eq!(
        again.2, None,
        "the encoder wrote a stream that does not decode"
    );
    assert_eq!(again.1, None, "the encoder left an event unterminated");
    assert_eq!(again.0, encodable, "re-encoded items decode differently");
}
