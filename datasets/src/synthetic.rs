//! Synthetic omnichannel data: a catalog, persons with latent tastes, and their events across
//! every channel under several identifiers each, with the ground truth beside it.
//!
//! Each person has a taste over top categories (Dirichlet), favourite subcategories, brands
//! and item styles (latent clusters across categories that only collaborative models can
//! learn), an activity level and a channel mix. They browse in sessions (web under a browser
//! cookie, the app under a device id, emails under their address, the store under a loyalty
//! card, the call centre under their phone), add to cart, buy, sometimes return or rate.
//! Identifiers link when a person logs in, clicks an email, or gives a card at the till.
//!
//! Traps for identity resolution: each store has a kiosk whose `device_id` is scanned with
//! many loyalty cards, and households share a family tablet logged into with each member's
//! account. Ground truth marks those devices `shared`.
//!
//! Generation is parallel over persons, each seeded from (seed, person), so the output does
//! not depend on the number of threads. About 3% of items are new arrivals nobody has touched.

use std::collections::BTreeMap;
use std::io::Write;

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use rand_distr::{Distribution, Gamma, LogNormal};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::load::{Catalog, RawInteraction};
use crate::schema::{Channel, Event, EventType, Identifier, IdentifierKind, Item};

/// Size and seed of a synthetic data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticConfig {
    /// Number of real persons.
    pub n_persons: usize,
    /// Number of catalog items.
    pub n_items: usize,
    /// Number of stores (each with a kiosk).
    pub n_stores: usize,
    /// Mean number of sessions per person over the period.
    pub mean_sessions: f64,
    /// Length of the period in days, ending at `end`.
    pub days: i64,
    /// End of the period, seconds since the epoch.
    pub end: i64,
    /// Random seed.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            n_persons: 10_000,
            n_items: 2_000,
            n_stores: 5,
            mean_sessions: 14.0,
            days: 180,
            // 2026-11-01T00:00:00Z
            end: 1_793_491_200,
            seed: 42,
        }
    }
}

const TOP_CATEGORIES: [(&str, [&str; 4], [&str; 5]); 10] = [
    ("shoes", ["running", "hiking", "casual", "formal"], ["sneaker", "boot", "loafer", "trainer", "sandal"]),
    (
        "apparel",
        ["jackets", "shirts", "trousers", "dresses"],
        ["jacket", "shirt", "chino", "dress", "hoodie"],
    ),
    (
        "electronics",
        ["audio", "phones", "laptops", "cameras"],
        ["headphones", "speaker", "phone", "laptop", "camera"],
    ),
    ("home", ["kitchen", "bedding", "lighting", "decor"], ["pan", "duvet", "lamp", "vase", "kettle"]),
    (
        "beauty",
        ["skincare", "haircare", "fragrance", "makeup"],
        ["serum", "shampoo", "perfume", "lipstick", "cream"],
    ),
    (
        "sports",
        ["cycling", "fitness", "swimming", "camping"],
        ["helmet", "dumbbell", "goggles", "tent", "mat"],
    ),
    ("toys", ["puzzles", "building", "dolls", "outdoor"], ["puzzle", "blocks", "doll", "kite", "ball"]),
    (
        "books",
        ["fiction", "cooking", "travel", "children"],
        ["novel", "cookbook", "guide", "picture book", "atlas"],
    ),
    ("grocery", ["coffee", "snacks", "tea", "pantry"], ["coffee", "crisps", "tea", "pasta", "olive oil"]),
    ("garden", ["tools", "plants", "furniture", "watering"], ["spade", "seeds", "bench", "hose", "planter"]),
];
const ADJECTIVES: [&str; 16] = [
    "classic",
    "light",
    "pro",
    "eco",
    "urban",
    "trail",
    "soft",
    "compact",
    "deluxe",
    "everyday",
    "vintage",
    "smart",
    "bold",
    "organic",
    "travel",
    "essential",
];
const TAGS: [&str; 10] =
    ["new", "sale", "eco", "premium", "bestseller", "limited", "vegan", "bundle", "gift", "local"];
