//! The command line: every command, flag and example `ephemera --help` shows.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run, follow and manage Ephemera Tasks.
#[derive(Debug, Parser)]
#[command(
    name = "ephemera",
    version,
    about = "Run, follow and manage Ephemera Tasks over the REST API",
    after_help = "\
Examples:
  ephemera login --server https://ephemera.example.com      # token read from stdin
  ephemera run --image busybox --follow -- sh -c 'echo hello'
  ephemera run -f task.yaml --follow                         # exits with the Task's exit code
  ephemera run --template deploy --param env=prod -F
  ephemera list --phase Running -o wide
  ephemera watch                                             # every Task of the namespace, live

Settings come from flags, then EPHEMERA_SERVER / EPHEMERA_TOKEN / EPHEMERA_CA_FILE /
EPHEMERA_NAMESPACE, then a CI job's OIDC token, then the file `ephemera login` wrote.
Exit codes: docs/cli.md (the Task's own code; 64 refused, 69 unreachable, 70 failed without a
code, 124 timed out, 125 cancelled, 130 interrupted)."
)]
pub struct Cli {
    /// Server and credentials.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The API's URL [env: EPHEMERA_SERVER]
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// An API token [env: EPHEMERA_TOKEN]
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM bundle of CAs to trust besides the system's [env: EPHEMERA_CA_FILE]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The namespace [env: EPHEMERA_NAMESPACE; default: default]
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    /// Output format
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// The audience of a CI job's OIDC token (the one the API's issuer rule expects)
    #[arg(long, global = true, env = "EPHEMERA_OIDC_AUDIENCE", default_value = "ephemera")]
    pub audience: String,
}

/// `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Columns.
    Table,
    /// More columns.
    Wide,
    /// The server's JSON.
    Json,
    /// The server's document as YAML.
    Yaml,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a Task (from a file, a template, or an image and a command), optionally following it
    #[command(after_help = "\
Examples:
  ephemera run --image busybox -F -- sh -c 'echo hello; exit 3'   # exits 3
  ephemera run -f task.yaml --follow
  ephemera run --template greet --param who=world
  ephemera run --template TaskTemplate/release-note --param title=Hello

In CI (GitHub Actions, GitLab CI, Bitbucket, Azure Pipelines, Jenkins) the idempotency key is
derived from the job and the request, so a retried step finds the Task it started instead of
starting a second one.")]
    Run(Run),
    /// Show one Task
    Get {
        /// The Task.
        name: String,
    },
    /// List Tasks, newest first
    #[command(visible_alias = "ls")]
    List(List),
    /// Print a Task's logs (the current attempt's)
    Logs {
        /// The Task.
        name: String,
        /// Keep printing until the Task ends (across retries)
        #[arg(short, long)]
        follow: bool,
        /// Only the last lines (not with -f, which prints each attempt whole)
        #[arg(long, value_name = "N", conflicts_with = "follow")]
        tail: Option<i64>,
    },
    /// Follow Tasks live over the stream (one Task, or every Task of the namespace)
    #[command(after_help = "Reconnects by itself (to any replica) and shows every event exactly once.")]
    Watch {
        /// One Task (default: all of the namespace)
        name: Option<String>,
    },
    /// Cancel a Task
    Cancel {
        /// The Task.
        name: String,
    },
    /// Delete a Task (its Pods are removed and its credentials revoked first)
    Delete {
        /// The Task.
        name: String,
    },
    /// Print a finished Task's result
    Result {
        /// The Task.
        name: String,
    },
    /// List the templates you may start Tasks from, with their parameters
    Templates,
    /// List TaskSchedules
    Schedules,
    /// Show the queues: concurrency, running, pending
    Queues,
    /// List webhook triggers with their recent deliveries
    Triggers,
    /// Store a server and token in the config file (token from --token or stdin)
    Login,
    /// Print a shell completion script
    #[command(after_help = "Example:  ephemera completion bash > /etc/bash_completion.d/ephemera")]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `run`.
#[derive(Debug, Args)]
pub struct Run {
    /// A Task manifest (kubectl's YAML) or a REST create body (JSON or YAML); `-` reads stdin
    #[arg(short, long, value_name = "FILE", conflicts_with_all = ["template", "image"])]
    pub file: Option<PathBuf>,
    /// A ClusterTaskTemplate, or `TaskTemplate/NAME` for the namespace's own
    #[arg(long, value_name = "NAME", conflicts_with = "image")]
    pub template: Option<String>,
    /// A template parameter (repeatable)
    #[arg(short, long = "param", value_name = "KEY=VALUE", requires = "template")]
    pub params: Vec<String>,
    /// The image to run
    #[arg(long)]
    pub image: Option<String>,
    /// An environment variable (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A credential the Task gets (repeatable)
    #[arg(long = "credential", value_name = "NAME")]
    pub credentials: Vec<String>,
    /// The queue
    #[arg(long)]
    pub queue: Option<String>,
    /// The priority (higher runs first)
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Seconds before the Task times out
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
    /// A name (default: generated)
    #[arg(long)]
    pub name: Option<String>,
    /// Follow the Task: progress on stderr, logs on stdout, and exit with its exit code
    #[arg(short = 'F', long)]
    pub follow: bool,
    /// Retries with the same key return the same Task (default in CI: derived from the job)
    #[arg(long, value_name = "KEY", conflicts_with = "no_idempotency_key")]
    pub idempotency_key: Option<String>,
    /// Never send an idempotency key, even in CI
    #[arg(long)]
    pub no_idempotency_key: bool,
    /// The command (with --image), after `--`
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `list`.
#[derive(Debug, Args)]
pub struct List {
    /// Only this phase (Pending, Scheduled, Running, Succeeded, Failed, Cancelled, TimedOut)
    #[arg(long)]
    pub phase: Option<String>,
    /// Only this queue
    #[arg(long)]
    pub queue: Option<String>,
    /// Only Tasks with these labels (`key=value,...`)
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Only Tasks created at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub created_since: Option<String>,
    /// Tasks per page
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Every page, not only the first
    #[arg(long)]
    pub all: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_command_after_the_double_dash_is_kept_whole() {
        let cli =
            Cli::try_parse_from(["ephemera", "run", "--image", "busybox", "-F", "--", "sh", "-c", "exit 3"]).unwrap();
        let Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!(run.command, ["sh", "-c", "exit 3"]);
        assert!(run.follow);
    }

    #[test]
    fn a_file_and_a_template_together_are_refused() {
        assert!(Cli::try_parse_from(["ephemera", "run", "-f", "t.yaml", "--template", "greet"]).is_err());
        assert!(Cli::try_parse_from(["ephemera", "run", "--param", "a=b"]).is_err(), "--param needs --template");
    }
}
