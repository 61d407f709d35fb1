//! `wm attach` and `wm exec -it`: the console's WebSocket session (the protocol is in the
//! README) with this terminal in raw mode, as `docker exec -it` does. Keys go out as they
//! are typed, output is written as it comes, a window resize is sent along, and the
//! command's exit status becomes `wm`'s.

use super::api::error_chain;
use super::failure::{Failure, Kind};
use super::Session;
use futures::{SinkExt, StreamExt};
use rustix::termios::{self, OptionalActions, Termios};
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

/// The refusal when the input is not a terminal: `hint` says what to do instead.
fn need_terminal(s: &Session, hint: (&str, &str)) -> Result<(), Failure> {
    if std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(Failure::new(Kind::Usage, s.api.lang.pick(hint.0, hint.1)))
}

/// Opens a session on the caller's container `name`, running `cmd` (the image's shell when
/// empty), and carries it until the command ends or the connection closes.
pub(super) async fn session(s: &Session, name: &str, cmd: &[String]) -> Result<ExitCode, Failure> {
    need_terminal(
        s,
        (
            "the input is not a terminal: run `wm exec NAME -- CMD` (without -it) from scripts",
            "入力が端末ではありません: スクリプトからは -it を付けずに `wm exec NAME -- CMD` を使ってください",
        ),
    )?;
    let (cols, rows) = window_size();
    let mut query = vec![("cols", cols.to_string()), ("rows", rows.to_string())];
    if !cmd.is_empty() {
        query.push(("cmd", shell_words(cmd)));
    }
    let rb = s
        .api
        .get(&["containers", &s.full_name(name), "terminal"])
        .query(&query);
    carry(s, rb, None).await
}

/// Ctrl-]: leaves a VM's serial console, as in `virsh console`.
const ESCAPE: u8 = 0x1d;

/// `wm vm console`: the serial console of the caller's running VM `name`, until Ctrl-]
/// or the VM powers off.
pub(super) async fn serial(s: &Session, name: &str) -> Result<ExitCode, Failure> {
    need_terminal(
        s,
        (
            "the input is not a terminal: read the transcript with `wm vm console --log NAME`",
            "入力が端末ではありません: 記録は `wm vm console --log NAME` で読めます",
        ),
    )?;
    let rb = s.api.get(&["vms", &s.full_name(name), "console"]);
    eprintln!(
        "{}",
        s.api.lang.pick(
            "Connected to the serial console; leave with Ctrl-]. Press Enter if nothing shows.",
            "シリアルコンソールに接続しました。Ctrl-] で抜けます。何も表示されないときは Enter キーを押してください。",
        )
    );
    carry(s, rb, Some(ESCAPE)).await
}

/// Carries the session of `rb` both ways with this terminal in raw mode; `escape` is a key
/// that leaves it.
async fn carry(
    s: &Session,
    rb: reqwest::RequestBuilder,
    escape: Option<u8>,
) -> Result<ExitCode, Failure> {
    let lang = s.api.lang;
    let io = s.api.upgrade(rb).await?;
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Client, None).await;
    let (mut tx, mut rx) = ws.split();

    let raw = RawMode::enter()?;
    let mut keys = read_keys();
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut out = std::io::stdout();
    let mut code = None;
    let mut closed_early = true;
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    out.write_all(&data)?;
                    out.flush()?;
                }
                Some(Ok(Message::Text(text))) => {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    if v["type"] == "exit" {
                        code = v["code"].as_i64();
                        closed_early = false;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    drop(raw);
                    return Err(Failure::new(Kind::Other, error_chain(&e)));
                }
            },
            Some(bytes) = keys.recv() => {
                if escape.is_some_and(|e| bytes.contains(&e)) {
                    let _ = tx.send(Message::Close(None)).await;
                    drop(raw);
                    return Ok(ExitCode::SUCCESS);
                }
                if tx.send(Message::Binary(bytes.into())).await.is_err() {
                    break;
                }
            }
            _ = winch.recv() => {
                let (cols, rows) = window_size();
                let resize = serde_json::json!({"type": "resize", "cols": cols, "rows": rows});
                let _ = tx.send(Message::Text(resize.to_string().into())).await;
            }
        }
    }
    drop(raw);
    if closed_early {
        return Err(Failure::new(
            Kind::Other,
            lang.pick(
                "the session was closed before its command ended",
                "コマンドが終わる前にセッションが閉じられました",
            ),
        ));
    }
    // A shell's convention: the low byte of the status; unknown is a failure.
    Ok(ExitCode::from(code.unwrap_or(1) as u8))
}

/// The terminal's size; 80×24 where it has none (a pseudo-terminal nobody sized).
fn window_size() -> (u16, u16) {
    match termios::tcgetwinsize(std::io::stdout().as_fd()) {
        Ok(w) if w.ws_col > 0 && w.ws_row > 0 => (w.ws_col.min(1000), w.ws_row.min(1000)),
        _ => (80, 24),
    }
}

/// Keys as they are typed, read on a thread of their own: a read of the terminal blocks,
/// and the thread must not keep `wm` from exiting when the session ends.
fn read_keys() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// The terminal in raw mode (no echo, no line editing, no signals from ^C: they go to the
/// container), restored when dropped, also on an error.
struct RawMode(Termios);

impl RawMode {
    fn enter() -> Result<RawMode, Failure> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).map_err(std::io::Error::from)?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)
            .map_err(std::io::Error::from)?;
        Ok(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.0);
    }
}

/// Arguments as one `/bin/sh -c` command line that gives them back unchanged.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn arguments_are_quoted_for_the_shell() {
        let args = ["echo", "it's", "a b", "", "$HOME", "x=1"].map(String::from);
        assert_eq!(shell_words(&args), r#"echo 'it'\''s' 'a b' '' '$HOME' x=1"#);
    }
}
