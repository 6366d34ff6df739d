//! The unified event and catalog schema shared by every channel.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The kinds of identifier a channel may know a person by.
///
/// The order is the merge priority used by identity resolution: an account id outranks a
/// loyalty card, which outranks an email, and so on down to a browser cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierKind {
    /// The shop's account id.
    UserId,
    /// A loyalty-card number.
    LoyaltyId,
    /// A point-of-sale customer number.
    PosCustomerId,
    /// An email address, stored only as a SHA-256 hash.
    Email,
    /// A phone number, stored only as a SHA-256 hash.
    Phone,
    /// A mobile app installation or device.
    DeviceId,
    /// A web browser cookie.
    CookieId,
}

impl IdentifierKind {
    /// Every kind, in priority order.
    pub const ALL: [IdentifierKind; 7] = [
        IdentifierKind::UserId,
        IdentifierKind::LoyaltyId,
        IdentifierKind::PosCustomerId,
        IdentifierKind::Email,
        IdentifierKind::Phone,
        IdentifierKind::DeviceId,
        IdentifierKind::CookieId,
    ];

    /// The field name used in files and APIs (`user_id`, `email`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::UserId => "user_id",
            IdentifierKind::LoyaltyId => "loyalty_id",
            IdentifierKind::PosCustomerId => "pos_customer_id",
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::DeviceId => "device_id",
            IdentifierKind::CookieId => "cookie_id",
        }
    }

    /// The kind named by a field name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Index into per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether raw values of this kind are personal data that is hashed on load.
    pub fn is_hashed(self) -> bool {
        matches!(self, IdentifierKind::Email | IdentifierKind::Phone)
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One identifier of a person, normalised: emails and phones hashed, others trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier {
    /// Which kind of identifier.
    pub kind: IdentifierKind,
    /// The normalised value (a lowercase hex SHA-256 for emails and phones).
    pub value: String,
}

impl Identifier {
    /// Normalises a raw value: trims it; lowercases and hashes emails; keeps the digits (and a
    /// leading `+`) of phones and hashes them. A value that already is a 64-character hex digest
    /// is taken as hashed upstream. Returns `None` for an empty value, and for a user id that
    /// reads as another kind's key (`cookie_id:c1`, see [`user_id_problem`]).
    pub fn new(kind: IdentifierKind, raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || (kind == IdentifierKind::UserId && user_id_problem(trimmed).is_some()) {
            return None;
        }
        let value = if !kind.is_hashed() {
            trimmed.to_owned()
        } else if is_hex_digest(trimmed) {
            trimmed.to_ascii_lowercase()
        } else {
            let normalised = match kind {
                IdentifierKind::Email => trimmed.to_lowercase(),
                _ => {
                    let plus = if trimmed.starts_with('+') { "+" } else { "" };
                    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
                    if digits.is_empty() {
                        return None;
                    }
                    format!("{plus}{digits}")
                }
            };
            hex_sha256(normalised.as_bytes())
        };
        Some(Identifier { kind, value })
    }

    /// Parses the `kind:value` form (`email:ann@example.com`); a string without a known kind
    /// prefix is a `user_id`.
    pub fn parse_key(key: &str) -> Option<Self> {
        if let Some((prefix, rest)) = key.split_once(':')
            && let Some(kind) = IdentifierKind::parse(prefix)
        {
            return Identifier::new(kind, rest);
        }
        Identifier::new(IdentifierKind::UserId, key)
    }

    /// The `kind:value` key under which this identifier is looked up.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.value)
    }
}

