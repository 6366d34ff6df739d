//! Loaders for the files users have: JSON Lines events, CSV/TSV interactions, CSV/TSV or JSON
//! Lines catalogs. Every error names the source, the line and the field.
//!
//! Callers hand in readers; opening files is theirs to do.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Cursor, Read};

use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::schema::{
    Channel, Event, EventType, Identifier, IdentifierKind, check_id, check_identifier, parse_timestamp,
};

/// How loaders treat bad rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Skip malformed rows (counting them in the report) instead of failing on the first.
    pub skip_invalid: bool,
    /// Events and interaction rows dated after this (seconds since the epoch) are refused as
    /// `timestamp` errors, like any malformed row: one event from the future would otherwise
    /// become the reference time of recency decay. `None`: no bound. Catalog availability
    /// dates are not bounded (items may be announced ahead).
    pub max_timestamp: Option<i64>,
}

impl LoadOptions {
    fn check_time(&self, timestamp: i64) -> std::result::Result<(), String> {
        match self.max_timestamp {
            Some(bound) if timestamp > bound => Err(format!(
                "{} is in the future (later than {}); fix the clock or the unit of this source",
                crate::schema::format_timestamp(timestamp),
                crate::schema::format_timestamp(bound)
            )),
            _ => Ok(()),
        }
    }
}

/// The largest magnitude a `value` (rating, count, revenue) or a price may have. Models
/// compute in `f32`: a bound far inside its range keeps sums and products of weights
/// finite, where `1e308` (finite as `f64`) would become infinity and poison a whole model.
pub const MAX_ABS_VALUE: f32 = 1e9;

/// The lines of a text input, numbered from 1, with a UTF-8 byte order mark dropped from the
/// first and line ends (`\n`, `\r\n`) removed. A line that is not valid UTF-8 is an error for
/// that line alone (so `skip_invalid` can skip it); a failing read ends the input.
fn text_lines<R: BufRead>(
    mut reader: R,
    source: &str,
) -> impl Iterator<Item = Result<(usize, Result<String>)>> {
    let source = source.to_owned();
    let mut line_no = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => {
                done = true;
                return Some(Err(Error::io(format!("reading {source}:{}", line_no + 1), e)));
            }
        }
        line_no += 1;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if line_no == 1 && bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes.drain(..3);
        }
        let line = String::from_utf8(bytes).map_err(|e| {
            Error::parse(
                &source,
                line_no,
                ENCODING,
                format!("not valid UTF-8 (bad byte at offset {})", e.utf8_error().valid_up_to()),
            )
        });
        Some(Ok((line_no, line)))
    })
}

/// The field name under which lines that are not valid UTF-8 are reported.
const ENCODING: &str = "(encoding)";

/// What a loader read and what it skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// The file or stream name.
    pub source: String,
    /// Rows accepted.
    pub rows: usize,
    /// Rows skipped as malformed (only with `skip_invalid`).
    pub skipped: usize,
    /// Rows dropped because their `event_id` was already seen.
    pub duplicates: usize,
    /// Skipped rows counted by the field at fault.
    pub skipped_by_field: BTreeMap<String, usize>,
    /// The first few skip messages, in full.
    pub examples: Vec<String>,
}

impl LoadReport {
    fn new(source: &str) -> Self {
        LoadReport { source: source.to_owned(), ..Default::default() }
    }

    /// Records a bad row: an error without `skip_invalid`, a count with it.
    fn refuse(&mut self, options: &LoadOptions, error: Error) -> Result<()> {
        if !options.skip_invalid {
            return Err(error);
        }
        self.skipped += 1;
        let field = match &error {
            Error::Parse { location, .. } if !location.field.is_empty() => location.field.clone(),
            _ => "(row)".to_owned(),
        };
        *self.skipped_by_field.entry(field).or_default() += 1;
        if self.examples.len() < 5 {
            self.examples.push(error.to_string());
        }
        Ok(())
    }

    /// A one-paragraph summary for people: counts, and why rows were skipped.
    pub fn summary(&self) -> String {
        let mut out = format!("{}: {} rows accepted", self.source, self.rows);
        if self.duplicates > 0 {
            out.push_str(&format!(", {} duplicate event ids dropped", self.duplicates));
        }
        if self.skipped > 0 {
            let by_field: Vec<String> =
                self.skipped_by_field.iter().map(|(field, n)| format!("{field}: {n}")).collect();
            out.push_str(&format!(", {} invalid rows skipped ({})", self.skipped, by_field.join(", ")));
            for example in &self.examples {
                out.push_str("\n  e.g. ");
                out.push_str(example);
            }
        }
        out
    }
}

