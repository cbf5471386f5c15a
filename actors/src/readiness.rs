//! Readiness: which supervised components are up. `/readyz` answers from it.
//!
//! Invariant: a process is ready only when it has at least one component and every registered
//! component is up. A component that stopped for good (a clean stop) is removed, not left down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Shared table of component → up. Cheap to clone; every supervisor of a process shares one.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    components: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, component: &str, up: bool) {
        self.lock().insert(component.to_owned(), up);
    }

    pub fn remove(&self, component: &str) {
        self.lock().remove(component);
    }

    /// Every component and whether it is up, sorted by name.
    pub fn snapshot(&self) -> BTreeMap<String, bool> {
        self.lock().clone()
    }

    pub fn is_ready(&self) -> bool {
        let components = self.lock();
        !components.is_empty() && components.values().all(|up| *up)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        // The map stays consistent even if a holder panicked: every write is one insert/remove.
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_registered_is_not_ready() {
        assert!(!Readiness::new().is_ready());
    }

    #[test]
    fn one_component_down_makes_the_process_not_ready() {
        let r = Readiness::new();
        r.set("edge/admin", true);
        r.set("edge/outbox", false);
        assert!(!r.is_ready());
        r.set("edge/outbox", true);
        assert!(r.is_ready());
        r.remove("edge/outbox");
        assert!(r.is_ready());
    }
}
