//! `cfsetup deploy-site` (not built yet).

use crate::cli::DeploySiteArgs;
use crate::config::Config;
use crate::output::{Report, Ui};

pub async fn run(_args: DeploySiteArgs, _config: &Config, _ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    anyhow::bail!("`cfsetup deploy-site` is not built yet")
}
