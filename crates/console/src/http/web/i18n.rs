//! Every word of the web console, in English and Japanese.
//!
//! One struct holds the texts and each language is one value of it, so a text missing in
//! either language does not compile.

use axum::http::header::ACCEPT_LANGUAGE;
use axum::http::HeaderMap;
use wm_domain::{Backend, ContainerStatus};

pub(super) const LANG_COOKIE: &str = "wm_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Ja,
}

impl Lang {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }

    /// The language chosen with the switch (a cookie), else the first of ours in
    /// `Accept-Language` by quality, else English.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Lang {
        let chosen =
            crate::http::extract::cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v));
        if let Some(l) = chosen {
            return l;
        }
        let accept = headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut best: Option<(f32, Lang)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(l) = Lang::parse(primary) {
                if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, l));
                }
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }

    /// A refusal for being over a quota, in this language.
    pub(crate) fn quota_sentence(
        self,
        kind: crate::service::QuotaKind,
        used: i64,
        limit: i64,
        asked: i64,
    ) -> String {
        use crate::service::QuotaKind;
        let word = self.t().quota_word(kind);
        let amount = |n: i64| match (self, kind) {
            (Lang::En, _) => kind.amount(n),
            (Lang::Ja, QuotaKind::Memory | QuotaKind::Storage) => crate::service::human_bytes(n),
            (Lang::Ja, QuotaKind::Cpus) => crate::service::trim_number(n as f64 / 1e9),
            (Lang::Ja, _) => n.to_string(),
        };
        match (self, asked) {
            (Lang::En, 0) => format!(
                "Over your quota of {}: {} in use of {}; free some up first.",
                word.to_lowercase(),
                amount(used),
                amount(limit)
            ),
            (Lang::Ja, 0) => format!(
                "{word}の割り当てを超えています（使用中 {} / 上限 {}）。先に空きを作ってください。",
                amount(used),
                amount(limit)
            ),
            (Lang::En, _) => format!(
                "Over your quota of {}: {} in use of {}; this needs {} more.",
                word.to_lowercase(),
                amount(used),
                amount(limit),
                amount(asked)
            ),
            (Lang::Ja, _) => format!(
                "{word}の割り当てを超えます（使用中 {} / 上限 {}、さらに {} が必要です）。",
                amount(used),
                amount(limit),
                amount(asked)
            ),
        }
    }

    pub(crate) fn t(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::Ja => &JA,
        }
    }
}

pub(crate) struct Texts {
    pub skip: &'static str,
    pub nav_label: &'static str,
    pub containers: &'static str,
    pub new_container: &'static str,
    pub images: &'static str,
    pub ci: &'static str,
    pub admin: &'static str,
    pub logout: &'static str,
    pub signed_in_as: &'static str,
    pub language: &'static str,
    pub other_language: &'static str,

    pub login_title: &'static str,
    pub login_intro: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub login_button: &'static str,

    pub name: &'static str,
    pub image: &'static str,
    pub backend: &'static str,
    pub host: &'static str,
    pub status: &'static str,
    pub ports: &'static str,
    pub created: &'static str,
    pub actions: &'static str,
    pub owner: &'static str,
    pub env: &'static str,
    pub start: &'static str,
    pub stop: &'static str,
    pub delete: &'static str,
    pub cancel: &'static str,
    pub no_containers: &'static str,
    pub no_ports: &'static str,
    pub no_containers_at_all: &'static str,
    pub confirm_delete_title: &'static str,
    pub confirm_delete: &'static str,

    pub new_title: &'static str,
    pub hint_name: &'static str,
    pub hint_image: &'static str,
    pub hint_env: &'static str,
    pub hint_ports: &'static str,
    pub hint_backend: &'static str,
    pub download_kubeconfig: &'static str,
    pub hint_kubeconfig: &'static str,
    pub hint_kubectl: &'static str,
    pub create_button: &'static str,
    pub form_has_errors: &'static str,
    pub err_name: &'static str,
    pub err_name_taken: &'static str,
    pub err_image: &'static str,
    pub err_image_unknown: &'static str,
    pub err_env: &'static str,
    pub err_ports: &'static str,
    pub err_backend: &'static str,

    pub terminal_title: &'static str,
    pub terminal_hint: &'static str,
    pub terminal_not_running: &'static str,
    pub terminal_missing: &'static str,
    pub terminal_noscript: &'static str,
    pub terminal_connecting: &'static str,
    /// `{code}` is the exit code.
    pub terminal_ended: &'static str,
    pub terminal_closed: &'static str,
    pub terminal_failed: &'static str,
    pub terminal_again: &'static str,

    pub vms_title: &'static str,
    pub no_vms: &'static str,
    pub vm_template: &'static str,
    pub vm_image: &'static str,
    pub vm_power_on: &'static str,
    pub vm_power_off: &'static str,
    pub vm_console_title: &'static str,
    pub vm_console_hint: &'static str,
    pub vm_not_running: &'static str,
    pub vm_transcript: &'static str,
    pub vm_no_transcript: &'static str,
    pub vm_xml: &'static str,
    pub vm_cli_hint: &'static str,
    pub vm_st_shutoff: &'static str,
    pub vm_st_crashed: &'static str,
    pub following: &'static str,
    pub exec_title: &'static str,
    pub command: &'static str,
    pub hint_command: &'static str,
    pub run: &'static str,
    pub exit_code: &'static str,
    pub stdout: &'static str,
    pub stderr: &'static str,
    pub timed_out: &'static str,
    pub truncated: &'static str,
    pub upload_title: &'static str,
    pub directory: &'static str,
    pub files: &'static str,
    pub upload_button: &'static str,
    pub logs_title: &'static str,
    pub no_logs: &'static str,
    pub refresh: &'static str,
    pub follow_logs: &'static str,

