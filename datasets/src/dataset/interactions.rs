//! Plain interaction rows (`user_id`, `item_id`, `value`) into a data set, one row at a time.

use std::collections::HashMap;

use super::{Dataset, Interaction, WeightConfig, catalog_items, item_index};
use crate::error::{Error, Result};
use crate::identity::Placeholders;
use crate::ids::{IdMap, UserIdx};
use crate::load::Catalog;
use crate::schema::Identifier;

/// Builds a data set from plain interaction rows one at a time, interning ids as they come,
/// so a large file never has to be held as strings.
pub struct InteractionsBuilder {
    dataset: Dataset,
    placeholders: Placeholders,
    placeholder_rows: usize,
}

impl InteractionsBuilder {
    /// An empty data set over `catalog`, weighted by `weights`.
    pub fn new(catalog: Option<Catalog>, weights: &WeightConfig) -> Result<Self> {
        weights.validate()?;
        let (items, catalog, has_catalog) = catalog_items(catalog);
        Ok(InteractionsBuilder {
            dataset: Dataset {
                users: IdMap::new(),
                items,
                aliases: HashMap::new(),
                catalog,
                has_catalog,
                interactions: Vec::new(),
                origin: Vec::new(),
                activity: Vec::new(),
                activity_from_interactions: true,
                channels: vec!["unknown".into()],
                identity: None,
                half_life_days: weights.half_life_days,
            },
            placeholders: Placeholders::default(),
            placeholder_rows: 0,
        })
    }

    /// The placeholder user ids whose rows are left out (they identify nobody); the built-in
    /// list until told otherwise.
    pub fn with_placeholders(mut self, placeholders: Placeholders) -> Self {
        self.placeholders = placeholders;
        self
    }

    /// Rows left out so far because their user id is a placeholder.
    pub fn placeholder_rows(&self) -> usize {
        self.placeholder_rows
    }

    /// Adds one row: the weight is `value` (1 when absent); the item counts as consumed. A
    /// row of a placeholder user id (`guest`, `0`) is left out and counted.
    pub fn push(&mut self, user_id: &str, item_id: &str, value: Option<f32>, timestamp: Option<i64>) {
        let data = &mut self.dataset;
        // `email:Ann@Example.com` and `email:ann@example.com` are one person: an id with a
        // kind is keyed by its normalised identifier (a plain user id is its own key).
        let parsed = user_id.contains(':').then(|| Identifier::parse_key(user_id)).flatten();
        let placeholder = match &parsed {
            Some(identifier) => self.placeholders.contains(identifier),
            None => self.placeholders.contains_plain(user_id),
        };
        if placeholder {
            self.placeholder_rows += 1;
            return;
        }
        let normalised = parsed.map(|i| crate::identity::canonical_key(&i));
        let user = UserIdx(data.users.get_or_insert(normalised.as_deref().unwrap_or(user_id)));
        let item = item_index(&mut data.items, &mut data.catalog, item_id);
        let timestamp = timestamp.unwrap_or(0);
        data.origin.push(data.interactions.len() as u32);
        data.interactions.push(Interaction {
            user,
            item,
            weight: value.unwrap_or(1.0),
            timestamp,
            consumption: 1,
        });
    }

    /// Rows added so far.
    pub fn len(&self) -> usize {
        self.dataset.interactions.len()
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.dataset.interactions.is_empty()
    }

    /// The data set; an error when no row was added, or when no row weighs above 0.
    pub fn finish(self) -> Result<Dataset> {
        let mut dataset = self.dataset;
        if dataset.interactions.is_empty() && self.placeholder_rows > 0 {
            return Err(Error::NothingToTrain(format!(
                "all {} rows name a placeholder user id (`guest`, `0`, `undefined`, …), which identifies nobody \
                 (see `[identity] placeholders` and `builtin_placeholders`)",
                self.placeholder_rows
            )));
        }
        if dataset.interactions.is_empty() {
            return Err(Error::Empty("interactions".into()));
        }
        if !dataset.interactions.iter().any(|i| i.weight > 0.0) {
            return Err(Error::NothingToTrain(format!(
                "all {} rows have a value of 0 or less, and models learn only from positive weights",
                dataset.interactions.len()
            )));
        }
        dataset.aliases = dataset
            .users
            .ids()
            .iter()
            .enumerate()
            .filter_map(|(idx, id)| Identifier::parse_key(id).map(|ident| (ident.key(), UserIdx(idx as u32))))
            .collect();
        Ok(dataset)
    }
}
