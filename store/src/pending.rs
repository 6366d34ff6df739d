//! Served answers waiting in memory for the next commit (a person's next request sees them
//! before they are on disk), and reads that join them to what is stored.

use std::collections::BTreeSet;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use crate::Shared;
use crate::error::Result;
use crate::record::{Exposure, ExposureTag, Impression};

/// A served answer waiting for the next commit.
pub(crate) struct Pending {
    /// What was shown.
    pub(crate) shown: Impression,
    /// The experiment and variant it was served under, if any: an exposure.
    pub(crate) tag: Option<ExposureTag>,
    /// Whether a commit has taken it.
    pub(crate) taken: bool,
}

impl Pending {
    /// The exposure it records, if it was served under an experiment.
    pub(crate) fn exposure(&self) -> Option<Exposure> {
        let tag = self.tag.clone()?;
        let shown = &self.shown;
        Some(Exposure {
            id: shown.id.clone(),
            tag,
            person: shown.person.clone(),
            channel: shown.channel.clone(),
            placement: shown.placement.clone(),
            items: shown.items.clone(),
            at: shown.at,
        })
    }
}

impl Shared {
    /// `read` over what `copy` takes from the answers waiting in memory, copied before the
    /// store is read (one committed in between is then in both, never in neither), and
    /// done again when an erasure took waiting entries meanwhile: what was copied could be
    /// the erased person's, whose stored records `read` no longer sees.
    pub(crate) fn read_with_pending<W, T>(
        &self,
        copy: impl Fn(&[Pending]) -> W,
        mut read: impl FnMut(W) -> Result<T>,
    ) -> Result<T> {
        loop {
            let (waiting, erasures) = {
                let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                (copy(&pending), self.pending_erasures.load(Ordering::SeqCst))
            };
            let read = read(waiting)?;
            if self.pending_erasures.load(Ordering::SeqCst) == erasures {
                return Ok(read);
            }
        }
    }

    /// Takes the waiting answers served to any of `keys` (an erasure's identifiers).
    pub(crate) fn forget_pending(&self, keys: &BTreeSet<String>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|p| !keys.contains(&p.shown.person));
        self.pending_erasures.fetch_add(1, Ordering::SeqCst);
    }
}