    pub own_images: &'static str,
    pub shared_images: &'static str,
    pub public_images: &'static str,
    pub others_images: &'static str,
    pub reference: &'static str,
    pub description: &'static str,
    pub share_with_everyone: &'static str,
    pub save: &'static str,
    pub download: &'static str,
    pub sif_converting: &'static str,
    pub no_images: &'static str,
    pub pull_title: &'static str,
    pub hint_pull: &'static str,
    pub pull_button: &'static str,
    pub build_title: &'static str,
    pub hint_build_name: &'static str,
    pub dockerfile: &'static str,
    pub context: &'static str,
    pub hint_context: &'static str,
    pub build_button: &'static str,
    pub progress: &'static str,
    pub finished: &'static str,
    pub failed: &'static str,
    /// Why a pull failed, by the `reason` of its error line.
    pub pull_not_found: &'static str,
    pub pull_unauthorized: &'static str,
    pub pull_unreachable: &'static str,
    pub pull_refused: &'static str,
    pub pull_failed: &'static str,
    pub back_to_images: &'static str,

    pub ci_intro: &'static str,
    pub build_token_title: &'static str,
    pub build_token_intro: &'static str,
    pub build_token_create: &'static str,
    pub build_token_once: &'static str,
    pub build_token_store: &'static str,
    pub back_to_ci: &'static str,
    pub gitlab_url: &'static str,
    pub runner_token: &'static str,
    pub hint_runner_token: &'static str,
    pub runner: &'static str,
    pub not_configured: &'static str,
    pub no_runner: &'static str,
    pub token_ends: &'static str,
    pub remove_ci: &'static str,
    pub download_yml: &'static str,

    pub users: &'static str,
    pub all_containers: &'static str,
    pub hosts: &'static str,
    pub audit_log: &'static str,
    pub role: &'static str,
    pub source: &'static str,
    pub at: &'static str,
    pub actor: &'static str,
    pub action: &'static str,
    pub target: &'static str,
    pub result: &'static str,
    pub reachable: &'static str,
    pub unreachable: &'static str,
    pub version: &'static str,
    pub host_labels: &'static str,
    pub drained: &'static str,
    pub drain: &'static str,
    pub resume: &'static str,
    pub hint_drain: &'static str,
    pub notice_host_changed: &'static str,

    pub notice_created: &'static str,
    pub notice_started: &'static str,
    pub notice_stopped: &'static str,
    pub notice_deleted: &'static str,
    pub notice_uploaded: &'static str,
    pub notice_saved: &'static str,
    pub notice_image_deleted: &'static str,
    pub notice_ci_removed: &'static str,
    pub notice_user_created: &'static str,
    pub notice_reconciled: &'static str,
    pub add_account: &'static str,
    pub hint_add_account: &'static str,
    pub create_account: &'static str,
    pub reconcile_now: &'static str,
    pub hint_reconcile: &'static str,
    pub containers_unavailable: &'static str,

    pub st_running: &'static str,
    pub st_exited: &'static str,
    pub st_created: &'static str,
    pub st_creating: &'static str,
    pub st_paused: &'static str,
    pub st_restarting: &'static str,
    pub st_dead: &'static str,
    pub st_gone: &'static str,
    pub st_unknown: &'static str,
    pub st_pending: &'static str,
    pub st_stopped: &'static str,
    pub st_failed: &'static str,
    pub be_docker: &'static str,
    pub be_kubernetes: &'static str,
    pub error_title: &'static str,
    pub err_invalid: &'static str,
    pub err_credentials: &'static str,
    pub err_unauthenticated: &'static str,
    pub err_forbidden: &'static str,
    pub err_csrf: &'static str,
    pub err_not_found: &'static str,
    pub err_conflict: &'static str,
    pub err_ambiguous: &'static str,
    pub err_too_large: &'static str,
    pub err_rate_limited: &'static str,
    pub err_unavailable: &'static str,
    pub err_too_many_files: &'static str,
    pub err_busy: &'static str,
    pub err_quota: &'static str,
    pub err_quarantined: &'static str,
    pub err_scan_pending: &'static str,
    pub scan: &'static str,
    pub scan_pending: &'static str,
    pub scan_clean: &'static str,
    pub scan_flagged: &'static str,
    pub scan_error: &'static str,
    pub scan_released: &'static str,
    pub release: &'static str,
    pub quota_title: &'static str,
    pub quota_in_use: &'static str,
    pub quota_limit: &'static str,
    pub no_limit: &'static str,
    pub q_containers: &'static str,
    pub q_running: &'static str,
    pub q_cpus: &'static str,
    pub q_memory: &'static str,
    pub q_gpus: &'static str,
    pub q_ports: &'static str,
    pub q_builds: &'static str,
    pub q_storage: &'static str,
    pub nav_files: &'static str,
    pub files_title: &'static str,
    pub files_intro: &'static str,
    pub files_used: &'static str,
    pub files_root: &'static str,
    pub files_empty: &'static str,
    pub files_name: &'static str,
    pub files_size: &'static str,
    pub files_modified: &'static str,
    pub files_link: &'static str,
    pub files_other: &'static str,
    pub files_truncated: &'static str,
    pub files_upload_title: &'static str,
    pub files_delete: &'static str,
    pub files_no_storage: &'static str,
    pub download_title: &'static str,
    pub download_button: &'static str,
    pub download_hint: &'static str,
    pub notice_file_deleted: &'static str,
    pub cpus_label: &'static str,
    pub hint_cpus: &'static str,
    pub memory_label: &'static str,
    pub hint_memory: &'static str,
    pub gpus_label: &'static str,
    pub gpus_free: &'static str,
    pub quotas: &'static str,
    pub set_quota: &'static str,
    pub hint_set_quota: &'static str,
    pub save_quota: &'static str,
    pub user_label: &'static str,
    pub host_gpus: &'static str,
    pub err_internal: &'static str,
    pub misdirected_title: &'static str,
    pub misdirected: &'static str,
    pub misdirected_setting: &'static str,
    pub err_start_failed: &'static str,
    pub err_expired: &'static str,
    pub err_expiry: &'static str,
    pub expires: &'static str,
    pub hint_expires: &'static str,
    pub deleted_after: &'static str,
    pub idle_warning: &'static str,
    pub expiry_warning: &'static str,
    pub expired_note: &'static str,
    pub stopped_idle: &'static str,
    pub stopped_expired: &'static str,
    pub image_disk: &'static str,
    pub image_disk_users: &'static str,
}

