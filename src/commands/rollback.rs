//! `cfsetup rollback` (not built yet).

use crate::cli::RollbackArgs;
use crate::config::Config;
use crate::output::{Report, Ui};

pub async fn run(_args: RollbackArgs, _config: &Config, _ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    anyhow::bail!("`cfsetup rollback` is not built yet")
}
