//! The request body that the fallback layer hands to the inner service.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use wsfirst_core::BoxError;

pin_project! {
    /// The request body seen by the service inside [`Fallback`](crate::Fallback): either the
    /// whole body, buffered so that the request can be replayed, or the caller's body streamed
    /// through untouched.
    ///
    /// A WebSocket candidate (intent `WebSocket`, mode `auto`) gets a buffered body, on the
    /// WebSocket attempt and on the replay alike; every other request gets the caller's body.
    /// An inner service that needs the whole body (such as a WebSocket codec) can read a buffered
    /// body's bytes with [`ReplayBody::as_bytes`] instead of collecting it.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body::Body;
    /// use http_body_util::Empty;
    /// use wsfirst_fallback::ReplayBody;
    ///
    /// let body = ReplayBody::<Empty<Bytes>>::buffered(Bytes::from_static(b"{}"));
    /// assert_eq!(body.as_bytes().map(|bytes| &bytes[..]), Some(&b"{}"[..]));
    /// assert_eq!(body.size_hint().exact(), Some(2));
    ///
    /// let streamed = ReplayBody::streaming(Empty::<Bytes>::new());
    /// assert!(streamed.as_bytes().is_none());
    /// ```
    #[derive(Debug)]
    pub struct ReplayBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Buffered {
            data: Bytes,
            trailers: Option<HeaderMap>,
        },
        Streaming {
            #[pin]
            body: B,
        },
    }
}

impl<B> ReplayBody<B> {
    /// A body made of these bytes.
    pub fn buffered(data: Bytes) -> Self {
        Self::buffered_with_trailers(data, None)
    }

    pub(crate) fn buffered_with_trailers(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Buffered { data, trailers },
        }
    }

    /// The caller's body, streamed through.
    pub fn streaming(body: B) -> Self {
        Self {
            kind: Kind::Streaming { body },
        }
    }

    /// The bytes of a buffered body that have not been read yet (all of them until the body is
    /// polled); `None` for a streamed body.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Buffered { data, .. } => Some(data),
            Kind::Streaming { .. } => None,
        }
    }

    /// The trailers of a buffered body, if the caller's body had some and they were not read
    /// yet.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        match &self.kind {
            Kind::Buffered { trailers, .. } => trailers.as_ref(),
            Kind::Streaming { .. } => None,
        }
    }

    /// Whether the body was buffered (and so can be replayed).
    pub fn is_buffered(&self) -> bool {
        matches!(self.kind, Kind::Buffered { .. })
    }
}

impl<B> From<Bytes> for ReplayBody<B> {
    /// A buffered body of these bytes, as [`ReplayBody::buffered`]: how a layer inside the
    /// fallback layer that read the whole body (such as the WebSocket layer, which sends a
    /// request with a field its WebSocket mode does not support to HTTP) passes it on unchanged.
    fn from(data: Bytes) -> Self {
        Self::buffered(data)
    }
}

impl<B> Default for ReplayBody<B> {
    /// An empty buffered body.
    fn default() -> Self {
        Self::buffered(Bytes::new())
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Buffered { data, trailers } => {
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(std::mem::take(data)))));
                }
                Poll::Ready(
                    trailers
                        .take()
                        .map(|trailers| Ok(Frame::trailers(trailers))),
                )
            }
            KindProj::Streaming { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Buffered { data, trailers } => data.is_empty() && trailers.is_none(),
            Kind::Streaming { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Buffered { data, .. } => SizeHint::with_exact(data.len() as u64),
            Kind::Streaming { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn buffered_yields_data_then_trailers_then_ends() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        let mut body = ReplayBody::<Full<Bytes>>::buffered_with_trailers(
            Bytes::from_static(b"hello"),
            Some(trailers.clone()),
        );
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(5));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"hello"));
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(!body.is_end_stream());
        let second = body.frame().await.unwrap().unwrap();
        assert_eq!(second.into_trailers().unwrap(), trailers);
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn empty_buffered_body_is_at_its_end() {
        let mut body = ReplayBody::<Full<Bytes>>::default();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn from_bytes_is_a_buffered_body_of_them() {
        let body = ReplayBody::<Full<Bytes>>::from(Bytes::from_static(b"{}"));
        assert!(body.is_buffered());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
    }

    #[tokio::test]
    async fn streaming_passes_the_inner_body_through() {
        let body = ReplayBody::streaming(Full::new(Bytes::from_static(b"abc")));
        assert!(!body.is_buffered());
        assert_eq!(body.size_hint().exact(), Some(3));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, Bytes::from_static(b"abc"));
    }
}
