//! The Apptainer runtime layout added to the root of every image, as Apptainer's docker
//! bootstrap (`internal/pkg/build/sources`: `base_environment.go`, `conveyorPacker_oci.go`)
//! lays it out: `/.singularity.d` with the action scripts, the base `env/` scripts, the
//! runscript built from ENTRYPOINT and CMD, `env/10-docker2singularity.sh` from ENV and
//! `labels.json`; the top-level links; empty `/etc/hosts` and `/etc/resolv.conf`; and the
//! directories Apptainer mounts over.
//!
//! The scripts behave like Apptainer's but are written here. One addition: Apptainer ignores
//! the image's WORKDIR in its native mode on purpose (it keeps the caller's directory, see
//! apptainer/apptainer#2573 and #2844, where the maintainers point at the runscript for
//! this). So the runscript, and only the runscript, changes to WORKDIR: `apptainer run`
//! starts where `docker run` would, while `apptainer exec` and `shell` keep Apptainer's
//! behaviour of starting in the caller's directory. A `cd` in an `env/` script would have
//! moved every `exec` too.

use crate::archive::RunConfig;

/// An entry of the layout, applied over the image's layers.
pub(crate) struct Synthetic {
    pub path: &'static str,
    pub mode: u32,
    pub kind: SyntheticKind,
}