impl Texts {
    /// A short sentence for an error code of [`crate::error::ApiError`].
    pub(crate) fn error(&self, code: &str) -> &'static str {
        self.error_known(code).unwrap_or(self.err_internal)
    }

    /// The sentence of an error code this language has one for.
    pub(crate) fn error_known(&self, code: &str) -> Option<&'static str> {
        Some(match code {
            "invalid_input" | "invalid_file_name" | "policy" | "malformed_json" => self.err_invalid,
            "invalid_credentials" => self.err_credentials,
            "unauthenticated" => self.err_unauthenticated,
            "forbidden" => self.err_forbidden,
            "not_found" | "image_not_found" => self.err_not_found,
            "conflict" | "image_in_use" | "container_state" | "engine_refused" => self.err_conflict,
            "container_start_failed" => self.err_start_failed,
            "container_expired" => self.err_expired,
            "invalid_expiry" => self.err_expiry,
            "host_network_failed" | "storage_unavailable" => self.err_unavailable,
            "ambiguous_name" => self.err_ambiguous,
            "payload_too_large" => self.err_too_large,
            "rate_limited" => self.err_rate_limited,
            "unavailable" => self.err_unavailable,
            "too_many_files" => self.err_too_many_files,
            "busy" => self.err_busy,
            "quota_exceeded" => self.err_quota,
            "image_quarantined" => self.err_quarantined,
            "image_scan_pending" => self.err_scan_pending,
            "internal" => self.err_internal,
            _ => return None,
        })
    }

    /// What a quota counts, as a word of this language.
    pub(crate) fn quota_word(&self, kind: crate::service::QuotaKind) -> &'static str {
        use crate::service::QuotaKind::*;
        match kind {
            Containers => self.q_containers,
            Running => self.q_running,
            Cpus => self.q_cpus,
            Memory => self.q_memory,
            Gpus => self.q_gpus,
            Ports => self.q_ports,
            Builds => self.q_builds,
            Storage => self.q_storage,
        }
    }

    /// The sentence for a failed pull's `reason`.
    pub(crate) fn pull_reason(&self, reason: &str) -> Option<&'static str> {
        Some(match reason {
            "not_found" => self.pull_not_found,
            "unauthorized" => self.pull_unauthorized,
            "unreachable" => self.pull_unreachable,
            "refused" => self.pull_refused,
            "failed" => self.pull_failed,
            _ => return None,
        })
    }

    /// A container or runner status in words. Exhaustive: a new status cannot be added
    /// without its words.
    pub(crate) fn status_word(&self, status: ContainerStatus) -> &'static str {
        match status {
            ContainerStatus::Creating => self.st_creating,
            ContainerStatus::Created => self.st_created,
            ContainerStatus::Running => self.st_running,
            ContainerStatus::Paused => self.st_paused,
            ContainerStatus::Restarting => self.st_restarting,
            ContainerStatus::Exited => self.st_exited,
            ContainerStatus::Dead => self.st_dead,
            ContainerStatus::Gone => self.st_gone,
            ContainerStatus::Unknown => self.st_unknown,
            ContainerStatus::Pending => self.st_pending,
            ContainerStatus::Stopped => self.st_stopped,
            ContainerStatus::Failed => self.st_failed,
        }
    }

    /// A VM's state (libvirt's word) in words, and its badge style.
    pub(crate) fn vm_status(&self, status: &str) -> (&'static str, &'static str) {
        match status {
            "running" => (self.st_running, "ok"),
            "paused" => (self.st_paused, "neutral"),
            "shutoff" => (self.vm_st_shutoff, "bad"),
            "crashed" => (self.vm_st_crashed, "bad"),
            "gone" => (self.st_gone, "bad"),
            _ => (self.st_unknown, "neutral"),
        }
    }

    /// A backend in words.
    pub(crate) fn backend_word(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Docker => self.be_docker,
            Backend::Kubernetes => self.be_kubernetes,
        }
    }

    pub(crate) fn notice(&self, key: &str) -> Option<&'static str> {
        Some(match key {
            "created" => self.notice_created,
            "started" => self.notice_started,
            "stopped" => self.notice_stopped,
            "deleted" => self.notice_deleted,
            "uploaded" => self.notice_uploaded,
            "saved" => self.notice_saved,
            "image-deleted" => self.notice_image_deleted,
            "ci-removed" => self.notice_ci_removed,
            "user-created" => self.notice_user_created,
            "reconciled" => self.notice_reconciled,
            "host-changed" => self.notice_host_changed,
            "quota-saved" => self.notice_saved,
            "image-released" => self.notice_saved,
            "file-deleted" => self.notice_file_deleted,
            _ => return None,
        })
    }
}

