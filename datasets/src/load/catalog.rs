//! Catalog files (CSV/TSV or JSON Lines) and catalog changes sent as JSON: one item per row
//! or object, every error naming its line and field.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;

use serde_json::{Map, Value};

use super::{LoadOptions, LoadReport, Table, parse_number, scalar_string, text_lines};
use crate::error::{Error, Result};
use crate::schema::{Item, check_id, parse_timestamp};

/// The item catalog, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// The items; ids are unique.
    pub items: Vec<Item>,
}

/// The format of a catalog file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFormat {
    /// CSV or TSV with a header; list fields are `|`-separated.
    Delimited,
    /// One JSON object per line.
    JsonLines,
}

impl CatalogFormat {
    /// Guesses the format from a file name: `.jsonl`/`.ndjson`/`.json` are JSON Lines.
    pub fn from_path(path: &str) -> Self {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") || lower.ends_with(".json") {
            CatalogFormat::JsonLines
        } else {
            CatalogFormat::Delimited
        }
    }
}

/// Reads a catalog. Columns (CSV) or keys (JSON): `item_id` (required), `title`,
/// `description`, `categories` (also `category` or `genres`), `brand`, `tags`, `price`,
/// `in_stock` (default true), `store_stock` (`store:units|store:units`, or an object),
/// `available_from`, `available_until`. A repeated `item_id` is an error.
pub fn read_catalog(
    reader: impl BufRead,
    source: &str,
    format: CatalogFormat,
    options: &LoadOptions,
) -> Result<(Catalog, LoadReport)> {
    let mut report = LoadReport::new(source);
    let mut items: Vec<Item> = Vec::new();
    let mut seen = HashSet::new();
    let mut stores: HashSet<String> = HashSet::new();
    let mut accept = |item: Result<Item>, line: usize, report: &mut LoadReport| -> Result<()> {
        let item = item.and_then(|item| {
            if seen.contains(&item.item_id) {
                return Err(Error::parse(
                    source,
                    line,
                    "item_id",
                    format!("`{}` appears twice", item.item_id),
                ));
            }
            let new_stores = item.store_stock.keys().filter(|s| !stores.contains(*s)).count();
            if stores.len() + new_stores > MAX_STORES {
                return Err(Error::parse(
                    source,
                    line,
                    "store_stock",
                    format!("the catalog would name more than {MAX_STORES} distinct stores"),
                ));
            }
            stores.extend(item.store_stock.keys().cloned());
            seen.insert(item.item_id.clone());
            Ok(item)
        });
        match item {
            Ok(item) => {
                report.rows += 1;
                items.push(item);
                Ok(())
            }
            Err(error) => report.refuse(options, error),
        }
    };
    match format {
        CatalogFormat::JsonLines => {
            for line in text_lines(reader, source) {
                let (line_no, line) = line?;
                let item = match line {
                    Ok(line) if line.trim().is_empty() => continue,
                    Ok(line) => parse_item_json(&line, source, line_no),
                    Err(error) => Err(error),
                };
                accept(item, line_no, &mut report)?;
            }
        }
        CatalogFormat::Delimited => {
            let mut table = Table::open(reader, source)?;
            let id_col = table.require("item_id")?;
            let columns = table.columns.clone();
            table.for_each(|row| {
                let (record, line, is_complete) = match row {
                    Ok(row) => row,
                    Err(error) => return report.refuse(options, error),
                };
                let item = if is_complete {
                    parse_item_row(&columns, id_col, record, source, line)
                } else {
                    Err(Error::parse(
                        source,
                        line,
                        "",
                        format!("expected {} fields, found {}", columns.len(), record.len()),
                    ))
                };
                accept(item, line, &mut report)
            })?;
        }
    }
    Ok((Catalog { items }, report))
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split('|').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn parse_bool(raw: &str) -> std::result::Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "t" => Ok(true),
        "0" | "false" | "no" | "n" | "f" => Ok(false),
        other => Err(format!("expected true or false, found `{other}`")),
    }
}

/// Most stores one item's `store_stock` may name: every store id is indexed for the whole
/// catalog, so an unbounded list would let one catalog change take the server's memory.
pub const MAX_STORES_PER_ITEM: usize = 10_000;

