//! `cfsetup deploy-infra` (not built yet).

use crate::cli::DeployInfraArgs;
use crate::config::Config;
use crate::output::{Report, Ui};

pub async fn run(_args: DeployInfraArgs, _config: &Config, _ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    anyhow::bail!("`cfsetup deploy-infra` is not built yet")
}
