//! The catalog as served: the model's catalog with the changes made since (new items, new
//! stock and prices, deletions), and the placements compiled against it.
//!
//! The models score the items they were trained on, indices `0..n_trained`; items created
//! after training get the next indices, are scored by the content model (through TF-IDF rows
//! made with the training vocabulary) and live popularity, and by every model after the next
//! training. A deleted item keeps its index (the models still score it) and is never served.
//!
//! A change makes a new catalog from the old one: entries are shared (`Arc`), only the
//! changed ones are replaced, and each placement recomputes only the changed items.

use std::collections::BTreeMap;
use std::sync::Arc;

use datasets::schema::Item;
use datasets::{IdMap, ItemIdx};

use crate::algorithms::content::{ContentModel, TermRow};
use crate::error::Result;
use crate::serve::rules::{CatalogIndex, Placement, PlacementConfig};

/// One catalog change: an item's whole entry after it (`None`: deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogChange {
    /// The item.
    pub item_id: String,
    /// Its entry; `None` once deleted.
    pub item: Option<Item>,
}

/// The catalog as served; see the module docs.
#[derive(Debug, Clone)]
pub struct LiveCatalog {
    ids: Arc<IdMap>,
    items: Vec<Arc<Item>>,
    deleted: Vec<bool>,
    index: CatalogIndex,
    n_trained: usize,
    /// TF-IDF rows of the items created after training (index `n_trained + i`); empty
    /// without a content model.
    new_rows: Vec<TermRow>,
}

impl LiveCatalog {
    /// The model's catalog, unchanged: `items[i]` is the entry of item `i` of `ids`.
    pub fn of_model(ids: Arc<IdMap>, items: &[Arc<Item>]) -> Self {
        let items = items.to_vec();
        let index = CatalogIndex::new(items.iter().map(|i| &**i));
        let n_trained = items.len();
        LiveCatalog { ids, deleted: vec![false; n_trained], items, index, n_trained, new_rows: Vec::new() }
    }

    /// This catalog with `ids` deleted (ids it does not hold are ignored).
    pub fn without(mut self, ids: &[String]) -> Self {
        for id in ids {
            if let Some(index) = self.ids.get(id) {
                self.deleted[index as usize] = true;
            }
        }
        self
    }

    /// [`LiveCatalog::of_model`] of items not yet shared.
    #[cfg(test)]
    pub(crate) fn of_items(ids: IdMap, items: Vec<Item>) -> Self {
        LiveCatalog::of_model(Arc::new(ids), &items.into_iter().map(Arc::new).collect::<Vec<_>>())
    }

    /// This catalog with `changes` applied (in order; the last change of an item wins), and
    /// the indices they touched. New items get TF-IDF rows from `content`.
    pub fn with_changes(
        &self,
        changes: &[CatalogChange],
        content: Option<&ContentModel>,
    ) -> Result<(Self, Vec<usize>)> {
        let mut next = self.clone();
        let mut touched = Vec::new();
        let mut new_entries: Vec<(usize, Item)> = Vec::new();
        for change in changes {
            let index = match next.ids.get(&change.item_id) {
                Some(index) => index as usize,
                None => {
                    // A deletion of an item never seen is nothing to serve.
                    let Some(item) = &change.item else { continue };
                    let ids = Arc::make_mut(&mut next.ids);
                    let index = ids.get_or_insert(&change.item_id) as usize;
                    next.items.push(Arc::new(item.clone()));
                    next.deleted.push(false);
                    index
                }
            };
            match &change.item {
                Some(item) => {
                    next.items[index] = Arc::new(item.clone());
                    next.deleted[index] = false;
                    if index >= self.n_trained {
                        new_entries.retain(|(i, _)| *i != index);
                        new_entries.push((index, item.clone()));
                    }
                }
                None => next.deleted[index] = true,
            }
            next.index.update(index, &next.items[index]);
            touched.push(index);
        }
        touched.sort_unstable();
        touched.dedup();
        if let Some(content) = content {
            next.new_rows.resize(next.items.len() - next.n_trained, TermRow::new());
            let items: Vec<Item> = new_entries.iter().map(|(_, item)| item.clone()).collect();
            for ((index, _), row) in new_entries.iter().zip(content.rows_for(&items)?) {
                next.new_rows[index - next.n_trained] = row;
            }
        }
        Ok((next, touched))
    }

    /// Items, the deleted ones included (their indices stay).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items the models were trained on: indices below this.
    pub fn n_trained(&self) -> usize {
        self.n_trained
    }

    /// The index of an item id (deleted items included).
    pub fn get(&self, item_id: &str) -> Option<ItemIdx> {
        self.ids.get(item_id).map(ItemIdx)
    }

    /// The id of item `item`.
    pub fn id(&self, item: ItemIdx) -> Option<&str> {
        self.ids.id(item.0)
    }