fn is_hex_digest(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why `value` cannot be a user id, if it cannot: a user id's key is its bare value, so one
/// that starts with an identifier type and `:` (`cookie_id:c1`) would be that identifier's
/// key, joining two persons (and one's consent deciding for both).
pub fn user_id_problem(value: &str) -> Option<String> {
    let (prefix, _) = value.split_once(':')?;
    IdentifierKind::parse(prefix).map(|kind| {
        format!(
            "`{value}` reads as a {kind} (a user id's key is its bare value): a user id may not start \
             with an identifier type and `:`"
        )
    })
}

/// Checks an identifier's raw value of kind `kind`: [`check_id`], and for a user id
/// [`user_id_problem`]. Every way identifiers come in (files, events, requests, links,
/// consent) checks them with this.
pub fn check_identifier(kind: IdentifierKind, value: &str) -> Result<(), String> {
    check_id(value)?;
    match kind {
        IdentifierKind::UserId => user_id_problem(value.trim()).map_or(Ok(()), Err),
        _ => Ok(()),
    }
}

/// Longest id (an item's, an identifier's value) a server takes, in bytes: every one is a
/// key of the store's indexes and of the identity graph, copied into each read of its
/// person ([`check_id_length`]). Files a user trains on are not bounded.
pub const MAX_ID_BYTES: usize = 1_024;

/// Longest channel or event type name a server takes, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Checks an id (an item's, an identifier's value): no control characters (a tab or a line
/// break would split the rows of every file it is written to: batch sends, exports).
pub fn check_id(id: &str) -> Result<(), String> {
    printable(id, "ids")
}

/// [`check_identifier`] and the server's bound on its length ([`MAX_ID_BYTES`]).
pub fn check_identifier_sent(kind: IdentifierKind, value: &str) -> Result<(), String> {
    check_identifier(kind, value)?;
    check_id_length(value)
}

/// Checks that an id a server is sent has at most [`MAX_ID_BYTES`].
pub fn check_id_length(id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        return Err(format!("{} bytes long; an id has at most {MAX_ID_BYTES}", id.len()));
    }
    Ok(())
}

/// Checks a channel or event type name a server is sent: at most [`MAX_NAME_BYTES`], no
/// control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("{} bytes long; a name has at most {MAX_NAME_BYTES}", name.len()));
    }
    printable(name, "names")
}

fn printable(text: &str, what: &str) -> Result<(), String> {
    // Line and paragraph separators break lines as surely as a newline.
    match text.chars().find(|&c| c.is_control() || c == '\u{2028}' || c == '\u{2029}') {
        Some(c) => {
            Err(format!("contains the control character {c:?}; {what} are one line of printable text"))
        }
        None => Ok(()),
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex(Sha256::digest(bytes).as_slice())
}

/// Lower-case hex of a digest.
pub fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for &byte in digest {
        out.push(char::from_digit(u32::from(byte >> 4), 16).expect("nibble < 16"));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).expect("nibble < 16"));
    }
    out
}

/// A channel where a person met the retailer. Unknown names are kept as custom channels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// The web shop.
    Web,
    /// The mobile app.
    App,
    /// Email campaigns.
    Email,
    /// Text messages.
    Sms,
    /// Push notifications.
    Push,
    /// A physical store (point of sale, kiosk).
    Store,
    /// The call centre.
    CallCenter,
    /// Paid advertising.
    Ads,
    /// Any other channel, by name.
    Custom(String),
}

impl Channel {
    /// Parses a channel name, in any case (`Store` is `store`); never fails (unknown names
    /// become [`Channel::Custom`], lowercased).
    pub fn parse(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "web" => Channel::Web,
            "app" => Channel::App,
            "email" => Channel::Email,
            "sms" => Channel::Sms,
            "push" => Channel::Push,
            "store" => Channel::Store,
            "call_center" => Channel::CallCenter,
            "ads" => Channel::Ads,
            other => Channel::Custom(other.to_owned()),
        }
    }

    /// The channel's name.
    pub fn as_str(&self) -> &str {
        match self {
            Channel::Web => "web",
            Channel::App => "app",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Store => "store",
            Channel::CallCenter => "call_center",
            Channel::Ads => "ads",
            Channel::Custom(name) => name,
        }
    }
}

/// What a person did. Unknown names are kept as custom types.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// Looked at an item.
    View,
    /// Clicked an item (in a list, an ad, a recommendation).
    Click,
    /// Put an item in the cart.
    AddToCart,
    /// Bought an item; `value` may carry the quantity or revenue.
    Purchase,
    /// Returned a bought item; cancels the purchase.
    Return,
    /// Rated an item; `value` is the rating.
    Rating,
    /// Opened an email.
    EmailOpen,
    /// Clicked a link in an email.
    EmailClick,
    /// Searched.
    Search,
    /// Any other event type, by name.
    Custom(String),
}

