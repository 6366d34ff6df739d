//! Which placement answers a request: the one it names, else the one serving its channel,
//! else the default (for similar items, the first similar-items placement); then the
//! request must fit it (its channel, its kind, an item for similar items).

use std::collections::BTreeMap;

use super::{Placement, PlacementKind};

/// What a request says about the placement that should answer it.
#[derive(Debug, Clone, Copy)]
pub struct PlacementAsk<'a> {
    /// What the endpoint asks for: personal recommendations or similar items.
    pub kind: PlacementKind,
    /// The placement named, if any.
    pub name: Option<&'a str>,
    /// The asking channel, if said.
    pub channel: Option<&'a str>,
    /// Whether the request names an item (similar items need one).
    pub has_item: bool,
}

/// Why no placement can answer a request; all but [`ChoiceError::DefaultMissing`] are the
/// caller's fault, and [`ChoiceError::field`] names the request field to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    /// The named placement is not configured.
    #[error("placement `{name}` is not configured (have: {have})")]
    UnknownPlacement {
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated.
        have: String,
    },
    /// No placement of the wanted kind serves the channel.
    #[error("no placement serves channel `{0}`; name one")]
    NoPlacementForChannel(String),
    /// Similar items were asked for, and no such placement exists.
    #[error("no similar-items placement is configured; name one")]
    NoSimilarPlacement,
    /// The named placement serves another channel.
    #[error("placement `{placement}` serves channel `{served}`, not `{channel}`")]
    ChannelMismatch {
        /// The placement.
        placement: String,
        /// The channel it serves.
        served: String,
        /// The channel that asked.
        channel: String,
    },
    /// Similar items were asked for under a personal placement.
    #[error("placement `{0}` is not a similar-items placement")]
    NotSimilar(String),
    /// A similar-items placement without an item.
    #[error("placement `{0}` shows similar items: item_id is required")]
    ItemRequired(String),
    /// The configured default placement does not exist (our fault: settings are validated
    /// against it at start-up).
    #[error("default placement `{0}` is missing")]
    DefaultMissing(String),
}

impl ChoiceError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            ChoiceError::UnknownPlacement { .. }
            | ChoiceError::NoSimilarPlacement
            | ChoiceError::NotSimilar(_)
            | ChoiceError::DefaultMissing(_) => "placement",
            ChoiceError::NoPlacementForChannel(_) | ChoiceError::ChannelMismatch { .. } => "channel",
            ChoiceError::ItemRequired(_) => "item_id",
        }
    }
}