/// Most distinct store ids across a catalog: each is indexed over the whole catalog (a
/// bit per item), so at 100,000 items the index holds at most 125 MB.
pub const MAX_STORES: usize = 10_000;

/// Longest store id, in bytes.
pub const MAX_STORE_ID_LEN: usize = 128;

fn parse_store_stock(raw: &str) -> std::result::Result<BTreeMap<String, u32>, String> {
    let mut stock = BTreeMap::new();
    for entry in split_list(raw) {
        let (store, units) =
            entry.split_once(':').ok_or_else(|| format!("expected `store:units`, found `{entry}`"))?;
        let store = store.trim();
        if store.is_empty() || store.len() > MAX_STORE_ID_LEN {
            return Err(format!("a store id has 1 to {MAX_STORE_ID_LEN} bytes, found {}", store.len()));
        }
        let units = units
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("expected a whole number of units for store `{store}`, found `{units}`"))?;
        // No units is no stock there, as a store not named: kept out, so that stores at 0
        // units everywhere never count toward the bounds below.
        if units == 0 {
            stock.remove(store);
        } else {
            stock.insert(store.to_owned(), units);
        }
        if stock.len() > MAX_STORES_PER_ITEM {
            return Err(format!("more than {MAX_STORES_PER_ITEM} stores for one item"));
        }
    }
    Ok(stock)
}

/// Applies one named catalog field to `item`; unknown names are ignored.
fn set_item_field(item: &mut Item, name: &str, raw: &str) -> std::result::Result<(), String> {
    let raw = raw.trim();
    match name {
        "title" | "name" => item.title = raw.to_owned(),
        "description" => item.description = Some(raw.to_owned()).filter(|s| !s.is_empty()),
        "categories" | "category" | "genres" => item.categories = split_list(raw),
        "brand" => item.brand = Some(raw.to_owned()).filter(|s| !s.is_empty()),
        "tags" => item.tags = split_list(raw),
        "price" if !raw.is_empty() => {
            let price = parse_number(raw)?;
            if price < 0.0 {
                return Err(format!("must not be negative, found {price}"));
            }
            item.price = Some(price);
        }
        "in_stock" if !raw.is_empty() => item.in_stock = parse_bool(raw)?,
        "store_stock" => item.store_stock = parse_store_stock(raw)?,
        "available_from" if !raw.is_empty() => item.available_from = Some(parse_timestamp(raw)?),
        "available_until" if !raw.is_empty() => item.available_until = Some(parse_timestamp(raw)?),
        _ => {}
    }
    Ok(())
}

fn new_item(item_id: &str) -> Item {
    Item { item_id: item_id.to_owned(), in_stock: true, ..Item::default() }
}

fn parse_item_row(
    columns: &[String],
    id_col: usize,
    record: &csv::StringRecord,
    source: &str,
    line: usize,
) -> Result<Item> {
    let item_id = record.get(id_col).unwrap_or("").trim();
    if item_id.is_empty() {
        return Err(Error::parse(source, line, "item_id", "empty"));
    }
    check_id(item_id).map_err(|reason| Error::parse(source, line, "item_id", reason))?;
    let mut item = new_item(item_id);
    for (name, raw) in columns.iter().zip(record.iter()) {
        set_item_field(&mut item, name, raw).map_err(|reason| Error::parse(source, line, name, reason))?;
    }
    finish_item(item).map_err(|(field, reason)| Error::parse(source, line, field, reason))
}

fn parse_item_json(line: &str, source: &str, line_no: usize) -> Result<Item> {
    let err = |field: &str, reason: String| Error::parse(source, line_no, field, reason);
    let value: Value = serde_json::from_str(line).map_err(|e| err("", format!("not valid JSON: {e}")))?;
    super::refuse_repeated_keys(line, source, line_no)?;
    let Value::Object(object) = value else {
        return Err(err("", "expected a JSON object".into()));
    };
    if let Some(raw) = object.get("item_id").filter(|v| !v.is_null())
        && super::id_string(raw).is_none()
    {
        return Err(err("item_id", super::NOT_AN_ID.into()));
    }
    let item_id = object
        .get("item_id")
        .and_then(super::id_string)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| err("item_id", "missing or empty".into()))?;
    check_id(&item_id).map_err(|reason| err("item_id", reason))?;
    let item = apply_json_fields(new_item(&item_id), &object, false).map_err(|e| err(&e.field, e.reason))?;
    finish_item(item).map_err(|(field, reason)| err(field, reason))
}