impl EventType {
    /// Parses an event type name, in any case (`Purchase` is a purchase); never fails
    /// (unknown names become [`EventType::Custom`], lowercased).
    pub fn parse(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "view" => EventType::View,
            "click" => EventType::Click,
            "add_to_cart" => EventType::AddToCart,
            "purchase" => EventType::Purchase,
            "return" => EventType::Return,
            "rating" => EventType::Rating,
            "email_open" => EventType::EmailOpen,
            "email_click" => EventType::EmailClick,
            "search" => EventType::Search,
            other => EventType::Custom(other.to_owned()),
        }
    }

    /// The type's name.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::View => "view",
            EventType::Click => "click",
            EventType::AddToCart => "add_to_cart",
            EventType::Purchase => "purchase",
            EventType::Return => "return",
            EventType::Rating => "rating",
            EventType::EmailOpen => "email_open",
            EventType::EmailClick => "email_click",
            EventType::Search => "search",
            EventType::Custom(name) => name,
        }
    }
}

/// One thing one person did on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The identifiers the channel knew the person by (at least one), normalised.
    pub identifiers: Vec<Identifier>,
    /// Where it happened.
    pub channel: Channel,
    /// What happened.
    pub event_type: EventType,
    /// The item involved, if any.
    pub item_id: Option<String>,
    /// When, in seconds since the Unix epoch (UTC).
    pub timestamp: i64,
    /// A rating, quantity or revenue, depending on the type.
    pub value: Option<f32>,
    /// The sender's id for this event, for de-duplication.
    pub event_id: Option<String>,
}

/// One catalog entry. Serializable because the model artifact carries a catalog snapshot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Item {
    /// The external item id.
    pub item_id: String,
    /// Display title.
    pub title: String,
    /// Longer description, if any.
    pub description: Option<String>,
    /// Category paths such as `shoes>running`, most specific level last.
    pub categories: Vec<String>,
    /// Brand name, if any.
    pub brand: Option<String>,
    /// Free tags.
    pub tags: Vec<String>,
    /// Price in the shop's currency.
    pub price: Option<f32>,
    /// Whether the item can be sold online now.
    pub in_stock: bool,
    /// Units in stock per store id.
    pub store_stock: BTreeMap<String, u32>,
    /// First moment the item may be sold (seconds since the epoch).
    pub available_from: Option<i64>,
    /// Last moment the item may be sold (seconds since the epoch).
    pub available_until: Option<i64>,
}

impl Item {
    /// The top-level category of the first category path (`shoes` for `shoes>running`).
    pub fn top_category(&self) -> Option<&str> {
        self.categories.first().map(|path| path.split('>').next().unwrap_or(path).trim())
    }
}

/// Parses a timestamp: an integer of seconds (or milliseconds, when above 10^11) since the
/// epoch, or an RFC 3339 / ISO 8601 date-time such as `2024-05-01T10:00:00Z`.
pub fn parse_timestamp(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    if let Some(date) = digits_as_date(raw) {
        return Err(format!(
            "`{raw}` is the date {date} written as digits, not an epoch number (it would read as {}): \
             send it as RFC 3339 (`{date}`) or as seconds since the epoch",
            format_timestamp(raw.parse::<i64>().map_or(0, |n| n / if raw.len() > 11 { 1_000 } else { 1 }))
        ));
    }
    let seconds = if let Ok(epoch) = raw.parse::<i64>() {
        from_epoch(epoch as f64, raw, Some(epoch))?
    } else if let Ok(epoch) = raw.parse::<f64>() {
        from_epoch(epoch, raw, None)?
    } else {
        parse_date_time(raw)?
    };
    if !(0..=MAX_TIMESTAMP).contains(&seconds) {
        return Err(format!("`{raw}` is out of range: dates must fall between 1970 and the end of 9999"));
    }
    Ok(seconds)
}

/// The date a run of 8, 12 or 14 digits spells as `YYYYMMDD`, `YYYYMMDDhhmm` or
/// `YYYYMMDDhhmmss` (a year from 1900 to 2999 and a valid day and time), as RFC 3339. Read
/// as an epoch number such a run is a time in 1970–1973 (8 digits, seconds), 1976–1979 (12,
/// milliseconds) or after 2570 (14, milliseconds): no sender means that, and taking it so
/// would silently age the event by decades or put it centuries ahead.
fn digits_as_date(raw: &str) -> Option<String> {
    if !matches!(raw.len(), 8 | 12 | 14) || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = |at: usize, len: usize| raw.get(at..at + len)?.parse::<i16>().ok();
    let (year, month, day) = (part(0, 4)?, part(4, 2)?, part(6, 2)?);
    if !(1900..=2999).contains(&year) {
        return None;
    }
    let (hour, minute, second) =
        if raw.len() >= 12 { (part(8, 2)?, part(10, 2)?, part(12, 2).unwrap_or(0)) } else { (0, 0, 0) };
    let time =
        jiff::civil::DateTime::new(year, month as i8, day as i8, hour as i8, minute as i8, second as i8, 0)
            .ok()?;
    Some(if raw.len() == 8 { time.date().to_string() } else { format!("{time}Z") })
}

