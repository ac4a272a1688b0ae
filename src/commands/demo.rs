//! `cfsetup demo` (not built yet).

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::output::{Report, Ui};

pub async fn run(_args: DemoArgs, _config: &Config, _ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    anyhow::bail!("`cfsetup demo` is not built yet")
}
