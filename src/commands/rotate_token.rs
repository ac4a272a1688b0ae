//! `cfsetup rotate-token` (not built yet).

use crate::cli::RotateTokenArgs;
use crate::config::Config;
use crate::output::{Report, Ui};

pub async fn run(_args: RotateTokenArgs, _config: &Config, _ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    anyhow::bail!("`cfsetup rotate-token` is not built yet")
}
