//! Text that PostgreSQL cannot hold. A PostgreSQL `text` value cannot contain a NUL
//! character (SQLite's can), and a query that binds one fails. So that both backends
//! answer alike, and a client never turns a lookup into a database error, a key with a
//! NUL names nothing, and a value with one is refused as invalid input.

use crate::StoreError;

/// Whether `text` can be a stored key at all.
pub(crate) fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// `Err(InvalidInput)` naming `field` when `text` cannot be stored.
pub(crate) fn refuse_nul(field: &str, text: &str) -> Result<(), StoreError> {
    if storable(text) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "{field} must not contain NUL characters"
        )))
    }
}
