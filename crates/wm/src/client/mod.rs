//! `wm` as a command-line client of the console's public REST API: the verbs of the
//! department's earlier ie-docker (`ps`, `run`, `exec`, `cp`...) and the images'.
//!
//! A command resolves a [`Session`] (the stored login, or `--url`/`--token` for scripts),
//! calls the API and prints a table or, with `--json`, the API's own JSON. Exit codes are
//! documented on [`failure`]. The interactive commands (`attach`, `exec -it`) use the
//! console's WebSocket terminal through the same [`Session`] ([`terminal`]).

mod account;
mod api;
mod config;
mod containers;
mod courses;
mod failure;
mod files;
mod images;
mod progress;
mod terminal;
mod users;
mod vms;

use api::{Api, Lang};
use clap::{Args, Subcommand};
use failure::{Failure, Kind};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where and as whom, overriding the stored login (for scripts and CI).
#[derive(Args, Debug)]
pub(crate) struct Target {
    /// The console's address, instead of the stored login's.
    #[arg(long, env = "WM_URL", global = true, value_name = "URL")]
    url: Option<String>,
    /// A token (`wm login`'s or a personal access token), instead of the stored login's.
    #[arg(
        long,
        env = "WM_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct Json {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ClientCommand {
    /// Log in to a console and store its address and a token in the config directory.
    #[command(
        after_help = "Examples:\n  wm login --url https://wm.example.org --user alice\n  WM_PASSWORD=... wm login --url https://wm.example.org --user alice\n  wm login --url https://wm.example.org --token \"$TOKEN\""
    )]
    Login {
        /// Your account name; the password is asked for (or taken from WM_PASSWORD). The
        /// console's address is `--url`.
        #[arg(long, value_name = "NAME", required_unless_present = "token")]
        user: Option<String>,
    },
    /// Revoke the stored token and forget the login.
    Logout,
    /// Show who you are logged in as.
    Whoami(Json),
    /// List your containers.
    #[command(after_help = "Examples:\n  wm ps\n  wm ps --json | jq -r '.[].name'")]
    Ps(Json),
    /// Create and start a container.
    #[command(
        after_help = "Examples:\n  wm run web --image nginx:1.27 -p 80\n  wm run lab --image pytorch/pytorch --gpus 1 --cpus 4 --memory 8g -e MODE=train"
    )]
    Run(containers::RunArgs),
    /// Start a stopped container.
    Start { name: String },
    /// Stop a running container.
    Stop { name: String },
    /// Remove a container.
    Rm { name: String },
    /// Run a command in a container; exits with the command's exit code.
    #[command(
        after_help = "Without -it the command runs once, without input, within the server's time limit;\n\
        with -it it runs in a terminal session as long as you like (the image's shell when no\n\
        command is given). Closing the session ends everything started in it.\n\n\
        Examples:\n  wm exec web -- ls -l /usr/share/nginx/html\n  wm exec web -- sh -c 'echo $HOSTNAME'\n  wm exec -it web\n  wm exec -it web -- top"
    )]
    Exec {
        /// Keep the input open: type into the command (use with -t).
        #[arg(short, long)]
        interactive: bool,
        /// Run it in a terminal (use with -i).
        #[arg(short, long)]
        tty: bool,
        name: String,
        /// The program and its arguments.
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Open a shell in a running container, in this terminal (as `wm exec -it NAME`).
    #[command(
        after_help = "Leave with `exit` (or Ctrl-D); that ends the shell and what you started in it.\n\n\
        Example:\n  wm attach web"
    )]
    Attach { name: String },
    /// Copy files between this computer, a container (`NAME:/path`) and your storage (`~/path`).
    #[command(
        after_help = "A destination ending in `/` is a folder the file or folder goes into; a\n\
        folder goes up with everything in it, and comes down into the local\n\
        destination folder.\n\
        Quote `~/path` so that your shell does not expand it.\n\n\
        Examples:\n  wm cp report.pdf web:/tmp/\n  wm cp ./project web:/work/\n  wm cp web:/var/log/nginx ./logs\n  wm cp data.csv '~/datasets/'\n  wm cp '~/datasets/data.csv' ."
    )]
    Cp { src: String, dst: String },
    /// Print a container's output.
    #[command(after_help = "Examples:\n  wm logs web\n  wm logs -f web")]
    Logs {
        name: String,
        /// Keep printing new output until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// How many recent lines.
        #[arg(long, default_value_t = 100)]
        tail: u32,
    },
    /// List the images you may use.
    Images(Json),
    /// Pull an image from an allowed registry.
    #[command(after_help = "Example:\n  wm pull python:3.12-slim")]
    Pull { image: String },
    /// Build an image from a directory (its Dockerfile; `.dockerignore` respected).
    #[command(after_help = "Example:\n  wm build . --name web:1")]
    Build {
        dir: PathBuf,
        /// `NAME[:TAG]`; it goes into your own namespace.
        #[arg(long, value_name = "NAME:TAG")]
        name: String,
    },
    /// Share one of your images with everyone, or stop sharing it.
    #[command(
        after_help = "Examples:\n  wm share wm/alice/web:1 --description 'nginx with our site'\n  wm share wm/alice/web:1 --off"
    )]
    Share {
        image: String,
        #[arg(long)]
        off: bool,
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Download an image as a SIF file or a docker archive (for the HPC nodes).
    #[command(after_help = "Example:\n  wm export wm/alice/web:1 --format sif -o web.sif")]
    Export {
        image: String,
        #[arg(long, value_enum)]
        format: images::ExportFormat,
        #[arg(short, value_name = "FILE")]
        output: PathBuf,
    },
    /// Print a kubeconfig for your Kubernetes namespace.
    Kubeconfig,
    /// Show your quota and what you use of it.
    Quota(Json),
    /// Virtual machines: define, start, destroy, console, dumpxml, undefine, and disk images.
    #[command(subcommand)]
    Vm(vms::VmCommand),
    /// Courses: list, show, create, enrol and unenrol, join with a code, the members'
    /// containers.
    #[command(subcommand)]
    Course(courses::CourseCommand),
    /// Your account: password, sessions, personal tokens.
    #[command(subcommand)]
    Account(users::AccountCommand),
    /// Accounts, for administrators: list, add, role, password, disable, enable, delete.
    #[command(subcommand)]
    Admin(users::AdminCommand),
}

