//! `ephemera`: the command line of Ephemera. Parses the command, resolves the server and the
//! credentials, runs the command and exits with its documented code (docs/cli.md).

mod app;

use std::process::ExitCode;

use app::args::{Cli, Command, Global};
use app::client::{enc, Api};
use app::commands::{self, usage, Done};
use clap::{CommandFactory, Parser};
use ephemera_cli::ci::OidcSource;
use ephemera_cli::config::{self, Offer};
use ephemera_cli::exit::Outcome;
use ephemera_cli::output;
use ephemera_cli::problem::RequestError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ephemera: cannot start: {e}");
            return ExitCode::from(70);
        }
    };
    let done = runtime.block_on(dispatch(cli));
    let outcome = match done {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ephemera: {e}");
            e.outcome()
        }
    };
    ExitCode::from(u8::try_from(outcome.exit_code()).unwrap_or(70))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn offers(g: &Global) -> Result<(Offer, Offer, Offer, Option<std::path::PathBuf>), RequestError> {
    let flags = Offer {
        server: g.server.clone(),
        token: g.token.clone().map(Into::into),
        ca_file: g.ca_file.clone(),
        namespace: g.namespace.clone(),
    };
    let from_env = Offer {
        server: env("EPHEMERA_SERVER"),
        token: env("EPHEMERA_TOKEN").map(Into::into),
        ca_file: env("EPHEMERA_CA_FILE").map(Into::into),
        namespace: env("EPHEMERA_NAMESPACE"),
    };
    let path = config::path(&|k| std::env::var(k).ok());
    let file = match &path {
        Some(p) => config::read(p).map_err(|e| usage("bad config file", e.to_string()))?,
        None => config::File::default(),
    };
    let from_file = Offer {
        server: file.server,
        token: file.token.map(Into::into),
        ca_file: file.ca_file,
        namespace: file.namespace,
    };
    Ok((flags, from_env, from_file, path))
}

async fn dispatch(cli: Cli) -> Done {
    let g = &cli.global;
    if let Command::Completion { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "ephemera", &mut std::io::stdout());
        return Ok(Outcome::Succeeded);
    }
    let (flags, from_env, from_file, path) = offers(g)?;
    if let Command::Login = cli.command {
        return login(flags, from_env, path).await;
    }
    let oidc = OidcSource::detect(&|k| std::env::var(k).ok());
    let (settings, use_oidc) = config::resolve(flags, from_env, from_file, oidc.is_some())
        .map_err(|e| usage("not configured", e.to_string()))?;
    let oidc = if use_oidc { oidc.map(|o| (o, g.audience.as_str())) } else { None };
    warn_cleartext(&settings.server);
    let api = Api::new(&settings, oidc).await?;
    let (ns, o) = (settings.namespace.as_str(), g.output);
    match &cli.command {
        Command::Run(run) => commands::run(&api, run, ns, o).await,
        Command::Get { name } => commands::get(&api, ns, name, o).await,
        Command::List(l) => commands::list(&api, ns, l, o).await,
        Command::Logs { name, follow, tail } => commands::logs(&api, ns, name, *follow, *tail).await,
        Command::Watch { name } => commands::watch(&api, ns, name.as_deref(), o).await,
        Command::Cancel { name } => commands::cancel(&api, ns, name).await,
        Command::Delete { name } => commands::delete(&api, ns, name).await,
        Command::Result { name } => commands::result(&api, ns, name, o).await,
        Command::Templates => {
            commands::listing(&api, &format!("/api/v1/templates?namespace={}", enc(ns)), o, output::TEMPLATE_COLUMNS)
                .await
        }
        Command::Schedules => {
            let path = format!("/api/v1/namespaces/{}/schedules", enc(ns));
            commands::listing(&api, &path, o, output::SCHEDULE_COLUMNS).await
        }
        Command::Queues => commands::listing(&api, "/api/v1/queues", o, output::QUEUE_COLUMNS).await,
        Command::Triggers => {
            let path = format!("/api/v1/namespaces/{}/triggers", enc(ns));
            commands::listing(&api, &path, o, output::TRIGGER_COLUMNS).await
        }
        Command::Login | Command::Completion { .. } => Ok(Outcome::Succeeded),
    }
}

/// `login`: checks the token against the server, then stores both (owner-only file).
async fn login(flags: Offer, from_env: Offer, path: Option<std::path::PathBuf>) -> Done {
    let path =
        path.ok_or_else(|| usage("no config directory", "set HOME, XDG_CONFIG_HOME or EPHEMERA_CONFIG".into()))?;
    let mut file = config::read(&path).map_err(|e| usage("bad config file", e.to_string()))?;
    let token = match flags.token.or(from_env.token) {
        Some(t) => t,
        None => {
            use std::io::IsTerminal as _;
            // On a terminal the token is not echoed; piped in (`... | ephemera login`), one line.
            let line = if std::io::stdin().is_terminal() {
                rpassword::prompt_password("API token (not echoed): ").map_err(|e| usage("no token", e.to_string()))?
            } else {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map_err(|e| usage("no token", e.to_string()))?;
                line
            };
            let t = line.trim().to_string();
            if t.is_empty() {
                return Err(usage("no token", "pass --token, set EPHEMERA_TOKEN or paste one".into()));
            }
            t.into()
        }
    };
    let server = flags.server.or(from_env.server).or(file.server.clone());
    let ca_file = flags.ca_file.or(from_env.ca_file).or(file.ca_file.clone());
    let check = Offer { server, token: Some(token), ca_file, namespace: flags.namespace.or(file.namespace.clone()) };
    let (settings, _) = config::resolve(check, Offer::default(), Offer::default(), false)
        .map_err(|e| usage("not configured", e.to_string()))?;
    warn_cleartext(&settings.server);
    let api = Api::new(&settings, None).await?;
    // Any valid token may list the queues: a wrong one is refused here, not at the first run.
    api.get("/api/v1/queues").await?;
    use secrecy::ExposeSecret;
    file.server = Some(settings.server.clone());
    file.token = settings.token.as_ref().map(|(t, _)| t.expose_secret().to_string());
    file.ca_file = settings.ca_file.clone();
    file.namespace = Some(settings.namespace.clone());
    config::write(&path, &file).map_err(|e| usage("cannot save", e.to_string()))?;
    eprintln!("ephemera: logged in to {}; saved in {}", settings.server, path.display());
    Ok(Outcome::Succeeded)
}

/// Says so when the token would travel unencrypted to anything but this machine.
fn warn_cleartext(server: &str) {
    let Some(rest) = server.strip_prefix("http://") else { return };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host =
        host.rsplit_once(':').map_or(host, |(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    let local = host == "localhost"
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !local {
        eprintln!("ephemera: warning: {server} is plain HTTP: the token is sent unencrypted (use https://)");
    }
}
