//! Where a service and its clones hold their registry: one shard per service and thread, so that
//! cloning a service (axum's `Router` clones a route's service for every request) and dropping
//! the clone write only memory of the thread that does it.
//!
//! A clone must hold its registry, and holding it means counting it: with one shared `Arc`,
//! every clone and every drop on every thread would write the same cache line. Instead
//! [`CircuitBreaker::new`](crate::CircuitBreaker::new) makes a root shard, and the first clone
//! made on another thread makes that thread's shard (a clone of the registry and a place in the
//! root's list: the writes to shared memory, once per thread) and remembers it for the thread;
//! later clones on that thread count that shard alone. The root keeps the other shards for its life, so that a shard outlives the clones of
//! one request; a shard whose thread has ended is let go by the root.

use std::{
    cell::{Cell, RefCell},
    fmt, ptr,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use crate::BreakerRegistry;

/// The registry of a service, held through the shard of the thread that made the clone.
pub(crate) struct Local {
    shard: Arc<Shard>,
    /// The service it is a shard of (one per [`Local::new`]).
    service: u64,
    /// The [`thread_tag`] of the thread the shard was made for. Kept here, not in the shard, so
    /// that a clone made on another thread reads nothing on the line of the shard's counts,
    /// which its own thread writes.
    thread: usize,
}

struct Shard {
    registry: BreakerRegistry,
    /// The root's: the shards made for other threads, kept for the root's life.
    others: Mutex<Vec<Arc<Shard>>>,
    /// The root, where a shard made from this one is kept (none in the root itself).
    root: Weak<Shard>,
    /// The thread it was made for has ended: the root lets it go.
    orphaned: AtomicBool,
}

/// The numbers of services, so that shards of two services never mix.
static NEXT_SERVICE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// A byte of each thread's own, whose address tells the threads apart.
    static TAG: Cell<u8> = const { Cell::new(0) };
    /// This thread's shards, by service.
    static SHARDS: RefCell<Shards> = const { RefCell::new(Shards(Vec::new())) };
}

/// A number that tells the running thread from every other running thread (an ended thread's
/// number may come back).
#[inline]
pub(crate) fn thread_tag() -> usize {
    TAG.with(|tag| ptr::from_ref(tag).addr())
}

impl Local {
    /// The root shard of a new service.
    pub(crate) fn new(registry: BreakerRegistry) -> Self {
        Local {
            shard: Arc::new(Shard {
                registry,
                others: Mutex::new(Vec::new()),
                root: Weak::new(),
                orphaned: AtomicBool::new(false),
            }),
            service: NEXT_SERVICE.fetch_add(1, Ordering::Relaxed),
            thread: thread_tag(),
        }
    }

    /// The registry.
    #[inline]
    pub(crate) fn registry(&self) -> &BreakerRegistry {
        &self.shard.registry
    }

    /// The service this is a shard of: the same for every clone of it.
    #[inline]
    pub(crate) fn service(&self) -> u64 {
        self.service
    }

    /// The shards the root keeps (tests).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        let root = self
            .shard
            .root
            .upgrade()
            .unwrap_or_else(|| self.shard.clone());
        root.others
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Clone for Local {
    /// The same shard on the thread it was made for; elsewhere, the running thread's shard.
    #[inline]
    fn clone(&self) -> Self {
        if self.thread == thread_tag() {
            return Local {
                shard: self.shard.clone(),
                service: self.service,
                thread: self.thread,
            };
        }
        self.for_this_thread()
    }
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("service", &self.service)
            .field("registry", &self.shard.registry)
            .finish_non_exhaustive()
    }
}