/// What a command that has logged in works with.
pub(crate) struct Session {
    api: Api,
    /// Whose short names the command's names are.
    user: String,
}

impl Session {
    /// The API's full name of one of the caller's containers.
    fn full_name(&self, short: &str) -> String {
        format!("{}-{short}", self.user)
    }

    /// The short name of a full name of the caller's.
    fn short_name<'a>(&self, full: &'a str) -> &'a str {
        full.strip_prefix(&self.user)
            .and_then(|s| s.strip_prefix('-'))
            .unwrap_or(full)
    }
}

pub(crate) async fn run(target: Target, command: ClientCommand) -> ExitCode {
    let lang = Lang::from_env();
    let result = match command {
        ClientCommand::Login { user } => match target.url {
            Some(url) => account::login(&url, user, target.token, lang).await,
            None => Err(Failure::new(
                Kind::Usage,
                lang.pick("wm login needs --url", "wm login には --url が必要です"),
            )),
        },
        command => match session(target, lang).await {
            Ok(session) => dispatch(&session, command).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => e.exit(),
    }
}

async fn dispatch(s: &Session, command: ClientCommand) -> Result<ExitCode, Failure> {
    match command {
        ClientCommand::Login { .. } => unreachable!("login needs no session"),
        ClientCommand::Logout => account::logout(s).await,
        ClientCommand::Whoami(j) => account::whoami(s, j.json).await,
        ClientCommand::Quota(j) => account::quota(s, j.json).await,
        ClientCommand::Vm(command) => vms::run(s, command).await,
        ClientCommand::Course(command) => courses::run(s, command).await,
        ClientCommand::Account(command) => users::account(s, command).await,
        ClientCommand::Admin(command) => users::admin(s, command).await,
        ClientCommand::Kubeconfig => account::kubeconfig(s).await,
        ClientCommand::Ps(j) => containers::ps(s, j.json).await,
        ClientCommand::Run(args) => containers::run(s, args).await,
        ClientCommand::Start { name } => containers::action(s, &name, "start").await,
        ClientCommand::Stop { name } => containers::action(s, &name, "stop").await,
        ClientCommand::Rm { name } => containers::rm(s, &name).await,
        ClientCommand::Exec {
            interactive,
            tty,
            name,
            cmd,
        } => {
            if interactive || tty {
                if !(interactive && tty) {
                    return Err(Failure::new(
                        Kind::Usage,
                        s.api.lang.pick(
                            "-i and -t go together: `wm exec -it NAME`",
                            "-i と -t は一緒に使います: `wm exec -it NAME`",
                        ),
                    ));
                }
                terminal::session(s, &name, &cmd).await
            } else if cmd.is_empty() {
                Err(Failure::new(
                    Kind::Usage,
                    s.api.lang.pick(
                        "name the command after `--`, or use -it for a shell: `wm exec NAME -- CMD`",
                        "`--` の後にコマンドを書くか、シェルには -it を使ってください: `wm exec NAME -- CMD`",
                    ),
                ))
            } else {
                containers::exec(s, &name, cmd).await
            }
        }
        ClientCommand::Attach { name } => terminal::session(s, &name, &[]).await,
        ClientCommand::Logs { name, follow, tail } => {
            containers::logs(s, &name, follow, tail).await
        }
        ClientCommand::Cp { src, dst } => files::cp(s, &src, &dst).await,
        ClientCommand::Images(j) => images::list(s, j.json).await,
        ClientCommand::Pull { image } => images::pull(s, &image).await,
        ClientCommand::Build { dir, name } => images::build(s, &dir, &name).await,
        ClientCommand::Share {
            image,
            off,
            description,
        } => images::share(s, &image, !off, description).await,
        ClientCommand::Export {
            image,
            format,
            output,
        } => images::export(s, &image, format, &output).await,
    }
}

/// The stored login, with `--url`/`--token` (or `WM_URL`/`WM_TOKEN`) over it.
async fn session(target: Target, lang: Lang) -> Result<Session, Failure> {
    let stored = config::load()?;
    let not_logged_in = || {
        Failure::new(
            Kind::NotLoggedIn,
            lang.pick(
                "not logged in: run `wm login --url URL --user NAME` (or set WM_URL and WM_TOKEN)",
                "ログインしていません: `wm login --url URL --user NAME` を実行してください (または WM_URL と WM_TOKEN を設定)",
            ),
        )
    };
    let url = target
        .url
        .clone()
        .or_else(|| stored.as_ref().map(|l| l.url.clone()))
        .ok_or_else(not_logged_in)?;
    match (target.token, stored) {
        // The stored login holds for its own console only.
        (None, Some(l)) if l.url == url => Ok(Session {
            api: Api::new(&url, Some(l.token), lang)?,
            user: l.user,
        }),
        (Some(token), _) => {
            let api = Api::new(&url, Some(token), lang)?;
            let me: serde_json::Value = api.json(api.get(&["me"])).await?;
            let user = me["name"].as_str().unwrap_or_default().to_string();
            Ok(Session { api, user })
        }
        (None, _) => Err(not_logged_in()),
    }
}