/// The placement of `placements` that answers `ask`, `default` being the placement of
/// personal requests that name neither a placement nor a channel. A placement for which
/// `by_name_only` holds (an experiment variant's) is never picked by channel or kind.
pub fn choose<'p>(
    placements: &'p BTreeMap<String, Placement>,
    default: &str,
    ask: PlacementAsk<'_>,
    by_name_only: impl Fn(&str) -> bool,
) -> Result<&'p Placement, ChoiceError> {
    let searched = || placements.values().filter(|p| !by_name_only(&p.name));
    let placement = match (ask.name, ask.channel) {
        (Some(name), _) => placements.get(name).ok_or_else(|| ChoiceError::UnknownPlacement {
            name: name.to_string(),
            have: placements.keys().cloned().collect::<Vec<_>>().join(", "),
        })?,
        (None, Some(channel)) => searched()
            .find(|p| p.config.channel.as_deref() == Some(channel) && p.config.kind == ask.kind)
            .ok_or_else(|| ChoiceError::NoPlacementForChannel(channel.to_string()))?,
        (None, None) => match ask.kind {
            PlacementKind::Personal => {
                placements.get(default).ok_or_else(|| ChoiceError::DefaultMissing(default.to_string()))?
            }
            PlacementKind::Similar => searched()
                .find(|p| p.config.kind == PlacementKind::Similar)
                .ok_or(ChoiceError::NoSimilarPlacement)?,
        },
    };
    if let (Some(channel), Some(served)) = (ask.channel, &placement.config.channel)
        && channel != served
    {
        return Err(ChoiceError::ChannelMismatch {
            placement: placement.name.clone(),
            served: served.clone(),
            channel: channel.to_string(),
        });
    }
    if ask.kind == PlacementKind::Similar && placement.config.kind != PlacementKind::Similar {
        return Err(ChoiceError::NotSimilar(placement.name.clone()));
    }
    if placement.config.kind == PlacementKind::Similar && !ask.has_item {
        return Err(ChoiceError::ItemRequired(placement.name.clone()));
    }
    Ok(placement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::rules::PlacementConfig;

    fn placements() -> BTreeMap<String, Placement> {
        let placement = |name: &str, channel: &str, kind: PlacementKind| {
            let config =
                PlacementConfig { channel: Some(channel.into()), kind, ..PlacementConfig::default() };
            (name.to_string(), Placement { name: name.into(), config, ..Placement::purchases_only(0) })
        };
        BTreeMap::from([
            placement("home", "web", PlacementKind::Personal),
            placement("email_weekly", "email", PlacementKind::Personal),
            placement("product_page", "web", PlacementKind::Similar),
        ])
    }

    fn ask(
        kind: PlacementKind,
        name: Option<&'static str>,
        channel: Option<&'static str>,
    ) -> PlacementAsk<'static> {
        PlacementAsk { kind, name, channel, has_item: kind == PlacementKind::Similar }
    }

    #[test]
    fn named_then_channel_then_default() {
        let all = placements();
        let chosen = |a| choose(&all, "home", a, |_| false).map(|p| p.name.as_str());
        use PlacementKind::{Personal, Similar};
        assert_eq!(chosen(ask(Personal, Some("email_weekly"), None)), Ok("email_weekly"));
        assert_eq!(chosen(ask(Personal, None, Some("email"))), Ok("email_weekly"));
        // The channel's placement of the wanted kind: web has both kinds.
        assert_eq!(chosen(ask(Similar, None, Some("web"))), Ok("product_page"));
        assert_eq!(chosen(ask(Personal, None, None)), Ok("home"));
        assert_eq!(chosen(ask(Similar, None, None)), Ok("product_page"));
        // A placement reachable by name only (an experiment variant's, here serving sms and
        // sorting first) is never picked by channel or kind.
        let mut all = placements();
        let variant = |name: &str, channel: &str, kind| {
            let config =
                PlacementConfig { channel: Some(channel.into()), kind, ..PlacementConfig::default() };
            (name.to_string(), Placement { name: name.into(), config, ..Placement::purchases_only(0) })
        };
        all.extend([variant("a/x/b", "sms", Personal), variant("a/x/c", "web", Similar)]);
        let hidden = |name: &str| name.contains('/');
        let pick = |a| choose(&all, "home", a, hidden).map(|p| p.name.as_str());
        assert!(matches!(pick(ask(Personal, None, Some("sms"))), Err(ChoiceError::NoPlacementForChannel(_))));
        assert_eq!(pick(ask(Similar, None, None)), Ok("product_page"));
        assert_eq!(pick(ask(Similar, None, Some("web"))), Ok("product_page"));
    }

    #[test]
    fn requests_that_do_not_fit_name_the_field() {
        let all = placements();
        let refused = |a| choose(&all, "home", a, |_| false).map(|p| p.name.clone()).unwrap_err();
        use PlacementKind::{Personal, Similar};
        let unknown = refused(ask(Personal, Some("nope"), None));
        assert_eq!(
            unknown.to_string(),
            "placement `nope` is not configured (have: email_weekly, home, product_page)"
        );
        assert_eq!(unknown.field(), "placement");
        let mismatch = refused(ask(Personal, Some("home"), Some("email")));
        assert_eq!(
            (mismatch.field(), mismatch.to_string().as_str()),
            ("channel", "placement `home` serves channel `web`, not `email`")
        );
        assert_eq!(refused(ask(Personal, None, Some("sms"))).field(), "channel");
        assert_eq!(refused(ask(Similar, Some("home"), None)), ChoiceError::NotSimilar("home".into()));
        let no_item = PlacementAsk { has_item: false, ..ask(Personal, Some("product_page"), None) };
        assert_eq!(refused(no_item).field(), "item_id");
        assert_eq!(
            choose(&all, "gone", ask(Personal, None, None), |_| false).unwrap_err(),
            ChoiceError::DefaultMissing("gone".into())
        );
    }
}
