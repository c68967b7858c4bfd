//! `mesh completions SHELL`: the shell's completion script on stdout.
//!
//! ```sh
//! mesh completions bash > ~/.local/share/bash-completion/completions/mesh
//! mesh completions zsh > "${fpath[1]}/_mesh"
//! mesh completions fish > ~/.config/fish/completions/mesh.fish
//! ```

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

/// Writes the completion script for `shell` to stdout. A reader that
/// stops early (`| head`) is not an error.
pub fn print<C: CommandFactory>(shell: clap_complete::Shell) -> ExitCode {
    let mut command = C::command();
    let name = command.get_name().to_string();
    // Generated into memory first: clap_complete panics if its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the completion script: {e}");
            ExitCode::FAILURE
        }
    }
}