pub(super) static EN: Texts = Texts {
    skip: "Skip to content",
    nav_label: "Main",
    containers: "Containers",
    new_container: "New container",
    images: "Images",
    ci: "CI",
    admin: "Administration",
    logout: "Log out",
    signed_in_as: "Signed in as",
    language: "Language",
    other_language: "日本語",

    login_title: "Log in",
    login_intro: "Log in with your department account.",
    username: "User name",
    password: "Password",
    login_button: "Log in",

    name: "Name",
    image: "Image",
    backend: "Backend",
    host: "Host",
    status: "Status",
    ports: "Ports",
    created: "Created",
    actions: "Actions",
    owner: "Owner",
    env: "Environment",
    start: "Start",
    stop: "Stop",
    delete: "Delete",
    cancel: "Cancel",
    no_containers: "You have no containers yet.",
    no_ports: "none",
    no_containers_at_all: "There are no containers.",
    confirm_delete_title: "Delete container",
    confirm_delete: "Delete this container and everything in it? This cannot be undone.",

    new_title: "New container",
    hint_name: "Lowercase letters, digits and hyphens, starting with a letter. The full name is your user name, a hyphen and this.",
    hint_image: "An image you may use: your own, one shared with you, or a public one.",
    hint_env: "Optional. Space-separated KEY=value pairs, e.g. MODE=dev PORT=8080.",
    hint_ports: "Optional. Space-separated ports inside the container, e.g. 80 8080; each gets a host port.",
    hint_backend: "Where the container runs.",
    download_kubeconfig: "Download kubeconfig",
    hint_kubeconfig: "For kubectl on your own PC: it works in your own Kubernetes namespace only, and its token expires; download a new one when it does.",
    hint_kubectl: "Commands in a Kubernetes container run with kubectl and your kubeconfig; kubectl cp copies files into it.",
    create_button: "Create and start",
    form_has_errors: "Please correct the marked fields.",
    err_name: "Use lowercase letters, digits and hyphens, starting with a letter (full name at most 63 characters).",
    err_name_taken: "You already have a container with this name.",
    err_image: "This is not a valid image reference.",
    err_image_unknown: "There is no such image that you may use.",
    err_env: "Write KEY=value pairs separated by spaces; keys are letters, digits and underscores.",
    err_ports: "Write port numbers from 1 to 65535 separated by spaces, within the allowed count.",
    err_backend: "Choose one of the offered backends.",

    terminal_title: "Terminal",
    terminal_hint: "A shell in the container. Closing or reloading the page ends it and everything started in it.",
    terminal_not_running: "Start the container to open a terminal in it.",
    terminal_missing: "This console was built without its browser terminal: the server's administrators can install Debian's node-xterm and esbuild and build it again. Until then, run commands below or use `wm exec -it` from your own PC.",
    terminal_noscript: "The terminal needs JavaScript; without it, run commands with the form below.",
    terminal_connecting: "Connecting…",
    terminal_ended: "The session ended (exit code {code}).",
    terminal_closed: "The connection was closed.",
    terminal_failed: "Could not open a session: is the container still running?",
    terminal_again: "New session",

    vms_title: "Virtual machines",
    no_vms: "You have no virtual machines.",
    vm_template: "Template",
    vm_image: "Disk image",
    vm_power_on: "Power on",
    vm_power_off: "Power off",
    vm_console_title: "Serial console",
    vm_console_hint: "The VM's first serial port (ttyS0). Click here or press Tab to type; press Enter if nothing shows.",
    vm_not_running: "The VM is powered off; power it on to use its console.",
    vm_transcript: "Serial transcript",
    vm_no_transcript: "Nothing was written on the serial port yet.",
    vm_xml: "Domain XML (what runs)",
    vm_cli_hint: "Upload disk images and define VMs with wm vm upload and wm vm define.",
    vm_st_shutoff: "powered off",
    vm_st_crashed: "crashed",
    following: "Following the logs live…",
    exec_title: "Run a command",
    command: "Command",
    hint_command: "Run once by /bin/sh -c inside the container, without input, for at most {secs} seconds (then it is stopped), e.g. ls -l /tmp. Use the terminal for interactive programs such as top.",
    run: "Run",
    exit_code: "Exit code",
    stdout: "Standard output",
    stderr: "Standard error",
    timed_out: "The command was stopped at the time limit; this is its output until then.",
    truncated: "The output was cut at the size limit.",
    upload_title: "Upload files",
    directory: "Directory in the container",
    files: "Files",
    upload_button: "Upload",
    logs_title: "Recent logs",
    no_logs: "No output yet.",
    refresh: "Refresh",
    follow_logs: "Follow live (plain text)",

    own_images: "Your images",
    shared_images: "Shared by others",
    public_images: "Public images",
    others_images: "Other users' images (administrator view)",
    reference: "Reference",
    description: "Description",
    share_with_everyone: "Share with everyone",
    save: "Save",
    download: "Download",
    sif_converting: "Converting to SIF:",
    no_images: "None.",
    pull_title: "Pull an image",
    hint_pull: "A reference such as debian:12 or registry.example.org:5000/team/tool:1.",
    pull_button: "Pull",
    build_title: "Build an image",
    hint_build_name: "name or name:tag; the image goes under your own namespace.",
    dockerfile: "Dockerfile",
    context: "Or a build context",
    hint_context: "A tar or tar.gz archive with a Dockerfile at its top; used instead of the text above.",
    build_button: "Build",
    progress: "Progress",
    finished: "Finished.",
    failed: "Failed:",
    pull_not_found: "the image was not found in its registry; check the name and tag.",
    pull_unauthorized: "the registry requires a login; an administrator can configure one, or the image may not exist.",
    pull_unreachable: "the registry could not be reached; check its name, or try again later.",
    pull_refused: "the pull was refused by this installation's rules.",
    pull_failed: "the pull failed; the administrators can find the details in the log.",
    back_to_images: "Back to images",

    build_token_title: "Build token for GitLab",
    build_token_intro: "The pipeline sends your repository to whalemountain's build API with a personal token of scope build, which GitLab keeps as the masked CI/CD variable WM_TOKEN. The token can only build images.",
    build_token_create: "Create a build token",
    build_token_once: "Your new build token. It is shown only now; copy it:",
    build_token_store: "In your GitLab project open Settings → CI/CD → Variables, add the variable WM_TOKEN with this value, and tick \"Mask variable\".",
    back_to_ci: "Back to CI",
    ci_intro: "Set a runner token from your GitLab project and whalemountain runs a GitLab Runner for you. Its jobs build images through whalemountain.",
    gitlab_url: "GitLab address",
    runner_token: "Runner token",
    hint_runner_token: "From GitLab: Settings → CI/CD → Runners (glrt-...). It is not shown again.",
    runner: "Runner",
    not_configured: "Not configured.",
    no_runner: "No runner is running.",
    token_ends: "Token ending in",
    remove_ci: "Remove the runner",
    download_yml: "Download .gitlab-ci.yml",

    users: "Users",
    all_containers: "All containers",
    hosts: "Hosts",
    audit_log: "Recent audit log",
    role: "Role",
    source: "Source",
    at: "Time",
    actor: "Who",
    action: "Action",
    target: "Target",
    result: "Result",
    reachable: "reachable",
    unreachable: "unreachable",
    version: "Version",
    host_labels: "Labels",
    drained: "drained",
    drain: "Drain",
    resume: "Resume",
    hint_drain: "A drained host keeps its containers but gets no new ones.",
    notice_host_changed: "The host's placement was changed.",

    notice_created: "The container was created and started.",
    notice_started: "The container was started.",
    notice_stopped: "The container was stopped.",
    notice_deleted: "The container was deleted.",
    notice_uploaded: "The files were uploaded.",
    notice_saved: "Saved.",
    notice_image_deleted: "The image was deleted.",
    notice_ci_removed: "The runner was removed.",
    notice_user_created: "The account was created.",
    notice_reconciled: "The database was checked against the Docker host.",
    add_account: "Add a local account",
    hint_add_account: "For administrators and people without a department account; department accounts appear at their first login.",
    create_account: "Create the account",
    reconcile_now: "Check against Docker now",
    hint_reconcile: "Marks containers removed behind our back as gone and adopts ours that the database missed; it also runs by itself at a regular interval.",
    containers_unavailable: "The containers cannot be listed: the Docker host does not answer.",

    st_running: "running",
    st_exited: "stopped",
    st_created: "created",
    st_creating: "creating",
    st_paused: "paused",
    st_restarting: "restarting",
    st_dead: "dead",
    st_gone: "gone from the host",
    st_unknown: "host not answering",
    st_pending: "starting",
    st_stopped: "stopped",
    st_failed: "failed",
    be_docker: "Docker",
    be_kubernetes: "Kubernetes",
    error_title: "Something went wrong",
    err_invalid: "The input is not valid.",
    err_credentials: "Wrong user name or password.",
    err_unauthenticated: "Please log in.",
    err_forbidden: "You may not do this.",
    err_csrf: "This form has expired or came from another site. Reload the page and try again.",
    err_not_found: "Not found.",
    err_conflict: "This conflicts with the current state.",
    err_ambiguous: "Several users have a container of this name: open it from the list of all containers, which says whose it is.",
    err_too_large: "The upload is too large.",
    err_rate_limited: "Too many failed logins. Wait a minute and try again.",
    err_unavailable: "A service is unavailable right now. Try again later.",
    err_too_many_files: "The upload has too many files or fields. Send fewer files at once.",
    err_busy: "The server is busy with other uploads. Try again in a few seconds.",
    err_quota: "You are over one of your quotas: stop or delete something, or ask a teacher or an administrator.",
    err_quarantined: "This image is quarantined: its scan found something or could not run. Delete it, or ask an administrator to release it.",
    err_scan_pending: "This image is being scanned; try again when the scan has finished.",
    scan: "Scan",
    scan_pending: "being scanned",
    scan_clean: "clean",
    scan_flagged: "quarantined",
    scan_error: "not scanned (quarantined)",
    scan_released: "released by an administrator",
    release: "Release",
    quota_title: "Your quota",
    quota_in_use: "In use",
    quota_limit: "Quota",
    no_limit: "no limit",
    q_containers: "Containers",
    q_running: "Running",
    q_cpus: "CPUs",
    q_memory: "Memory",
    q_gpus: "GPUs",
    q_ports: "Host ports",
    q_builds: "Builds at once",
    q_storage: "Storage",
    nav_files: "Files",
    files_title: "Your files",
    files_intro: "Your storage keeps files when containers are deleted. Every container of yours finds it at",
    files_used: "In use",
    files_root: "Storage",
    files_empty: "This folder is empty.",
    files_name: "Name",
    files_size: "Size",
    files_modified: "Modified",
    files_link: "link (not followed)",
    files_other: "special file",
    files_truncated: "Only the first 10,000 entries are shown.",
    files_upload_title: "Upload into this folder",
    files_delete: "Delete",
    files_no_storage: "No host keeps storage for users now.",
    download_title: "Download a file or folder",
    download_button: "Download",
    download_hint: "A folder comes as a tar archive.",
    notice_file_deleted: "It was deleted.",
    cpus_label: "CPUs",
    hint_cpus: "e.g. 0.5 or 2; empty for the default.",
    memory_label: "Memory",
    hint_memory: "e.g. 512m or 2g; empty for the default.",
    gpus_label: "GPUs",
    gpus_free: "free now",
    quotas: "Quotas",
    set_quota: "Set a user's quota",
    hint_set_quota: "An empty field keeps the role's value; -1 is no limit. Memory in bytes.",
    save_quota: "Save quota",
    user_label: "User",
    host_gpus: "GPUs",
    err_internal: "An internal error occurred. The administrators can find the details in the log.",
    misdirected_title: "Not the console's address",
    misdirected: "The console is not served at this address: it is the address of the containers' published ports, and your browser would send your login to every one of them. Open the console at its own address.",
    misdirected_setting: "Administrators set the console's address with the setting",
    err_start_failed: "The container could not start: its image's command cannot be run.",
    err_expired: "This container has expired and cannot be started again. Ask whoever set its expiry to extend it; it will be deleted at the end of the grace period.",
    err_expiry: "The expiry must be a date and time in the future, like 2026-03-31T23:59:00+09:00.",
    expires: "Expires",
    hint_expires: "Optional: a date and time with its zone, like 2026-03-31T23:59:00+09:00. The container is stopped then, and deleted after the grace period.",
    deleted_after: "deleted at",
    idle_warning: "No activity: this container will be stopped at",
    expiry_warning: "This container expires at",
    expired_note: "Expired: stopped, and deleted at",
    stopped_idle: "Stopped for having no activity",
    stopped_expired: "Stopped because it expired",
    image_disk: "Images (disk)",
    image_disk_users: "users' images",
};

