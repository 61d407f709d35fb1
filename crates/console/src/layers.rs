//! Keeps the layers of the crate's top doc comment: every reference to `crate::<module>`
//! in a module's files must name a module that module may import.

use std::collections::BTreeSet;
use std::path::Path;

/// What each top-level module may import (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("app", &["*"]),
    ("lib", &["*"]),
    ("layers", &["*"]),
    ("http", &["service", "config", "metrics", "util"]),
    (
        "workers",
        &["service", "hosts", "config", "metrics", "util"],
    ),
    (
        "service",
        &[
            "hosts",
            "config",
            "metrics",
            "sealed",
            "permissions",
            "util",
        ],
    ),
    ("hosts", &["config", "metrics", "util"]),
    ("sealed", &["permissions"]),
    ("config", &["util"]),
    ("metrics", &[]),
    ("permissions", &[]),
    ("util", &[]),
];

/// The top-level module a source file belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a file").as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// Every `crate::<name>` a text refers to, outside comments.
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` names several at once.
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let n: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !n.is_empty() {
                        out.insert(n);
                    }
                }
            } else if !name.is_empty() {
                out.insert(name);
            }
            rest = after;
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    assert!(all.len() > 20, "found the sources: {all:?}");
    let mut wrong = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &all {
        let module = module_of(&src, file);
        let allowed = ALLOWED
            .iter()
            .find(|(m, _)| *m == module)
            .unwrap_or_else(|| panic!("module {module} has no place in the layers; add it to ALLOWED and to the crate's doc"))
            .1;
        seen_modules.insert(module.clone());
        let text = std::fs::read_to_string(file).expect("readable");
        for r in references(&text) {
            if r == module || allowed.contains(&"*") || allowed.contains(&r.as_str()) {
                continue;
            }
            wrong.push(format!("{} uses crate::{r}", file.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
    for (m, _) in ALLOWED {
        assert!(
            seen_modules.contains(*m),
            "ALLOWED names {m}, which is gone"
        );
    }
}

#[test]
fn references_are_read_from_use_lines_and_paths() {
    let r = references(
        "use crate::service::Error;\nuse crate::{config, util::now};\nlet x = crate::hosts::Host::new(); // crate::app\n",
    );
    assert_eq!(
        r.into_iter().collect::<Vec<_>>(),
        ["config", "hosts", "service", "util"]
    );
}
