//! `runbox token create|revoke`: JWTs signed with the server's secret.

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{TimeZone, Utc};
use clap::Subcommand;
use runbox_core::config::ALL_SCOPES;
use runbox_core::units::parse_duration;
use runbox_core::Config;
use runbox_runtime::auth::{jwt_secret, JwtKeys};
use runbox_store::Store;

/// How long a revocation of a bare token id is kept when its expiry is unknown.
const UNKNOWN_EXPIRY: Duration = Duration::from_secs(400 * 86400);

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Prints a new JWT.
    Create {
        /// Who the token acts for (sessions and tasks belong to the subject).
        #[arg(long)]
        subject: String,
        /// Space-separated scopes: run, functions:read, functions:write, tasks, admin.
        #[arg(long, default_value = "run")]
        scope: String,
        /// Time to live, e.g. 30d, 12h, 900s.
        #[arg(long, default_value = "30d")]
        ttl: String,
        /// The least isolation every run of the token gets: standard, strong, or an OCI
        /// runtime's name.
        #[arg(long)]
        isolation: Option<String>,
    },
    /// Revokes a JWT (pass the token itself or its `jti`); the server refuses it at once.
    Revoke { token_or_id: String },
}

pub async fn run(config: Config, command: TokenCommand) -> anyhow::Result<()> {
    // The secret the server uses: on PostgreSQL the one its replicas share.
    let store = Store::connect(&config.database_url()).await?;
    let secret = jwt_secret(&config.auth.jwt_secret, &config.data_dir, &store).await;
    let secret = match secret {
        Ok(secret) => secret,
        Err(err) => {
            store.close().await;
            return Err(err.into());
        }
    };
    let keys = JwtKeys::new(&secret);
    match command {
        TokenCommand::Create {
            subject,
            scope,
            ttl,
            isolation,
        } => {
            if let Some(isolation) = &isolation {
                if runbox_core::Isolation::parse(isolation).is_none() {
                    bail!(
                        "unknown isolation `{isolation}` (standard, strong, or a runtime's name)"
                    );
                }
            }
            let scopes: Vec<String> = scope.split_whitespace().map(str::to_string).collect();
            for scope in &scopes {
                if !ALL_SCOPES.contains(&scope.as_str()) {
                    bail!("unknown scope `{scope}` (known: {})", ALL_SCOPES.join(", "));
                }
            }
            if subject.trim().is_empty() {
                bail!("--subject must not be empty");
            }
            let ttl = parse_duration(&ttl).map_err(anyhow::Error::msg)?;
            let (token, _) =
                keys.issue_with_isolation(subject.trim(), &scopes, isolation.as_deref(), ttl)?;
            println!("{token}");
        }
        TokenCommand::Revoke { token_or_id } => {
            let (jti, expires_at) = match keys.verify_ignoring_expiry(&token_or_id) {
                Ok(claims) => (
                    claims.jti,
                    Utc.timestamp_opt(claims.exp, 0)
                        .single()
                        .context("the token's exp is out of range")?,
                ),
                Err(_) if token_or_id.matches('.').count() == 2 => {
                    bail!("that token was not signed with this server's secret")
                }
                Err(_) => (
                    token_or_id.trim().to_string(),
                    Utc::now() + chrono::Duration::from_std(UNKNOWN_EXPIRY)?,
                ),
            };
            store.revoke_token(&jti, expires_at).await?;
            println!("revoked {jti}");
        }
    }
    store.close().await;
    Ok(())
}