/// The latest time [`parse_timestamp`] accepts: 9999-12-30T22:00:00Z, the end of the range
/// every time zone can represent.
pub const MAX_TIMESTAMP: i64 = 253_402_207_200;

/// Epoch numbers in seconds, milliseconds, microseconds or nanoseconds, told apart by
/// magnitude: below 10¹¹ is seconds (up to year 5138), below 10¹⁴ milliseconds, below 10¹⁷
/// microseconds, above that nanoseconds. Integers keep their precision.
fn from_epoch(epoch: f64, raw: &str, exact: Option<i64>) -> Result<i64, String> {
    let out_of_range =
        || format!("`{raw}` is out of range: dates must fall between 1970 and the end of 9999");
    if !epoch.is_finite() || epoch < 0.0 {
        return Err(out_of_range());
    }
    let divisor: i64 = match epoch {
        e if e < 1e11 => 1,
        e if e < 1e14 => 1_000,
        e if e < 1e17 => 1_000_000,
        e if e < 1e20 => 1_000_000_000,
        _ => return Err(out_of_range()),
    };
    Ok(match exact {
        Some(epoch) => epoch / divisor,
        None => (epoch / divisor as f64) as i64,
    })
}

/// An RFC 3339 date-time, a date-time without offset (UTC), or a date (midnight UTC).
fn parse_date_time(raw: &str) -> Result<i64, String> {
    let timestamp_error = match raw.parse::<jiff::Timestamp>() {
        Ok(ts) => return Ok(ts.as_second()),
        Err(e) => e,
    };
    if let Ok(civil) = raw.parse::<jiff::civil::DateTime>()
        && let Ok(zoned) = civil.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(zoned.timestamp().as_second());
    }
    if let Ok(date) = raw.parse::<jiff::civil::Date>()
        && let Ok(zoned) = date.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(zoned.timestamp().as_second());
    }
    // Something shaped like a date (`2024-13-01…`, `10000-01-01…`) is a date with a wrong
    // part: say which, rather than that it is not a date at all.
    let year_digits = raw.bytes().take_while(u8::is_ascii_digit).count();
    if year_digits >= 4 && raw.as_bytes().get(year_digits) == Some(&b'-') {
        return Err(format!("`{raw}` is not a valid date-time: {timestamp_error}"));
    }
    Err(format!("`{raw}` is neither an epoch number nor an RFC 3339 date-time"))
}

