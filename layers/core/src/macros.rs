//! Macros that the layers share.

/// Writes the accessors of a middleware service's wrapped service: `get_ref`, `get_mut` and
/// `into_inner`, as tower-http's services have them.
///
/// Call it inside an `impl` block of a type whose wrapped service is the field `inner`, of the
/// type parameter `S`.
///
/// # Example
///
/// ```
/// #[derive(Clone, Debug)]
/// pub struct Logged<S> {
///     inner: S,
/// }
///
/// impl<S> Logged<S> {
///     wsfirst_core::define_inner_service_accessors!();
/// }
///
/// let mut logged = Logged { inner: 7_u8 };
/// *logged.get_mut() += 1;
/// assert_eq!(*logged.get_ref(), 8);
/// assert_eq!(logged.into_inner(), 8);
/// ```
#[macro_export]
macro_rules! define_inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes `self`, returning the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
