// The container page's terminal: xterm.js (Debian's node-xterm, bundled with this file by
// esbuild when the console is built) on the API's WebSocket session
// (GET /api/v1/containers/{name}/terminal; the protocol is in the README).
//
// Each element with data-terminal (the session's API path) becomes a terminal. Keyboard
// input goes out as binary frames, output comes back as binary frames, a resize as a text
// frame. Leaving or reloading the page closes the socket, which ends the session's
// processes on the server; a reload opens a new session.
"use strict";

const { Terminal } = require("xterm");
const fit = require("xterm/lib/addons/fit/fit");

Terminal.applyAddon(fit);

document.querySelectorAll("[data-terminal]").forEach(open);

function open(box) {
  const status = document.getElementById(box.dataset.status);
  const again = document.getElementById(box.dataset.again);
  const term = new Terminal({
    cursorBlink: true,
    fontSize: 14,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "IPAGothic", monospace',
    // Rows are mirrored as text for screen readers (and read by the browser tests).
    screenReaderMode: true,
  });
  term.open(box);
  term.fit();
  // The element itself takes the keyboard when focused (by Tab or a click).
  box.addEventListener("focus", () => term.focus());

  const encoder = new TextEncoder();
  let socket = null;
  let ended = false;

  term.on("data", (data) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
  });
  term.on("resize", (size) => {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "resize", cols: size.cols, rows: size.rows }));
    }
  });
  window.addEventListener("resize", () => term.fit());
  again.addEventListener("click", () => {
    term.reset();
    connect();
    // Asked for by the user: the new session takes the keyboard.
    term.focus();
  });

  function say(text) {
    status.textContent = text;
  }

  function connect() {
    const url = new URL(box.dataset.terminal, window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("cols", term.cols);
    url.searchParams.set("rows", term.rows);
    const decoder = new TextDecoder();
    ended = false;
    again.hidden = true;
    say(box.dataset.connecting);
    socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    // Opening never takes the keyboard: someone typing into another field of the page
    // (the upload or one-shot form) keeps it.
    socket.onopen = () => say("");
    socket.onmessage = (event) => {
      if (typeof event.data === "string") {
        const message = JSON.parse(event.data);
        if (message.type === "exit") {
          ended = true;
          const code = message.code === null ? "—" : String(message.code);
          say(box.dataset.ended.replace("{code}", code));
        }
      } else {
        term.write(decoder.decode(new Uint8Array(event.data), { stream: true }));
      }
    };
    socket.onclose = (event) => {
      socket = null;
      if (!ended) say(event.code === 1006 ? box.dataset.failed : box.dataset.closed);
      again.hidden = false;
    };
  }

  connect();
}