pub(super) static JA: Texts = Texts {
    skip: "本文へ移動",
    nav_label: "メイン",
    containers: "コンテナ",
    new_container: "新しいコンテナ",
    images: "イメージ",
    ci: "CI",
    admin: "管理",
    logout: "ログアウト",
    signed_in_as: "ログイン中:",
    language: "言語",
    other_language: "English",

    login_title: "ログイン",
    login_intro: "学科のアカウントでログインしてください。",
    username: "ユーザー名",
    password: "パスワード",
    login_button: "ログイン",

    name: "名前",
    image: "イメージ",
    backend: "バックエンド",
    host: "ホスト",
    status: "状態",
    ports: "ポート",
    created: "作成日時",
    actions: "操作",
    owner: "所有者",
    env: "環境変数",
    start: "起動",
    stop: "停止",
    delete: "削除",
    cancel: "キャンセル",
    no_containers: "コンテナはまだありません。",
    no_ports: "なし",
    no_containers_at_all: "コンテナはありません。",
    confirm_delete_title: "コンテナの削除",
    confirm_delete: "このコンテナを中身ごと削除しますか？元に戻せません。",

    new_title: "新しいコンテナ",
    hint_name: "英小文字・数字・ハイフン（先頭は英小文字）。正式な名前は「ユーザー名-この名前」になります。",
    hint_image: "使えるイメージ: 自分のもの、共有されたもの、公開イメージ。",
    hint_env: "省略可。KEY=value を空白で区切って入力（例: MODE=dev PORT=8080）。",
    hint_ports: "省略可。コンテナ内のポート番号を空白で区切って入力（例: 80 8080）。それぞれにホストのポートが割り当てられます。",
    hint_backend: "コンテナを動かす場所。",
    download_kubeconfig: "kubeconfig をダウンロード",
    hint_kubeconfig: "自分の PC の kubectl で使います。自分の Kubernetes 名前空間だけで使え、トークンには期限があります。切れたらもう一度ダウンロードしてください。",
    hint_kubectl: "Kubernetes のコンテナでのコマンド実行は kubectl と kubeconfig で行います。ファイルは kubectl cp でコピーできます。",
    create_button: "作成して起動",
    form_has_errors: "印の付いた項目を直してください。",
    err_name: "英小文字・数字・ハイフンで、先頭は英小文字にしてください（正式な名前は63文字以内）。",
    err_name_taken: "この名前のコンテナはすでにあります。",
    err_image: "イメージの指定が正しくありません。",
    err_image_unknown: "使用できるイメージの中に見つかりません。",
    err_env: "KEY=value を空白で区切って入力してください（キーは英数字と _）。",
    err_ports: "1〜65535 のポート番号を空白で区切って、上限の数以内で入力してください。",
    err_backend: "表示されているバックエンドから選んでください。",

    terminal_title: "ターミナル",
    terminal_hint: "コンテナ内のシェルです。ページを閉じるか再読み込みすると、シェルとその中で起動したものは終了します。",
    terminal_not_running: "ターミナルを開くには、コンテナを起動してください。",
    terminal_missing: "このコンソールはブラウザのターミナルなしでビルドされています。サーバーの管理者が Debian の node-xterm と esbuild をインストールして再ビルドすると使えます。それまでは下のフォームでコマンドを実行するか、自分の PC から `wm exec -it` を使ってください。",
    terminal_noscript: "ターミナルには JavaScript が必要です。JavaScript なしでは下のフォームでコマンドを実行してください。",
    terminal_connecting: "接続しています…",
    terminal_ended: "セッションが終了しました（終了コード {code}）。",
    terminal_closed: "接続が閉じられました。",
    terminal_failed: "セッションを開けませんでした。コンテナは起動していますか？",
    terminal_again: "新しいセッション",

    vms_title: "仮想マシン",
    no_vms: "仮想マシンはありません。",
    vm_template: "テンプレート",
    vm_image: "ディスクイメージ",
    vm_power_on: "電源オン",
    vm_power_off: "電源オフ",
    vm_console_title: "シリアルコンソール",
    vm_console_hint: "仮想マシンの最初のシリアルポート (ttyS0) です。ここをクリックするか Tab キーで入力できます。何も表示されないときは Enter キーを押してください。",
    vm_not_running: "仮想マシンの電源が切れています。コンソールを使うには電源を入れてください。",
    vm_transcript: "シリアルの記録",
    vm_no_transcript: "シリアルポートにはまだ何も出力されていません。",
    vm_xml: "ドメイン XML (実行される内容)",
    vm_cli_hint: "ディスクイメージのアップロードと仮想マシンの定義は wm vm upload と wm vm define で行います。",
    vm_st_shutoff: "電源オフ",
    vm_st_crashed: "クラッシュ",
    following: "ログをライブで表示しています…",
    exec_title: "コマンドの実行",
    command: "コマンド",
    hint_command: "コンテナ内で /bin/sh -c により 1 回だけ、入力なしで実行されます。{secs} 秒を過ぎると停止されます（例: ls -l /tmp）。top のように対話するプログラムにはターミナルを使ってください。",
    run: "実行",
    exit_code: "終了コード",
    stdout: "標準出力",
    stderr: "標準エラー出力",
    timed_out: "制限時間になったのでコマンドを停止しました。それまでの出力を表示しています。",
    truncated: "出力は上限の大きさで切り詰められました。",
    upload_title: "ファイルのアップロード",
    directory: "コンテナ内のディレクトリ",
    files: "ファイル",
    upload_button: "アップロード",
    logs_title: "最近のログ",
    no_logs: "まだ出力はありません。",
    refresh: "更新",
    follow_logs: "ライブで表示（テキスト）",

    own_images: "自分のイメージ",
    shared_images: "他のユーザーが共有しているイメージ",
    public_images: "公開イメージ",
    others_images: "他のユーザーのイメージ（管理者向け表示）",
    reference: "参照名",
    description: "説明",
    share_with_everyone: "全員に共有する",
    save: "保存",
    download: "ダウンロード",
    sif_converting: "SIF に変換中:",
    no_images: "ありません。",
    pull_title: "イメージの取得（pull）",
    hint_pull: "debian:12 や registry.example.org:5000/team/tool:1 のような参照名。",
    pull_button: "取得",
    build_title: "イメージのビルド",
    hint_build_name: "名前 または 名前:タグ。イメージは自分の名前空間に作られます。",
    dockerfile: "Dockerfile",
    context: "またはビルドコンテキスト",
    hint_context: "最上位に Dockerfile を含む tar または tar.gz。指定すると上のテキストの代わりに使われます。",
    build_button: "ビルド",
    progress: "進行状況",
    finished: "完了しました。",
    failed: "失敗しました:",
    pull_not_found: "レジストリにイメージが見つかりません。名前とタグを確認してください。",
    pull_unauthorized: "レジストリにログインが必要です。管理者がログインを設定できます。イメージが存在しない可能性もあります。",
    pull_unreachable: "レジストリに接続できません。名前を確認するか、しばらくしてからやり直してください。",
    pull_refused: "この環境の規則によりプルは拒否されました。",
    pull_failed: "プルに失敗しました。詳細は管理者がログで確認できます。",
    back_to_images: "イメージ一覧へ戻る",

    build_token_title: "GitLab 用のビルドトークン",
    build_token_intro: "パイプラインは、スコープ build の個人トークンを使ってリポジトリを whalemountain のビルド API に送ります。このトークンは GitLab のマスクされた CI/CD 変数 WM_TOKEN に保存します。イメージのビルドにしか使えません。",
    build_token_create: "ビルドトークンを作成",
    build_token_once: "新しいビルドトークンです。表示されるのは今だけなので、コピーしてください:",
    build_token_store: "GitLab プロジェクトの「設定 → CI/CD → 変数」で変数 WM_TOKEN をこの値で追加し、「変数をマスク」にチェックを入れてください。",
    back_to_ci: "CI に戻る",
    ci_intro: "GitLab プロジェクトのランナートークンを設定すると、whalemountain があなた専用の GitLab Runner を動かします。ジョブは whalemountain を通じてイメージをビルドします。",
    gitlab_url: "GitLab のアドレス",
    runner_token: "ランナートークン",
    hint_runner_token: "GitLab の 設定 → CI/CD → Runners で作成（glrt-...）。保存後は再表示されません。",
    runner: "ランナー",
    not_configured: "未設定です。",
    no_runner: "ランナーは動いていません。",
    token_ends: "トークンの末尾",
    remove_ci: "ランナーを削除",
    download_yml: ".gitlab-ci.yml をダウンロード",

    users: "ユーザー",
    all_containers: "すべてのコンテナ",
    hosts: "ホスト",
    audit_log: "最近の監査ログ",
    role: "役割",
    source: "種別",
    at: "日時",
    actor: "実行者",
    action: "操作",
    target: "対象",
    result: "結果",
    reachable: "接続可",
    unreachable: "接続不可",
    host_labels: "ラベル",
    drained: "割り当て停止中",
    drain: "割り当てを止める",
    resume: "割り当てを再開",
    hint_drain: "割り当てを止めたホストは、今のコンテナを残したまま新しいコンテナを受け付けません。",
    notice_host_changed: "ホストの割り当て設定を変更しました。",
    version: "バージョン",

    notice_created: "コンテナを作成して起動しました。",
    notice_started: "コンテナを起動しました。",
    notice_stopped: "コンテナを停止しました。",
    notice_deleted: "コンテナを削除しました。",
    notice_uploaded: "ファイルをアップロードしました。",
    notice_saved: "保存しました。",
    notice_image_deleted: "イメージを削除しました。",
    notice_ci_removed: "ランナーを削除しました。",
    notice_user_created: "アカウントを作成しました。",
    notice_reconciled: "データベースを Docker ホストと照合しました。",
    add_account: "ローカルアカウントの追加",
    hint_add_account: "管理者や学科アカウントを持たない人のためのものです。学科アカウントは初回ログイン時に作られます。",
    create_account: "アカウントを作成",
    reconcile_now: "今すぐ Docker と照合",
    hint_reconcile: "裏で削除されたコンテナを gone にし、データベースにない自分たちのコンテナを取り込みます。一定の間隔で自動でも実行されます。",
    containers_unavailable: "Docker ホストが応答しないため、コンテナを一覧できません。",

    st_running: "実行中",
    st_exited: "停止",
    st_created: "作成済み",
    st_creating: "作成中",
    st_paused: "一時停止",
    st_restarting: "再起動中",
    st_dead: "異常終了",
    st_gone: "ホストから消失",
    st_unknown: "ホスト応答なし",
    st_pending: "起動待ち",
    st_stopped: "停止",
    st_failed: "失敗",
    be_docker: "Docker",
    be_kubernetes: "Kubernetes",
    error_title: "エラーが発生しました",
    err_invalid: "入力が正しくありません。",
    err_credentials: "ユーザー名またはパスワードが違います。",
    err_unauthenticated: "ログインしてください。",
    err_forbidden: "この操作は許可されていません。",
    err_csrf: "このフォームは期限切れか、別のサイトから送信されました。ページを再読み込みしてやり直してください。",
    err_not_found: "見つかりません。",
    err_conflict: "現在の状態と矛盾するため実行できません。",
    err_ambiguous: "この名前のコンテナを持つユーザーが複数います。所有者がわかる全コンテナの一覧から開いてください。",
    err_too_large: "アップロードが大きすぎます。",
    err_rate_limited: "ログインの失敗が多すぎます。1分ほど待ってからやり直してください。",
    err_unavailable: "現在サービスを利用できません。しばらくしてからやり直してください。",
    err_too_many_files: "アップロードのファイルまたは項目が多すぎます。一度に送るファイルを減らしてください。",
    err_busy: "サーバーは他のアップロードを処理中です。数秒後にやり直してください。",
    err_quota: "割り当ての上限を超えています。コンテナを停止か削除するか、教員か管理者に相談してください。",
    err_quarantined: "このイメージは隔離されています（スキャンで検出されたか、スキャンを実行できませんでした）。削除するか、管理者に解除を依頼してください。",
    err_scan_pending: "このイメージはスキャン中です。スキャンが終わってから再度お試しください。",
    scan: "スキャン",
    scan_pending: "スキャン中",
    scan_clean: "問題なし",
    scan_flagged: "隔離中",
    scan_error: "未スキャン（隔離中）",
    scan_released: "管理者が解除済み",
    release: "隔離を解除",
    quota_title: "あなたの割り当て",
    quota_in_use: "使用中",
    quota_limit: "上限",
    no_limit: "上限なし",
    q_containers: "コンテナ",
    q_running: "実行中",
    q_cpus: "CPU",
    q_memory: "メモリ",
    q_gpus: "GPU",
    q_ports: "ホストポート",
    q_builds: "同時ビルド",
    q_storage: "ストレージ",
    nav_files: "ファイル",
    files_title: "ファイル",
    files_intro: "ストレージのファイルはコンテナを削除しても残ります。あなたのコンテナはどれもこの場所で使えます:",
    files_used: "使用量",
    files_root: "ストレージ",
    files_empty: "このフォルダは空です。",
    files_name: "名前",
    files_size: "サイズ",
    files_modified: "更新日時",
    files_link: "リンク（たどりません）",
    files_other: "特殊ファイル",
    files_truncated: "最初の 10,000 件だけを表示しています。",
    files_upload_title: "このフォルダにアップロード",
    files_delete: "削除",
    files_no_storage: "いまはユーザー用のストレージを持つホストがありません。",
    download_title: "ファイルやフォルダのダウンロード",
    download_button: "ダウンロード",
    download_hint: "フォルダは tar アーカイブとしてダウンロードされます。",
    notice_file_deleted: "削除しました。",
    cpus_label: "CPU 数",
    hint_cpus: "例: 0.5 や 2。空欄なら既定値。",
    memory_label: "メモリ",
    hint_memory: "例: 512m や 2g。空欄なら既定値。",
    gpus_label: "GPU",
    gpus_free: "現在の空き",
    quotas: "割り当て",
    set_quota: "ユーザーの割り当てを設定",
    hint_set_quota: "空欄はロールの値のまま、-1 は上限なし。メモリはバイト数。",
    save_quota: "割り当てを保存",
    user_label: "ユーザー",
    host_gpus: "GPU",
    err_internal: "内部エラーが発生しました。詳細は管理者がログで確認できます。",
    misdirected_title: "コンソールのアドレスではありません",
    misdirected: "このアドレスではコンソールを提供していません。これはコンテナの公開ポートに使うアドレスで、ここでログインするとブラウザがすべてのコンテナにログイン情報を送ってしまいます。コンソール専用のアドレスから開いてください。",
    misdirected_setting: "コンソールのアドレスは管理者が次の設定で指定します:",
    err_start_failed: "コンテナを起動できませんでした。イメージのコマンドを実行できません。",
    err_expired: "このコンテナは有効期限が切れているため、再び起動できません。期限を設定した人に延長を依頼してください。猶予期間が終わると削除されます。",
    err_expiry: "有効期限は 2026-03-31T23:59:00+09:00 のような未来の日時で指定してください。",
    expires: "有効期限",
    hint_expires: "任意: 2026-03-31T23:59:00+09:00 のようにタイムゾーン付きの日時で指定します。その時刻に停止され、猶予期間の後に削除されます。",
    deleted_after: "削除予定",
    idle_warning: "操作がないため、このコンテナは次の時刻に停止されます:",
    expiry_warning: "このコンテナの有効期限:",
    expired_note: "期限切れのため停止しました。削除予定:",
    stopped_idle: "操作がなかったため停止しました",
    stopped_expired: "有効期限が切れたため停止しました",
    image_disk: "イメージ (ディスク)",
    image_disk_users: "利用者のイメージ",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn language_choice() {
        assert_eq!(Lang::from_headers(&headers(&[])), Lang::En);
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "ja-JP,ja;q=0.9,en;q=0.8")])),
            Lang::Ja
        );
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "fr, en;q=0.5, ja;q=0.7")])),
            Lang::Ja
        );
        assert_eq!(
            Lang::from_headers(&headers(&[
                ("accept-language", "ja"),
                ("cookie", "a=b; wm_lang=en")
            ])),
            Lang::En
        );
    }

    /// Every status has words of its own in each language: the Japanese page never shows
    /// the English word, and no two statuses read alike.
    #[test]
    fn every_status_has_japanese_words() {
        for &s in ContainerStatus::ALL {
            let (en, ja) = (EN.status_word(s), JA.status_word(s));
            assert!(!en.is_empty(), "{s}");
            assert_ne!(en, ja, "{s} has no Japanese text");
            assert!(!ja.is_ascii(), "{s}: {ja:?} is not Japanese");
        }
        for t in [&EN, &JA] {
            let mut words: Vec<_> = ContainerStatus::ALL
                .iter()
                .map(|&s| (t.status_word(s), s))
                .collect();
            words.sort_by_key(|w| w.0);
            for w in words.windows(2) {
                // Docker's `exited` and Kubernetes' `stopped` both mean stopped.
                let same_meaning = [w[0].1, w[1].1]
                    .iter()
                    .all(|s| matches!(s, ContainerStatus::Exited | ContainerStatus::Stopped));
                assert!(
                    w[0].0 != w[1].0 || same_meaning,
                    "{:?} and {:?} read alike",
                    w[0],
                    w[1]
                );
            }
        }
        for &b in Backend::ALL {
            assert!(!EN.backend_word(b).is_empty() && !JA.backend_word(b).is_empty());
        }
    }

    /// A failed Kubernetes container reads as failed in Japanese and is styled as an error.
    #[test]
    fn failed_and_dead_are_errors_and_running_is_ok() {
        use crate::http::web::{status_badge, status_class};
        assert_eq!(status_class(ContainerStatus::Running), "ok");
        for s in [
            ContainerStatus::Failed,
            ContainerStatus::Dead,
            ContainerStatus::Gone,
        ] {
            assert_eq!(status_class(s), "bad", "{s}");
        }
        assert_eq!(status_class(ContainerStatus::Pending), "neutral");
        let html = status_badge(&JA, ContainerStatus::Failed).into_string();
        assert!(
            html.contains("badge bad") && html.contains("失敗"),
            "{html}"
        );
        assert!(html.contains(r#"data-status="failed""#), "{html}");
    }
}