/// Why a catalog change was refused: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPatchError {
    /// The field.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// The catalog fields [`patch_item`] takes.
pub const ITEM_FIELDS: [&str; 10] = [
    "title",
    "description",
    "categories",
    "brand",
    "tags",
    "price",
    "in_stock",
    "store_stock",
    "available_from",
    "available_until",
];

/// Applies a catalog change sent as a JSON object to `item`, with the checks of catalog files:
/// a field present replaces the item's, `null` clears it (an empty list, no price; stock
/// online back to `true`), a field absent keeps the item's. `item_id` is ignored (it names the
/// item); any other field not in [`ITEM_FIELDS`] is refused, so a misspelt field is not lost
/// silently.
pub fn patch_item(item: Item, patch: &Map<String, Value>) -> std::result::Result<Item, ItemPatchError> {
    let item = apply_json_fields(item, patch, true)?;
    finish_item(item).map_err(|(field, reason)| ItemPatchError { field: field.into(), reason })
}

/// Sets the fields of `object` on `item`. Unknown fields are ignored, or refused when `strict`.
fn apply_json_fields(
    mut item: Item,
    object: &Map<String, Value>,
    strict: bool,
) -> std::result::Result<Item, ItemPatchError> {
    let err = |field: &str, reason: String| ItemPatchError { field: field.to_string(), reason };
    for (name, value) in object {
        if strict && name != "item_id" && !ITEM_FIELDS.contains(&name.as_str()) {
            return Err(err(name, format!("unknown field (expected one of {})", ITEM_FIELDS.join(", "))));
        }
        if let Some(expected) = json_type_mismatch(name, value) {
            return Err(err(name, format!("expected {expected}, found {value}")));
        }
        let text = match value {
            Value::Null => {
                clear_item_field(&mut item, name);
                continue;
            }
            Value::Array(list) => {
                let parts: Option<Vec<String>> = list.iter().map(scalar_string).collect();
                let parts = parts.ok_or_else(|| err(name, "expected a list of strings".into()))?;
                if let Some(part) = parts.iter().find(|p| p.contains('|')) {
                    return Err(err(
                        name,
                        format!("`{part}`: an entry cannot hold `|`, the catalog's list separator"),
                    ));
                }
                parts.join("|")
            }
            Value::Object(map) if name == "store_stock" => {
                let mut parts = Vec::new();
                for (store, units) in map {
                    if store.contains(['|', ':']) {
                        return Err(err(name, format!("store id `{store}` cannot hold `|` or `:`")));
                    }
                    let units = units
                        .as_u64()
                        .filter(|&u| u <= u64::from(u32::MAX))
                        .ok_or_else(|| err(name, format!("expected whole units for store `{store}`")))?;
                    parts.push(format!("{store}:{units}"));
                }
                parts.join("|")
            }
            Value::Bool(b) => b.to_string(),
            other => match scalar_string(other) {
                Some(text) => text,
                None => continue,
            },
        };
        set_item_field(&mut item, name, &text).map_err(|reason| err(name, reason))?;
    }
    Ok(item)
}

/// Resets one named field of `item` to what an item without it has.
fn clear_item_field(item: &mut Item, name: &str) {
    match name {
        // An item without a title is known by its id.
        "title" | "name" => item.title = item.item_id.clone(),
        "description" => item.description = None,
        "categories" | "category" | "genres" => item.categories.clear(),
        "brand" => item.brand = None,
        "tags" => item.tags.clear(),
        "price" => item.price = None,
        "in_stock" => item.in_stock = true,
        "store_stock" => item.store_stock.clear(),
        "available_from" => item.available_from = None,
        "available_until" => item.available_until = None,
        _ => {}
    }
}

