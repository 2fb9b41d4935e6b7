//! A reading shared between frames: an `Arc` that reads, compares and (de)serialises like the
//! value it holds, and copies on write. A namespace's counters carried unchanged from one
//! sample to the next are then one allocation, not a copy per frame, and two samples holding
//! the same reading can tell so by pointer ([`Shared::same`]) without comparing it.
//!
//! Hand-written (a few lines over `Arc::make_mut`) rather than a bare `Arc`: `Arc` has no
//! `DerefMut`, so every place that writes into a sample's namespace (narrowing to a scope,
//! test fixtures) would spell `Arc::make_mut`, and its serde impls need serde's `rc` feature.

use std::{fmt, ops::Deref, ops::DerefMut, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A shared, copy-on-write value (see the module docs).
#[derive(Default)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared(Arc::new(value))
    }

    /// Whether both hold the very same reading (one allocation): then they are equal without
    /// looking. Equal readings in two allocations answer false.
    pub fn same(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Writing copies the value first when another frame shares it.
impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Shared::same(self, other) || *self.0 == *other.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Shared::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_and_writes_copy() {
        let a = Shared::new(vec![1u64, 2, 3]);
        let mut b = a.clone();
        assert!(Shared::same(&a, &b));
        b.push(4);
        assert!(!Shared::same(&a, &b), "the write copied");
        assert_eq!((a.len(), b.len()), (3, 4));
        let c = Shared::new(vec![1u64, 2, 3]);
        assert!(
            !Shared::same(&a, &c) && a == c,
            "equal by value, not the same"
        );
        assert_eq!(serde_json::to_string(&a).expect("json"), "[1,2,3]");
        let back: Shared<Vec<u64>> = serde_json::from_str("[1,2,3]").expect("back");
        assert_eq!(back, a);
        assert_eq!(format!("{a:?}"), "[1, 2, 3]");
    }
}
