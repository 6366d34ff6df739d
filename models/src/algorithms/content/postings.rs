//! The term × item postings of the content model: for each term, the items that have it.

use sprs::CsMat;

use crate::algorithms::spread::SPREAD;

/// Term × item postings: `items[starts[t]..starts[t + 1]]` hold term `t`, ascending, with
/// their TF-IDF weights in `values`. Items take 16 bits in catalogs of at most 65,536
/// (scoring then adds without bounds checks, [`crate::algorithms::spread::spread_add`]) and
/// 32 bits above: a half or two-thirds of the bytes of `sprs`' `usize`-indexed transpose,
/// which a profile's scoring streams through once per request.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Postings {
    pub(super) starts: Vec<u32>,
    pub(super) items: PostingItems,
    pub(super) values: Vec<f32>,
}

/// The items of [`Postings`], in the narrowest width the catalog allows.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PostingItems {
    Short(Vec<u16>),
    Long(Vec<u32>),
}

impl Postings {
    /// The transpose of `rows` (item × term CSR), whose entries
    /// [`super::ContentModel::check`] holds below `u32::MAX` (items are 32-bit everywhere).
    pub(super) fn of(rows: &CsMat<f32>) -> Postings {
        let n_terms = rows.cols();
        let mut starts = vec![0u32; n_terms + 1];
        for &term in rows.indices() {
            starts[term + 1] += 1;
        }
        for t in 0..n_terms {
            starts[t + 1] += starts[t];
        }
        let mut next: Vec<u32> = starts[..n_terms].to_vec();
        let mut items = vec![0u32; rows.nnz()];
        let mut values = vec![0.0f32; rows.nnz()];
        // Items in ascending order, so each term's postings come out ascending.
        for (item, row) in rows.outer_iterator().enumerate() {
            for (term, &value) in row.iter() {
                let at = next[term] as usize;
                items[at] = item as u32;
                values[at] = value;
                next[term] += 1;
            }
        }
        let items = if rows.rows() <= SPREAD {
            PostingItems::Short(items.into_iter().map(|i| i as u16).collect())
        } else {
            PostingItems::Long(items)
        };
        Postings { starts, items, values }
    }

    /// Where term `t`'s postings are; empty for a term out of range.
    pub(super) fn range(&self, t: usize) -> std::ops::Range<usize> {
        match (self.starts.get(t), self.starts.get(t + 1)) {
            (Some(&start), Some(&end)) => start as usize..end as usize,
            _ => 0..0,
        }
    }

    /// Term `t`'s items and weights; empty for a term out of range.
    #[cfg(test)]
    pub(super) fn term(&self, t: usize) -> (Vec<u32>, &[f32]) {
        let range = self.range(t);
        let items = match &self.items {
            PostingItems::Short(items) => items[range.clone()].iter().map(|&i| u32::from(i)).collect(),
            PostingItems::Long(items) => items[range.clone()].to_vec(),
        };
        (items, &self.values[range])
    }
}