/// Event types that are about one item and so need an `item_id`.
fn needs_item(event_type: &EventType) -> bool {
    matches!(
        event_type,
        EventType::View
            | EventType::Click
            | EventType::AddToCart
            | EventType::Purchase
            | EventType::Return
            | EventType::Rating
    )
}

/// Reads JSON Lines events, one object per line; blank lines are ignored.
///
/// Identifiers (`user_id`, `email`, `phone`, `device_id`, `cookie_id`, `loyalty_id`,
/// `pos_customer_id`) may sit at the top level or inside an `identifiers` object. Required:
/// at least one identifier, `channel`, `type` (or `event_type`), `timestamp`; `item_id` for
/// item events; `value` for ratings. Events repeating an `event_id` already read are dropped.
pub fn read_events(
    reader: impl BufRead,
    source: &str,
    options: &LoadOptions,
) -> Result<(Vec<Event>, LoadReport)> {
    // Lines are parsed in parallel batches, then accepted in file order, so duplicates,
    // the first error and the report are the same as a sequential read.
    const BATCH: usize = 65_536;
    let mut report = LoadReport::new(source);
    let mut events = Vec::new();
    let mut seen_ids = HashSet::new();
    let mut lines = text_lines(reader, source);
    loop {
        let mut batch: Vec<(usize, Result<String>)> = Vec::with_capacity(BATCH);
        for line in lines.by_ref() {
            let (line_no, line) = line?;
            if line.as_ref().is_ok_and(|l| l.trim().is_empty()) {
                continue;
            }
            batch.push((line_no, line));
            if batch.len() == BATCH {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        let parsed: Vec<Result<Event>> = batch
            .into_par_iter()
            .map(|(line_no, line)| {
                let event = parse_event(&line?, source, line_no)?;
                options
                    .check_time(event.timestamp)
                    .map_err(|reason| Error::parse(source, line_no, "timestamp", reason))?;
                Ok(event)
            })
            .collect();
        for outcome in parsed {
            match outcome {
                Ok(event) => {
                    if let Some(id) = &event.event_id
                        && !seen_ids.insert(id.clone())
                    {
                        report.duplicates += 1;
                        continue;
                    }
                    report.rows += 1;
                    events.push(event);
                }
                Err(error) => report.refuse(options, error)?,
            }
        }
    }
    Ok((events, report))
}

fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An id's text: a string, or a whole number JSON holds exactly (64-bit). A fraction or a
/// larger number is read as a float, whose text (`1.2345678901234568e22`) two ids can share.
pub(crate) fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Why [`id_string`] refused a value.
pub(crate) const NOT_AN_ID: &str = "expected a string or a whole number (a larger number or a fraction would be rounded: send it as a string)";

/// Parses one event line.
pub fn parse_event(line: &str, source: &str, line_no: usize) -> Result<Event> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| Error::parse(source, line_no, "", format!("not valid JSON: {e}")))?;
    refuse_repeated_keys(line, source, line_no)?;
    event_from_json(&value, source, line_no)
}

/// An error naming the first key that an object of `line` repeats ([`duplicate_key`]).
pub(crate) fn refuse_repeated_keys(line: &str, source: &str, line_no: usize) -> Result<()> {
    match duplicate_key(line.as_bytes()) {
        None => Ok(()),
        Some((path, key)) => {
            let field = if path.is_empty() { key } else { format!("{path}.{key}") };
            Err(Error::parse(source, line_no, &field, "given twice in one object: send it once"))
        }
    }
}