const BRAND_STEMS: [&str; 20] = [
    "Acme", "Nordic", "Vela", "Kestrel", "Orbit", "Lumen", "Terra", "Halcyon", "Brio", "Cobalt", "Fable",
    "Juniper", "Mosaic", "Pioneer", "Quill", "Rook", "Summit", "Tidal", "Umber", "Zephyr",
];

/// One generated event, compact; identifiers are resolved to strings when written.
#[derive(Debug, Clone, Copy)]
struct RawEvent {
    person: u32,
    timestamp: i64,
    item: Option<u32>,
    event_type: u8,
    channel: u8,
    value: f32,
    ids: [IdRef; 3],
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum IdRef {
    None,
    User(u32),
    Email(u32),
    Phone(u32),
    Loyalty(u32),
    Pos(u32),
    Device(u32, u8),
    Cookie(u32, u8),
    Kiosk(u32),
    Tablet(u32),
}

const EVENT_TYPES: [EventType; 8] = [
    EventType::View,
    EventType::Click,
    EventType::AddToCart,
    EventType::Purchase,
    EventType::Return,
    EventType::Rating,
    EventType::EmailOpen,
    EventType::EmailClick,
];
const VIEW: u8 = 0;
const CLICK: u8 = 1;
const CART: u8 = 2;
const PURCHASE: u8 = 3;
const RETURN: u8 = 4;
const RATING: u8 = 5;
const EMAIL_OPEN: u8 = 6;
const EMAIL_CLICK: u8 = 7;
const CHANNELS: [Channel; 8] = [
    Channel::Web,
    Channel::App,
    Channel::Email,
    Channel::Sms,
    Channel::Push,
    Channel::Store,
    Channel::CallCenter,
    Channel::Ads,
];

/// A generated data set. Events are kept compact and expanded on demand.
pub struct SyntheticData {
    /// The catalog.
    pub catalog: Catalog,
    config: SyntheticConfig,
    events: Vec<RawEvent>,
    /// Identifier key (raw `kind:value`) to true person (`p<n>`) or `shared`.
    truth: BTreeMap<String, String>,
}

struct Taste {
    categories: Vec<f64>,
    sub_bias: Vec<usize>,
    brands: Vec<usize>,
    styles: Vec<usize>,
}

/// Latent item styles; each person favours two.
const N_STYLES: usize = 24;

/// Items grouped by (category, subcategory), each group with cumulative popularity.
struct ItemIndex {
    groups: Vec<Vec<(u32, f64)>>,
    by_brand_group: BTreeMap<(usize, usize), Vec<u32>>,
    by_style_top: BTreeMap<(usize, usize), Vec<(u32, f64)>>,
}

fn pick_weighted(cumulative: &[(u32, f64)], rng: &mut StdRng) -> Option<u32> {
    let total = cumulative.last()?.1;
    let target = rng.r#gen::<f64>() * total;
    let at = cumulative.partition_point(|&(_, c)| c < target).min(cumulative.len() - 1);
    Some(cumulative[at].0)
}

impl SyntheticData {
    /// Generates a data set. Fails on sizes of zero.
    pub fn generate(config: SyntheticConfig) -> Result<Self> {
        if config.n_persons == 0 || config.n_items < 10 || config.n_stores == 0 || config.days <= 0 {
            return Err(Error::InvalidConfig {
                name: "synthetic".into(),
                reason: "needs at least 1 person, 10 items, 1 store and 1 day".into(),
            });
        }
        let mut rng = StdRng::seed_from_u64(config.seed);
        let n_groups = TOP_CATEGORIES.len() * 4;
        let brands: Vec<(String, Vec<usize>)> = (0..40)
            .map(|b| {
                let name = format!("{} {}", BRAND_STEMS[b % 20], if b < 20 { "Co" } else { "Works" });
                let homes: Vec<usize> =
                    (0..rng.gen_range(1..=2)).map(|_| rng.gen_range(0..TOP_CATEGORIES.len())).collect();
                (name, homes)
            })
            .collect();
        let n_new = (config.n_items as f64 * 0.03).ceil() as usize;
        let popularity = LogNormal::new(0.0, 1.2).expect("valid lognormal");
        let mut items = Vec::with_capacity(config.n_items);
        let mut groups: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n_groups];
        let mut by_brand_group: BTreeMap<(usize, usize), Vec<u32>> = BTreeMap::new();
        let mut by_style_top: BTreeMap<(usize, usize), Vec<(u32, f64)>> = BTreeMap::new();
        for idx in 0..config.n_items {
            let top = rng.gen_range(0..TOP_CATEGORIES.len());
            let sub = rng.gen_range(0..4);
            let (top_name, subs, nouns) = TOP_CATEGORIES[top];
            let brand_candidates: Vec<usize> =
                (0..brands.len()).filter(|&b| brands[b].1.contains(&top)).collect();
            let brand = *brand_candidates.choose(&mut rng).unwrap_or(&rng.gen_range(0..brands.len()));
            let noun = nouns[rng.gen_range(0..nouns.len())];
            let adjective = ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())];
            let base_price = [60.0, 45.0, 250.0, 40.0, 25.0, 55.0, 20.0, 15.0, 6.0, 30.0][top];
            let price =
                (base_price * LogNormal::new(0.0, 0.5).expect("valid lognormal").sample(&mut rng) * 100.0f64)
                    .round()
                    / 100.0;
            let n_tags = rng.gen_range(1..=3);
            let mut tags: Vec<String> =
                TAGS.choose_multiple(&mut rng, n_tags).map(|t| t.to_string()).collect();
            tags.sort();
            let is_new = idx >= config.n_items - n_new;
            let store_stock = (0..config.n_stores)
                .map(|s| (format!("s{s}"), if rng.gen_bool(0.7) { rng.gen_range(1..20) } else { 0 }))
                .collect();
            items.push(Item {
                item_id: format!("i{idx}"),
                title: format!("{} {adjective} {noun}", brands[brand].0),
                description: Some(format!(
                    "A {adjective} {noun} for {} from the {} range.",
                    subs[sub], top_name
                )),
                categories: vec![format!("{top_name}>{}", subs[sub])],
                brand: Some(brands[brand].0.clone()),
                tags,
                price: Some(price as f32),
                in_stock: rng.gen_bool(0.92),
                store_stock,
                available_from: Some(if is_new {
                    config.end - 3 * 86_400
                } else {
                    config.end - 400 * 86_400
                }),
                available_until: None,
            });
            if !is_new {
                let group = top * 4 + sub;
                let previous = groups[group].last().map_or(0.0, |&(_, c)| c);
                let weight = popularity.sample(&mut rng);
                groups[group].push((idx as u32, previous + weight));
                by_brand_group.entry((brand, group)).or_default().push(idx as u32);
                let style_items = by_style_top.entry((rng.gen_range(0..N_STYLES), top)).or_default();
                let previous = style_items.last().map_or(0.0, |&(_, c)| c);
                style_items.push((idx as u32, previous + weight));
            }
        }
        let index = ItemIndex { groups, by_brand_group, by_style_top };
        let item_brand: Vec<usize> = items
            .iter()
            .map(|item| brands.iter().position(|b| Some(&b.0) == item.brand.as_ref()).unwrap_or(0))
            .collect();

        // Households of 2-3 persons share a family tablet: a tenth of persons.
        let mut household_of = vec![None; config.n_persons];
        let mut n_households = 0u32;
        let mut person = 0;
        while person + 3 <= config.n_persons {
            if rng.gen_bool(0.05) {
                let size = rng.gen_range(2..=3);
                household_of[person..person + size].fill(Some(n_households));
                n_households += 1;
                person += size;
            } else {
                person += 1;
            }
        }

        let per_person: Vec<Vec<RawEvent>> = (0..config.n_persons)
            .into_par_iter()
            .map(|person| {
                let mut rng =
                    StdRng::seed_from_u64(config.seed ^ (person as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                person_events(
                    person as u32,
                    household_of[person],
                    &config,
                    &index,
                    &item_brand,
                    brands.len(),
                    &mut rng,
                )
            })
            .collect();
        let events: Vec<RawEvent> = per_person.into_iter().flatten().collect();

        let mut data = SyntheticData { catalog: Catalog { items }, config, events, truth: BTreeMap::new() };
        let mut truth = BTreeMap::new();
        for event in &data.events {
            for id in event.ids {
                if let Some((kind, value)) = data.identifier(id) {
                    let owner = match id {
                        IdRef::Kiosk(_) | IdRef::Tablet(_) => "shared".to_owned(),
                        _ => format!("p{}", event.person),
                    };
                    truth.entry(format!("{}:{value}", kind.as_str())).or_insert(owner);
                }
            }
        }
        data.truth = truth;
        Ok(data)
    }

    /// Number of events.
    pub fn n_events(&self) -> usize {
        self.events.len()
    }

    /// The generation settings.
    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    fn identifier(&self, id: IdRef) -> Option<(IdentifierKind, String)> {
        Some(match id {
            IdRef::None => return None,
            IdRef::User(p) => (IdentifierKind::UserId, format!("u{p}")),
            IdRef::Email(p) => (IdentifierKind::Email, format!("person{p}@example.com")),
            IdRef::Phone(p) => (IdentifierKind::Phone, format!("+1555{p:07}")),
            IdRef::Loyalty(p) => (IdentifierKind::LoyaltyId, format!("L{p:08}")),
            IdRef::Pos(p) => (IdentifierKind::PosCustomerId, format!("POS{p}")),
            IdRef::Device(p, k) => (IdentifierKind::DeviceId, format!("d{p}x{k}")),
            IdRef::Cookie(p, k) => (IdentifierKind::CookieId, format!("c{p}x{k}")),
            IdRef::Kiosk(s) => (IdentifierKind::DeviceId, format!("kiosk-s{s}")),
            IdRef::Tablet(h) => (IdentifierKind::DeviceId, format!("tablet-h{h}")),
        })
    }

    /// The ground truth: raw identifier key (`kind:value`, emails and phones unhashed) to
    /// the true person (`p<n>`), or `shared` for shared devices.
    pub fn truth(&self) -> &BTreeMap<String, String> {
        &self.truth
    }

    /// The ground truth keyed like [`crate::identity::Resolution::aliases`] (normalised and
    /// hashed), without shared devices: ready for [`crate::identity::score_pairwise`].
    pub fn truth_by_normalised_key(&self) -> std::collections::HashMap<String, String> {
        normalise_truth(self.truth.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The events and catalog as a data set, weighted by `weights` and resolved under
    /// `rules`: what training on the files [`SyntheticData::write_events`] writes gives.
    pub fn dataset(
        &self,
        weights: &crate::dataset::WeightConfig,
        rules: &crate::identity::IdentityRules,
    ) -> Result<crate::dataset::Dataset> {
        crate::dataset::Dataset::from_events(&self.events(), Some(self.catalog.clone()), weights, rules)
    }

    /// The events as schema values (memory-hungry for large sets; prefer `write_events`).
    pub fn events(&self) -> Vec<Event> {
        self.events
            .iter()
            .map(|event| Event {
                identifiers: {
                    // Priority order, as the loader produces them.
                    let mut ids: Vec<Identifier> = event
                        .ids
                        .iter()
                        .filter_map(|&id| self.identifier(id))
                        .filter_map(|(kind, value)| Identifier::new(kind, &value))
                        .collect();
                    ids.sort();
                    ids
                },
                channel: CHANNELS[event.channel as usize].clone(),
                event_type: EVENT_TYPES[event.event_type as usize].clone(),
                item_id: event.item.map(|i| format!("i{i}")),
                timestamp: event.timestamp,
                value: (event.value != 0.0).then_some(event.value),
                event_id: None,
            })
            .collect()
    }

    fn write_event_line(&self, out: &mut Vec<u8>, number: usize, event: &RawEvent) {
        // All generated strings are plain ASCII without quotes or backslashes.
        let _ = write!(out, "{{\"event_id\":\"e{number}\",\"timestamp\":{}", event.timestamp);
        let _ = write!(
            out,
            ",\"channel\":\"{}\",\"type\":\"{}\"",
            CHANNELS[event.channel as usize].as_str(),
            EVENT_TYPES[event.event_type as usize].as_str()
        );
        for id in event.ids {
            if let Some((kind, value)) = self.identifier(id) {
                let _ = write!(out, ",\"{}\":\"{value}\"", kind.as_str());
            }
        }
        if let Some(item) = event.item {
            let _ = write!(out, ",\"item_id\":\"i{item}\"");
        }
        if event.value != 0.0 {
            let _ = write!(out, ",\"value\":{}", event.value);
        }
        out.extend_from_slice(b"}\n");
    }

    /// Writes the events as JSON Lines (grouped by person, in time order within a person).
    pub fn write_events(&self, mut out: impl Write) -> Result<()> {
        const CHUNK: usize = 100_000;
        let chunks: Vec<&[RawEvent]> = self.events.chunks(CHUNK).collect();
        for (batch_idx, batch) in chunks.chunks(8).enumerate() {
            let buffers: Vec<Vec<u8>> = batch
                .par_iter()
                .enumerate()
                .map(|(i, chunk)| {
                    let first = (batch_idx * 8 + i) * CHUNK;
                    let mut buffer = Vec::with_capacity(chunk.len() * 160);
                    for (j, event) in chunk.iter().enumerate() {
                        self.write_event_line(&mut buffer, first + j, event);
                    }
                    buffer
                })
                .collect();
            for buffer in buffers {
                out.write_all(&buffer).map_err(|e| Error::io("writing events", e))?;
            }
        }
        out.flush().map_err(|e| Error::io("writing events", e))
    }

    /// Writes the catalog as CSV (lists `|`-separated, store stock as `store:units`).
    pub fn write_catalog(&self, out: impl Write) -> Result<()> {
        write_catalog_csv(&self.catalog, out)
    }

    /// Writes the ground truth as TSV: `kind`, `value`, `person`.
    pub fn write_truth(&self, mut out: impl Write) -> Result<()> {
        let io = |e| Error::io("writing ground truth", e);
        writeln!(out, "kind\tvalue\tperson").map_err(io)?;
        for (key, person) in &self.truth {
            let (kind, value) = key.split_once(':').expect("truth keys are kind:value");
            writeln!(out, "{kind}\t{value}\t{person}").map_err(io)?;
        }
        out.flush().map_err(io)
    }
}

/// Normalises ground-truth keys (raw `kind:value`) the way loaders do, dropping `shared`.
pub fn normalise_truth<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> std::collections::HashMap<String, String> {
    entries
        .into_iter()
        .filter(|(_, person)| *person != "shared")
        .filter_map(|(key, person)| Identifier::parse_key(key).map(|id| (id.key(), person.to_owned())))
        .collect()
}

/// Writes a catalog as CSV with a header.
pub fn write_catalog_csv(catalog: &Catalog, out: impl Write) -> Result<()> {
    let io = |e: csv::Error| Error::io("writing catalog", std::io::Error::other(e));
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(std::iter::once("item_id").chain(crate::load::ITEM_FIELDS)).map_err(io)?;
    for item in &catalog.items {
        let stock: Vec<String> = item.store_stock.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        writer
            .write_record([
                item.item_id.as_str(),
                &item.title,
                item.description.as_deref().unwrap_or(""),
                &item.categories.join("|"),
                item.brand.as_deref().unwrap_or(""),
                &item.tags.join("|"),
                &item.price.map(|p| p.to_string()).unwrap_or_default(),
                if item.in_stock { "true" } else { "false" },
                &stock.join("|"),
                &item.available_from.map(crate::schema::format_timestamp).unwrap_or_default(),
                &item.available_until.map(crate::schema::format_timestamp).unwrap_or_default(),
            ])
            .map_err(io)?;
    }
    writer.flush().map_err(|e| Error::io("writing catalog", e))
}

fn person_events(
    person: u32,
    household: Option<u32>,
    config: &SyntheticConfig,
    index: &ItemIndex,
    item_brand: &[usize],
    n_brands: usize,
    rng: &mut StdRng,
) -> Vec<RawEvent> {
    let n_top = TOP_CATEGORIES.len();
    let gamma = Gamma::new(0.25, 1.0).expect("valid gamma");
    let mut categories: Vec<f64> = (0..n_top).map(|_| gamma.sample(rng) + 1e-6).collect();
    let total: f64 = categories.iter().sum();
    categories.iter_mut().for_each(|w| *w /= total);
    let taste = Taste {
        categories,
        sub_bias: (0..n_top).map(|_| rng.gen_range(0..4)).collect(),
        brands: (0..3).map(|_| rng.gen_range(0..n_brands)).collect(),
        styles: (0..2).map(|_| rng.gen_range(0..N_STYLES)).collect(),
    };
    let has_account = rng.gen_bool(0.8);
    let has_loyalty = rng.gen_bool(0.6);
    let has_phone = rng.gen_bool(0.5);
    let has_pos = has_loyalty && rng.gen_bool(0.3);
    let n_cookies = rng.gen_range(1..=3u8);
    let n_devices = if has_account { rng.gen_range(0..=2u8) } else { 0 };
    // Channel mix: web, app, email, store, call centre, sms/push/ads.
    let mix = [
        3.0,
        if n_devices > 0 { 2.5 } else { 0.0 },
        1.5,
        if has_loyalty { 1.5 } else { 0.3 },
        if has_phone { 0.3 } else { 0.0 },
        0.4,
    ];
    let mix_total: f64 = mix.iter().sum();
    let activity = LogNormal::new(0.0, 0.7).expect("valid lognormal").sample(rng);
    let n_sessions = ((config.mean_sessions * activity).round() as usize).clamp(1, 200);
    let start = config.end - config.days * 86_400;
    let mut times: Vec<i64> = (0..n_sessions).map(|_| rng.gen_range(start..config.end - 3_600)).collect();
    times.sort_unstable();

    let pick_item = |rng: &mut StdRng| -> Option<u32> {
        let mut target = rng.r#gen::<f64>();
        let mut top = n_top - 1;
        for (i, w) in taste.categories.iter().enumerate() {
            if target < *w {
                top = i;
                break;
            }
            target -= w;
        }
        if rng.gen_bool(0.45) {
            let style = taste.styles[rng.gen_range(0..taste.styles.len())];
            if let Some(list) = index.by_style_top.get(&(style, top)) {
                return pick_weighted(list, rng);
            }
        }
        let sub = if rng.gen_bool(0.6) { taste.sub_bias[top] } else { rng.gen_range(0..4) };
        let group = top * 4 + sub;
        if rng.gen_bool(0.3) {
            let brand = taste.brands[rng.gen_range(0..taste.brands.len())];
            if let Some(list) = index.by_brand_group.get(&(brand, group)) {
                return list.choose(rng).copied();
            }
        }
        pick_weighted(&index.groups[group], rng)
    };

    let mut events = Vec::new();
    let push = |events: &mut Vec<RawEvent>, timestamp, item, event_type, channel, value, ids| {
        events.push(RawEvent { person, timestamp, item, event_type, channel, value, ids });
    };
    let user = if has_account { IdRef::User(person) } else { IdRef::None };
    for &t0 in &times {
        let roll = rng.r#gen::<f64>() * mix_total;
        let mut channel_slot = mix.len() - 1;
        let mut acc = 0.0;
        for (slot, w) in mix.iter().enumerate() {
            acc += w;
            if roll < acc {
                channel_slot = slot;
                break;
            }
        }
        let mut t = t0;
        let mut step = |rng: &mut StdRng| {
            t += rng.gen_range(20..300);
            t
        };
        match channel_slot {
            // Web or app browsing session.
            0 | 1 => {
                let (channel, device) = if channel_slot == 0 {
                    (0u8, IdRef::Cookie(person, rng.gen_range(0..n_cookies)))
                } else if household.is_some() && rng.gen_bool(0.3) {
                    (1u8, IdRef::Tablet(household.unwrap_or(0)))
                } else {
                    (1u8, IdRef::Device(person, rng.gen_range(0..n_devices.max(1))))
                };
                let login = match device {
                    IdRef::Tablet(_) => user,
                    _ if channel == 1 && rng.gen_bool(0.9) => user,
                    _ if has_account && rng.gen_bool(0.7) => user,
                    // A guest checkout or newsletter sign-in gives the email.
                    _ if !has_account && rng.gen_bool(0.5) => IdRef::Email(person),
                    _ => IdRef::None,
                };
                // A tablet without an account is just anonymous browsing under the tablet.
                // Checkout asks logged-in customers for their email now and then.
                let third = if login == user && has_account && rng.gen_bool(0.3) {
                    IdRef::Email(person)
                } else {
                    IdRef::None
                };
                let ids = [device, login, third];
                for _ in 0..rng.gen_range(1..=6) {
                    let Some(item) = pick_item(rng) else { continue };
                    push(&mut events, step(rng), Some(item), VIEW, channel, 0.0, ids);
                    if rng.gen_bool(0.18) {
                        push(&mut events, step(rng), Some(item), CART, channel, 0.0, ids);
                        if rng.gen_bool(0.5) {
                            let ts = step(rng);
                            push(&mut events, ts, Some(item), PURCHASE, channel, 1.0, ids);
                            if rng.gen_bool(0.05) {
                                push(&mut events, ts + 7 * 86_400, Some(item), RETURN, channel, 1.0, ids);
                            } else if rng.gen_bool(0.1) {
                                let rating = if item_brand[item as usize] == taste.brands[0] {
                                    5.0
                                } else {
                                    rng.gen_range(3..=5) as f32
                                };
                                push(&mut events, ts + 3 * 86_400, Some(item), RATING, channel, rating, ids);
                            }
                        }
                    }
                }
            }
            // Email campaign: open, click through to an item, land on the web with a cookie.
            2 => {
                let email = IdRef::Email(person);
                let Some(item) = pick_item(rng) else { continue };
                push(&mut events, step(rng), None, EMAIL_OPEN, 2, 0.0, [email, IdRef::None, IdRef::None]);
                if rng.gen_bool(0.5) {
                    push(
                        &mut events,
                        step(rng),
                        Some(item),
                        EMAIL_CLICK,
                        2,
                        0.0,
                        [email, IdRef::None, IdRef::None],
                    );
                    let cookie = IdRef::Cookie(person, rng.gen_range(0..n_cookies));
                    push(&mut events, step(rng), Some(item), VIEW, 0, 0.0, [cookie, email, IdRef::None]);
                }
            }
            // Store visit: buy at the till with the loyalty card (receipt by email sometimes);
            // look things up at the kiosk first.
            3 => {
                let store = rng.gen_range(0..config.n_stores) as u32;
                let card = if has_loyalty { IdRef::Loyalty(person) } else { IdRef::None };
                if has_loyalty && rng.gen_bool(0.3) {
                    let Some(item) = pick_item(rng) else { continue };
                    push(
                        &mut events,
                        step(rng),
                        Some(item),
                        VIEW,
                        5,
                        0.0,
                        [IdRef::Kiosk(store), card, IdRef::None],
                    );
                }
                let second = if has_pos {
                    IdRef::Pos(person)
                } else if rng.gen_bool(0.3) {
                    IdRef::Email(person)
                } else {
                    IdRef::None
                };
                // Account holders often show the digital card in the app.
                let app_card = if has_account && rng.gen_bool(0.5) { user } else { IdRef::None };
                let till = if has_loyalty {
                    [card, second, app_card]
                } else {
                    [IdRef::Email(person), app_card, IdRef::None]
                };
                for _ in 0..rng.gen_range(1..=3) {
                    let Some(item) = pick_item(rng) else { continue };
                    let ts = step(rng);
                    push(&mut events, ts, Some(item), PURCHASE, 5, 1.0, till);
                    if rng.gen_bool(0.04) {
                        push(&mut events, ts + 5 * 86_400, Some(item), RETURN, 5, 1.0, till);
                    }
                }
            }
            // Call centre: asks about an item, sometimes orders it.
            4 => {
                let phone = IdRef::Phone(person);
                let Some(item) = pick_item(rng) else { continue };
                // The agent finds the customer's account, or takes their email.
                let ids = [phone, if has_account { user } else { IdRef::Email(person) }, IdRef::None];
                push(&mut events, step(rng), Some(item), VIEW, 6, 0.0, ids);
                if rng.gen_bool(0.4) {
                    push(&mut events, step(rng), Some(item), PURCHASE, 6, 1.0, ids);
                }
            }
            // SMS, push or ad click landing on an item.
            _ => {
                let channel = [3u8, 4, 7][rng.gen_range(0..3)];
                let ids = match channel {
                    // A tracked SMS link lands in a browser.
                    3 if has_phone => [
                        IdRef::Phone(person),
                        IdRef::Cookie(person, rng.gen_range(0..n_cookies)),
                        IdRef::None,
                    ],
                    4 if n_devices > 0 => [IdRef::Device(person, 0), user, IdRef::None],
                    // Ads and pushes without the app land in the main browser.
                    _ => [IdRef::Cookie(person, 0), IdRef::None, IdRef::None],
                };
                let Some(item) = pick_item(rng) else { continue };
                push(&mut events, step(rng), Some(item), CLICK, channel, 0.0, ids);
            }
        }
    }
    // Returns and ratings were stamped later than their session; keep time order.
    events.sort_by_key(|e| e.timestamp);
    events.retain(|e| e.timestamp < config.end);
    events
}

/// A plain interactions set (`user_id`, `item_id`, value 1) of about `n_interactions`
/// distinct pairs with latent structure: users belong to taste clusters that favour item
/// groups, and item popularity is skewed. Deterministic by seed; used by benchmarks.
pub fn interactions(n_users: usize, n_items: usize, n_interactions: usize, seed: u64) -> Vec<RawInteraction> {
    let n_clusters = 20.min(n_items.max(1));
    let per_user = n_interactions.div_ceil(n_users.max(1)).max(1);
    (0..n_users)
        .into_par_iter()
        .flat_map_iter(|user| {
            let mut rng = StdRng::seed_from_u64(seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let cluster = rng.gen_range(0..n_clusters);
            let n = rng.gen_range(per_user / 2..=per_user + per_user / 2).max(1).min(n_items);
            let mut chosen = std::collections::HashSet::with_capacity(n);
            let mut guard = 0;
            while chosen.len() < n && guard < n * 20 {
                guard += 1;
                // Skewed rank within a group: squares of uniforms favour low ranks.
                let skew =
                    |rng: &mut StdRng, len: usize| ((rng.r#gen::<f64>().powi(2)) * len as f64) as usize;
                let item = if rng.gen_bool(0.7) {
                    let group_len = n_items / n_clusters;
                    cluster * group_len + skew(&mut rng, group_len.max(1))
                } else {
                    skew(&mut rng, n_items)
                };
                chosen.insert(item.min(n_items - 1));
            }
            let mut chosen: Vec<usize> = chosen.into_iter().collect();
            chosen.sort_unstable();
            chosen.into_iter().map(move |item| RawInteraction {
                user_id: format!("u{user}"),
                item_id: format!("i{item}"),
                value: Some(1.0),
                timestamp: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
