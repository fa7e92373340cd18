//! `pki generate --out DIR` (hidden): the man pages (`man/pki.1`, `man/pki-rotate.1`, … one
//! per visible subcommand) and the bash, zsh and fish completions (`completions/`), from the
//! command line's own definitions. The package build runs it on the binary it ships.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::args::Cli;

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// The directory to write `man/` and `completions/` into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub(crate) fn run(a: &GenerateArgs) -> Result<u8> {
    let man = a.out.join("man");
    let completions = a.out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("cannot write the man pages into {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        write_completion(shell, &completions)?;
    }
    println!("{}", a.out.display());
    Ok(0)
}

fn write_completion(shell: Shell, dir: &Path) -> Result<()> {
    clap_complete::generate_to(shell, &mut Cli::command(), "pki", dir)
        .with_context(|| format!("cannot write the {shell} completion into {}", dir.display()))?;
    Ok(())
}
