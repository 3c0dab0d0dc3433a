//! Runs the task command: its output forwarded line by line (masked, progress lines recognised), and
//! on SIGTERM a graceful stop of its whole process group, then SIGKILL after the grace period.

use std::ffi::OsString;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use zeroize::Zeroize as _;

use crate::mask::Masker;
use crate::progress;
use crate::reporter::Reporter;

/// Lines longer than this are forwarded in pieces.
const MAX_LINE: usize = 64 * 1024;

/// How the command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Exit {
    /// Exited with a code.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
    /// Stopped because the worker was asked to stop (SIGTERM); the code if it exited by itself.
    Stopped(Option<i32>),
}

/// What to run and how.
pub struct Spec<'a> {
    /// argv.
    pub argv: &'a [String],
    /// Extra environment (credentials and worker variables).
    pub env: &'a [(String, SecretString)],
    /// Variables removed from the worker's own environment before the command sees it.
    pub remove: &'a [&'a str],
    /// Variables the worker took out of its own environment, given back to the command.
    pub restore: &'a [(OsString, OsString)],
    /// SIGTERM → SIGKILL grace.
    pub grace: Duration,
}

/// Runs the command to its end; `stop` resolves when the worker is asked to stop.
pub async fn run(
    spec: Spec<'_>,
    masker: Arc<Masker>,
    reporter: Arc<Reporter>,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<Exit> {
    let (program, args) = spec.argv.split_first().ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    for name in spec.remove {
        cmd.env_remove(name);
    }
    for (k, v) in spec.restore {
        cmd.env(k, v);
    }
    for (k, v) in spec.env {
        cmd.env(k, v.expose_secret());
    }
    let mut child = cmd.spawn()?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let out =
        child.stdout.take().map(|s| tokio::spawn(forward(s, tokio::io::stdout(), masker.clone(), Some(reporter))));
    let err = child.stderr.take().map(|s| tokio::spawn(forward(s, tokio::io::stderr(), masker, None)));
    tokio::pin!(stop);
    let exit = tokio::select! {
        status = child.wait() => exit_of(status?),
        () = &mut stop => {
            tracing::info!(grace_seconds = spec.grace.as_secs(), "stop requested: sending SIGTERM to the task command");
            signal_group(pgid, libc::SIGTERM);
            let code = match tokio::time::timeout(spec.grace, child.wait()).await {
                Ok(status) => match exit_of(status?) { Exit::Code(c) => Some(c), _ => None },
                Err(_) => {
                    tracing::warn!("the task command outlived its grace period: SIGKILL");
                    signal_group(pgid, libc::SIGKILL);
                    let _ = child.wait().await;
                    None
                }
            };
            Exit::Stopped(code)
        }
    };
    // Background processes may hold the pipes open: one short deadline for both, so the time left
    // for revoking credentials stays predictable.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    for h in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout_at(deadline, h).await;
    }
    Ok(exit)
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        (None, None) => Exit::Code(1),
    }
}

#[allow(unsafe_code)] // kill(2) of a process group the worker started
fn signal_group(pgid: Option<i32>, sig: i32) {
    if let Some(pgid) = pgid {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Copies `from` to `to` line by line, masked; stdout lines are checked for the progress protocol.
async fn forward(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    masker: Arc<Masker>,
    progress: Option<Arc<Reporter>>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            emit(&line, &mut to, &masker, progress.as_ref()).await;
        }
        if pending.len() >= MAX_LINE {
            // A long line goes out in pieces. Keep back (unmasked) the bytes that could start a
            // secret whose rest has not arrived, and never cut through one that has.
            let keep = masker.longest().saturating_sub(1).min(MAX_LINE / 2);
            let cut = masker.safe_cut(&pending, pending.len() - keep);
            let cut = if cut == 0 { pending.len() } else { cut };
            let mut piece: Vec<u8> = pending.drain(..cut).collect();
            emit(&piece, &mut to, &masker, progress.as_ref()).await;
            piece.zeroize();
        }
    }
    if !pending.is_empty() {
        emit(&pending, &mut to, &masker, progress.as_ref()).await;
    }
    let _ = to.flush().await;
}

async fn emit(line: &[u8], to: &mut (impl AsyncWrite + Unpin), masker: &Masker, progress: Option<&Arc<Reporter>>) {
    let masked = masker.apply(line);
    if let Some(reporter) = progress {
        if let Some(p) = progress::parse(&String::from_utf8_lossy(&masked)) {
            reporter.offer(&p);
        }
    }
    let _ = to.write_all(&masked).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_is_masked_and_progress_recorded() {
        let mut m = Masker::default();
        m.add("hunter2-secret");
        let progress = Arc::new(Reporter::disabled());
        let (mut w, r) = tokio::io::duplex(1024);
        let (out_w, mut out_r) = tokio::io::duplex(1024);
        let h = tokio::spawn(forward(r, out_w, Arc::new(m), Some(progress.clone())));
        w.write_all(b"token hunter2-secret\n::progress pct=50 msg=half\nend").await.unwrap();
        drop(w);
        h.await.unwrap();
        let mut s = String::new();
        out_r.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "token ***\n::progress pct=50 msg=half\nend");
        assert_eq!(progress.last(), Some(crate::progress::Progress { pct: Some(50), msg: "half".into() }));
    }

    #[tokio::test]
    async fn a_secret_across_the_cut_of_a_long_line_is_still_masked() {
        let secret = "ghs_0123456789abcdefghij";
        // Every offset of the secret around the first cut, written in small uneven chunks.
        for shift in 0..secret.len() + 2 {
            let mut line = "x".repeat(MAX_LINE - secret.len() / 2 - shift);
            line.push_str(secret);
            line.push_str(&"y".repeat(MAX_LINE + 100));
            line.push_str(secret);
            line.push('\n');
            let (mut w, r) = tokio::io::duplex(4096);
            let (out_w, mut out_r) = tokio::io::duplex(4 * MAX_LINE);
            let mut masker = Masker::default();
            masker.add(secret);
            let h = tokio::spawn(forward(r, out_w, Arc::new(masker), None));
            for chunk in line.as_bytes().chunks(3001) {
                w.write_all(chunk).await.unwrap();
            }
            drop(w);
            h.await.unwrap();
            let mut out = String::new();
            out_r.read_to_string(&mut out).await.unwrap();
            assert!(!out.contains("0123456789"), "shift {shift}: part of the secret escaped");
            assert_eq!(out.matches("***").count(), 2, "shift {shift}");
            assert_eq!(out.len(), line.len() - 2 * (secret.len() - 3), "shift {shift}: nothing else changed");
        }
    }

    #[tokio::test]
    async fn stop_sends_sigterm_then_reports_stopped() {
        let argv: Vec<String> =
            ["sh", "-c", "trap 'exit 7' TERM; sleep 30 & wait"].iter().map(|s| s.to_string()).collect();
        let spec = Spec { argv: &argv, env: &[], remove: &[], restore: &[], grace: Duration::from_secs(5) };
        let exit = run(
            spec,
            Arc::new(Masker::default()),
            Arc::new(Reporter::disabled()),
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await
        .unwrap();
        assert_eq!(exit, Exit::Stopped(Some(7)));
    }
}
