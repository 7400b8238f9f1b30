//! [`BodyBudget`]: one budget of buffered request-body bytes for the whole process, so that many
//! requests buffering at once (HTTP/2 streams, client WebSocket messages) are refused with `503`
//! instead of growing the process until it is killed for lack of memory.
//!
//! # Example
//!
//! ```
//! use wsfirst_fallback::BodyBudget;
//!
//! let budget = BodyBudget::new(1024);
//! let mut held = budget.try_reserve(600)?;
//! assert_eq!(budget.available(), 424);
//! // Another request cannot take what the first holds.
//! assert!(budget.try_reserve(600).is_err());
//! held.grow(100)?;
//! assert_eq!(held.bytes(), 700);
//! drop(held);
//! assert_eq!(budget.available(), 1024);
//! # Ok::<(), wsfirst_fallback::BudgetExhausted>(())
//! ```

use std::{
    fmt,
    sync::{Arc, LazyLock},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::BudgetExhausted;

/// A budget of buffered request-body bytes, shared by everything that holds one of its
/// [`BudgetPermit`]s: the [`FallbackLayer`](crate::FallbackLayer) while it buffers a body for a
/// replay, and the client WebSocket mode of the `wsfirst` crate for the messages it queues.
/// Cloning shares the budget.
///
/// [`BodyBudget::process`] is the one every layer uses unless it is given another
/// ([`FallbackLayer::with_budget`](crate::FallbackLayer::with_budget)):
/// [`DEFAULT_BYTES`](Self::DEFAULT_BYTES) (256 MiB, sixteen bodies of the default 16 MiB limit)
/// for the whole process. Past it a request that must buffer fails with [`BudgetExhausted`]
/// (`503` from the `wsfirst` crate's responses) before anything is sent upstream.
#[derive(Clone)]
pub struct BodyBudget {
    inner: Arc<Inner>,
}

struct Inner {
    bytes: usize,
    semaphore: Arc<Semaphore>,
}

impl BodyBudget {
    /// The process budget's size: 256 MiB.
    pub const DEFAULT_BYTES: usize = 256 << 20;

    /// A budget of `bytes` (at most [`Semaphore::MAX_PERMITS`], larger is cut to it).
    pub fn new(bytes: usize) -> Self {
        let bytes = bytes.min(Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(Inner {
                bytes,
                semaphore: Arc::new(Semaphore::new(bytes)),
            }),
        }
    }

    /// The process's budget, [`DEFAULT_BYTES`](Self::DEFAULT_BYTES): the one every layer shares
    /// unless it is given another.
    pub fn process() -> BodyBudget {
        static PROCESS: LazyLock<BodyBudget> =
            LazyLock::new(|| BodyBudget::new(BodyBudget::DEFAULT_BYTES));
        PROCESS.clone()
    }

    /// The budget's size in bytes.
    pub fn capacity(&self) -> usize {
        self.inner.bytes
    }

    /// The bytes not held now.
    pub fn available(&self) -> usize {
        self.inner.semaphore.available_permits()
    }

    /// Holds `bytes` of the budget until the permit is dropped, or fails at once when they are
    /// not available (it never waits).
    pub fn try_reserve(&self, bytes: usize) -> Result<BudgetPermit, BudgetExhausted> {
        let mut permit = BudgetPermit {
            budget: self.clone(),
            permit: None,
            bytes: 0,
        };
        permit.grow(bytes)?;
        Ok(permit)
    }

    /// Whether both handles share one budget.
    pub fn ptr_eq(&self, other: &BodyBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for BodyBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyBudget")
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .finish()
    }
}

/// Bytes held from a [`BodyBudget`], given back when dropped.
pub struct BudgetPermit {
    budget: BodyBudget,
    permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl BudgetPermit {
    /// Holds `more` bytes besides those already held, or fails at once (holding what it held)
    /// when they are not available.
    pub fn grow(&mut self, more: usize) -> Result<(), BudgetExhausted> {
        if more == 0 {
            return Ok(());
        }
        let exhausted = || BudgetExhausted::new(self.budget.capacity());
        let Ok(count) = u32::try_from(more) else {
            return Err(exhausted());
        };
        let semaphore = Arc::clone(&self.budget.inner.semaphore);
        let added = semaphore
            .try_acquire_many_owned(count)
            .map_err(|_| exhausted())?;
        match &mut self.permit {
            Some(permit) => permit.merge(added),
            None => self.permit = Some(added),
        }
        self.bytes += more;
        Ok(())
    }

    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl fmt::Debug for BudgetPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetPermit")
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_budget_is_one_budget() {
        assert!(BodyBudget::process().ptr_eq(&BodyBudget::process()));
        assert_eq!(BodyBudget::process().capacity(), 256 << 20);
        assert!(!BodyBudget::new(1).ptr_eq(&BodyBudget::process()));
    }

    #[test]
    fn a_failed_growth_keeps_what_was_held() {
        let budget = BodyBudget::new(10);
        let mut held = budget.try_reserve(6).unwrap();
        let error = held.grow(5).unwrap_err();
        assert_eq!(error.budget(), 10);
        assert_eq!(held.bytes(), 6);
        assert_eq!(budget.available(), 4);
        held.grow(4).unwrap();
        assert_eq!(budget.available(), 0);
        drop(held);
        assert_eq!(budget.available(), 10);
    }
}