/// For a catalog field this loader knows, what JSON types it takes, when `value` is none of
/// them; `None` when the value fits or the field is not one of ours (unknown keys are
/// ignored).
fn json_type_mismatch(name: &str, value: &Value) -> Option<&'static str> {
    let (fits, expected) = match name {
        "title" | "name" | "description" | "brand" | "available_from" | "available_until" => {
            (matches!(value, Value::String(_) | Value::Number(_)), "a string")
        }
        "categories" | "category" | "genres" | "tags" => {
            let is_list = value.as_array().is_some_and(|l| l.iter().all(|v| v.is_string() || v.is_number()));
            (is_list || value.is_string(), "a string or a list of strings")
        }
        "price" => (matches!(value, Value::Number(_) | Value::String(_)), "a number"),
        "in_stock" => {
            (matches!(value, Value::Bool(_) | Value::String(_) | Value::Number(_)), "true or false")
        }
        "store_stock" => (value.is_object() || value.is_string(), "an object of store to units"),
        _ => (true, ""),
    };
    (!fits && !value.is_null()).then_some(expected)
}

/// Completes a parsed item: its title defaults to its id; an availability window must not
/// end before it starts. Errors name the field.
fn finish_item(mut item: Item) -> std::result::Result<Item, (&'static str, String)> {
    if item.title.is_empty() {
        item.title = item.item_id.clone();
    }
    if let (Some(from), Some(until)) = (item.available_from, item.available_until)
        && from > until
    {
        return Err((
            "available_until",
            format!(
                "{} is before available_from {}",
                crate::schema::format_timestamp(until),
                crate::schema::format_timestamp(from)
            ),
        ));
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_patch_replaces_what_it_names_clears_nulls_and_keeps_the_rest() {
        let item = Item {
            item_id: "i1".into(),
            title: "Trail shoe".into(),
            brand: Some("Acme".into()),
            price: Some(80.0),
            in_stock: true,
            ..Item::default()
        };
        let patched = patch_item(
            item.clone(),
            &patch(r#"{"price": 60, "store_stock": {"s1": 3}, "brand": null, "in_stock": false}"#),
        )
        .unwrap();
        assert_eq!(patched.price, Some(60.0));
        assert_eq!(patched.store_stock.get("s1"), Some(&3));
        assert_eq!(patched.brand, None);
        assert!(!patched.in_stock);
        assert_eq!(patched.title, "Trail shoe");
        let untitled = patch_item(item.clone(), &patch(r#"{"title": null}"#)).unwrap();
        assert_eq!(untitled.title, "i1");
        let refused = |json: &str| patch_item(item.clone(), &patch(json)).unwrap_err();
        assert_eq!(refused(r#"{"prize": 60}"#).field, "prize");
        assert!(refused(r#"{"prize": 60}"#).reason.starts_with("unknown field"));
        assert_eq!(refused(r#"{"price": "cheap"}"#).field, "price");
        assert_eq!(refused(r#"{"price": -1}"#).reason, "must not be negative, found -1");
        assert_eq!(refused(r#"{"tags": [1, {"a": 2}]}"#).field, "tags");
        assert_eq!(refused(r#"{"store_stock": {"s1": -2}}"#).field, "store_stock");
        // Separators inside JSON values are refused, not split.
        assert!(refused(r#"{"categories": ["Books|Comics"]}"#).reason.contains("list separator"));
        assert!(refused(r#"{"store_stock": {"a:5|b": 3}}"#).reason.contains("cannot hold"));
        // Store ids are bounded in number and length.
        let many: Map<String, Value> =
            (0..=MAX_STORES_PER_ITEM).map(|n| (format!("s{n}"), Value::from(1))).collect();
        let mut body = Map::new();
        body.insert("store_stock".into(), Value::Object(many));
        let error = patch_item(item.clone(), &body).unwrap_err();
        assert!(error.field == "store_stock" && error.reason.contains("more than"), "{error:?}");
        // Stores at 0 units are no stock there: not kept, not counted.
        let zeros: Map<String, Value> =
            (0..=MAX_STORES_PER_ITEM).map(|i| (format!("z{i}"), Value::from(0))).collect();
        let mut body = Map::new();
        body.insert("store_stock".into(), Value::Object(zeros));
        let patched = patch_item(Item::default(), &body).unwrap();
        assert!(patched.store_stock.is_empty());
        let long = format!(r#"{{"store_stock": {{"{}": 1}}}}"#, "s".repeat(MAX_STORE_ID_LEN + 1));
        assert!(refused(&long).reason.contains("bytes"));
        let window = refused(r#"{"available_from": "2025-02-01", "available_until": "2025-01-01"}"#);
        assert_eq!(window.field, "available_until");
    }
}
