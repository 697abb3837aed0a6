//! Where the JWT secret comes from: `auth.jwt_secret` (or `RUNBOX_JWT_SECRET`); else, on
//! PostgreSQL, the secret the replicas share in the database (made once by the first of
//! them, so that every replica accepts a token any of them, or `runbox token`, issued);
//! else a random secret generated once into `<data_dir>/jwt-secret`, readable by the
//! owner only.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the JWT secret {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the JWT secret {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the JWT secret {} is empty", path.display())]
    Empty { path: PathBuf },
    #[error("cannot read the replicas' shared JWT secret: {0}")]
    Shared(#[from] runbox_store::StoreError),
}

/// The JWT secret of a server on `store` (see the module's docs for the order).
pub async fn jwt_secret(
    configured: &str,
    data_dir: &Path,
    store: &runbox_store::Store,
) -> Result<Vec<u8>, SecretError> {
    if configured.trim().is_empty() && store.backend() == runbox_store::Backend::Postgres {
        let secret = store
            .shared_setting("jwt_secret", || {
                let mut bytes = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut bytes);
                hex::encode(bytes)
            })
            .await?;
        return Ok(secret.into_bytes());
    }
    load_or_create_secret(configured, data_dir)
}

pub fn load_or_create_secret(configured: &str, data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    if !configured.trim().is_empty() {
        return Ok(configured.trim().as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Err(SecretError::Empty { path }),
        Ok(text) => Ok(text.trim().as_bytes().to_vec()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(source) => Err(SecretError::Read { path, source }),
    }
}

fn create(path: &Path) -> Result<Vec<u8>, SecretError> {
    let fail = |source| SecretError::Create {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes()).map_err(fail)?;
            Ok(secret.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create_secret("", path.parent().unwrap_or(Path::new(".")))
        }
        Err(err) => Err(fail(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create_secret("", dir.path()).expect("created");
        let second = load_or_create_secret("", dir.path()).expect("read back");
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
    }

    #[test]
    fn a_configured_secret_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            load_or_create_secret("s3cret", dir.path()).expect("ok"),
            b"s3cret"
        );
    }
}
