//! `cfsetup create-token` (not built yet).

use crate::cli::CreateTokenArgs;
use crate::config::Config;
use crate::output::{Report, Ui};

pub async fn run(_args: CreateTokenArgs, _config: &Config, _ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    anyhow::bail!("`cfsetup create-token` is not built yet")
}