/// One event from its JSON object, with the checks of event files; errors name `source`,
/// `line_no` and the field. The HTTP API reads its events through this too.
pub fn event_from_json(value: &Value, source: &str, line_no: usize) -> Result<Event> {
    let err = |field: &str, reason: String| Error::parse(source, line_no, field, reason);
    let Value::Object(object) = value else {
        return Err(err("", "expected a JSON object".into()));
    };
    // Other fields are the sender's own and stay unread, but a known name in another case
    // (`Loyalty_ID`) would silently lose an identifier or a field.
    const FIELDS: [&str; 10] = [
        "event_id",
        "timestamp",
        "channel",
        "type",
        "item_id",
        "value",
        "identifiers",
        "recommendation_id",
        "store_id",
        "person_id",
    ];
    for key in object.keys() {
        let lower = key.trim().to_ascii_lowercase();
        if lower != *key && (FIELDS.contains(&lower.as_str()) || IdentifierKind::parse(&lower).is_some()) {
            return Err(err(key, format!("field names are lowercase, without spaces: write `{lower}`")));
        }
    }

    let mut identifiers = Vec::new();
    let nested = match object.get("identifiers") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            return Err(err("identifiers", "expected an object of kind to id".into()));
        }
    };
    let empty = Map::new();
    for (field_prefix, map) in [("", object), ("identifiers.", nested.unwrap_or(&empty))] {
        for kind in IdentifierKind::ALL {
            let Some(raw) = map.get(kind.as_str()) else {
                continue;
            };
            if raw.is_null() {
                continue;
            }
            let field = format!("{field_prefix}{}", kind.as_str());
            let text = id_string(raw).ok_or_else(|| err(&field, NOT_AN_ID.into()))?;
            check_identifier(kind, &text).map_err(|reason| err(&field, reason))?;
            if let Some(identifier) = Identifier::new(kind, &text)
                && !identifiers.contains(&identifier)
            {
                identifiers.push(identifier);
            }
        }
    }
    if let Some(map) = nested
        && let Some(unknown) = map.keys().find(|key| IdentifierKind::parse(key).is_none())
    {
        return Err(err(
            &format!("identifiers.{unknown}"),
            "unknown identifier type (expected user_id, email, phone, device_id, cookie_id, loyalty_id or pos_customer_id)".into(),
        ));
    }
    if identifiers.is_empty() {
        return Err(err("identifiers", "no identifier: the event needs at least one of user_id, email, phone, device_id, cookie_id, loyalty_id, pos_customer_id".into()));
    }

    let text_field = |name: &str| -> Result<Option<String>> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                scalar_string(v).map(Some).ok_or_else(|| err(name, "expected a string or a number".into()))
            }
        }
    };
    let id_field = |name: &str| -> Result<Option<String>> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => id_string(v).map(Some).ok_or_else(|| err(name, NOT_AN_ID.into())),
        }
    };
    let channel = text_field("channel")?
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| err("channel", "missing".into()))?;
    let type_field = if object.contains_key("type") { "type" } else { "event_type" };
    let event_type = text_field(type_field)?
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| err("type", "missing".into()))?;
    let event_type = EventType::parse(&event_type);
    let item_id = id_field("item_id")?.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(id) = &item_id {
        check_id(id).map_err(|reason| err("item_id", reason))?;
    }
    if item_id.is_none() && needs_item(&event_type) {
        return Err(err("item_id", format!("missing, and a `{}` event needs one", event_type.as_str())));
    }
    let timestamp = match object.get("timestamp") {
        None | Some(Value::Null) => return Err(err("timestamp", "missing".into())),
        Some(v) => {
            let text =
                scalar_string(v).ok_or_else(|| err("timestamp", "expected a number or a string".into()))?;
            parse_timestamp(&text).map_err(|reason| err("timestamp", reason))?
        }
    };
    let value = match object.get("value") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_value(v).map_err(|reason| err("value", reason))?),
    };
    if value.is_none() && event_type == EventType::Rating {
        return Err(err("value", "missing, and a `rating` event needs one".into()));
    }
    // A purchase's value is its revenue (experiments sum it): a refund is a `return`.
    if let Some(v) = value.filter(|&v| v < 0.0 && event_type == EventType::Purchase) {
        return Err(err(
            "value",
            format!("{v} is negative; a purchase's value is its revenue (send a refund as a `return`)"),
        ));
    }
    Ok(Event {
        identifiers,
        channel: Channel::parse(&channel),
        event_type,
        item_id,
        timestamp,
        value,
        // Blank is none: an empty id on every line would make them all one event.
        event_id: id_field("event_id")?.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
    })
}

fn parse_value(value: &Value) -> std::result::Result<f32, String> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match number {
        Some(n) => bounded(n, &value.to_string()),
        None => Err(format!("expected a finite number, found {value}")),
    }
}

fn parse_number(raw: &str) -> std::result::Result<f32, String> {
    match raw.trim().parse::<f64>() {
        Ok(n) => bounded(n, &format!("`{raw}`")),
        Err(_) => Err(format!("expected a finite number, found `{raw}`")),
    }
}

