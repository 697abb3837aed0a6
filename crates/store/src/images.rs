//! Images produced by executions (plots and the like), kept as base64 text so that the
//! same column type works on both backends and the rows stay readable in a SQL shell.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, SubsecRound, Utc};

use crate::{with_pool, Store, StoreError};

/// An image as stored, with its bytes decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub name: String,
    pub mime: String,
    pub data: Vec<u8>,
    /// Length of `data` in bytes (recorded at insert time so totals need no decoding).
    pub size: u64,
    pub created_at: DateTime<Utc>,
}

// Hand-written so that logging an image prints its size, not megabytes of bytes.
impl std::fmt::Debug for StoredImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredImage")
            .field("name", &self.name)
            .field("mime", &self.mime)
            .field("size", &self.size)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

type ImageRow = (String, String, i64, String, DateTime<Utc>);

impl Store {
    /// Stores a new image. Names are unique: an existing name fails with
    /// [`StoreError::Duplicate`] and leaves the stored image untouched.
    pub async fn put_image(&self, name: &str, mime: &str, data: &[u8]) -> Result<(), StoreError> {
        self.put_image_at(name, mime, data, now()).await
    }

    /// [`Store::put_image`] with an explicit creation time, for tests and imports.
    #[doc(hidden)]
    pub async fn put_image_at(
        &self,
        name: &str,
        mime: &str,
        data: &[u8],
        created_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let size = i64::try_from(data.len())
            .map_err(|_| StoreError::InvalidInput(format!("image `{name}` is too large")))?;
        let encoded = BASE64.encode(data);
        // DO NOTHING instead of catching the unique violation: no error is logged by the
        // server, and the statement stays usable inside a transaction.
        const SQL: &str = "INSERT INTO images (name, mime, size, data_base64, created_at) \
                           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING";
        let inserted = with_pool!(self, pool => sqlx::query(SQL)
            .bind(name)
            .bind(mime)
            .bind(size)
            .bind(&encoded)
            .bind(created_at.trunc_subsecs(6))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("storing an image"))?;
        if inserted == 0 {
            return Err(StoreError::Duplicate(name.to_owned()));
        }
        Ok(())
    }

    /// The image called `name`, or `None` when there is none (never stored, or already
    /// swept by retention).
    pub async fn get_image(&self, name: &str) -> Result<Option<StoredImage>, StoreError> {
        const SQL: &str =
            "SELECT name, mime, size, data_base64, created_at FROM images WHERE name = $1";
        let row: Option<ImageRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(name)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::db("loading an image"))?;
        row.map(decode_image).transpose()
    }

    /// Deletes every image created strictly before `cutoff`; returns how many went.
    pub async fn delete_images_older_than(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM images WHERE created_at < $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("deleting old images"))
    }

    /// Sum of the sizes of all stored images, in decoded bytes.
    pub async fn image_bytes_total(&self) -> Result<u64, StoreError> {
        // PostgreSQL's SUM(BIGINT) is NUMERIC, and SUM over no rows is NULL.
        const SQL: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM images";
        let (total,): (i64,) = with_pool!(self, pool => sqlx::query_as(SQL)
            .fetch_one(pool)
            .await)
        .map_err(StoreError::db("summing image sizes"))?;
        // The CHECK (size >= 0) constraint rules out a negative sum.
        Ok(u64::try_from(total).unwrap_or(0))
    }
}

fn decode_image(
    (name, mime, size, encoded, created_at): ImageRow,
) -> Result<StoredImage, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        name: name.clone(),
        reason,
    };
    let data = BASE64
        .decode(encoded.as_bytes())
        .map_err(|e| corrupt(format!("data_base64 is not base64: {e}")))?;
    // A mismatch means the row was edited by hand or truncated; serving it would hand
    // out an image that is not what was stored.
    let size = u64::try_from(size)
        .ok()
        .filter(|&s| usize::try_from(s).ok() == Some(data.len()))
        .ok_or_else(|| {
            corrupt(format!(
                "size column says {size} bytes, data has {}",
                data.len()
            ))
        })?;
    Ok(StoredImage {
        name,
        mime,
        data,
        size,
        created_at,
    })
}

/// The current time at the precision both backends store (PostgreSQL keeps
/// microseconds), so a value reads back equal to what was written.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