pub(crate) enum SyntheticKind {
    /// Made only where the image has nothing at that path (Apptainer's `MkdirAll`).
    Dir,
    /// Replaces whatever the image has at that path.
    File(Vec<u8>),
    /// Made only where the image has nothing at that path.
    Symlink(&'static str),
}

/// Sources every `env/*.sh` in order, as each action does first.
const SOURCE_ENV: &str = "#!/bin/sh
for script in /.singularity.d/env/*.sh; do
    if [ -f \"$script\" ]; then
        . \"$script\"
    fi
done
";

const EXEC: &str = "exec \"$@\"\n";

const RUN: &str = "if [ -n \"${APPTAINER_APPNAME:-}\" ]; then
    for runscript in \"/scif/apps/${APPTAINER_APPNAME}/scif/runscript\" /scif/apps/singularity/scif/runscript; do
        if [ -x \"$runscript\" ]; then
            exec \"$runscript\" \"$@\"
        fi
    done
    echo \"No Apptainer runscript for contained app: ${APPTAINER_APPNAME}\"
    exit 1
fi
if [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript \"$@\"
fi
echo \"No Apptainer runscript found, executing /bin/sh\"
exec /bin/sh \"$@\"
";

const SHELL: &str = "if [ -n \"${APPTAINER_SHELL:-}\" ] && [ -x \"$APPTAINER_SHELL\" ]; then
    exec $APPTAINER_SHELL \"$@\"
    echo \"ERROR: Failed running shell as defined by '\\$APPTAINER_SHELL'\" 1>&2
    exit 1
fi
if [ -x /bin/bash ]; then
    SHELL=/bin/bash
    PS1=\"Apptainer ${APPTAINER_NAME:-}:\\\\w> \"
    export SHELL PS1
    exec /bin/bash --norc \"$@\"
fi
if [ -x /bin/sh ]; then
    SHELL=/bin/sh
    export SHELL
    exec /bin/sh \"$@\"
fi
echo \"ERROR: /bin/sh does not exist in container\" 1>&2
exit 1
";

/// `kill -CONT 1` tells the instance's PID 1 to go on; it must stay first.
const START_PRELUDE: &str = "#!/bin/sh
kill -CONT 1
";

const START: &str = "if [ -x /.singularity.d/startscript ]; then
    exec /.singularity.d/startscript
fi
";

const TEST: &str = "if [ -n \"${APPTAINER_APPNAME:-}\" ]; then
    for test in \"/scif/apps/${APPTAINER_APPNAME}/scif/test\" /scif/apps/singularity/scif/test; do
        if [ -x \"$test\" ]; then
            exec \"$test\" \"$@\"
        fi
    done
    echo \"No tests for contained app: ${APPTAINER_APPNAME}\"
    exit 1
fi
if [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test \"$@\"
fi
echo \"No test found in container, executing /bin/sh -c true\"
exec /bin/sh -c true
";

const ENV_BASE: &str = "#!/bin/sh\n";

const ENV_CUSTOM: &str = "#!/bin/sh\n# Custom environment shell code should follow\n\n";

const ENV_APPS: &str = "#!/bin/sh
# The SCIF app chosen with --app: its directories join PATH and LD_LIBRARY_PATH.
if [ -n \"${APPTAINER_APPNAME:-}\" ]; then
    export APPTAINER_APPNAME
    if [ ! -d \"/scif/apps/${APPTAINER_APPNAME}/\" ]; then
        echo \"Could not locate the container application: ${APPTAINER_APPNAME}\"
        exit 1
    fi
    SCIF_APPS=/scif/apps
    SCIF_APPROOT=\"/scif/apps/${APPTAINER_APPNAME}\"
    export SCIF_APPROOT SCIF_APPS
    PATH=\"$SCIF_APPROOT:/scif/apps/singularity:$PATH\"
    if [ -d \"$SCIF_APPROOT/bin\" ]; then
        PATH=\"$SCIF_APPROOT/bin:$PATH\"
    fi
    if [ -d \"$SCIF_APPROOT/lib\" ]; then
        LD_LIBRARY_PATH=\"$SCIF_APPROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"
        export LD_LIBRARY_PATH
    fi
    for script in \"$SCIF_APPROOT/scif/env/01-base.sh\" \"$SCIF_APPROOT/scif/env/90-environment.sh\"; do
        if [ -f \"$script\" ]; then
            . \"$script\"
        fi
    done
    export PATH
fi
";

const ENV_LIBS: &str = "#!/bin/sh
if [ -z \"${LD_LIBRARY_PATH:-}\" ]; then
    LD_LIBRARY_PATH=/.singularity.d/libs
else
    LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH:/.singularity.d/libs\"
fi
PS1=\"Apptainer> \"
export LD_LIBRARY_PATH PS1
";

/// PATH set with `--env PATH=...`, `--env PREPEND_PATH` or `APPEND_PATH`: Apptainer passes
/// them under these names so that they win over the image's PATH.
const ENV_RUNTIME_VARS: &str = "#!/bin/sh
if [ -n \"${SING_USER_DEFINED_PREPEND_PATH:-}\" ]; then
    PATH=\"${SING_USER_DEFINED_PREPEND_PATH}:${PATH}\"
fi
if [ -n \"${SING_USER_DEFINED_APPEND_PATH:-}\" ]; then
    PATH=\"${PATH}:${SING_USER_DEFINED_APPEND_PATH}\"
fi
if [ -n \"${SING_USER_DEFINED_PATH:-}\" ]; then
    PATH=\"${SING_USER_DEFINED_PATH}\"
fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
";

/// The layout for an image whose config is `config`.
pub(crate) fn layout(config: &RunConfig) -> Vec<Synthetic> {
    use SyntheticKind::{Dir, File, Symlink};
    let script = |body: &str| format!("{SOURCE_ENV}\n{body}").into_bytes();
    let mut entries = Vec::new();
    for path in [
        ".singularity.d",
        ".singularity.d/actions",
        ".singularity.d/env",
        ".singularity.d/libs",
        "dev",
        "etc",
        "home",
        "proc",
        "root",
        "sys",
        "tmp",
        "var",
        "var/tmp",
    ] {
        entries.push(Synthetic {
            path,
            mode: 0o755,
            kind: Dir,
        });
    }
    for (path, target) in [
        ("singularity", ".singularity.d/runscript"),
        (".run", ".singularity.d/actions/run"),
        (".exec", ".singularity.d/actions/exec"),
        (".shell", ".singularity.d/actions/shell"),
        (".test", ".singularity.d/actions/test"),
        ("environment", ".singularity.d/env/90-environment.sh"),
    ] {
        entries.push(Synthetic {
            path,
            mode: 0o777,
            kind: Symlink(target),
        });
    }
    let files: [(&'static str, u32, Vec<u8>); 16] = [
        ("etc/hosts", 0o644, Vec::new()),
        ("etc/resolv.conf", 0o644, Vec::new()),
        (".singularity.d/actions/exec", 0o755, script(EXEC)),
        (".singularity.d/actions/run", 0o755, script(RUN)),
        (".singularity.d/actions/shell", 0o755, script(SHELL)),
        (
            ".singularity.d/actions/start",
            0o755,
            format!(
                "{START_PRELUDE}{}\n{START}",
                &SOURCE_ENV["#!/bin/sh\n".len()..]
            )
            .into_bytes(),
        ),
        (".singularity.d/actions/test", 0o755, script(TEST)),
        (".singularity.d/env/01-base.sh", 0o755, ENV_BASE.into()),
        (
            ".singularity.d/env/10-docker2singularity.sh",
            0o755,
            env_script(config.env.as_deref().unwrap_or_default()).into_bytes(),
        ),
        (
            ".singularity.d/env/90-environment.sh",
            0o755,
            ENV_CUSTOM.into(),
        ),
        (".singularity.d/env/95-apps.sh", 0o755, ENV_APPS.into()),
        (".singularity.d/env/99-base.sh", 0o755, ENV_LIBS.into()),
        (
            ".singularity.d/env/99-runtimevars.sh",
            0o755,
            ENV_RUNTIME_VARS.into(),
        ),
        (
            ".singularity.d/runscript",
            0o755,
            runscript(config).into_bytes(),
        ),
        (".singularity.d/startscript", 0o755, ENV_BASE.into()),
        (".singularity.d/labels.json", 0o644, labels_json(config)),
    ];
    for (path, mode, data) in files {
        entries.push(Synthetic {
            path,
            mode,
            kind: File(data),
        });
    }
    entries
}

fn labels_json(config: &RunConfig) -> Vec<u8> {
    let labels = config.labels.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    serde::Serialize::serialize(&labels, &mut ser).expect("a map of strings serializes");
    out
}

/// `s` as one word for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `args` as Apptainer's `ArgsQuoted` joins them, for its runscript to `eval`: each in double
/// quotes, with what stays special inside double quotes escaped.
fn eval_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let mut w = String::with_capacity(a.len() + 2);
            w.push('"');
            for c in a.chars() {
                if matches!(c, '\\' | '"' | '`' | '$') {
                    w.push('\\');
                }
                w.push(c);
            }
            w.push('"');
            w
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `set -- 'a' 'b' "$@"`: puts `args` in front of the positional parameters.
fn prepend(args: &[String]) -> String {
    let mut s = String::from("set --");
    for a in args {
        s.push(' ');
        s.push_str(&sh_quote(a));
    }
    s.push_str(" \"$@\"");
    s
}

/// The runscript of Apptainer's docker bootstrap: ENTRYPOINT, then the arguments or, when
/// there are none, CMD. By default the words are evaluated by the shell once more (Apptainer's
/// historical behaviour); with `--no-eval` they are used as given, like an OCI runtime.
pub(crate) fn runscript(config: &RunConfig) -> String {
    let entrypoint = config.entrypoint.as_deref().unwrap_or_default();
    let cmd = config.cmd.as_deref().unwrap_or_default();
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(&format!(
        "OCI_ENTRYPOINT={}\nOCI_CMD={}\n",
        sh_quote(&eval_words(entrypoint)),
        sh_quote(&eval_words(cmd))
    ));
    if let Some(dir) = config.working_dir.as_deref().filter(|d| !d.is_empty()) {
        s.push_str("# The image's WORKDIR, where docker run would start.\n");
        s.push_str(&format!("cd {} || exit 1\n", sh_quote(dir)));
    }
    s.push_str(&format!(
        "
if [ -n \"${{APPTAINER_NO_EVAL:-}}${{SINGULARITY_NO_EVAL:-}}\" ]; then
    if [ $# -eq 0 ]; then
        {}
    fi
    {}
    exec \"$@\"
fi

CMDLINE_ARGS=\"\"
for arg in \"$@\"; do
    CMDLINE_ARGS=\"${{CMDLINE_ARGS}} \\\"$arg\\\"\"
done
if [ $# -gt 0 ]; then
    SINGULARITY_OCI_RUN=\"${{OCI_ENTRYPOINT}} ${{CMDLINE_ARGS}}\"
else
    SINGULARITY_OCI_RUN=\"${{OCI_ENTRYPOINT}} ${{OCI_CMD}}\"
fi
eval \"set -- ${{SINGULARITY_OCI_RUN}}\"
exec \"$@\"
",
        prepend(cmd),
        prepend(entrypoint)
    ));
    s
}

/// `env/10-docker2singularity.sh`: the image's ENV. As in Apptainer, a value from the
/// caller's environment wins over the image's, except PATH, which the image sets. A name a
/// shell cannot assign is left out rather than break the whole script.
pub(crate) fn env_script(env: &[String]) -> String {
    let mut s = String::from("#!/bin/sh\n");
    for var in env {
        let (name, value) = match var.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (var.as_str(), None),
        };
        if !is_shell_name(name) {
            continue;
        }
        match value {
            None => s.push_str(&format!("export {name}=\"${{{name}:-}}\"\n")),
            Some(v) if name == "PATH" => s.push_str(&format!("export PATH={}\n", sh_quote(v))),
            Some(v) => s.push_str(&format!(
                "[ -n \"${{{name}:-}}\" ] || {name}={}\nexport {name}\n",
                sh_quote(v)
            )),
        }
    }
    s
}

fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Runs `script` with /bin/sh, with `args`, and returns its stdout.
    fn sh(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The runscript with `exec "$@"` replaced by printing the final arguments one per line.
    fn run(config: &RunConfig, args: &[&str], env: &[(&str, &str)]) -> String {
        let script = runscript(config).replace(
            "exec \"$@\"",
            "for a in \"$@\"; do printf '<%s>\\n' \"$a\"; done; exit 0",
        );
        sh(&script, args, env)
    }

    #[test]
    fn runscript_runs_entrypoint_then_args_or_cmd() {
        let config = RunConfig {
            entrypoint: Some(strings(&["/bin/echo", "it's", "a $HOME"])),
            cmd: Some(strings(&["x y", "`z`"])),
            ..RunConfig::default()
        };
        let no_eval = [("APPTAINER_NO_EVAL", "1")];
        assert_eq!(
            run(&config, &[], &no_eval),
            "</bin/echo>\n<it's>\n<a $HOME>\n<x y>\n<`z`>\n"
        );
        assert_eq!(
            run(&config, &["o'k", "$1"], &no_eval),
            "</bin/echo>\n<it's>\n<a $HOME>\n<o'k>\n<$1>\n"
        );
        // Evaluated: the image's words survive quoted; the caller's are evaluated once more.
        assert_eq!(
            run(&config, &[], &[]),
            "</bin/echo>\n<it's>\n<a $HOME>\n<x y>\n<`z`>\n"
        );
        assert_eq!(
            run(&config, &["a b"], &[]),
            "</bin/echo>\n<it's>\n<a $HOME>\n<a b>\n"
        );

        let cmd_only = RunConfig {
            cmd: Some(strings(&["/bin/sh", "-c", "echo hi"])),
            ..RunConfig::default()
        };
        assert_eq!(run(&cmd_only, &[], &[]), "</bin/sh>\n<-c>\n<echo hi>\n");
        assert_eq!(run(&cmd_only, &["ls"], &no_eval), "<ls>\n");
    }

    #[test]
    fn runscript_changes_to_workdir() {
        let config = RunConfig {
            cmd: Some(strings(&["pwd"])),
            working_dir: Some("/tmp".into()),
            ..RunConfig::default()
        };
        let script = runscript(&config).replace("exec \"$@\"", "pwd; exit 0");
        assert_eq!(sh(&script, &[], &[]), "/tmp\n");
    }

    #[test]
    fn env_script_quotes_and_keeps_callers_values() {
        let script = env_script(&strings(&[
            "PATH=/opt/bin:/bin",
            "QUOTED=it's \"$x\" `y` \\ }",
            "KEPT=image",
            "EMPTY=",
            "BARE",
            "not-a-name=1",
            "MULTI=a\nb",
        ]));
        assert!(!script.contains("not-a-name"));
        let out = sh(
            &format!("{script}\nenv | sort | grep -E '^(PATH|QUOTED|KEPT|EMPTY|BARE|MULTI)=' ; echo \"[$MULTI]\""),
            &[],
            &[("KEPT", "caller"), ("PATH", "/caller")],
        );
        assert_eq!(
            out,
            "BARE=\nEMPTY=\nKEPT=caller\nMULTI=a\nPATH=/opt/bin:/bin\nQUOTED=it's \"$x\" `y` \\ }\n[a\nb]\n"
        );
    }
}