/// `number` as the `f32` models compute with, if its magnitude is within [`MAX_ABS_VALUE`].
fn bounded(number: f64, shown: &str) -> std::result::Result<f32, String> {
    if number.is_finite() && number.abs() <= f64::from(MAX_ABS_VALUE) {
        Ok(number as f32)
    } else {
        Err(format!("expected a finite number of magnitude at most {MAX_ABS_VALUE:e}, found {shown}"))
    }
}

/// One row of a plain interactions file.
#[derive(Debug, Clone, PartialEq)]
pub struct RawInteraction {
    /// The external user id.
    pub user_id: String,
    /// The external item id.
    pub item_id: String,
    /// The rating, count or weight, if the file has a `value` column.
    pub value: Option<f32>,
    /// Seconds since the epoch, if the file has a `timestamp` column.
    pub timestamp: Option<i64>,
}

/// Picks the delimiter of a header line: tab, comma, semicolon or pipe, whichever is most
/// frequent (tab on a tie, then comma).
pub fn detect_delimiter(header: &str) -> u8 {
    let mut best = (b'\t', header.matches('\t').count());
    for delimiter in [b',', b';', b'|'] {
        let count = header.matches(delimiter as char).count();
        if count > best.1 {
            best = (delimiter, count);
        }
    }
    best.0
}

/// A CSV/TSV table: a detected delimiter and a header naming the columns.
/// What a [`Table`]'s rows are read from: the header's read-ahead, the file, a last `\n`.
type RowSource<R> = std::io::Chain<std::io::Chain<Cursor<Vec<u8>>, R>, &'static [u8]>;

struct Table<R: Read> {
    source: String,
    columns: Vec<String>,
    records: csv::Reader<RowSource<R>>,
}

impl<R: BufRead> Table<R> {
    fn open(mut reader: R, source: &str) -> Result<Self> {
        let mut first = String::new();
        reader.read_line(&mut first).map_err(|e| Error::io(format!("reading the header of {source}"), e))?;
        let header = first.trim_start_matches('\u{feff}').to_owned();
        if header.trim().is_empty() {
            let more = reader.fill_buf().map_err(|e| Error::io(format!("reading {source}"), e))?;
            if more.is_empty() {
                return Err(Error::Empty(source.to_owned()));
            }
            return Err(Error::parse(
                source,
                1,
                "",
                "blank: the header naming the columns must be the first line",
            ));
        }
        let delimiter = detect_delimiter(&header);
        let columns: Vec<String> = header
            .trim_end_matches(['\r', '\n'])
            .split(delimiter as char)
            .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        let records = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            // TSV files are rarely quoted, and titles may start with a quote.
            .quoting(delimiter != b'\t')
            .flexible(true)
            // Rows end at `\n` (a `\r` before it is taken off the last field) and the last
            // one is given a `\n`: the reader's line after a row is then always one past the
            // row's last line. With `\r\n` ending rows, the `\n` was read with the next row.
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(Cursor::new(Vec::new()).chain(reader).chain(&b"\n"[..]));
        Ok(Table { source: source.to_owned(), columns, records })
    }

    fn column(&self, name: &'static str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    fn require(&self, name: &'static str) -> Result<usize> {
        self.column(name).ok_or_else(|| Error::MissingColumn {
            source_name: self.source.clone(),
            column: name,
            found: self.columns.join(", "),
        })
    }

    /// Calls `row` for each non-blank data row with its 1-based line number and whether it
    /// has as many fields as the header; a row that is not valid UTF-8 is handed over as an
    /// error (the caller may skip it), and reading goes on.
    fn for_each(
        &mut self,
        mut row: impl FnMut(Result<(&csv::StringRecord, usize, bool)>) -> Result<()>,
    ) -> Result<()> {
        let n_columns = self.columns.len();
        let mut bytes = csv::ByteRecord::new();
        let mut line_no = 1;
        loop {
            match self.records.read_byte_record(&mut bytes) {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    // The row's first line: blank lines before it are skipped, and quoted
                    // fields may hold line breaks. The header was read by hand, so the
                    // reader's lines start at 1 for line 2.
                    let breaks = bytes.as_slice().iter().filter(|&&b| b == b'\n').count();
                    line_no = (self.records.position().line() as usize).saturating_sub(breaks);
                    if bytes.iter().next_back().is_some_and(|field| field.ends_with(b"\r")) {
                        let n = bytes.len();
                        let mut trimmed = csv::ByteRecord::with_capacity(bytes.as_slice().len(), n);
                        for (i, field) in bytes.iter().enumerate() {
                            trimmed.push_field(if i + 1 == n { &field[..field.len() - 1] } else { field });
                        }
                        bytes = trimmed;
                    }
                    let record = match csv::StringRecord::from_byte_record(std::mem::take(&mut bytes)) {
                        Ok(record) => record,
                        Err(e) => {
                            let reason = format!("not valid UTF-8 ({e})");
                            row(Err(Error::parse(&self.source, line_no, ENCODING, reason)))?;
                            continue;
                        }
                    };
                    if record.len() == 1 && record.get(0).is_some_and(|f| f.trim().is_empty()) {
                        continue;
                    }
                    row(Ok((&record, line_no, record.len() == n_columns)))?;
                    bytes = record.into_byte_record();
                }
                Err(e) => {
                    let line = e.position().map_or(line_no + 1, |p| p.line() as usize + 1);
                    return Err(Error::parse(&self.source, line, "", format!("unreadable row: {e}")));
                }
            }
        }
    }
}

