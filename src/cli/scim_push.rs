//! `tollgate scim-push token …`: the bearer tokens an identity provider pushes SCIM with.

use std::io::Write;

use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;
use crate::store::scim_resources as stored;

async fn open(config: &Config) -> Result<Store, String> {
    let store = Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

/// Issues a token and prints it with where the identity provider sends its pushes. The token
/// is shown this once.
pub async fn issue(
    config: &Config,
    name: &str,
    by: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a token needs a name (which IdP pushes with it)".into());
    }
    // The key the service runs with (made beside a SQLite database on first use, as `serve` does).
    let (key, _) =
        crate::secrets::resolve_key(config.secret_key.as_ref(), config.database.url.key_home())
            .map_err(|e| e.to_string())?;
    let store = open(config).await?;
    let now = crate::clock::SystemClock.now();
    let (id, token) = crate::scim_push::tokens::issue(&store, &key, name.trim(), by, now)
        .await
        .map_err(|e| e.to_string())?;
    let enabled = matches!(config.idp.source, crate::config::IdpSource::ScimPush(_));
    let written = writeln!(
        out,
        "SCIM base URL: {}/scim/v2\ntoken {id} ({name}):\n{token}\n\nEnter both in the identity provider's provisioning settings; the token is not shown again.{}",
        config.server.base_url.trim_end_matches('/'),
        if enabled {
            ""
        } else {
            "\nNote: TOLLGATE_IDP_KIND is not `scim_push`, so pushes are refused until it is."
        }
    );
    written.map_err(|e| e.to_string())
}

pub async fn list(config: &Config, out: &mut dyn Write) -> Result<(), String> {
    let store = open(config).await?;
    let tokens = stored::tokens(&store, false)
        .await
        .map_err(|e| e.to_string())?;
    let when = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(|| "-".to_string(), |at| at.to_rfc3339())
    };
    let mut text = String::from("id\tname\tcreated\tlast pushed\trevoked\n");
    for t in &tokens {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            t.id,
            t.name,
            t.created_at.to_rfc3339(),
            when(t.last_pushed_at),
            when(t.revoked_at)
        ));
    }
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

pub async fn revoke(
    config: &Config,
    id: &str,
    by: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    let store = open(config).await?;
    let now = crate::clock::SystemClock.now();
    match crate::scim_push::tokens::revoke(&store, id, by, now).await {
        Ok(true) => writeln!(
            out,
            "token {id} revoked: pushes with it are refused from now on"
        )
        .map_err(|e| e.to_string()),
        Ok(false) => Err(format!(
            "no active token {id} (`tollgate scim-push token list`)"
        )),
        Err(e) => Err(e.to_string()),
    }
}
