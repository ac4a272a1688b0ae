//! The user, accounts and zones (docs/cloudflare-api.md §2 and §6).
//!
//! Part of the API client: it must not import commands, storage, site or output.

use serde::Deserialize;

use super::{Client, Error, Req};

/// `GET /user` result (TS SDK `UserGetResponse`); only the fields cfsetup reads.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: String,
    pub email: Option<String>,
}

/// `GET /accounts/{id}` result (TS SDK `accounts.ts` `Account`).
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ZoneAccount {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /zones/{id}` result (TS SDK `zones.ts` `Zone`).
#[derive(Debug, Clone, Deserialize)]
pub struct Zone {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub account: Option<ZoneAccount>,
}

impl Client {
    /// `GET /user`. Works with the Global API Key, or a token with User Details Read; a token
    /// without it gets 403/9109 (wrangler `getEmail()`).
    pub async fn get_user(&self) -> Result<User, Error> {
        self.call(Req::get("/user")).await
    }

    /// `GET /accounts/{account_id}`; needs Account Settings Read.
    pub async fn get_account(&self, account_id: &str) -> Result<Account, Error> {
        self.call(Req::get(format!("/accounts/{account_id}"))).await
    }

    /// `GET /zones/{zone_id}`; needs Zone Read on that zone.
    pub async fn get_zone(&self, zone_id: &str) -> Result<Zone, Error> {
        self.call(Req::get(format!("/zones/{zone_id}"))).await
    }
}
