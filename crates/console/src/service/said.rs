//! Every sentence an error can say to a user, by its key: the error's code, the field at
//! fault (`""` for none), the reason, and the names of the values it names. The console's
//! languages say each of them (`crate::http::web::i18n`). An error's sentence can only be
//! made by the constructors of [`super::Error`] (its `Said` has private fields), which
//! refuse, in debug builds, a saying that is not here; the tests below check that every
//! one the crate's source names is.

use super::error::Rule;
use wm_backend::Why;

/// `(code, field, reason, params)`.
pub(crate) type Saying = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// Whether the error `code` (of `field`) may say `rule`: its reason is listed, with
/// exactly these params.
pub(crate) fn known(code: &str, field: Option<&str>, rule: &Rule) -> bool {
    let field = field.unwrap_or("");
    SAYINGS.iter().any(|(c, f, r, params)| {
        *c == code
            && *f == field
            && *r == rule.reason
            && params.len() == rule.params.len()
            && params
                .iter()
                .all(|p| rule.params.iter().any(|(n, _)| n == p))
    })
}

/// The rule of a backend's keyed sentence said as the error `code` (of `field`): its
/// reason and params as listed here (which makes them `'static`), when this console knows
/// that reason for that code with exactly those params. `None` for a sentence without a
/// key, or one this console does not know (a newer agent's).
pub(crate) fn backend_rule(code: &str, field: Option<&str>, why: &Why) -> Option<Rule> {
    if !why.is_keyed() {
        return None;
    }
    let field = field.unwrap_or("");
    let (_, _, reason, names) = SAYINGS
        .iter()
        .find(|(c, f, r, _)| *c == code && *f == field && *r == why.reason)?;
    if names.len() != why.params.len() {
        return None;
    }
    let params = names
        .iter()
        .map(|n| {
            why.params
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| (*n, v.clone()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Rule { reason, params })
}

/// The code under which this console says the backend's sentence `reason` (the first
/// listed with no field): how the last line of a failed build, whose code is its own
/// (`build_failed`), finds its sentence.
pub(crate) fn backend_code(reason: &str) -> Option<&'static str> {
    SAYINGS
        .iter()
        .find(|(_, f, r, _)| f.is_empty() && *r == reason)
        .map(|(c, _, _, _)| *c)
}

/// The rule of a backend's keyed sentence on a line of a stream (see [`backend_code`]);
/// `None` for a sentence without a key, or one this console does not know.
pub(crate) fn line_rule(why: &Why) -> Option<Rule> {
    backend_rule(backend_code(&why.reason)?, None, why)
}

const V: &[&str] = &["value"];
const NONE: &[&str] = &[];

pub(crate) const SAYINGS: &[Saying] = &[
    // Input that does not parse (wm_domain's rules and the service's own).
    ("invalid_input", "name", "empty", NONE),
    ("invalid_input", "name", "too_long", &["max"]),
    ("invalid_input", "name", "bad_char", &["value", "char"]),
    ("invalid_input", "name", "bad_edge", V),
    (
        "invalid_input",
        "name",
        "full_too_long",
        &["value", "max", "short_max"],
    ),
    ("invalid_input", "name", "not_a_name", V),
    ("invalid_input", "name", "vm_empty", NONE),
    ("invalid_input", "name", "vm_too_long", &["max"]),
    ("invalid_input", "name", "vm_bad_char", &["value", "char"]),
    ("invalid_input", "name", "vm_bad_edge", V),
    ("invalid_input", "name", "token_name", NONE),
    ("invalid_input", "name", "printable", &["min", "max"]),
    ("invalid_input", "name", "no_field", NONE),
    ("invalid_input", "name", "no_image_name", NONE),
    ("invalid_input", "name", "image_path", &["value", "prefix"]),
    ("invalid_input", "name", "image_too_long", V),
    ("invalid_input", "name", "digest", V),
    ("invalid_input", "name", "tag", V),
    ("invalid_input", "name", "path", V),
    ("invalid_input", "name", "registry_port", V),
    ("invalid_input", "name", "registry", V),
    ("invalid_input", "username", "empty", NONE),
    ("invalid_input", "username", "too_long", &["max"]),
    ("invalid_input", "username", "bad_start", V),
    ("invalid_input", "username", "bad_char", &["value", "char"]),
    ("invalid_input", "password", "length", &["max"]),
    ("invalid_input", "new", "length", &["max"]),
    ("invalid_input", "current", "too_long", NONE),
    ("wrong_password", "current", "wrong", NONE),
    ("invalid_input", "role", "unknown", V),
    ("invalid_input", "backend", "unknown", &["value", "choices"]),
    ("invalid_input", "scope", "unknown", &["value", "choices"]),
    ("invalid_input", "status", "unknown", &["value", "choices"]),
    (
        "invalid_input",
        "stop_reason",
        "unknown",
        &["value", "choices"],
    ),
    ("backend_unavailable", "backend", "kubernetes_off", NONE),
    ("invalid_input", "env", "no_equals", V),
    ("invalid_input", "env", "no_key", V),
    ("invalid_input", "env", "key_too_long", &["value", "max"]),
    ("invalid_input", "env", "bad_key", V),
    ("invalid_input", "env", "value_too_long", &["key", "max"]),
    ("invalid_input", "env", "value_nul", &["key"]),
    ("invalid_input", "env", "twice", &["key"]),
    ("invalid_input", "env", "too_many", &["max"]),
    ("invalid_input", "env", "unclosed", &["quote"]),
    ("invalid_input", "env", "trailing_backslash", NONE),
    ("invalid_input", "env", "shape", NONE),
    ("invalid_input", "buildarg", "no_equals", V),
    ("invalid_input", "buildarg", "no_key", V),
    (
        "invalid_input",
        "buildarg",
        "key_too_long",
        &["value", "max"],
    ),
    ("invalid_input", "buildarg", "bad_key", V),
    (
        "invalid_input",
        "buildarg",
        "value_too_long",
        &["key", "max"],
    ),
    ("invalid_input", "buildarg", "value_nul", &["key"]),
    ("invalid_input", "buildarg", "reserved", &["key"]),
    ("invalid_input", "ports", "out_of_range", &["port"]),
    ("invalid_input", "ports", "not_a_number", V),
    ("invalid_input", "ports", "twice", &["port"]),
    ("invalid_input", "ports", "too_many", &["max"]),
    ("invalid_input", "ports", "shape", NONE),
    ("invalid_input", "image", "empty", NONE),
    ("invalid_input", "image", "digest", V),
    ("invalid_input", "image", "too_long", V),
    ("invalid_input", "image", "tag", V),
    ("invalid_input", "image", "path", V),
    ("invalid_input", "image", "registry_port", V),
    ("invalid_input", "image", "registry", V),
    ("invalid_input", "image", "unresolvable", &["registry"]),
    ("invalid_input", "image", "egress_invalid", &["why"]),
    ("invalid_input", "host", "unknown", V),
    ("invalid_input", "path", "relative", NONE),
    ("invalid_input", "path", "too_long", NONE),
    ("invalid_input", "path", "dotdot", NONE),
    ("invalid_input", "path", "part_too_long", NONE),
    ("invalid_input", "path", "missing", &["path"]),
    ("invalid_input", "path", "not_a_directory", &["path"]),
    ("invalid_input", "path", "no_field", NONE),
    ("invalid_input", "file", "none", NONE),
    ("invalid_file_name", "file", "twice", &["name"]),
    ("invalid_file_name", "file", "bad_name", V),
    (
        "too_many_files",
        "file",
        "too_many_parts",
        &["max", "fields"],
    ),
    ("invalid_image", "file", "empty", NONE),
    ("invalid_image", "file", "refused", &["why"]),
    ("invalid_input", "cmd", "empty", NONE),
    ("invalid_input", "cmd", "shape", NONE),
    ("invalid_input", "cmd", "too_long", NONE),
    ("invalid_input", "cmd", "nul", NONE),
    ("invalid_input", "cols", "out_of_range", NONE),
    ("invalid_input", "rows", "out_of_range", NONE),
    ("invalid_input", "cpus", "not_a_number", NONE),
    ("invalid_input", "cpus", "not_cpus", NONE),
    ("invalid_input", "cpus", "out_of_range", NONE),
    ("invalid_input", "cpus", "over_max", &["max"]),
    ("invalid_input", "memory", "not_a_size", NONE),
    ("invalid_input", "memory", "bad_size", V),
    ("invalid_input", "memory", "too_little", NONE),
    ("invalid_input", "memory", "over_max", &["max"]),
    ("invalid_input", "gpus", "over_max", &["max"]),
    ("invalid_input", "containers", "not_whole", NONE),
    ("invalid_input", "running", "not_whole", NONE),
    ("invalid_input", "memory_bytes", "not_whole", NONE),
    ("invalid_input", "gpus", "not_whole", NONE),
    ("invalid_input", "ports", "not_whole", NONE),
    ("invalid_input", "builds", "not_whole", NONE),
    ("invalid_input", "containers", "below_minus_one", NONE),
    ("invalid_input", "running", "below_minus_one", NONE),
    ("invalid_input", "memory_bytes", "below_minus_one", NONE),
    ("invalid_input", "gpus", "below_minus_one", NONE),
    ("invalid_input", "ports", "below_minus_one", NONE),
    ("invalid_input", "builds", "below_minus_one", NONE),
    ("invalid_input", "storage_bytes", "below_minus_one", NONE),
    ("invalid_input", "description", "too_long", NONE),
    ("invalid_input", "requires", "shape", NONE),
    ("invalid_input", "requires", "labels", NONE),
    ("invalid_input", "requires", "docker_only", NONE),
    ("invalid_input", "host_labels", "shape", NONE),
    ("invalid_input", "host_labels", "labels", NONE),
    ("invalid_expiry", "expires_at", "not_a_time", V),
    ("invalid_expiry", "expires_at", "past", NONE),
    ("unknown_course", "course", "not_enrolled", &["id"]),
    ("unknown_course", "courses", "not_yours", &["id"]),
    // Courses.
    ("invalid_join_code", "code", "wrong", NONE),
    ("invalid_input", "term", "printable", &["min", "max"]),
    ("invalid_input", "ldap_group", "printable", &["min", "max"]),
    ("invalid_input", "title", "printable", &["min", "max"]),
    ("invalid_input", "note", "printable", &["min", "max"]),
    ("invalid_input", "ends_at", "not_future", NONE),
    ("invalid_input", "users", "count", &["max"]),
    ("unknown_users", "users", "unknown", &["names"]),
    // Accounts, audit filters, CI.
    ("invalid_input", "containers", "choice", &["value", "keep"]),
    ("invalid_input", "images", "choice", &["value", "keep"]),
    ("invalid_input", "storage", "choice", &["value", "keep"]),
    ("invalid_input", "since", "not_a_time", NONE),
    ("invalid_input", "until", "not_a_time", NONE),
    ("invalid_input", "before", "not_a_time", NONE),
    ("invalid_input", "actor", "too_long", NONE),
    ("invalid_input", "action", "too_long", NONE),
    ("invalid_input", "target", "too_long", NONE),
    ("invalid_input", "gitlab_url", "not_http", NONE),
    ("invalid_input", "gitlab_url", "egress", &["host", "near"]),
    ("invalid_input", "token", "runner_token", NONE),
    // Builds: the form, the Dockerfile, the context.
    ("invalid_input", "dockerfile", "none", NONE),
    ("invalid_input", "dockerfile", "empty", NONE),
    ("invalid_input", "dockerfile", "not_an_image", V),
    (
        "invalid_input",
        "dockerfile",
        "add_egress",
        &["url", "host", "near"],
    ),
    ("invalid_input", "dockerfile", "add_unresolvable", &["url"]),
    ("invalid_input", "dockerfile", "add_url", &["url", "why"]),
    ("invalid_input", "dockerfile", "line", &["line", "detail"]),
    ("invalid_input", "dockerfile", "no_from", NONE),
    (
        "invalid_input",
        "dockerfile",
        "onbuild",
        &["stage", "detail"],
    ),
    ("invalid_input", "context", "not_tar", NONE),
    ("invalid_input", "context", "not_gzip", NONE),
    (
        "invalid_input",
        "context",
        "dockerfile_too_large",
        &["path"],
    ),
    ("invalid_input", "context", "not_utf8", &["path"]),
    ("invalid_input", "context", "no_dockerfile", NONE),
    ("invalid_input", "context", "dockerfile_not_file", NONE),
    ("invalid_input", "context", "bad_entry", &["why"]),
    // Requests that are not what the operation takes (no one field at fault).
    ("invalid_input", "", "login_too_long", NONE),
    ("invalid_input", "", "not_multipart", &["why"]),
    ("invalid_input", "", "one_source", NONE),
    (
        "invalid_input",
        "",
        "unexpected_field",
        &["name", "expected"],
    ),
    ("invalid_input", "", "not_an_object", NONE),
    ("invalid_input", "", "shape", &["why"]),
    ("invalid_input", "", "unknown_operation", NONE),
    ("malformed_json", "", "syntax", &["why"]),
    ("websocket_required", "", "websocket", &["why"]),
    ("policy", "", "policy", &["why"]),
    ("unsupported_for_backend", "", "exec", &["kubectl"]),
    ("unsupported_for_backend", "", "upload", &["kubectl"]),
    ("unsupported_for_backend", "", "download", &["kubectl"]),
    ("unsupported_for_backend", "", "logs", &["kubectl"]),
    ("unsupported_for_backend", "", "terminal", &["kubectl"]),
    // Not allowed.
    ("forbidden", "", "build_token", NONE),
    ("forbidden", "", "admins_only", NONE),
    ("forbidden", "", "cross_origin", NONE),
    ("forbidden", "", "disabled", NONE),
    ("forbidden", "", "csrf", NONE),
    ("forbidden", "", "teachers_only", NONE),
    ("forbidden", "", "teacher_only", NONE),
    ("forbidden", "", "expiry_set_by_other", &["name", "by"]),
    ("forbidden", "", "other_installation", NONE),
    ("forbidden", "", "public_image", NONE),
    ("forbidden", "", "not_yours", &["image"]),
    ("forbidden", "", "owned_by", &["image", "owner"]),
    ("forbidden", "", "public", &["image"]),
    (
        "forbidden",
        "",
        "registry_not_allowed",
        &["registry", "allowed"],
    ),
    ("forbidden", "", "built_here", &["prefix"]),
    ("forbidden", "", "policy", &["why"]),
    ("forbidden", "", "egress", &["registry", "near"]),
    ("forbidden", "", "storage_root", NONE),
    // Not there (or not the caller's).
    ("not_found", "", "container", NONE),
    ("not_found", "", "container_named", &["name"]),
    ("not_found", "", "page", NONE),
    ("not_found", "", "endpoint", NONE),
    ("not_found", "", "vm", NONE),
    ("not_found", "", "vm_named", &["name"]),
    ("not_found", "", "session", &["id"]),
    ("not_found", "", "token", &["id"]),
    ("not_found", "", "user", &["name"]),
    ("not_found", "", "course", &["id"]),
    ("not_found", "", "member", &["name", "course"]),
    ("not_found", "", "host", &["name"]),
    ("image_not_found", "", "image", &["image"]),
    ("image_not_found", "", "course_image", &["image", "course"]),
    ("image_not_found", "", "build_image", &["image"]),
    ("image_not_found", "", "vm_image", &["name"]),
    ("template_not_found", "", "template", &["name"]),
    ("backend_unavailable", "", "kubeconfig", NONE),
    ("file_not_found", "", "engine", &["why"]),
    // In the way of something else.
    ("conflict", "", "exists", &["what"]),
    ("conflict", "", "host_name_taken", NONE),
    ("conflict", "", "directory_password", NONE),
    ("conflict", "", "directory_password_of", &["name"]),
    ("conflict", "", "directory_role", &["name"]),
    ("conflict", "", "own_account", NONE),
    ("conflict", "", "delete_own_account", NONE),
    ("conflict", "", "user_has_containers", &["name", "n"]),
    ("conflict", "", "no_join_code", NONE),
    ("conflict", "", "container_taken", &["name"]),
    ("conflict", "", "gone_from_host", &["name"]),
    ("conflict", "", "gone_from_cluster", &["name"]),
    ("conflict", "", "cluster_name_taken", &["name"]),
    ("conflict", "", "not_running", &["name"]),
    ("conflict", "", "no_scan", &["image"]),
    ("conflict", "", "pull_failed", &["why"]),
    ("conflict", "", "vm_refused", &["why"]),
    ("conflict", "", "vm_image_taken", &["name"]),
    ("conflict", "", "vm_image_in_use", &["name"]),
    ("conflict", "", "vm_taken", &["name"]),
    ("conflict", "", "taken_meanwhile", &["what"]),
    ("conflict", "", "vm_console", &["name", "why"]),
    ("ambiguous_name", "", "owners", &["name", "owners"]),
    ("ambiguous_name", "", "members", &["name", "course"]),
    ("ambiguous_name", "", "vm_owners", &["name"]),
    ("container_expired", "", "expired", &["name", "at"]),
    ("image_quarantined", "", "flagged", &["image", "finding"]),
    ("image_quarantined", "", "failed", &["image", "finding"]),
    ("image_scan_pending", "", "pending", &["image"]),
    (
        "quota_exceeded",
        "",
        "over",
        &["kind", "limit", "used", "asked"],
    ),
    (
        "quota_exceeded",
        "",
        "over_now",
        &["kind", "limit", "used", "asked"],
    ),
    ("image_in_use", "", "others", &["image", "own", "others"]),
    ("image_in_use", "", "own", &["image", "own", "others"]),
    ("image_in_use", "", "both", &["image", "own", "others"]),
    // Too large, too many, too soon.
    ("payload_too_large", "", "body", &["max"]),
    ("payload_too_large", "", "context_unpacked", &["max"]),
    ("rate_limited", "", "logins", &["seconds"]),
    ("busy", "", "uploads", NONE),
    ("busy", "", "terminals", &["max"]),
    // What the console depends on cannot be used now.
    ("unavailable", "", "host", &["why"]),
    ("unavailable", "", "exhausted", &["why"]),
    ("unavailable", "", "directory", NONE),
    ("unavailable", "", "directory_refused", NONE),
    ("unavailable", "", "runner_image", &["image", "host"]),
    ("unavailable", "", "no_host_has", &["image"]),
    ("unavailable", "", "place_taken", &["what"]),
    ("unavailable", "", "cluster_unfinished", &["name", "why"]),
    ("unavailable", "", "built_elsewhere", &["image", "host"]),
    ("unavailable", "", "pull_onto", &["why", "host"]),
    ("unavailable", "", "vm_host", &["why"]),
    ("unavailable", "", "no_vm_host", NONE),
    ("unavailable", "", "vm_host_down", &["host"]),
    ("unavailable", "", "vm_host_unknown", &["host"]),
    ("unavailable", "", "host_down", &["host"]),
    ("unavailable", "", "host_down_why", &["host", "why"]),
    ("unavailable", "", "host_unknown", &["host"]),
    ("unavailable", "", "none_answer", &["why"]),
    ("unavailable", "", "no_room", NONE),
    ("unavailable", "", "no_room_with", &["labels"]),
    ("unavailable", "", "no_gpus", &["n"]),
    ("unavailable", "", "no_gpus_with", &["n", "labels"]),
    ("unavailable", "", "no_memory", &["mib"]),
    ("unavailable", "", "no_memory_with", &["mib", "labels"]),
    ("storage_unavailable", "", "engine", &["why"]),
    ("storage_unavailable", "", "host_keeps_none", &["host"]),
    ("storage_unavailable", "", "no_host", NONE),
    // The backends' own sentences (`wm_backend::Why`), under the code the console says
    // them with.
    ("policy", "", "memory_limit", &["max"]),
    ("policy", "", "cpu_limit", &["max"]),
    ("policy", "", "pids_limit", &["max"]),
    ("policy", "", "container_name", NONE),
    ("policy", "", "gpu_twice", &["gpu"]),
    ("policy", "", "no_gpu", &["gpu", "known"]),
    ("policy", "", "no_gpu_none", &["gpu"]),
    ("policy", "", "path_dotdot", NONE),
    ("policy", "", "path_invalid", NONE),
    ("policy", "", "path_part_too_long", NONE),
    ("policy", "", "name_too_long", &["path"]),
    ("policy", "", "storage_root", NONE),
    ("policy", "", "namespace_name", &["user"]),
    ("policy", "", "system_namespace", &["user"]),
    ("policy", "", "cluster_gpus", &["role", "max", "asked"]),
    ("unavailable", "", "ports_full", &["range"]),
    ("unavailable", "", "ports_held", NONE),
    (
        "unavailable",
        "",
        "gpu_in_use",
        &["gpu", "holders", "share"],
    ),
    ("unavailable", "", "no_address_range", NONE),
    ("unavailable", "", "network_pool_full", &["pool", "prefix"]),
    ("unavailable", "", "build_pids_socket", &["host", "setting"]),
    ("unavailable", "", "build_pids", &["why", "setting"]),
    ("unavailable", "", "build_broke", NONE),
    ("unavailable", "", "storage_disk_full", NONE),
    ("unavailable", "", "engine_timeout", &["seconds"]),
    ("unavailable", "", "cluster_timeout", &["seconds"]),
    ("unavailable", "", "cluster_unreachable", NONE),
    ("unavailable", "", "no_libvirt", NONE),
    ("unavailable", "", "agent_timeout", &["host"]),
    ("unavailable", "", "agent_unreachable", &["host"]),
    ("unavailable", "", "agent_token", &["host"]),
    ("unavailable", "", "agent_stream_broke", &["host"]),
    ("storage_unavailable", "", "storage_off", NONE),
    ("storage_unavailable", "", "storage_unprepared", NONE),
    ("storage_unavailable", "", "storage_unopenable", NONE),
    ("storage_unavailable", "", "storage_root_missing", NONE),
    ("storage_unavailable", "", "storage_not_given", NONE),
    ("storage_unavailable", "", "storage_name_taken", NONE),
    ("storage_unavailable", "", "storage_unmade", NONE),
    ("storage_unavailable", "", "volume_failed", NONE),
    ("storage_unavailable", "", "volume_foreign", NONE),
    ("storage_unavailable", "", "vm_spool", NONE),
    ("file_not_found", "", "dir_missing", &["dir"]),
    ("file_not_found", "", "path_missing", &["path"]),
    ("file_not_found", "", "storage_missing", &["path"]),
    ("file_not_found", "", "storage_link", &["path"]),
    ("file_not_found", "", "storage_not_dir", &["path"]),
    ("file_not_found", "", "storage_odd", &["path"]),
    ("file_not_found", "", "storage_not_file", &["path"]),
    ("conflict", "", "build_too_large", &["size", "max"]),
    ("conflict", "", "storage_in_use", NONE),
    ("conflict", "", "storage_is_dir", &["path"]),
    ("conflict", "", "storage_exists", &["path"]),
    ("conflict", "", "upload_broke", &["path"]),
    ("conflict", "", "vm_not_running", NONE),
    ("conflict", "", "serial_unreachable", NONE),
    ("invalid_image", "file", "image_unreadable", NONE),
    ("invalid_image", "file", "image_format", &["format"]),
    ("invalid_image", "file", "image_backing_file", NONE),
    ("invalid_image", "file", "image_data_file", NONE),
    ("invalid_image", "file", "image_empty", NONE),
    ("invalid_image", "file", "image_not_disk", NONE),
    ("invalid_image", "file", "image_too_large", &["max"]),
    ("invalid_image", "file", "image_upload_broke", NONE),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// No key twice: a key names one sentence.
    #[test]
    fn every_key_is_listed_once() {
        let mut keys: Vec<_> = SAYINGS.iter().map(|(c, f, r, _)| (c, f, r)).collect();
        keys.sort();
        for w in keys.windows(2) {
            assert_ne!(w[0], w[1], "listed twice");
        }
    }

    /// The Rust files under `root`.
    fn rust_files(root: &std::path::Path) -> Vec<(String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push((
                        p.display().to_string(),
                        std::fs::read_to_string(&p).unwrap(),
                    ));
                }
            }
        }
        let mut out = Vec::new();
        walk(root, &mut out);
        out
    }

    /// The service's source files, for the scans below.
    fn sources() -> Vec<(String, String)> {
        rust_files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
    }

    /// Every sentence a backend keys (`Why::new("reason", ...)` in the backend crates) is
    /// listed under a code, with exactly the params it names (and so, by `http::web::i18n`'s
    /// tests, has its sentence in every language): a new backend sentence without its
    /// translation fails here.
    #[test]
    fn every_backend_sentence_is_listed() {
        let why = regex::Regex::new(r#"Why::new\(\s*"([a-z_]+)",\s*\[([^\]]*)\]"#).unwrap();
        let param = regex::Regex::new(r#"\(\s*"([a-z_]+)""#).unwrap();
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut seen = 0;
        for krate in ["backend", "docker", "kube", "libvirt", "agent"] {
            for (path, text) in rust_files(&crates.join(krate).join("src")) {
                for c in why.captures_iter(&text) {
                    seen += 1;
                    let reason = &c[1];
                    let mut names: Vec<&str> = param
                        .captures_iter(&c[2])
                        .map(|p| p.get(1).unwrap().as_str())
                        .collect();
                    names.sort_unstable();
                    let same = |params: &[&str]| {
                        let mut want = params.to_vec();
                        want.sort_unstable();
                        want == names
                    };
                    let listed = SAYINGS
                        .iter()
                        .any(|(_, _, r, params)| *r == reason && same(params));
                    assert!(
                        listed,
                        "{path}: the backend's sentence {reason:?} with the params {names:?} is not in service::said::SAYINGS"
                    );
                    // A stream's line finds it by its reason alone: the first listed
                    // with no field is it.
                    if let Some(code) = backend_code(reason) {
                        let (_, _, _, params) = SAYINGS
                            .iter()
                            .find(|(c, f, r, _)| *c == code && f.is_empty() && *r == reason)
                            .unwrap();
                        assert!(
                            same(params),
                            "{path}: the backend's sentence {reason:?} is first listed ({code}) with the params {params:?}, not {names:?}"
                        );
                    }
                }
            }
        }
        assert!(
            seen > 60,
            "the scan found only {seen} backend sentences: has their form changed?"
        );
    }

    /// Every reason the source gives an error, with a literal field or code, is listed for
    /// that field or code: a new saying cannot be added without its key (and with it, its
    /// sentences: see `http::web::i18n`'s tests). Reasons given through a variable are
    /// checked where the error is made, in debug builds ([`known`]).
    #[test]
    fn every_saying_in_the_source_is_listed() {
        let with_field =
            regex::Regex::new(r#"Error::broke\(\s*"([a-z_]+)",\s*"([a-z_]+)""#).unwrap();
        let refused = regex::Regex::new(
            r#"Error::refused\(\s*"([a-z_]+)",\s*(None|Some\("([a-z_]+)"\)),\s*"([a-z_]+)""#,
        )
        .unwrap();
        let by_code = regex::Regex::new(
            r#"Error::(forbidden|conflict|storage|ambiguous|too_large_because|busy|unavailable)\(\s*"([a-z_]+)""#,
        )
        .unwrap();
        let missing =
            regex::Regex::new(r#"Error::missing\(\s*"([a-z_]+)",\s*"([a-z_]+)""#).unwrap();
        let not_found = regex::Regex::new(r#"Error::not_found\(\s*"([a-z_]+)"\)"#).unwrap();
        // A backend's sentence said by a generic saying when its key is unknown.
        let refused_by_backend = regex::Regex::new(
            r#"Error::refused_by_backend\(\s*"([a-z_]+)",\s*(None|Some\("([a-z_]+)"\)),\s*"([a-z_]+)""#,
        )
        .unwrap();
        let by_backend = regex::Regex::new(
            r#"Error::(conflict|unavailable)_by_backend\(\s*&[a-z_.]+,\s*"([a-z_]+)""#,
        )
        .unwrap();
        let code_of = |f: &str| match f {
            "forbidden" => "forbidden",
            "conflict" => "conflict",
            "storage" => "storage_unavailable",
            "ambiguous" => "ambiguous_name",
            "too_large_because" => "payload_too_large",
            "busy" => "busy",
            _ => "unavailable",
        };
        let listed = |code: &str, field: &str, reason: &str| {
            SAYINGS
                .iter()
                .any(|(c, f, r, _)| *c == code && *f == field && *r == reason)
        };
        let mut seen = 0;
        for (path, text) in sources() {
            let mut check = |code: &str, field: &str, reason: &str| {
                seen += 1;
                assert!(
                    listed(code, field, reason),
                    "{path}: ({code:?}, {field:?}, {reason:?}) is not in service::said::SAYINGS"
                );
            };
            for c in with_field.captures_iter(&text) {
                check("invalid_input", &c[1], &c[2]);
            }
            for c in refused.captures_iter(&text) {
                check(&c[1], c.get(3).map_or("", |m| m.as_str()), &c[4]);
            }
            for c in by_code.captures_iter(&text) {
                check(code_of(&c[1]), "", &c[2]);
            }
            for c in missing.captures_iter(&text) {
                check(&c[1], "", &c[2]);
            }
            for c in not_found.captures_iter(&text) {
                check("not_found", "", &c[1]);
            }
            for c in refused_by_backend.captures_iter(&text) {
                check(&c[1], c.get(3).map_or("", |m| m.as_str()), &c[4]);
            }
            for c in by_backend.captures_iter(&text) {
                check(&c[1], "", &c[2]);
            }
        }
        assert!(
            seen > 150,
            "the scan found only {seen} sayings: has their form changed?"
        );
    }
}
