//! Stamps a route on every request: [`RouteLayer`] inserts the [`Route`] extension, which every
//! layer under it reads (eligibility, breaker key, WebSocket URL and handshake headers, the HTTP
//! upstream's URL, headers and timeouts).
//!
//! The outermost piece of a route's stack after [`Respond`](crate::respond::Respond), in the
//! manner of tower-http's `AddExtension`, with the [`Route`] as the one thing a route's layers
//! need to know.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use wsfirst::core::Route;
//! use wsfirst::set_route::RouteLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let route = Route::builder("openai", "openai-responses")
//!     .http_url("https://api.openai.com/v1/responses")
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(RouteLayer::new(route))
//!     .service(service_fn(|request: Request<()>| async move {
//!         let route = request.extensions().get::<Route>().expect("stamped");
//!         Ok::<_, Infallible>(Response::new(route.provider().to_owned()))
//!     }));
//! let response = service.oneshot(Request::new(())).await?;
//! assert_eq!(response.body(), "openai");
//! # Ok(())
//! # }
//! ```

use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;
use wsfirst_core::Route;

/// Inserts a [`Route`] into every request's extensions; builds [`SetRoute`].
///
/// [`Wsfirst::route_layer`](crate::Wsfirst::route_layer) gives one whose route's header policy
/// leaves out the eligibility table's override header.
#[derive(Clone, Debug)]
pub struct RouteLayer {
    route: Route,
}

impl RouteLayer {
    /// Stamps `route` on every request.
    pub fn new(route: Route) -> Self {
        Self { route }
    }

    /// The route.
    pub fn route(&self) -> &Route {
        &self.route
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = SetRoute<S>;

    fn layer(&self, inner: S) -> SetRoute<S> {
        SetRoute::new(inner, self.route.clone())
    }
}

/// Inserts a [`Route`] into every request's extensions (replacing one already there), then
/// calls the inner service; see the [module docs](self).
///
/// Costs one reference count per request (a `Route` is one `Arc`).
#[derive(Clone, Debug)]
pub struct SetRoute<S> {
    inner: S,
    route: Route,
}

impl<S> SetRoute<S> {
    /// Wraps `inner`, stamping `route` on every request.
    pub fn new(inner: S, route: Route) -> Self {
        Self { inner, route }
    }

    /// A layer stamping `route`.
    pub fn layer(route: Route) -> RouteLayer {
        RouteLayer::new(route)
    }

    /// The route.
    pub fn route(&self) -> &Route {
        &self.route
    }

    wsfirst_core::define_inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for SetRoute<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.route.clone());
        self.inner.call(request)
    }
}
