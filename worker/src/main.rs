//! `ephemera-worker install DEST` copies the worker into a shared volume (init container);
//! `ephemera-worker run -- COMMAND...` runs an attempt (see the library docs).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ephemera_crds::worker::{WorkerFailure, WorkerReport};
use ephemera_worker::session;
use ephemera_worker::settings::Settings;

/// The Ephemera worker.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Copy this binary to DEST (run by the Pod's init container so any task image can use it).
    Install {
        /// Destination file.
        dest: PathBuf,
    },
    /// Obtain the Task's credentials and hand them to the task container (the Pod's `credentials`
    /// init container, from the operator's worker image).
    Credentials,
    /// Run the task command with its credentials.
    Run {
        /// The task command and its arguments.
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    // First, while this process has one thread: nothing the Task set may steer the worker's calls.
    let command_only_env = ephemera_worker::isolation::take_connection_overrides();
    // Dependencies' debug output can include request headers: only the worker's own level is tunable.
    let own_level = std::env::var("EPHEMERA_WORKER_LOG").ok().filter(|l| l.parse::<tracing::Level>().is_ok());
    let filter = format!("warn,ephemera_worker={}", own_level.as_deref().unwrap_or("info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .init();
    match Args::parse().command {
        Cmd::Install { dest } => install(&dest),
        Cmd::Credentials => {
            let code = run(None, command_only_env)?;
            std::process::exit(code)
        }
        Cmd::Run { command } => {
            let code = run(Some(command), command_only_env)?;
            std::process::exit(code)
        }
    }
}

fn install(dest: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let me = std::env::current_exe().context("finding this binary")?;
    std::fs::copy(&me, dest).with_context(|| format!("copying the worker to {}", dest.display()))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o555)).context("making the worker executable")?;
    // The worker's TLS roots go with it: in the Task's image it trusts these, never that image's.
    if let Some(bundle) = ephemera_worker::trust::bundle_path(&me) {
        let beside = dest.with_file_name(ephemera_worker::trust::BUNDLE_NAME);
        std::fs::copy(&bundle, &beside).with_context(|| format!("copying the CA bundle to {}", beside.display()))?;
        std::fs::set_permissions(&beside, std::fs::Permissions::from_mode(0o444)).context("the CA bundle's mode")?;
    }
    Ok(())
}

/// Runs a step: the task command when given, else the `credentials` step.
#[allow(unsafe_code)] // prctl(PR_SET_DUMPABLE): one flag of this process
fn run(command: Option<Vec<String>>, command_only_env: Vec<(OsString, OsString)>) -> anyhow::Result<i32> {
    // No core dumps and no same-user memory reads of the worker (it holds private keys briefly);
    // reset for the task command by execve.
    // SAFETY: prctl(PR_SET_DUMPABLE) only changes a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            let _ = tx.send(true);
        });
        let settings =
            Settings::from_env(command_only_env)
                .and_then(|s| if command.is_none() { s.for_credentials() } else { Ok(s) });
        match settings {
            Ok(settings) => {
                let report = match &command {
                    Some(argv) => session::run(&settings, argv, rx).await,
                    None => session::hand_off(&settings, rx).await,
                };
                (report, settings.termination_log)
            }
            Err(e) => (
                WorkerReport {
                    failure: Some(WorkerFailure::Misconfigured),
                    message: e.to_string(),
                    ..Default::default()
                },
                PathBuf::from("/dev/termination-log"),
            ),
        }
    });
    let (report, log) = report;
    if let Err(e) = std::fs::write(&log, report.to_message()) {
        tracing::warn!(error = %e, path = %log.display(), "could not write the termination message");
    }
    if report.revoke_failed > 0 {
        tracing::warn!(
            revoked = report.revoked,
            failed = report.revoke_failed,
            "some provider tokens were not revoked"
        );
    } else if report.revoked > 0 {
        tracing::info!(revoked = report.revoked, "provider tokens revoked");
    }
    Ok(session::exit_code(&report))
}
