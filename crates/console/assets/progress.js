// Live progress for pulls and builds: posts the form to the API endpoint named in
// data-ndjson and shows each NDJSON line as it arrives. Without JavaScript the form posts
// to the console's own route, which streams the same lines as HTML.
// Followed logs: a link with data-follow-logs streams the API's followed logs into the
// page's log (without JavaScript the link opens the plain-text stream itself).
// Uploads: a form with data-max-bytes is not sent when its files are larger than that
// (the server refuses them too, after they were sent).
"use strict";

const mib = (n) => (n / 1048576).toFixed(1).replace(/\.0$/, "") + " MiB";

document.querySelectorAll("form[data-max-bytes]").forEach((form) => {
  const input = form.querySelector("input[type=file]");
  const error = form.querySelector("#file-size-error");
  const check = () => {
    let total = 0;
    for (const f of input.files) total += f.size;
    const over = total > Number(form.dataset.maxBytes);
    error.hidden = !over;
    error.textContent = over
      ? form.dataset.tooLarge.replace("{size}", mib(total)).replace("{limit}", form.dataset.limit)
      : "";
    if (over) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    return !over;
  };
  input.addEventListener("change", check);
  form.addEventListener("submit", (event) => {
    if (!check()) {
      event.preventDefault();
      input.focus();
    }
  });
});

// Calls `show` with each line of an NDJSON answer as it arrives.
async function readLines(resp, show) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) show(line);
    }
  }
  if (buf.trim()) show(buf.trim());
}

// SIF downloads: convert with live progress, then download the cached file.
document.querySelectorAll("a[data-sif]").forEach((link) => {
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    const status = link.parentElement.querySelector(".sif-progress");
    status.textContent = link.dataset.converting;
    try {
      const resp = await fetch(link.dataset.sif, { method: "POST" });
      if (!resp.ok) {
        const body = await resp.json().catch(() => null);
        status.textContent = body && body.error ? body.error.message : String(resp.status);
        return;
      }
      await readLines(resp, (line) => {
        const v = JSON.parse(line);
        if (v.status === "done") {
          status.textContent = "";
          window.location.href = v.download;
        } else if (v.status === "error") {
          status.textContent = v.error.message;
        } else {
          const parts = [link.dataset.converting, v.stage];
          if (v.layers) parts.push(v.layer + "/" + v.layers);
          if (v.total) parts.push(Math.round((100 * v.current) / v.total) + "%");
          status.textContent = parts.join(" ");
        }
      });
    } catch (e) {
      status.textContent = String(e);
    }
  });
});
document.querySelectorAll("form[data-ndjson]").forEach((form) => {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = document.getElementById(form.dataset.output);
    const log = box.querySelector("ol");
    const bar = box.querySelector("progress");
    const outcome = box.querySelector(".outcome");
    const button = form.querySelector("button[type=submit]");
    box.hidden = false;
    box.classList.remove("failed");
    log.textContent = "";
    log.hidden = false;
    outcome.textContent = "";
    bar.hidden = false;
    bar.removeAttribute("value");
    button.disabled = true;
    // A failure stops the bar and is said once, in the outcome, which comes into view.
    const fail = (text) => {
      bar.hidden = true;
      log.hidden = !log.children.length;
      box.classList.add("failed");
      outcome.textContent = box.dataset.failed + " " + text;
      outcome.scrollIntoView({ block: "nearest" });
    };
    const add = (text, cls) => {
      const li = document.createElement("li");
      li.textContent = text;
      if (cls) li.className = cls;
      log.appendChild(li);
      log.scrollTop = log.scrollHeight;
    };
    // The API takes JSON for a pull and the form's own fields (without the CSRF token,
    // which it does not need: it checks the origin) for a build.
    let init;
    if (form.enctype === "multipart/form-data") {
      const data = new FormData();
      data.append("name", form.elements.name.value);
      const file = form.elements.context.files[0];
      if (file) data.append("context", file);
      else data.append("dockerfile", form.elements.dockerfile.value);
      init = { method: "POST", body: data };
    } else {
      init = {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ image: form.elements.image.value }),
      };
    }
    const layers = new Map();
    const show = (line) => {
      const v = JSON.parse(line);
      if (v.status === "done") {
        bar.value = 100; bar.max = 100;
        outcome.textContent = box.dataset.done + " " + v.image.ref;
        add(outcome.textContent, "ok");
      } else if (v.status === "error") {
        // A failed pull is told by its reason, in the page's language (the API says a
        // build's keyed failure in it already).
        const reasons = JSON.parse(box.dataset.reasons || "{}");
        fail(reasons[v.error.reason] || v.error.message);
      } else if (v.stream) {
        add(v.stream.trimEnd());
      } else {
        if (v.layer && v.total) {
          layers.set(v.layer, [v.current || 0, v.total]);
          let cur = 0, tot = 0;
          layers.forEach(([c, t]) => { cur += c; tot += t; });
          bar.max = tot; bar.value = cur;
        }
        add([v.layer, v.detail].filter(Boolean).join(" "));
      }
    };
    try {
      const resp = await fetch(form.dataset.ndjson, init);
      if (!resp.ok) {
        const body = await resp.json().catch(() => null);
        fail(body && body.error ? body.error.message : String(resp.status));
        return;
      }
      await readLines(resp, show);
      const back = document.createElement("a");
      back.href = "/images";
      back.textContent = box.dataset.back;
      outcome.append(" ", back);
    } catch (e) {
      fail(String(e));
    } finally {
      button.disabled = false;
    }
  });
});

// Followed logs: the link's stream replaces the recent lines and grows as the container
// writes, until the page is left.
document.querySelectorAll("a[data-follow-logs]").forEach((link) => {
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    const log = document.getElementById(link.dataset.followLogs);
    const empty = document.getElementById("no-logs");
    if (empty) empty.hidden = true;
    log.hidden = false;
    log.textContent = "";
    link.replaceWith(link.dataset.following);
    const resp = await fetch(link.href);
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      // Colours and cursor moves are dropped, as in the recent lines the server shows.
      log.textContent += decoder.decode(value, { stream: true }).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
      log.scrollTop = log.scrollHeight;
    }
  });
});
