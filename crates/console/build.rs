//! Bundles the browser terminal: xterm.js from Debian's `node-xterm` and the console's own
//! `assets/terminal.js`, by Debian's `esbuild`, into `$OUT_DIR/terminal.js` (with xterm's
//! stylesheet beside it). Where either is missing the bundle is empty and the container page
//! says what to install; everything else works as before.
//!
//! `WM_XTERM_DIR` (default `/usr/share/nodejs/xterm`) and `WM_ESBUILD` (default `esbuild`
//! on the `PATH`) point elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let xterm = std::env::var_os("WM_XTERM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/nodejs/xterm"));
    let esbuild = std::env::var_os("WM_ESBUILD")
        .map(PathBuf::from)
        .or_else(|| find_on_path("esbuild"));
    println!("cargo::rerun-if-changed=assets/terminal.js");
    println!("cargo::rerun-if-env-changed=WM_XTERM_DIR");
    println!("cargo::rerun-if-env-changed=WM_ESBUILD");
    // A path that does not exist makes cargo run this again at every build, so installing
    // the packages later is noticed.
    println!(
        "cargo::rerun-if-changed={}",
        xterm.join("package.json").display()
    );
    println!(
        "cargo::rerun-if-changed={}",
        esbuild
            .clone()
            .unwrap_or_else(|| PathBuf::from("/usr/bin/esbuild"))
            .display()
    );

    let js = out.join("terminal.js");
    let css = out.join("xterm.css");
    let built = match (&esbuild, xterm.join("lib/xterm.css").is_file()) {
        (Some(esbuild), true) => bundle(esbuild, &xterm, &js, &css),
        _ => Err("Debian's node-xterm and esbuild are not installed".to_string()),
    };
    if let Err(why) = built {
        println!(
            "cargo::warning=the browser terminal is left out: {why} (apt-get install node-xterm esbuild, then build again)"
        );
        std::fs::write(&js, "").unwrap();
        std::fs::write(&css, "").unwrap();
    }
}

fn bundle(esbuild: &Path, xterm: &Path, js: &Path, css: &Path) -> Result<(), String> {
    // `require('xterm')` resolves in the folder above the package, as node would.
    let node_path = xterm.parent().unwrap_or(Path::new("/"));
    let status = Command::new(esbuild)
        .args([
            "assets/terminal.js",
            "--bundle",
            "--minify",
            "--format=iife",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", js.display()))
        .env("NODE_PATH", node_path)
        .status()
        .map_err(|e| format!("{} did not run: {e}", esbuild.display()))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", esbuild.display()));
    }
    std::fs::copy(xterm.join("lib/xterm.css"), css).map_err(|e| e.to_string())?;
    Ok(())
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
