//! Dense indices for external ids: each external id is mapped to an index exactly once.

use std::collections::HashMap;

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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "Vec<String>", try_from = "Vec<String>")]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of `id`, inserting it at the end if it is new.
    pub fn get_or_insert(&mut self, id: &str) -> u32 {
        if let Some(&idx) = self.index.get(id) {
            return idx;
        }
        let idx = u32::try_from(self.ids.len()).expect("fewer than 2^32 distinct ids");
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), idx);
        idx
    }

    /// The index of `id`, if known.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
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
        let mut index = HashMap::with_capacity(ids.len());
        for (idx, id) in ids.iter().enumerate() {
            if index.insert(id.clone(), idx as u32).is_some() {
                return Err(format!("id `{id}` appears twice"));
            }
        }
        Ok(IdMap { ids, index })
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
