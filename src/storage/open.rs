//! Which API carries the bucket's objects for a run: the one place that turns the configuration
//! (`--via`, `--s3-endpoint`, `CLOUDFLARE_API_TOKEN_ID`) and the client's credentials into a
//! [`Storage`](super::Storage). Commands call [`open`]; they never pick a backend.
//!
//! It imports the config layer and the API client; it must not import commands, reports or
//! output.

use crate::cloudflare::{Auth, Client};
use crate::config::Config;
use crate::error::{usage, UsageError};

/// The bucket's objects for this run. Every command that reads or writes objects gets its
/// [`Storage`](super::Storage) here, so which API carries them is decided in one place:
///
/// - `--via rest`, or `auto` with the Global API Key: the REST API.
/// - `--via s3`: R2's S3 API with keys derived from the API token; a refusal fails the run (exit
///   1). With the Global API Key there is no token id to derive keys from: exit 2, before any
///   request (`commands::platform_auth` refuses that combination too).
/// - `auto` with an API token: S3, falling back to REST, with one note, when S3 refuses the
///   keys on its first call.
///
/// With a token this costs one REST request (the token's verify call, for its id), unless
/// `CLOUDFLARE_API_TOKEN_ID` gives the id ([`Config::api_token_id`]) or this machine kept it from
/// an earlier run ([`super::token_ids`]: a file under `~/.cache/cfsetup/token-ids/`, keyed by a
/// domain-separated hash of the token, holding only the id). The environment variable wins over
/// the cache; a verified id is kept. If S3 then refuses the keys, `auto` still falls back, and
/// its note says the id may be stale; a refusal of keys derived with a cached id also removes
/// that entry, so the next run verifies the token again.
pub async fn open(
    config: &Config,
    client: &Client,
    bucket: super::BucketLoc,
) -> anyhow::Result<super::Storage> {
    open_with(config, client, bucket, OpenSetup::default()).await
}

/// What [`open_with`] may be told beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct OpenSetup {
    /// The API token's id, when the command already verified the token (saves a request).
    pub token_id: Option<String>,
    /// S3 tuning (part sizes); `None` takes the defaults. Retries, notes and the request log are
    /// the client's transport's.
    pub s3: Option<super::S3Options>,
}

/// [`open`], with a known token id or S3 options (tests lower the multipart threshold).
pub async fn open_with(
    config: &Config,
    client: &Client,
    bucket: super::BucketLoc,
    setup: OpenSetup,
) -> anyhow::Result<super::Storage> {
    use super::{RestStore, Storage};
    use crate::cli::Via;

    let rest = RestStore::new(client.clone(), bucket.clone());
    let token = match (config.via, client.auth()) {
        (Via::Rest, _) | (Via::Auto, Auth::GlobalKey { .. }) => return Ok(Storage::rest(rest)),
        (Via::S3, Auth::GlobalKey { .. }) => return Err(via_s3_needs_a_token().into()),
        (_, Auth::Token(t)) => t.clone(),
    };
    let mut cause = fallback_cause(&token);
    // The id: given by the command (it verified the token), else CLOUDFLARE_API_TOKEN_ID, else
    // the one this machine kept (`token_ids`), else the verify call, whose answer is kept.
    let mut cached = false;
    let token_id = match (setup.token_id, &config.api_token_id) {
        (Some(id), _) => {
            super::token_ids::write(&token, &id);
            id
        }
        (None, Some(id)) => {
            cause.push_str(
                " CLOUDFLARE_API_TOKEN_ID is set and was used as the token's id without asking \
                 Cloudflare: it may be stale (not this token's id); remove it, or write it again \
                 with `cfsetup create-token --write-env` or `rotate-token --write-env`.",
            );
            id.clone()
        }
        (None, None) => match super::token_ids::read(&token) {
            Some(id) => {
                cached = true;
                cause.push_str(
                    " The token's id came from this machine's cache (~/.cache/cfsetup/token-ids/); \
                     that entry was removed, so the next run verifies the token again.",
                );
                id
            }
            None => {
                let id = client.token_id(&bucket.account).await.map_err(|e| {
                    anyhow::Error::new(e).context("verifying the API token for R2's S3 keys")
                })?;
                super::token_ids::write(&token, &id);
                id
            }
        },
    };
    let options = setup.s3.unwrap_or_default();
    let mut s3 = s3_store(config, client, bucket, &token_id, options)?;
    if cached {
        // A refusal of these keys drops the entry: the next run asks Cloudflare again.
        s3 = s3.forgetting_cached_id(token);
    }
    Ok(match config.via {
        Via::S3 => Storage::s3(s3),
        _ => Storage::auto(s3, rest, cause),
    })
}

/// The bucket over R2's S3 API with keys derived from the client's API token (whose id is
/// `token_id`), at `--s3-endpoint` or the bucket's own endpoint. The Global API Key has no S3
/// keys: a usage error.
pub fn s3_store(
    config: &Config,
    client: &Client,
    bucket: super::BucketLoc,
    token_id: &str,
    options: super::S3Options,
) -> anyhow::Result<super::S3Store> {
    s3_store_at(
        config.s3_endpoint.as_ref(),
        client,
        bucket,
        token_id,
        options,
    )
}

/// [`s3_store`] with the endpoint override given directly (`None`: the account's own, in the
/// bucket's jurisdiction).
pub fn s3_store_at(
    endpoint: Option<&url::Url>,
    client: &Client,
    bucket: super::BucketLoc,
    token_id: &str,
    options: super::S3Options,
) -> anyhow::Result<super::S3Store> {
    use super::{S3Credentials, S3Store};
    let Auth::Token(token) = client.auth() else {
        return Err(via_s3_needs_a_token().into());
    };
    let credentials = S3Credentials::from_token(token_id, token);
    let (endpoint, overridden) = match endpoint {
        Some(url) => (url.clone(), true),
        None => (
            super::s3::default_endpoint(&bucket.account, bucket.jurisdiction.as_deref()),
            false,
        ),
    };
    Ok(S3Store::new(
        client.clone(),
        bucket,
        endpoint,
        overridden,
        &credentials,
        options,
    )?)
}

/// The likely cause of an S3 refusal in `auto`, for its one note.
fn fallback_cause(token: &crate::secret::Secret) -> String {
    let t = token.expose();
    let mut cause = "Likely cause: the token lacks an R2 permission (Workers R2 Storage Write), \
                     or it was changed in the last minute."
        .to_string();
    if t.starts_with("cfut_") || t.starts_with("cfat_") {
        cause.push_str(
            " This is a new-format token; deriving S3 keys from cfut_/cfat_ tokens is \
             unconfirmed.",
        );
    }
    cause.push_str(" Use --via rest to skip S3, or --via s3 to fail instead.");
    cause
}

pub(crate) fn via_s3_needs_a_token() -> UsageError {
    usage!("--via s3 needs an API token: the Global API Key has no token id to derive S3 keys from")
        .with_hint("set CLOUDFLARE_API_TOKEN, or use --via rest (or auto)")
}
