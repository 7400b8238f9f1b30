//! What a queued client message holds while it waits: room in its connection's byte-bounded
//! queue and bytes of the process's body budget, both given back when it is dropped.

use tokio::sync::OwnedSemaphorePermit;
use wsfirst_fallback::BudgetPermit;

/// The bytes a queued message holds until it runs (or is refused).
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub(super) _connection: Option<OwnedSemaphorePermit>,
    pub(super) _budget: Option<BudgetPermit>,
}