    /// The ids.
    pub fn ids(&self) -> &IdMap {
        &self.ids
    }

    /// The entry of item `i`.
    pub fn item(&self, i: usize) -> Option<&Item> {
        self.items.get(i).map(|item| &**item)
    }

    /// Every entry, by index.
    pub fn items(&self) -> impl ExactSizeIterator<Item = &Item> + '_ {
        self.items.iter().map(|item| &**item)
    }

    /// Whether item `i` is deleted (or out of range).
    pub fn is_deleted(&self, i: usize) -> bool {
        self.deleted.get(i).is_none_or(|&d| d)
    }

    /// The live entries (not deleted), for an export.
    pub fn live_items(&self) -> Vec<Item> {
        self.items.iter().zip(&self.deleted).filter(|(_, d)| !**d).map(|(item, _)| (**item).clone()).collect()
    }

    /// The ids of the deleted items, for an export.
    pub fn deleted_ids(&self) -> Vec<String> {
        let ids = self.ids.ids();
        self.deleted.iter().zip(ids).filter(|(d, _)| **d).map(|(_, id)| id.clone()).collect()
    }

    /// The catalog facts the rules use.
    pub fn index(&self) -> &CatalogIndex {
        &self.index
    }

    /// TF-IDF rows of the items created after training, from index [`LiveCatalog::n_trained`].
    pub fn new_rows(&self) -> &[TermRow] {
        &self.new_rows
    }
}

/// What answers requests until the next change: the catalog and the placements compiled
/// against it.
#[derive(Debug, Clone)]
pub struct View {
    /// The catalog.
    pub catalog: LiveCatalog,
    /// Placements by name.
    pub placements: BTreeMap<String, Placement>,
}

impl View {
    /// Compiles `configs` against `catalog`; returns the warnings of compilation (pinned items
    /// the catalog lacks).
    pub fn new(
        catalog: LiveCatalog,
        configs: &BTreeMap<String, PlacementConfig>,
    ) -> Result<(Self, Vec<String>)> {
        let mut placements = BTreeMap::new();
        let mut warnings = Vec::new();
        for (name, config) in configs {
            let (placement, mut more) = Placement::compile(name, config, &catalog)?;
            warnings.append(&mut more);
            placements.insert(name.clone(), placement);
        }
        Ok((View { catalog, placements }, warnings))
    }

    /// This view with `changes` applied: only the items they touch are recompiled.
    pub fn with_changes(&self, changes: &[CatalogChange], content: Option<&ContentModel>) -> Result<Self> {
        let (catalog, touched) = self.catalog.with_changes(changes, content)?;
        let placements =
            self.placements.iter().map(|(name, p)| (name.clone(), p.refreshed(&catalog, &touched))).collect();
        Ok(View { catalog, placements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, category: &str, in_stock: bool) -> Item {
        Item {
            item_id: id.into(),
            title: id.into(),
            categories: vec![category.into()],
            in_stock,
            ..Item::default()
        }
    }

    #[test]
    fn changes_replace_add_and_delete_items_and_placements_follow() {
        let mut ids = IdMap::new();
        let items = vec![entry("a", "shoes", true), entry("b", "books", true)];
        for item in &items {
            ids.get_or_insert(&item.item_id);
        }
        let configs = BTreeMap::from([("home".to_string(), PlacementConfig::default())]);
        let (view, _) = View::new(LiveCatalog::of_items(ids, items), &configs).unwrap();
        let changes = [
            CatalogChange { item_id: "a".into(), item: Some(entry("a", "shoes", false)) },
            CatalogChange { item_id: "c".into(), item: Some(entry("c", "garden", true)) },
            CatalogChange { item_id: "b".into(), item: None },
            CatalogChange { item_id: "never".into(), item: None },
        ];
        let next = view.with_changes(&changes, None).unwrap();
        let catalog = &next.catalog;
        assert_eq!((catalog.len(), catalog.n_trained()), (3, 2));
        assert_eq!(catalog.get("c"), Some(ItemIdx(2)));
        assert!(catalog.is_deleted(1) && !catalog.is_deleted(2) && catalog.get("never").is_none());
        assert_eq!(catalog.index().top_category(ItemIdx(2)), catalog.index().category("garden"));
        let home = &next.placements["home"];
        // Out of stock online now: no longer passes the placement's static filters.
        assert_eq!((home.passes(0), home.passes(2)), (false, true));
        // The old view is untouched.
        assert!(view.placements["home"].passes(0) && view.catalog.len() == 2);
        // Bringing a deleted item back.
        let back = next
            .with_changes(
                &[CatalogChange { item_id: "b".into(), item: Some(entry("b", "books", true)) }],
                None,
            )
            .unwrap();
        assert!(!back.catalog.is_deleted(1));
    }
}
