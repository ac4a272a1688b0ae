//! `cfsetup test-permissions` (not built yet).

use crate::cli::TestPermissionsArgs;
use crate::config::Config;
use crate::output::{Report, Ui};

pub async fn run(_args: TestPermissionsArgs, _config: &Config, _ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    anyhow::bail!("`cfsetup test-permissions` is not built yet")
}
