//! Dense indices for external ids: each external id is mapped to an index exactly once.

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};

use hashbrown::hash_table::{Entry, HashTable};

use serde::{Deserialize, Serialize};

/// Dense index of a person (a user after identity resolution), `0..n_users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserIdx(pub u32);

/// Dense index of an item, `0..n_items`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemIdx(pub u32);

impl UserIdx {
    /// The index as a `usize`, for slicing.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl ItemIdx {
    /// The index as a `usize`, for slicing.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// A two-way map between external string ids and dense `u32` indices, in insertion order.
///
/// Serialized as the list of ids alone; the reverse index is rebuilt when it is read, and a
/// list that repeats an id or holds 2³² ids or more is refused, so a decoded map is always
/// consistent.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(into = "Vec<String>", try_from = "Vec<String>")]
pub struct IdMap {
    ids: Vec<String>,
    /// Indices into `ids`, found by the hash of the id each points at: every id is stored
    /// once (a map from id to index would hold each string twice; at 500,000 persons that
    /// was 45 MB more).
    index: HashTable<u32>,
    hasher: RandomState,
}

impl std::fmt::Debug for IdMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdMap").field("ids", &self.ids).finish()
    }
}

/// Two maps are equal when they hold the same ids in the same order (the index follows).
impl PartialEq for IdMap {
    fn eq(&self, other: &Self) -> bool {
        self.ids == other.ids
    }
}

impl IdMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_capacity(capacity: usize) -> Self {
        IdMap {
            ids: Vec::with_capacity(capacity),
            index: HashTable::with_capacity(capacity),
            hasher: RandomState::new(),
        }
    }

    /// The index of `id`, inserting it at the end if it is new.
    pub fn get_or_insert(&mut self, id: &str) -> u32 {
        self.find_or_push(Cow::Borrowed(id)).0
    }

    /// The index of `id` and whether it was new (then appended at the end).
    fn find_or_push(&mut self, id: Cow<'_, str>) -> (u32, bool) {
        let hash = self.hasher.hash_one(&*id);
        let IdMap { ids, index, hasher } = self;
        let entry = index.entry(
            hash,
            |&at| ids[at as usize] == *id,
            |&at| hasher.hash_one(ids[at as usize].as_str()),
        );
        match entry {
            Entry::Occupied(entry) => (*entry.get(), false),
            Entry::Vacant(entry) => {
                let at = u32::try_from(ids.len()).expect("fewer than 2^32 distinct ids");
                ids.push(id.into_owned());
                entry.insert(at);
                (at, true)
            }
        }
    }

    /// The index of `id`, if known.
    pub fn get(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.index.find(hash, |&idx| self.ids[idx as usize] == id).copied()
    }

    /// The external id at `idx`, if in range.
    pub fn id(&self, idx: u32) -> Option<&str> {
        self.ids.get(idx as usize).map(String::as_str)
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the map holds no ids.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The external ids in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

impl FromIterator<String> for IdMap {
    fn from_iter<T: IntoIterator<Item = String>>(iter: T) -> Self {
        let mut map = IdMap::new();
        for id in iter {
            map.get_or_insert(&id);
        }
        map
    }
}

impl From<IdMap> for Vec<String> {
    fn from(map: IdMap) -> Self {
        map.ids
    }
}

impl TryFrom<Vec<String>> for IdMap {
    type Error = String;

    fn try_from(ids: Vec<String>) -> Result<Self, String> {
        if u32::try_from(ids.len()).is_err() {
            return Err(format!("{} ids, more than a u32 index can address", ids.len()));
        }
        let mut map = IdMap::with_capacity(ids.len());
        for id in ids {
            let (at, new) = map.find_or_push(Cow::Owned(id));
            if !new {
                return Err(format!("id `{}` appears twice", map.ids[at as usize]));
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips_and_is_dense(ids in proptest::collection::vec("[a-c]{0,3}", 0..50)) {
            let mut map = IdMap::new();
            for id in &ids {
                let idx = map.get_or_insert(id);
                prop_assert_eq!(map.id(idx), Some(id.as_str()));
                prop_assert_eq!(map.get(id), Some(idx));
            }
            let distinct: std::collections::HashSet<_> = ids.iter().collect();
            prop_assert_eq!(map.len(), distinct.len());
            for idx in 0..map.len() as u32 {
                let id = map.id(idx).unwrap();
                prop_assert_eq!(map.get(id), Some(idx));
            }
            let back = IdMap::try_from(Vec::<String>::from(map.clone())).unwrap();
            prop_assert_eq!(back, map);
        }
    }

    #[test]
    fn a_decoded_list_with_a_repeated_id_is_refused() {
        let err = IdMap::try_from(vec!["a".to_string(), "b".into(), "a".into()]).unwrap_err();
        assert_eq!(err, "id `a` appears twice");
    }
}
