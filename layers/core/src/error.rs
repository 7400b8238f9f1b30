//! [`MissingExtension`]: the error of a layer that finds a request without the extension it needs.

use std::fmt;

/// A request reached a layer without an extension that the layer needs.
///
/// Layers return this instead of panicking, so a mis-assembled stack fails with a message that
/// says what is missing and where it comes from.
///
/// ```
/// use wsfirst_core::MissingExtension;
///
/// let error = MissingExtension::ROUTE;
/// assert!(error.to_string().starts_with("request has no `Route` extension"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingExtension {
    name: &'static str,
    hint: &'static str,
}

impl MissingExtension {
    /// The request has no [`Route`](crate::Route).
    pub const ROUTE: Self = Self {
        name: "Route",
        hint: "insert one per route (`request.extensions_mut().insert(route)`) or use the facade's per-route service",
    };

    /// The request has no [`Intent`](crate::Intent).
    pub const INTENT: Self = Self {
        name: "Intent",
        hint: "put `EligibilityLayer` outside this layer so that it decides the transport first",
    };

    /// Describes a missing extension of another type.
    pub const fn new(name: &'static str, hint: &'static str) -> Self {
        Self { name, hint }
    }

    /// The type name of the missing extension.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl fmt::Display for MissingExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request has no `{}` extension: {}", self.name, self.hint)
    }
}

impl std::error::Error for MissingExtension {}
