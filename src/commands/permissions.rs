//! `cfsetup permissions` (not built yet).

use crate::cli::PermissionsArgs;
use crate::config::Config;
use crate::output::{Report, Ui};

pub async fn run(_args: PermissionsArgs, _config: &Config, _ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    anyhow::bail!("`cfsetup permissions` is not built yet")
}