/// Formats epoch seconds as RFC 3339 UTC.
pub fn format_timestamp(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map(|ts| ts.to_string()).unwrap_or_else(|_| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_units_are_told_apart_by_magnitude() {
        // 2023-11-14T22:13:20Z in seconds, milliseconds, microseconds and nanoseconds.
        for raw in [
            "1700000000",
            "1700000000000",
            "1700000000000000",
            "1700000000000000000",
            "1.7e9",
            "1700000000.5",
        ] {
            assert_eq!(parse_timestamp(raw), Ok(1_700_000_000), "{raw}");
        }
    }

    #[test]
    fn dates_written_as_digits_are_refused_with_the_date_they_spell() {
        for (raw, date) in [
            ("20251124", "2025-11-24"),
            ("202511241030", "2025-11-24T10:30:00Z"),
            ("20251124103005", "2025-11-24T10:30:05Z"),
            (" 19991231 ", "1999-12-31"),
        ] {
            let err = parse_timestamp(raw).unwrap_err();
            assert!(err.contains(&format!("the date {date} written as digits")), "{raw}: {err}");
        }
        assert!(parse_timestamp("20251124").unwrap_err().contains("1970-08-23"));
        // Epoch numbers of those lengths that spell no date are what they always were.
        for raw in ["20251324", "20251132", "10000000", "99999999", "202511242561", "1700000000000"] {
            assert!(parse_timestamp(raw).is_ok(), "{raw}");
        }
        assert_eq!(parse_timestamp("1700000000"), Ok(1_700_000_000));
    }

    #[test]
    fn timestamps_out_of_range_say_so() {
        for raw in ["-1", "-9223372036854775808", "1e308", "1e21", "NaN", "inf"] {
            let err = parse_timestamp(raw).unwrap_err();
            assert!(err.contains("out of range") || err.contains("neither"), "{raw}: {err}");
        }
        assert!(parse_timestamp("1e308").unwrap_err().contains("out of range"));
        assert!(parse_timestamp("-9223372036854775808").unwrap_err().contains("out of range"));
        for raw in ["2024-13-01T00:00:00Z", "10000-01-01T00:00:00Z", "2024-02-30"] {
            let err = parse_timestamp(raw).unwrap_err();
            assert!(err.contains("is not a valid date-time"), "{raw}: {err}");
        }
        assert!(parse_timestamp("1969-12-31T23:59:59Z").unwrap_err().contains("out of range"));
        assert!(parse_timestamp("yesterday").unwrap_err().contains("neither"));
        assert_eq!(parse_timestamp("9999-12-30T22:00:00Z"), Ok(MAX_TIMESTAMP));
        assert_eq!(parse_timestamp("2024-01-01"), Ok(1_704_067_200));
    }

    #[test]
    fn emails_are_normalised_then_hashed() {
        let a = Identifier::new(IdentifierKind::Email, " Ann@Example.com ").unwrap();
        let b = Identifier::new(IdentifierKind::Email, "ann@example.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.value.len(), 64);
        assert!(!a.value.contains('@'));
        // A digest sent by the channel is kept as it is.
        let pre = Identifier::new(IdentifierKind::Email, &a.value.to_uppercase()).unwrap();
        assert_eq!(pre, a);
    }

    #[test]
    fn phones_keep_digits_only() {
        let a = Identifier::new(IdentifierKind::Phone, "+49 (170) 123-4567").unwrap();
        let b = Identifier::new(IdentifierKind::Phone, "+491701234567").unwrap();
        assert_eq!(a, b);
        assert!(Identifier::new(IdentifierKind::Phone, "n/a").is_none());
    }

    #[test]
    fn keys_parse_with_and_without_kind() {
        assert_eq!(Identifier::parse_key("u1").unwrap().key(), "user_id:u1");
        assert_eq!(Identifier::parse_key("cookie_id:c9").unwrap().key(), "cookie_id:c9");
        // A user id's key is its bare value: one that reads as another kind's key would be
        // that identifier.
        assert_eq!(Identifier::new(IdentifierKind::UserId, "cookie_id:c9"), None);
        assert!(user_id_problem("email:a@x.org").unwrap().contains("reads as a email"));
        assert_eq!(Identifier::new(IdentifierKind::UserId, "acme:42").unwrap().key(), "user_id:acme:42");
        // An unknown prefix is part of a user id.
        assert_eq!(Identifier::parse_key("shop:7").unwrap().key(), "user_id:shop:7");
    }

    #[test]
    fn unknown_channels_and_types_are_kept() {
        assert_eq!(Channel::parse("kiosk"), Channel::Custom("kiosk".into()));
        assert_eq!(Channel::parse("kiosk").as_str(), "kiosk");
        assert_eq!(EventType::parse("wishlist").as_str(), "wishlist");
        assert_eq!(EventType::parse("purchase"), EventType::Purchase);
        // Names are matched in any case: a `Purchase` is never a custom type that consumes
        // nothing.
        assert_eq!(EventType::parse(" PURCHASE "), EventType::Purchase);
        assert_eq!(EventType::parse("Wishlist").as_str(), "wishlist");
        assert_eq!(Channel::parse("Store"), Channel::Store);
    }

    #[test]
    fn timestamps_in_several_forms() {
        assert_eq!(parse_timestamp("1714557600"), Ok(1_714_557_600));
        assert_eq!(parse_timestamp("1714557600000"), Ok(1_714_557_600));
        assert_eq!(parse_timestamp("2024-05-01T10:00:00Z"), Ok(1_714_557_600));
        assert_eq!(parse_timestamp("2024-05-01T12:00:00+02:00"), Ok(1_714_557_600));
        assert_eq!(parse_timestamp("2024-05-01 10:00:00"), Ok(1_714_557_600));
        assert!(parse_timestamp("yesterday").is_err());
    }
}
