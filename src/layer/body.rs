//! Request and response bodies of the [`PolicyService`](super::PolicyService).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use super::error::BoxError;
use super::stream::{StreamFilter, poll_next};

/// The request body the inner service gets: the rewritten request of an enforced route
/// ([`LayerBody::full`]), or the client's body, untouched, on any other route
/// ([`LayerBody::passed`]).
pub type RequestBody<B> = LayerBody<B>;

/// The response body the client gets: the inner body untouched (routes not enforced, upstream
/// errors), a body the layer made (refusals, errors, scanned buffered completions), or a
/// filtered event stream.
pub type ResponseBody<B> = LayerBody<B>;

pin_project! {
    /// The one body type of the layer, for requests ([`RequestBody`]) and responses
    /// ([`ResponseBody`]): another body passed through, a body the layer made, or (responses
    /// only) an event stream run through the output filter.
    pub struct LayerBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Passed { #[pin] inner: B },
        Full { #[pin] data: Full<Bytes> },
        Stream { inner: Pin<Box<B>>, filter: Box<StreamFilter>, prefix: Option<Bytes> },
    }
}

impl<B> std::fmt::Debug for LayerBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LayerBody")
    }
}

impl<B> LayerBody<B> {
    /// The inner body, untouched.
    pub fn passed(inner: B) -> Self {
        LayerBody {
            kind: Kind::Passed { inner },
        }
    }

    /// A body of `data`.
    pub fn full(data: Bytes) -> Self {
        LayerBody {
            kind: Kind::Full {
                data: Full::new(data),
            },
        }
    }

    pub(crate) fn stream(inner: Pin<Box<B>>, filter: Box<StreamFilter>, prefix: Bytes) -> Self {
        LayerBody {
            kind: Kind::Stream {
                inner,
                filter,
                prefix: (!prefix.is_empty()).then_some(prefix),
            },
        }
    }
}

impl<B> Body for LayerBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Passed { inner } => inner.poll_frame(cx).map_err(Into::into),
            KindProj::Full { data } => data.poll_frame(cx).map_err(|never| match never {}),
            KindProj::Stream {
                inner,
                filter,
                prefix,
            } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                poll_next(inner.as_mut(), filter, cx).map(|o| o.map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passed { inner } => inner.is_end_stream(),
            Kind::Full { data } => data.is_end_stream(),
            Kind::Stream { filter, prefix, .. } => prefix.is_none() && filter.is_ended(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passed { inner } => inner.size_hint(),
            Kind::Full { data } => data.size_hint(),
            Kind::Stream { .. } => SizeHint::default(),
        }
    }
}
