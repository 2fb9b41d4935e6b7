//! A compact map of counter names to values, for the counters every frame holds.
//!
//! A frame holds ~300 protocol counters per network namespace plus each interface's; rolling
//! windows keep a frame a second. As `BTreeMap<String, i64>` that cost ~100 bytes a counter
//! (~37 KB per namespace per second, 200 MB for 50 pods over five minutes). Here the names are
//! one shared, sorted, interned list per schema (the same `Arc` for every namespace and frame
//! with that group of counters) and the values a plain vector: 8 bytes a counter.
//!
//! It reads like the `BTreeMap` it replaces (`get`, `iter`, `keys`, `values`, `len`, `insert`,
//! collect from pairs) and serialises as the same JSON map, so recordings do not change.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    sync::{Arc, Mutex, OnceLock},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

type Names = Arc<[Arc<str>]>;

/// Interned schemas (sorted name lists) and names. Kernels have a handful of schemas (one per
/// SNMP group, one per driver's statistics), so this stays small; it is capped all the same.
struct Interner {
    names: HashSet<Arc<str>>,
    schemas: HashSet<Names>,
}

const INTERNER_CAP: usize = 4096;

fn interner() -> &'static Mutex<Interner> {
    static INTERNER: OnceLock<Mutex<Interner>> = OnceLock::new();
    INTERNER.get_or_init(|| {
        Mutex::new(Interner {
            names: HashSet::new(),
            schemas: HashSet::new(),
        })
    })
}

fn intern_schema(sorted: Vec<String>) -> Names {
    let Ok(mut i) = interner().lock() else {
        return sorted.into_iter().map(Arc::from).collect();
    };
    let names: Names = sorted
        .into_iter()
        .map(|n| match i.names.get(n.as_str()) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(n);
                if i.names.len() < INTERNER_CAP * 16 {
                    i.names.insert(shared.clone());
                }
                shared
            }
        })
        .collect();
    if let Some(shared) = i.schemas.get(&names) {
        return shared.clone();
    }
    if i.schemas.len() < INTERNER_CAP {
        i.schemas.insert(names.clone());
    }
    names
}

/// Counter name → value, compact (see the module docs).
#[derive(Clone)]
pub struct CounterSet<V> {
    names: Names,
    values: Vec<V>,
}

impl<V> Default for CounterSet<V> {
    fn default() -> Self {
        CounterSet {
            names: Arc::from(Vec::<Arc<str>>::new()),
            values: Vec::new(),
        }
    }
}

impl<V: Copy> CounterSet<V> {
    fn from_sorted(pairs: BTreeMap<String, V>) -> Self {
        let values = pairs.values().copied().collect();
        let names = intern_schema(pairs.into_keys().collect());
        CounterSet { names, values }
    }

    fn to_map(&self) -> BTreeMap<String, V> {
        self.iter().map(|(k, v)| (k.to_owned(), *v)).collect()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| (**n).cmp(name)).ok()
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.index(name).map(|i| &self.values[i])
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.index(name).is_some()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> + '_ {
        self.names.iter().map(|n| &**n).zip(self.values.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.names.iter().map(|n| &**n)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.values.iter()
    }

    /// Sets one counter (rebuilds the schema when the name is new: meant for building
    /// fixtures, not for hot paths; parsers collect whole groups at once).
    pub fn insert(&mut self, name: impl Into<String>, value: V) -> Option<V> {
        let name = name.into();
        if let Some(i) = self.index(&name) {
            return Some(std::mem::replace(&mut self.values[i], value));
        }
        let mut map = self.to_map();
        map.insert(name, value);
        *self = CounterSet::from_sorted(map);
        None
    }

    /// Removes every counter.
    pub fn clear(&mut self) {
        *self = CounterSet::default();
    }
}

/// The names of one source line in the order it prints them (a `/proc/net/snmp` header), with
/// their sorted interned schema: values read in line order become a [`CounterSet`] without a
/// string or map per reading. Built once per distinct header and kept by the caller.
#[derive(Debug)]
pub struct Layout {
    names: Names,
    /// Line position → index in `names`.
    slots: Vec<usize>,
}

impl Layout {
    /// None when a name repeats (a map would keep only its last value; the caller falls back
    /// to building the map).
    pub fn new(in_order: &[&str]) -> Option<Layout> {
        let mut sorted: Vec<&str> = in_order.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        let slots = in_order
            .iter()
            .map(|name| sorted.binary_search(name).unwrap_or(0))
            .collect();
        let names = intern_schema(sorted.into_iter().map(str::to_owned).collect());
        Some(Layout { names, slots })
    }