impl Local {
    /// This service's shard for the running thread, made (and kept by the root) the first time.
    #[cold]
    #[inline(never)]
    fn for_this_thread(&self) -> Local {
        let here = thread_tag();
        let local = |shard| Local {
            shard,
            service: self.service,
            thread: here,
        };
        let Ok(found) = SHARDS.try_with(|shards| shards.borrow_mut().find(self.service)) else {
            // The thread is ending: its shards are gone.
            return local(self.shard.clone());
        };
        if let Some(shard) = found {
            return local(shard);
        }
        let this = &self.shard;
        let root = match this.root.upgrade() {
            Some(root) => Some(root),
            None if this.root.ptr_eq(&Weak::new()) => Some(this.clone()),
            None => None,
        };
        let shard = Arc::new(Shard {
            registry: this.registry.clone(),
            others: Mutex::new(Vec::new()),
            root: root.as_ref().map_or_else(Weak::new, Arc::downgrade),
            orphaned: AtomicBool::new(false),
        });
        // With the root gone, the shard lives as long as its clones.
        if let Some(root) = root {
            let mut others = root.others.lock().unwrap_or_else(PoisonError::into_inner);
            others.retain(|other| !other.orphaned.load(Ordering::Relaxed));
            others.push(shard.clone());
        }
        let _ = SHARDS.try_with(|shards| shards.borrow_mut().insert(self.service, &shard));
        local(shard)
    }
}

/// One thread's shards, by service (weak: the roots and the clones own them).
struct Shards(Vec<(u64, Weak<Shard>)>);

impl Shards {
    fn find(&mut self, service: u64) -> Option<Arc<Shard>> {
        let (_, shard) = self.0.iter().find(|(of, _)| *of == service)?;
        let found = shard.upgrade();
        if found.is_none() {
            self.0.retain(|(_, shard)| shard.strong_count() > 0);
        }
        found
    }

    fn insert(&mut self, service: u64, shard: &Arc<Shard>) {
        self.0
            .retain(|(of, shard)| *of != service && shard.strong_count() > 0);
        self.0.push((service, Arc::downgrade(shard)));
    }
}

impl Drop for Shards {
    /// The thread ends: its shards are no longer worth keeping.
    fn drop(&mut self) {
        for (_, shard) in &self.0 {
            if let Some(shard) = shard.upgrade() {
                shard.orphaned.store(true, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(local: &Local) -> usize {
        Arc::strong_count(&local.shard)
    }

    #[test]
    fn clones_on_one_thread_count_one_shard() {
        let registry = BreakerRegistry::new();
        let root = Local::new(registry.clone());
        let before = registry.strong_count();
        let clones: Vec<Local> = (0..4).map(|_| root.clone()).collect();
        assert_eq!(count(&root), 5);
        assert_eq!(
            registry.strong_count(),
            before,
            "the registry is not counted per clone"
        );
        drop(clones);
        assert_eq!(count(&root), 1);
    }

    #[test]
    fn another_thread_gets_a_shard_of_its_own_kept_by_the_root() {
        let registry = BreakerRegistry::new();
        let root = Local::new(registry.clone());
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let first = root.clone();
                    assert!(!Arc::ptr_eq(&first.shard, &root.shard));
                    assert_eq!(first.service(), root.service());
                    drop(first);
                    // Like a clone per request: the shard outlived the first clone.
                    let counted = registry.strong_count();
                    let second = root.clone();
                    let third = second.clone();
                    assert!(Arc::ptr_eq(&second.shard, &third.shard));
                    assert_eq!(registry.strong_count(), counted);
                    assert_eq!(root.kept(), 1);
                })
                .join()
                .unwrap();
            // The thread ended: the next shard made lets its shard go.
            scope.spawn(|| drop(root.clone())).join().unwrap();
            assert_eq!(root.kept(), 1);
        });
        assert_eq!(count(&root), 1);
    }

    #[test]
    fn a_clone_outliving_its_root_still_holds_the_registry() {
        let registry = BreakerRegistry::new();
        let root = Local::new(registry.clone());
        let clone = std::thread::scope(|scope| scope.spawn(|| root.clone()).join().unwrap());
        drop(root);
        let weak = registry.downgrade();
        drop(registry);
        assert!(weak.upgrade().is_some());
        let again = std::thread::scope(|scope| scope.spawn(|| clone.clone()).join().unwrap());
        drop(clone);
        assert!(weak.upgrade().is_some());
        drop(again);
        assert!(
            weak.upgrade().is_none(),
            "the last clone frees the registry"
        );
    }
}
