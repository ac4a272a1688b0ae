//! `cfsetup`: load configuration, run one command, print its report or its error once, exit.
//!
//! Exit status: 0 success; 1 failure; 2 bad usage or configuration (before any request);
//! 3 test-permissions ran and a check failed (see `error.rs`).

use std::process::ExitCode;

use clap::Parser;

use cfsetup::cli::Cli;
use cfsetup::{commands, error};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprint!("{}", error::render(&err));
            ExitCode::from(error::exit_code(&err))
        }
    }
}
