//! Integrity checks of model state, shared by the artifact loader (a decoded file may say
//! anything) and training (a fit must never ship non-finite numbers): sizes agree, indices
//! are in range, numbers are finite. Each returns a reason for people, never panics.

use sprs::{CsMatI, SpIndex};

/// Every value of `values` (named `what`) is finite.
pub(crate) fn finite(what: &str, values: &[f32]) -> Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(at) => Err(format!("{what}: entry {at} is {} (not a finite number)", values[at])),
    }
}

/// `matrix` (named `what`) is stored by rows, has the expected shape and finite entries.
/// (Its index structure is checked by sprs when it is decoded.)
pub(crate) fn csr<I: SpIndex, Iptr: SpIndex>(
    what: &str,
    matrix: &CsMatI<f32, I, Iptr>,
    rows: Option<usize>,
    cols: usize,
) -> Result<(), String> {
    if !matrix.is_csr() {
        return Err(format!("{what}: stored by columns, expected rows"));
    }
    if matrix.cols() != cols || rows.is_some_and(|rows| matrix.rows() != rows) {
        return Err(format!(
            "{what}: shape {} × {}, expected {} × {cols}",
            matrix.rows(),
            matrix.cols(),
            rows.map_or("any".to_string(), |r| r.to_string())
        ));
    }
    finite(what, matrix.data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_and_wrong_shapes_are_named() {
        assert_eq!(finite("scores", &[1.0, 2.0]), Ok(()));
        assert_eq!(
            finite("scores", &[1.0, f32::NAN]).unwrap_err(),
            "scores: entry 1 is NaN (not a finite number)"
        );
        let matrix: CsMatI<f32, usize> =
            CsMatI::new((2, 3), vec![0, 1, 2], vec![0, 2], vec![1.0, f32::INFINITY]);
        assert_eq!(
            csr("history", &matrix, Some(2), 3).unwrap_err(),
            "history: entry 1 is inf (not a finite number)"
        );
        assert!(csr("history", &matrix, Some(2), 4).unwrap_err().contains("shape 2 × 3, expected 2 × 4"));
        assert!(csr("terms", &matrix.to_csc(), None, 3).unwrap_err().contains("by columns"));
    }
}
