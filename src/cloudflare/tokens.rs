//! User API tokens and permission groups (docs/cloudflare-api.md §2, §3, §4).
//!
//! Part of the API client: it must not import commands, storage, site or output.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Client, Error, Req};
use crate::secret::Secret;

/// One item of `GET /user/tokens/permission_groups` (TS SDK `PermissionGroupListResponse`).
/// Names are not unique: "Access: Apps and Policies Read" exists with account and with zone scope,
/// so a group is chosen by name *and* scope (docs/cloudflare-api.md §3).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PermissionGroup {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A policy as sent and returned: `{effect, resources, permission_groups:[{id}]}`. `resources` is a
/// map of resource key to `"*"` or to a nested map (TS SDK `shared.ts` `TokenPolicy`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub effect: String,
    pub resources: serde_json::Map<String, Value>,
    pub permission_groups: Vec<PolicyGroup>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct PolicyGroup {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `POST /user/tokens` body (TS SDK `TokenCreateParams`; docs `create-via-api.mdx`).
/// Timestamps are UTC RFC 3339. `condition` is `{"request_ip": {"in": [...]}}`, the SDKs' key;
/// the prose docs show `request.ip` (which the server honours is docs/cloudflare-api.md open question
/// 1; see `commands::create_token::IP_CONDITION_KEY`), so readers accept both.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    pub name: String,
    pub policies: Vec<Policy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

/// A token as GET and list return it; never includes the secret.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub expires_on: Option<String>,
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub condition: Option<Value>,
}

/// `POST /user/tokens` result: the token plus its `value`, which the API returns only here and from
/// a roll (docs/cloudflare-api.md §4).
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: Token,
    pub value: Secret,
}

/// Who owns a token: a user (`/user/tokens/…`) or an account (`/accounts/{id}/tokens/…`;
/// docs/cloudflare-api.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    User,
    Account,
}

impl TokenKind {
    /// `user token` or `account token`, as reports say it.
    pub fn label(self) -> &'static str {
        match self {
            TokenKind::User => "user token",
            TokenKind::Account => "account token",
        }
    }
}
/// `GET /user/tokens/verify` result (TS SDK `TokenVerifyResponse`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TokenStatus {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub expires_on: Option<String>,
    #[serde(default)]
    pub not_before: Option<String>,
}

impl Client {
    /// `GET /user/tokens/permission_groups?name=&scope=` (single page). Whether `name` matches
    /// exactly is undocumented (open question 4), so callers match exactly on their side too.
    pub async fn permission_groups(
        &self,
        name: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<PermissionGroup>, Error> {
        self.call(
            Req::get("/user/tokens/permission_groups")
                .query_opt("name", name)
                .query_opt("scope", scope),
        )
        .await
    }

    /// `GET /user/tokens/verify`: any valid user token, no permission needed. A token owned by an
    /// account gets 1000 "Invalid API Token" here and must use [`Client::verify_account_token`]
    /// (docs/cloudflare-api.md §2).
    pub async fn verify_token(&self) -> Result<TokenStatus, Error> {
        self.call(Req::get("/user/tokens/verify")).await
    }

    /// `GET /accounts/{account_id}/tokens/verify`, for account-owned tokens (TS SDK
    /// `accounts/tokens/tokens.ts` `verify`).
    pub async fn verify_account_token(&self, account_id: &str) -> Result<TokenStatus, Error> {
        self.call(Req::get(format!("/accounts/{account_id}/tokens/verify")))
            .await
    }

    /// `POST /user/tokens`. Needs the Global API Key or a token with API Tokens Write.
    /// Never retried blindly: a create that may have happened is looked up by the caller.
    pub async fn create_token(&self, token: &NewToken) -> Result<CreatedToken, Error> {
        self.call(Req::post("/user/tokens").json(token)).await
    }

    /// `GET /user/tokens` (page-paginated; TS SDK `TokenListParams`).
    pub async fn list_tokens(&self) -> Result<Vec<Token>, Error> {
        self.paged(|| Req::get("/user/tokens"), 50).await
    }

    /// `GET /user/tokens/{token_id}`.
    pub async fn get_token(&self, token_id: &str) -> Result<Token, Error> {
        self.call(Req::get(format!("/user/tokens/{token_id}")))
            .await
    }

    /// `DELETE /user/tokens/{token_id}` → `{id}`.
    pub async fn delete_token(&self, token_id: &str) -> Result<(), Error> {
        self.call::<Value>(Req::delete(format!("/user/tokens/{token_id}")))
            .await
            .map(|_| ())
    }

    /// `PUT /user/tokens/{token_id}/value`: rolls the secret. The result is a bare JSON string, the
    /// new value; the old one stops working and the permissions stay (cf-go v0 `TestRollAPIToken`;
    /// TS SDK `user/tokens/value.ts`). The SDKs send no body, older docs sent `{}`; `{}` is sent.
    pub async fn roll_token(&self, token_id: &str) -> Result<Secret, Error> {
        self.call(Req::put(format!("/user/tokens/{token_id}/value")).json(&serde_json::json!({})))
            .await
    }
}

impl Client {
    /// The API token's id, which is its S3 Access Key ID: `GET /user/tokens/verify`, or
    /// `/accounts/{id}/tokens/verify` for an account token (`cfat_`, or a user verify answering
    /// 1000; docs/cloudflare-api.md §2, §7). With the Global API Key there is no token: the
    /// user verify answers as the API does.
    pub async fn token_id(&self, account_id: &str) -> Result<String, Error> {
        Ok(self.verify_own_token(account_id).await?.1.id)
    }

    /// Verifies the client's own token where it lives: the account endpoint for an account token
    /// (`cfat_`, or a user verify answering 1000), else the user endpoint (docs/cloudflare-api.md
    /// §2). A 1000 that the account endpoint does not clear is returned as the user's answer.
    /// Also says which endpoint answered.
    pub async fn verify_own_token(
        &self,
        account_id: &str,
    ) -> Result<(TokenKind, TokenStatus), Error> {
        let account_token = matches!(
            self.auth(),
            crate::cloudflare::Auth::Token(t) if t.expose().starts_with("cfat_")
        );
        if account_token {
            let status = self.verify_account_token(account_id).await?;
            return Ok((TokenKind::Account, status));
        }
        match self.verify_token().await {
            Err(e) if e.has_code(1000) => match self.verify_account_token(account_id).await {
                Ok(status) => Ok((TokenKind::Account, status)),
                Err(_) => Err(e),
            },
            other => other.map(|status| (TokenKind::User, status)),
        }
    }
}
