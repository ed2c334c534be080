//! Small helpers shared by the subcommands: where the project is, how to run a
//! child process loudly, and how to stop one that overstays its welcome.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The repository root (the directory that holds the workspace `Cargo.toml`).
pub fn project_root() -> PathBuf {
    // xtask's manifest dir is `<root>/xtask`; the parent always exists.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `<root>/target`, or `$CARGO_TARGET_DIR` when the user moved it.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                project_root().join(dir)
            }
        }
        None => project_root().join("target"),
    }
}

/// A `cargo` command for the same toolchain that runs this xtask.
///
/// `RUSTC_BOOTSTRAP` is removed from its environment even if the user exported
/// it: workspace builds (and so `ci`) must prove that no nightly feature crept in.
/// Only the image builder's build sets it again (see docs/toolchain.md).
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(project_root())
        .env_remove("RUSTC_BOOTSTRAP");
    cmd
}

/// Renders a command line for the user to read (and to copy).
pub fn display_command(cmd: &Command) -> String {
    let mut out = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            out.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    out.push_str(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains([' ', '"', '\'']) {
            out.push_str(&format!(" '{arg}'"));
        } else {
            out.push(' ');
            out.push_str(&arg);
        }
    }
    out
}

/// Prints the command, runs it with inherited stdio and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", display_command(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", cmd.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!("`{}` failed: {status}", display_command(cmd));
    }
    Ok(())
}

/// Is `program` an executable file somewhere on `$PATH`?
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// How a child that we watched came to an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited by itself with this status.
    Exited(ExitStatus),
    /// We killed it (with its whole process group) after this long.
    Killed(Duration),
}

/// Spawns `cmd` in its own process group so that a timeout can stop it together
/// with everything it started (`xvfb-run` starts `Xvfb` and `bochs`).
pub fn spawn_group(cmd: &mut Command) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).stdin(Stdio::null());
    cmd.spawn()
        .with_context(|| format!("cannot start `{}`", cmd.get_program().to_string_lossy()))
}

/// Waits for `child` until it exits or `deadline` passes or `stop_early` says so
/// (polled every 100 ms); then kills its process group. Returns how it ended.
pub fn wait_or_kill(
    child: &mut Child,
    started: Instant,
    timeout: Duration,
    mut stop_early: impl FnMut() -> bool,
) -> Result<Ending> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Ending::Exited(status));
        }
        if started.elapsed() >= timeout || stop_early() {
            kill_group(child);
            return Ok(Ending::Killed(started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After `child` (a group leader from `spawn_group`) exited by itself: ends
/// whatever it left behind in its group (`xvfb-run` can leave `Xvfb` running
/// when its clean-up fails).
pub fn kill_leftovers(child: &Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
}

/// Sends SIGKILL to the process group led by `child` (its pid, which
/// `spawn_group` made a group id), then reaps the child.
pub fn kill_group(child: &mut Child) {
    let pgid = child.id();
    // `kill -KILL -- -PGID` addresses exactly the group we created.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
