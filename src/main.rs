//! `cfsetup`: load configuration, run one command, print its report or its error once, exit.
//!
//! Exit status: 0 success; 1 failure; 2 bad usage or configuration (before any request);
//! 3 test-permissions ran and a check failed (see `error.rs`).
//!
//! It imports the crate's two ends only: `cli`, `config` and `output` to start, `commands` to
//! run, `error` and `exit` to finish.

use std::process::ExitCode;

use clap::FromArgMatches;

use cfsetup::cli::Cli;
use cfsetup::{commands, config, error, exit, output};

fn main() -> ExitCode {
    let cmd = cfsetup::cli::command();
    let matches = match cmd.clone().try_get_matches() {
        Ok(m) => m,
        Err(e) => return parse_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return parse_error(e),
    };
    let json = cli.global.json;
    // Built (global options copied into each subcommand) only to look names up.
    let mut built = cmd;
    built.build();
    let result = config::no_empty_values(&built, &matches)
        .and_then(|()| config::no_ignored_options(&matches))
        .map_err(anyhow::Error::from)
        .and_then(|()| commands::main(cli));
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader of stdout went away (`cfsetup man | head -1`): nothing is wrong, and nothing
        // more can be said there. Exit 0 quietly, as ripgrep does.
        Err(err) if broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // What did happen, on stdout as a report would be; then the error.
            if let Some(partial) = exit::partial(&err) {
                if !json {
                    let _ = output::emit_text(partial.report.as_ref());
                }
            }
            if json {
                println!("{}", pretty(&exit::to_json(&err)));
            }
            eprint!("{}", exit::render(&err));
            ExitCode::from(exit::exit_code(&err))
        }
    }
}

/// A command line clap refused: its message on stderr, and with `--json` on stdout too.
fn parse_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || !std::env::args_os().any(|a| a == "--json")
    {
        e.exit();
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    println!("{}", pretty(&exit::usage_json(message)));
    let _ = e.print();
    ExitCode::from(error::EXIT_USAGE)
}

/// Whether the error is a write to a closed pipe.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
