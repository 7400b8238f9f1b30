//! The layer that wraps a service in [`Eligibility`].

use tower_layer::Layer;

use crate::Eligibility;

/// Applies [`Eligibility`] to a service: sets each request's [`Intent`](wsfirst_core::Intent)
/// from the policy `P`.
///
/// `Layer::layer` clones the policy; [`EligibilityTable`](crate::EligibilityTable) is shared by
/// `Arc`, so cloning it is cheap.
///
/// ```
/// use tower::ServiceBuilder;
/// use wsfirst_eligibility::{EligibilityLayer, EligibilityTable};
///
/// let table = EligibilityTable::builder().allow("openai", "openai-responses").build()?;
/// let service = ServiceBuilder::new()
///     .layer(EligibilityLayer::new(table))
///     .service_fn(|_: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # let _ = service;
/// # Ok::<(), wsfirst_eligibility::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct EligibilityLayer<P> {
    policy: P,
}

impl<P> EligibilityLayer<P> {
    /// A layer deciding with `policy`.
    pub fn new(policy: P) -> Self {
        Self { policy }
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }
}

impl<P: Clone, S> Layer<S> for EligibilityLayer<P> {
    type Service = Eligibility<P, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Eligibility::new(inner, self.policy.clone())
    }
}