    /// How many names (and values) a line has.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The set of `values`, given in line order (exactly [`Layout::len`] of them).
    pub fn set<V: Copy + Default>(&self, values: &[V]) -> CounterSet<V> {
        let mut sorted = vec![V::default(); self.slots.len()];
        for (&slot, &value) in self.slots.iter().zip(values) {
            sorted[slot] = value;
        }
        CounterSet {
            names: Arc::clone(&self.names),
            values: sorted,
        }
    }
}

impl<V: Copy> Extend<(String, V)> for CounterSet<V> {
    fn extend<I: IntoIterator<Item = (String, V)>>(&mut self, iter: I) {
        let mut map = self.to_map();
        map.extend(iter);
        *self = CounterSet::from_sorted(map);
    }
}

impl<V: Copy> FromIterator<(String, V)> for CounterSet<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        CounterSet::from_sorted(iter.into_iter().collect())
    }
}

impl<'a, V: Copy> FromIterator<(&'a str, V)> for CounterSet<V> {
    fn from_iter<I: IntoIterator<Item = (&'a str, V)>>(iter: I) -> Self {
        CounterSet::from_sorted(iter.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }
}

impl<V: Copy, const N: usize> From<[(String, V); N]> for CounterSet<V> {
    fn from(pairs: [(String, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

/// `set["name"]`, like a map: panics when the counter is absent (use `get` otherwise).
impl<V: Copy> std::ops::Index<&str> for CounterSet<V> {
    type Output = V;

    fn index(&self, name: &str) -> &V {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no counter named {name:?}"),
        }
    }
}

impl<V: Copy> From<BTreeMap<String, V>> for CounterSet<V> {
    fn from(map: BTreeMap<String, V>) -> Self {
        CounterSet::from_sorted(map)
    }
}

impl<'a, V: Copy> IntoIterator for &'a CounterSet<V> {
    type Item = (&'a str, &'a V);
    type IntoIter = std::iter::Zip<
        std::iter::Map<std::slice::Iter<'a, Arc<str>>, fn(&'a Arc<str>) -> &'a str>,
        std::slice::Iter<'a, V>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let deref: fn(&'a Arc<str>) -> &'a str = |n| n;
        self.names.iter().map(deref).zip(self.values.iter())
    }
}

impl<V: PartialEq> PartialEq for CounterSet<V> {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
            && (Arc::ptr_eq(&self.names, &other.names) || self.names == other.names)
    }
}

impl<V: fmt::Debug + Copy> fmt::Debug for CounterSet<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Serialize + Copy> Serialize for CounterSet<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, V: Deserialize<'de> + Copy> Deserialize<'de> for CounterSet<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, V>::deserialize(deserializer).map(CounterSet::from_sorted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(values: [i64; 3]) -> CounterSet<i64> {
        [
            ("RetransSegs".to_owned(), values[0]),
            ("InSegs".to_owned(), values[1]),
            ("OutSegs".to_owned(), values[2]),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn reads_like_the_map_it_replaces_and_shares_one_schema() {
        let a = tcp([3, 100, 90]);
        let b = tcp([4, 200, 180]);
        assert_eq!(a.get("RetransSegs"), Some(&3));
        assert_eq!(b.get("InSegs"), Some(&200));
        assert_eq!(a.get("Nope"), None);
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            ["InSegs", "OutSegs", "RetransSegs"]
        );
        assert!(Arc::ptr_eq(&a.names, &b.names), "one schema for both");
        let mut c = a.clone();
        assert_eq!(c.insert("RetransSegs", 9), Some(3));
        assert_eq!(c.insert("ActiveOpens", 1), None);
        assert_eq!(c.len(), 4);
        assert_eq!(c.get("ActiveOpens"), Some(&1));
        assert_eq!(a.len(), 3, "the original is untouched");
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn serialises_as_the_same_json_map() {
        let a = tcp([3, 100, 90]);
        let json = serde_json::to_string(&a).expect("json");
        assert_eq!(json, r#"{"InSegs":100,"OutSegs":90,"RetransSegs":3}"#);
        let map: BTreeMap<String, i64> = serde_json::from_str(&json).expect("as a map");
        assert_eq!(map.len(), 3);
        let back: CounterSet<i64> = serde_json::from_str(&json).expect("back");
        assert_eq!(back, a);
        assert!(Arc::ptr_eq(&back.names, &a.names), "interned on load too");
    }

    #[test]
    fn costs_eight_bytes_a_counter_once_the_schema_is_shared() {
        let names: Vec<String> = (0..300).map(|i| format!("Counter{i:03}")).collect();
        let sets: Vec<CounterSet<i64>> = (0..100)
            .map(|f| names.iter().map(|n| (n.clone(), f)).collect())
            .collect();
        let first = &sets[0].names;
        assert!(sets.iter().all(|s| Arc::ptr_eq(&s.names, first)));
        // The values are all a set owns: one exact-size vector.
        assert!(sets.iter().all(|s| s.values.capacity() == 300));
    }
}