/// Reads a CSV/TSV interactions file whose header names `user_id` and `item_id`, and
/// optionally `value` (also accepted: `rating`) and `timestamp`. The delimiter is detected.
pub fn read_interactions(
    reader: impl BufRead,
    source: &str,
    options: &LoadOptions,
) -> Result<(Vec<RawInteraction>, LoadReport)> {
    let mut rows = Vec::new();
    let report = read_interactions_with(reader, source, options, |user_id, item_id, value, timestamp| {
        rows.push(RawInteraction {
            user_id: user_id.to_owned(),
            item_id: item_id.to_owned(),
            value,
            timestamp,
        });
    })?;
    Ok((rows, report))
}

/// Like [`read_interactions`], but hands each accepted row to `on_row` (user id, item id,
/// value, timestamp) as it is read, without keeping the rows: for files too large to hold
/// as strings.
pub fn read_interactions_with(
    reader: impl BufRead,
    source: &str,
    options: &LoadOptions,
    mut on_row: impl FnMut(&str, &str, Option<f32>, Option<i64>),
) -> Result<LoadReport> {
    let mut table = Table::open(reader, source)?;
    let user_col = table.require("user_id")?;
    let item_col = table.require("item_id")?;
    let value_col = table.column("value").or_else(|| table.column("rating"));
    let value_name = value_col.map(|c| table.columns[c].clone()).unwrap_or_default();
    let time_col = table.column("timestamp");
    let n_columns = table.columns.len();
    let mut report = LoadReport::new(source);
    table.for_each(|row| {
        let (record, line, is_complete) = match row {
            Ok(row) => row,
            Err(error) => return report.refuse(options, error),
        };
        let parsed = (|| {
            if !is_complete {
                return Err(Error::parse(
                    source,
                    line,
                    "",
                    format!("expected {n_columns} fields, found {}", record.len()),
                ));
            }
            let field = |col: usize| record.get(col).unwrap_or("").trim();
            let user_id = field(user_col);
            if user_id.is_empty() {
                return Err(Error::parse(source, line, "user_id", "empty"));
            }
            check_id(user_id).map_err(|reason| Error::parse(source, line, "user_id", reason))?;
            let item_id = field(item_col);
            if item_id.is_empty() {
                return Err(Error::parse(source, line, "item_id", "empty"));
            }
            check_id(item_id).map_err(|reason| Error::parse(source, line, "item_id", reason))?;
            let value = value_col
                .map(|col| parse_number(field(col)))
                .transpose()
                .map_err(|reason| Error::parse(source, line, &value_name, reason))?;
            let timestamp = time_col
                .map(|col| parse_timestamp(field(col)).and_then(|t| options.check_time(t).map(|()| t)))
                .transpose()
                .map_err(|reason| Error::parse(source, line, "timestamp", reason))?;
            Ok((user_id, item_id, value, timestamp))
        })();
        match parsed {
            Ok((user_id, item_id, value, timestamp)) => {
                report.rows += 1;
                on_row(user_id, item_id, value, timestamp);
                Ok(())
            }
            Err(error) => report.refuse(options, error),
        }
    })?;
    Ok(report)
}

mod catalog;
mod unique;
pub use catalog::{
    Catalog, CatalogFormat, ITEM_FIELDS, ItemPatchError, MAX_STORE_ID_LEN, MAX_STORES, MAX_STORES_PER_ITEM,
    patch_item, read_catalog,
};
pub use unique::duplicate_key;

#[cfg(test)]
mod tests;
