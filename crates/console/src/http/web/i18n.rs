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
    pub(crate) const ALL: [Lang; 2] = [Lang::En, Lang::Ja];

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

    /// What the error says, in this language: its sentence by its key (see
    /// [`crate::service::said`]), a quota's numbers, an image's users; `None` in English,
    /// where the error's own message says it, and for an error whose code says all.
    pub(crate) fn explain(self, e: &crate::service::Error) -> Option<String> {
        use crate::service::Error;
        if self == Lang::En {
            return None;
        }
        match e {
            Error::Quota {
                kind,
                limit,
                used,
                asked,
            } => Some(self.quota_sentence(*kind, *used, *limit, *asked)),
            Error::ImageInUse(users) => Some(super::in_use(self.t(), users)),
            e => {
                let (key, rule) = e.said()?;
                self.rule_sentence(key, rule.reason, &rule.params)
            }
        }
    }

    /// What the last line of a failed pull or build says (its `error`: `code`, `reason`,
    /// `params`), in this language: a pull's fixed sentence by its reason, a backend's
    /// sentence by its key (`None` in English, where the line's message says it).
    pub(crate) fn line_error(self, error: &serde_json::Value) -> Option<String> {
        let reason = error["reason"].as_str()?;
        if error["code"] == "pull_failed" {
            return self.t().pull_reason(reason).map(str::to_string);
        }
        let params: Vec<(&str, String)> = error["params"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?.to_string())))
            .collect();
        self.rule_sentence(crate::service::said::backend_code(reason)?, reason, &params)
    }

    /// The sentence keyed `key` (the field at fault, else the error's code) and `reason`,
    /// with its `params` in it; `None` for English (the error's own message says it) or an
    /// unknown key.
    fn rule_sentence(self, field: &str, reason: &str, params: &[(&str, String)]) -> Option<String> {
        let (_, _, template) = self
            .t()
            .rules
            .iter()
            .find(|(f, r, _)| *f == field && *r == reason)?;
        // One pass, so a value that looks like a place stays as it is.
        let mut out = String::new();
        let mut rest = *template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').unwrap_or(after.len());
            match params.iter().find(|(n, _)| *n == &after[..close]) {
                Some((name, value)) => out.push_str(self.word(name, value).unwrap_or(value)),
                None => out.push_str(&format!("{{{}}}", &after[..close])),
            }
            rest = after.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        out.push('。');
        Some(out)
    }

    /// A value that is itself a key, in this language: `near`, why an address is on the
    /// host's own network (`wm_docker::egress::Near`'s code).
    fn word(self, param: &str, value: &str) -> Option<&'static str> {
        Some(match (self, param, value) {
            (Lang::Ja, "near", "loopback") => "ホスト自身のアドレス（ループバック）です",
            (Lang::Ja, "near", "unspecified") => "未指定アドレスです",
            (Lang::Ja, "near", "link_local") => "リンクローカルアドレスです",
            (Lang::Ja, "near", "multicast") => "マルチキャストアドレスです",
            (Lang::Ja, "near", "broadcast") => "ブロードキャストアドレスです",
            (Lang::Ja, "near", "own_address") => "このホスト自身のアドレスの一つです",
            (Lang::Ja, "near", "container_network") => {
                "このホストのコンテナネットワーク上のアドレスです"
            }
            _ => return None,
        })
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
    // vm-forms:
    pub new_vm: &'static str,
    pub vm_new_title: &'static str,
    pub vm_define_title: &'static str,
    pub vm_define_hint: &'static str,
    pub vm_ports_hint: &'static str,
    pub vm_define_button: &'static str,
    pub vm_upload_title: &'static str,
    pub vm_upload_hint: &'static str,
    pub vm_image_file: &'static str,
    pub vm_images_title: &'static str,
    pub no_vm_images: &'static str,
    pub vm_format: &'static str,
    pub vm_disk_size: &'static str,
    pub vm_delete: &'static str,
    pub vm_confirm_delete: &'static str,
    pub vm_image_confirm_delete: &'static str,
    pub vm_image_delete_title: &'static str,
    pub notice_vm_defined: &'static str,
    pub notice_vm_image_uploaded: &'static str,
    pub notice_vm_deleted: &'static str,
    pub notice_vm_image_deleted: &'static str,
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
    pub nav_account: &'static str,
    pub nav_courses: &'static str,
    pub account_title: &'static str,
    pub change_password: &'static str,
    pub current_password: &'static str,
    pub new_password: &'static str,
    pub save_password: &'static str,
    pub hint_password_change: &'static str,
    pub ldap_password: &'static str,
    pub notice_password_changed: &'static str,
    pub err_wrong_password: &'static str,
    pub err_unknown_users: &'static str,
    pub err_unknown_course: &'static str,
    pub manage: &'static str,
    pub disabled_badge: &'static str,
    pub manage_user_title: &'static str,
    pub change_role: &'static str,
    pub save_role: &'static str,
    pub reset_password: &'static str,
    pub disable_account: &'static str,
    pub enable_account: &'static str,
    pub delete_account: &'static str,
    pub hint_disable: &'static str,
    pub hint_directory_account: &'static str,
    pub hint_delete_account: &'static str,
    pub delete_containers: &'static str,
    pub delete_images: &'static str,
    pub delete_storage: &'static str,
    pub confirm_title: &'static str,
    pub confirm_disable: &'static str,
    pub confirm_delete_account: &'static str,
    pub confirm_button: &'static str,
    pub notice_user_changed: &'static str,
    pub notice_user_deleted: &'static str,
    pub audit_filter: &'static str,
    pub audit_since: &'static str,
    pub audit_until: &'static str,
    pub audit_older: &'static str,
    pub audit_export: &'static str,
    pub audit_all: &'static str,
    pub audit_title: &'static str,
    pub source_addr: &'static str,
    pub detail_label: &'static str,
    pub courses_title: &'static str,
    pub no_courses: &'static str,
    pub create_course: &'static str,
    pub course_name: &'static str,
    pub course_term: &'static str,
    pub course_ends: &'static str,
    pub course_teacher: &'static str,
    pub members: &'static str,
    pub no_members: &'static str,
    pub enrol: &'static str,
    pub enrol_hint: &'static str,
    pub unenrol: &'static str,
    pub course_containers: &'static str,
    pub notice_enrolled: &'static str,
    pub notice_unenrolled: &'static str,
    pub course_only_teacher: &'static str,
    pub sessions_title: &'static str,
    pub tokens_title: &'static str,
    pub this_session: &'static str,
    pub end_session: &'static str,
    pub revoke: &'static str,
    pub last_used: &'static str,
    pub no_tokens: &'static str,
    pub notice_session_ended: &'static str,
    pub notice_token_revoked: &'static str,
    // newcomer2:
    /// The login page's first line when no directory is configured.
    pub login_intro_local: &'static str,
    /// The add-user form's hint when no directory is configured.
    pub hint_add_account_local: &'static str,
    pub err_env_quote: &'static str,
    pub err_env_backslash: &'static str,
    pub host_memory: &'static str,
    /// `{host}`, `{address}`, `{why}` (one of the three below).
    pub link_warning: &'static str,
    pub link_loopback: &'static str,
    pub link_unresolved: &'static str,
    pub link_short_name: &'static str,

    // newcomer1: refused forms shown on their page, upload, image deletion, failed pulls.
    /// Sentences of refused input by field and reason (see `Lang::rule_sentence`), with
    /// `{param}` places; English says them in the error's own message.
    pub rules: &'static [(&'static str, &'static str, &'static str)],
    pub back: &'static str,
    pub error_here: &'static str,
    pub create_dir: &'static str,
    /// `{size}` is the server's limit.
    pub upload_limit: &'static str,
    /// `{size}` is the files' size, `{limit}` the limit.
    pub upload_too_large: &'static str,
    pub files_not_kept: &'static str,
    pub confirm_image_delete_title: &'static str,
    pub confirm_image_delete: &'static str,
    pub image_used_by_another: &'static str,
    /// `{n}` is how many (more than one).
    pub image_used_by_others: &'static str,
    pub image_used_by_others_help: &'static str,
    pub image_used_shared_help: &'static str,
    pub image_used_by_own: &'static str,
    pub err_user_taken: &'static str,
    pub err_image_in_use: &'static str,

    // courses2:
    pub err_join_code: &'static str,
    pub join_title: &'static str,
    pub join_code: &'static str,
    pub join_button: &'static str,
    pub join_code_hint: &'static str,
    pub join_code_none: &'static str,
    pub join_code_new: &'static str,
    pub join_code_off: &'static str,
    pub notice_joined: &'static str,
    pub notice_join_code: &'static str,
    pub course_images: &'static str,
    pub no_course_images: &'static str,
    pub course_image_title: &'static str,
    pub course_image_note: &'static str,
    pub course_images_hint: &'static str,
    pub course_quota: &'static str,
    pub course_quota_none: &'static str,
    pub cpu_time: &'static str,
    pub memory_in_use: &'static str,
    pub age: &'static str,
    pub view_link: &'static str,
    pub read_only_note: &'static str,

    // i18n: the transport's own refusals (`ApiError`), whose sentence says all.
    pub err_media_type: &'static str,
    pub err_method: &'static str,
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
            "not_found" | "image_not_found" | "template_not_found" | "file_not_found" => {
                self.err_not_found
            }
            // i18n:
            "invalid_image"
            | "unsupported_for_backend"
            | "websocket_required"
            | "backend_unavailable" => self.err_invalid,
            "unsupported_media_type" => self.err_media_type,
            "method_not_allowed" => self.err_method,
            "conflict" | "container_state" | "engine_refused" => self.err_conflict,
            "image_in_use" => self.err_image_in_use,
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
            "wrong_password" => self.err_wrong_password,
            "unknown_users" => self.err_unknown_users,
            "unknown_course" => self.err_unknown_course,
            "invalid_join_code" => self.err_join_code,
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
            "password-changed" => self.notice_password_changed,
            "session-ended" => self.notice_session_ended,
            "token-revoked" => self.notice_token_revoked,
            "user-changed" => self.notice_user_changed,
            "user-deleted" => self.notice_user_deleted,
            "enrolled" => self.notice_enrolled,
            "unenrolled" => self.notice_unenrolled,
            "joined" => self.notice_joined,
            "join-code" => self.notice_join_code,
            "vm-defined" => self.notice_vm_defined,
            "vm-image-uploaded" => self.notice_vm_image_uploaded,
            "vm-deleted" => self.notice_vm_deleted,
            "vm-image-deleted" => self.notice_vm_image_deleted,
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
    hint_env: "Optional. KEY=value pairs separated by spaces, e.g. MODE=dev PORT=8080; quote a value with spaces as in a shell: MSG=\"hello world\".",
    hint_ports: "Optional. Space-separated ports inside the container, e.g. 80 8080; each gets a host port.",
    hint_backend: "Where the container runs. Docker, the usual choice: on one of the department's machines, with a terminal on its page here. Kubernetes: in the department's cluster, with a web address of its own; you reach its shell with kubectl.",
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
    vm_cli_hint: "From your own PC: wm vm upload, wm vm define and wm vm console.",
    vm_st_shutoff: "powered off",
    vm_st_crashed: "crashed",
    // vm-forms:
    new_vm: "New virtual machine",
    vm_new_title: "New virtual machine",
    vm_define_title: "Define a VM",
    vm_define_hint: "The VM gets its own disk, made from the image (the image itself never changes), and is defined powered off.",
    vm_ports_hint: "Optional. Space-separated ports inside the VM, e.g. 22 80; each gets a host port.",
    vm_define_button: "Define",
    vm_upload_title: "Upload a disk image",
    vm_upload_hint: "A qcow2 or raw image made on your PC (for example with qemu-img convert -O qcow2), whole in itself: an image that names a backing file is refused. Put console=ttyS0 on its kernel command line to use the serial console.",
    vm_image_file: "Image file",
    vm_images_title: "Your disk images",
    no_vm_images: "You have no disk images yet: upload one first.",
    vm_format: "Format",
    vm_disk_size: "Disk size",
    vm_delete: "Delete VM",
    vm_confirm_delete: "Delete this virtual machine? It is powered off, and its disk and serial transcript are deleted with it; the disk image it was made from stays.",
    vm_image_confirm_delete: "Delete this disk image? VMs made from it must be deleted first.",
    vm_image_delete_title: "Delete disk image",
    notice_vm_defined: "The virtual machine was defined. Power it on when you are ready.",
    notice_vm_image_uploaded: "The disk image was uploaded and checked.",
    notice_vm_deleted: "The virtual machine and its disk were deleted.",
    notice_vm_image_deleted: "The disk image was deleted.",
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
    nav_account: "Account",
    nav_courses: "Courses",
    account_title: "Your account",
    change_password: "Change your password",
    current_password: "Current password",
    new_password: "New password (8 characters or more)",
    save_password: "Change password",
    hint_password_change: "Your other sessions end; this one and your tokens go on.",
    ldap_password: "Your account is the department directory's (LDAP): change its password with the department's account service, not here.",
    notice_password_changed: "Your password was changed.",
    err_wrong_password: "The current password is not right.",
    err_unknown_users: "Some of those user names have no account; nobody was enrolled.",
    err_unknown_course: "That is not a course of yours.",
    manage: "Manage",
    disabled_badge: "disabled",
    manage_user_title: "Manage an account",
    change_role: "Change the role",
    save_role: "Save the role",
    reset_password: "Reset the password",
    disable_account: "Disable the account",
    enable_account: "Enable the account",
    delete_account: "Delete the account",
    hint_disable: "Their sessions and tokens are revoked at once and their running containers stopped.",
    hint_directory_account: "A directory (LDAP) account's role and password come from the directory.",
    hint_delete_account: "Choose what becomes of what they hold. While they have containers, the account stays unless its containers go too.",
    delete_containers: "Delete their containers",
    delete_images: "Delete their images",
    delete_storage: "Delete their storage and its files",
    confirm_title: "Please confirm",
    confirm_disable: "Disable this account now?",
    confirm_delete_account: "Delete this account? This cannot be undone.",
    confirm_button: "Yes, do it",
    notice_user_changed: "The account was changed.",
    notice_user_deleted: "The account was deleted.",
    audit_filter: "Filter",
    audit_since: "From (RFC 3339)",
    audit_until: "Until (RFC 3339)",
    audit_older: "Older entries",
    audit_export: "Export as JSON lines",
    audit_all: "The whole audit log, with filters",
    audit_title: "Audit log",
    source_addr: "Address",
    detail_label: "Detail",
    courses_title: "Courses",
    no_courses: "No courses yet.",
    create_course: "Create a course",
    course_name: "Course name",
    course_term: "Term",
    course_ends: "Ends (RFC 3339, optional)",
    course_teacher: "Teacher",
    members: "Members",
    no_members: "Nobody is enrolled yet.",
    enrol: "Enrol",
    enrol_hint: "User names, separated by spaces or new lines. Everyone must already have an account (directory users: after their first login).",
    unenrol: "Remove",
    course_containers: "Members' containers",
    notice_enrolled: "Enrolled.",
    notice_unenrolled: "Removed from the course.",
    course_only_teacher: "Only the course's teacher sees its members' containers.",
    sessions_title: "Your sessions",
    tokens_title: "Your personal tokens",
    this_session: "this session",
    end_session: "End",
    revoke: "Revoke",
    last_used: "Last used",
    no_tokens: "No personal tokens.",
    notice_session_ended: "The session was ended.",
    notice_token_revoked: "The token was revoked.",
    // newcomer2:
    login_intro_local: "Log in with the user name and password you were given.",
    hint_add_account_local: "Every account is one made here: give each person the name and password to log in with.",
    err_env_quote: "A quote (\" or ') is opened but never closed: close it, as in MSG=\"hello world\", or put a backslash before it.",
    err_env_backslash: "The environment ends with a backslash (\\): remove it, or put the character it keeps after it.",
    host_memory: "Memory (committed / total)",
    link_warning: "Links to the ports of containers on {host} point at {address}, which {why}. Students' computers may not reach it: set WM_HOST_ADDRESS on that host to a name or address they can reach.",
    link_loopback: "is this machine itself (loopback)",
    link_unresolved: "does not resolve, not even from the console",
    link_short_name: "is a name without a domain, which other computers may not find",

    // newcomer1:
    rules: &[],
    back: "Back",
    error_here: "This was not done:",
    create_dir: "Create the directory if it does not exist",
    upload_limit: "At most {size} in all.",
    upload_too_large: "These files are {size} together, more than the limit of {limit}. Choose fewer or smaller files.",
    files_not_kept: "Choose the files again: a browser does not keep them.",
    confirm_image_delete_title: "Delete image",
    confirm_image_delete: "Delete this image from the server? Containers can no longer be made from it. This cannot be undone.",
    image_used_by_another: "A container of another user uses this image, so it cannot be deleted now.",
    image_used_by_others: "{n} containers of other users use this image, so it cannot be deleted now.",
    image_used_by_others_help: "It can be deleted once no container uses it: ask your classmates, or wait until their containers expire.",
    image_used_shared_help: "It is shared: stop sharing it (on the images page) so that nobody makes new containers from it.",
    image_used_by_own: "Your containers use this image: delete them first.",
    err_user_taken: "An account with this name exists already.",
    err_image_in_use: "The image is in use.",

    // courses2:
    err_join_code: "That join code is not valid. Check it with your teacher.",
    join_title: "Join a course",
    join_code: "Join code",
    join_button: "Join",
    join_code_hint: "Give this code to your class: whoever enters it on the Courses page is enrolled.",
    join_code_none: "No join code: only you enrol people.",
    join_code_new: "New join code",
    join_code_off: "Turn the join code off",
    notice_joined: "You are enrolled in the course.",
    notice_join_code: "The join code was changed.",
    course_images: "The course's images",
    no_course_images: "No images are shared with this course yet.",
    course_image_title: "Name in the course",
    course_image_note: "Note",
    course_images_hint: "Your courses' images, as your teachers named them:",
    course_quota: "Members' quota",
    course_quota_none: "The members have their role's quota.",
    cpu_time: "CPU time",
    memory_in_use: "Memory in use",
    age: "Age",
    view_link: "View",
    read_only_note: "A member's container, read only: no commands, terminal or files.",

    // i18n:
    err_media_type: "The body is not of the type this address takes.",
    err_method: "This address does not take that method.",
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
    hint_env: "省略可。KEY=value を空白で区切って入力（例: MODE=dev PORT=8080）。空白を含む値はシェルと同じく引用符で囲みます（MSG=\"hello world\"）。",
    hint_ports: "省略可。コンテナ内のポート番号を空白で区切って入力（例: 80 8080）。それぞれにホストのポートが割り当てられます。",
    hint_backend: "コンテナを動かす場所です。Docker（通常はこちら）: 学科のマシンで動き、このコンソールのページからターミナルを使えます。Kubernetes: 学科のクラスターで動き、専用の Web アドレスが付きます。シェルには kubectl で入ります。",
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
    vm_cli_hint: "自分の PC からは wm vm upload、wm vm define、wm vm console を使えます。",
    vm_st_shutoff: "電源オフ",
    vm_st_crashed: "クラッシュ",
    // vm-forms:
    new_vm: "新しい仮想マシン",
    vm_new_title: "新しい仮想マシン",
    vm_define_title: "仮想マシンの定義",
    vm_define_hint: "仮想マシンにはイメージから作った専用のディスクが付きます（イメージ自体は変わりません）。電源オフの状態で定義されます。",
    vm_ports_hint: "省略可。仮想マシン内のポート番号を空白で区切って入力（例: 22 80）。それぞれにホストのポートが割り当てられます。",
    vm_define_button: "定義する",
    vm_upload_title: "ディスクイメージのアップロード",
    vm_upload_hint: "自分の PC で作った qcow2 または raw のイメージ（例: qemu-img convert -O qcow2 で作成）で、それ自体で完結しているもの。バッキングファイルを参照するイメージは受け付けません。シリアルコンソールを使うには、カーネルのコマンドラインに console=ttyS0 を入れてください。",
    vm_image_file: "イメージファイル",
    vm_images_title: "あなたのディスクイメージ",
    no_vm_images: "ディスクイメージはまだありません。まずアップロードしてください。",
    vm_format: "形式",
    vm_disk_size: "ディスクサイズ",
    vm_delete: "仮想マシンを削除",
    vm_confirm_delete: "この仮想マシンを削除しますか？電源が切られ、ディスクとシリアルの記録も一緒に削除されます。元のディスクイメージは残ります。",
    vm_image_confirm_delete: "このディスクイメージを削除しますか？このイメージから作った仮想マシンを先に削除してください。",
    vm_image_delete_title: "ディスクイメージを削除",
    notice_vm_defined: "仮想マシンを定義しました。準備ができたら電源を入れてください。",
    notice_vm_image_uploaded: "ディスクイメージをアップロードし、確認しました。",
    notice_vm_deleted: "仮想マシンとそのディスクを削除しました。",
    notice_vm_image_deleted: "ディスクイメージを削除しました。",
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
    nav_account: "アカウント",
    nav_courses: "コース",
    account_title: "あなたのアカウント",
    change_password: "パスワードの変更",
    current_password: "現在のパスワード",
    new_password: "新しいパスワード（8文字以上）",
    save_password: "パスワードを変更",
    hint_password_change: "ほかのセッションは終了します。このセッションとトークンはそのまま使えます。",
    ldap_password: "このアカウントは学科のディレクトリ（LDAP）のものです。パスワードはここではなく、学科のアカウントサービスで変更してください。",
    notice_password_changed: "パスワードを変更しました。",
    err_wrong_password: "現在のパスワードが正しくありません。",
    err_unknown_users: "アカウントのないユーザー名が含まれているため、誰も登録されませんでした。",
    err_unknown_course: "あなたのコースではありません。",
    manage: "管理",
    disabled_badge: "無効",
    manage_user_title: "アカウントの管理",
    change_role: "ロールの変更",
    save_role: "ロールを保存",
    reset_password: "パスワードのリセット",
    disable_account: "アカウントを無効にする",
    enable_account: "アカウントを有効にする",
    delete_account: "アカウントを削除",
    hint_disable: "セッションとトークンはすぐに失効し、実行中のコンテナは停止します。",
    hint_directory_account: "ディレクトリ（LDAP）アカウントのロールとパスワードはディレクトリで決まります。",
    hint_delete_account: "保有物の扱いを選んでください。コンテナが残っている間は、コンテナも削除しない限りアカウントは削除されません。",
    delete_containers: "コンテナを削除する",
    delete_images: "イメージを削除する",
    delete_storage: "ストレージとそのファイルを削除する",
    confirm_title: "確認してください",
    confirm_disable: "このアカウントを今すぐ無効にしますか？",
    confirm_delete_account: "このアカウントを削除しますか？元に戻せません。",
    confirm_button: "実行する",
    notice_user_changed: "アカウントを変更しました。",
    notice_user_deleted: "アカウントを削除しました。",
    audit_filter: "絞り込み",
    audit_since: "開始（RFC 3339）",
    audit_until: "終了（RFC 3339）",
    audit_older: "さらに古い記録",
    audit_export: "JSON Lines で書き出す",
    audit_all: "監査ログ全体（絞り込み可）",
    audit_title: "監査ログ",
    source_addr: "アドレス",
    detail_label: "詳細",
    courses_title: "コース",
    no_courses: "コースはまだありません。",
    create_course: "コースを作成",
    course_name: "コース名",
    course_term: "学期",
    course_ends: "終了日時（RFC 3339、任意）",
    course_teacher: "担当教員",
    members: "受講者",
    no_members: "受講者はまだいません。",
    enrol: "登録",
    enrol_hint: "ユーザー名を空白または改行で区切って入力します。全員にアカウントが必要です（ディレクトリのユーザーは初回ログイン後）。",
    unenrol: "外す",
    course_containers: "受講者のコンテナ",
    notice_enrolled: "登録しました。",
    notice_unenrolled: "コースから外しました。",
    course_only_teacher: "受講者のコンテナはコースの担当教員だけが見られます。",
    sessions_title: "ログイン中のセッション",
    tokens_title: "個人用トークン",
    this_session: "このセッション",
    end_session: "終了",
    revoke: "失効させる",
    last_used: "最終使用",
    no_tokens: "個人用トークンはありません。",
    notice_session_ended: "セッションを終了しました。",
    notice_token_revoked: "トークンを失効させました。",
    // newcomer2:
    login_intro_local: "配布されたユーザー名とパスワードでログインしてください。",
    hint_add_account_local: "アカウントはすべてここで作ります。ログインに使う名前とパスワードを各自に伝えてください。",
    err_env_quote: "引用符（\" または '）が閉じられていません。MSG=\"hello world\" のように閉じるか、引用符の前にバックスラッシュを付けてください。",
    err_env_backslash: "環境変数の末尾にバックスラッシュ（\\）があります。削除するか、後ろに続ける文字を書いてください。",
    host_memory: "メモリ（割当済み / 合計）",
    link_warning: "{host} のコンテナのポートへのリンクは {address} を指していますが、これは{why}。学生のコンピュータからは届かない可能性があります。そのホストの WM_HOST_ADDRESS に、学生から届く名前かアドレスを設定してください。",
    link_loopback: "このマシン自身（ループバック）です",
    link_unresolved: "コンソールからも名前解決できません",
    link_short_name: "ドメインのない名前で、他のコンピュータからは見つからない可能性があります",

    // newcomer1:
    rules: &[
        ("name", "empty", "コンテナ名が空です"),
        ("name", "too_long", "コンテナ名が{max}文字を超えています"),
        ("name", "bad_char", "コンテナ名「{value}」に使えない文字「{char}」があります。英小文字・数字・「-」を使ってください"),
        ("name", "bad_edge", "コンテナ名「{value}」は英小文字か数字で始め、英小文字か数字で終えてください"),
        ("name", "full_too_long", "コンテナの正式名「{value}」が{max}文字を超えます。名前を{short_max}文字以内にしてください"),
        ("name", "not_a_name", "「{value}」はコンテナ名ではありません"),
        ("name", "vm_empty", "VM の名前が空です"),
        ("name", "vm_too_long", "VM の名前が{max}文字を超えています"),
        ("name", "vm_bad_char", "VM の名前「{value}」に使えない文字「{char}」があります。英小文字・数字・「-」を使ってください"),
        ("name", "vm_bad_edge", "VM の名前「{value}」は英小文字か数字で始め、英小文字か数字で終えてください"),
        ("username", "empty", "ユーザー名が空です"),
        ("username", "too_long", "ユーザー名が{max}文字を超えています"),
        ("username", "bad_start", "ユーザー名「{value}」は英小文字で始めてください"),
        ("username", "bad_char", "ユーザー名「{value}」に使えない文字「{char}」があります。英小文字・数字・「-」「_」「.」を使ってください"),
        ("password", "length", "パスワードは8〜{max}文字にしてください"),
        ("new", "length", "パスワードは8〜{max}文字にしてください"),
        ("role", "unknown", "「{value}」という役割はありません。student・teacher・admin のいずれかにしてください"),
        ("backend", "unknown", "「{value}」というバックエンドはありません。{choices} のいずれかにしてください"),
        ("scope", "unknown", "「{value}」というスコープはありません。{choices} のいずれかにしてください"),
        ("env", "no_equals", "「{value}」は KEY=value の形ではありません（「=」がありません）"),
        ("env", "no_key", "「{value}」は「=」の前に変数名がありません"),
        ("env", "key_too_long", "変数名「{value}」が{max}文字を超えています"),
        ("env", "bad_key", "「{value}」は変数名に使えません。英字・数字・「_」を使い、数字で始めないでください"),
        ("env", "value_too_long", "{key} の値が{max}バイトを超えています"),
        ("env", "value_nul", "{key} の値に NUL 文字があります"),
        ("env", "twice", "変数 {key} が2回指定されています"),
        ("env", "too_many", "環境変数が{max}個を超えています"),
        ("ports", "out_of_range", "ポート {port} は 1〜65535 の範囲外です"),
        ("ports", "not_a_number", "「{value}」はポート番号ではありません"),
        ("ports", "twice", "ポート {port} が2回指定されています"),
        ("ports", "too_many", "ポートが{max}個を超えています。もっと必要なら管理者に相談してください"),
        ("image", "empty", "イメージの参照が空です"),
        ("image", "digest", "「{value}」は正しいイメージ参照ではありません。ダイジェストは sha256:<16進数64桁> です"),
        ("image", "too_long", "「{value}」は正しいイメージ参照ではありません。255文字を超えています"),
        ("image", "tag", "「{value}」は正しいイメージ参照ではありません。タグは英数字・「_」「.」「-」の1〜128文字です"),
        ("image", "path", "「{value}」は正しいイメージ参照ではありません。名前の各部分は英小文字と数字で、「.」「_」「__」「-」で区切ります"),
        ("image", "registry_port", "「{value}」は正しいイメージ参照ではありません。レジストリのポートは数字です"),
        ("image", "registry", "「{value}」は正しいイメージ参照ではありません。レジストリが正しいホスト名ではありません"),
        ("image", "unresolvable", "レジストリ {registry} に接続できません（名前を解決できません）。このサーバーはインターネットにつながっていないかもしれません。サーバーにあるイメージを使うか、管理者に相談してください"),
        ("path", "relative", "ディレクトリはコンテナ内の絶対パスにしてください（例: /tmp）"),
        ("path", "too_long", "パスが長すぎるか、NUL 文字があります"),
        ("path", "dotdot", "パスに「..」は使えません"),
        ("path", "missing", "ディレクトリ {path} はコンテナにありません。「ディレクトリがなければ作成する」を選ぶと作成します"),
        ("path", "not_a_directory", "{path} の途中にディレクトリでないものがあります"),
        ("file", "none", "ファイルが選ばれていません"),
        ("file", "twice", "ファイル {name} が2回指定されています"),
        ("file", "bad_name", "ファイル名「{value}」は使えません。目的のディレクトリの中に収まる名前にしてください"),
        ("containers", "not_whole", "コンテナ数は整数で指定してください（-1 は無制限）"),
        ("running", "not_whole", "同時に動かせるコンテナ数は整数で指定してください（-1 は無制限）"),
        ("cpus", "not_a_number", "CPU は数で指定してください（-1 は無制限）"),
        ("memory_bytes", "not_whole", "メモリはバイト数（整数）で指定してください（-1 は無制限）"),
        ("gpus", "not_whole", "GPU 数は整数で指定してください（-1 は無制限）"),
        ("ports", "not_whole", "ポート数は整数で指定してください（-1 は無制限）"),
        ("builds", "not_whole", "同時ビルド数は整数で指定してください（-1 は無制限）"),
        ("description", "too_long", "説明は2000文字以内で、改行以外の制御文字は使えません"),        // i18n: every other sentence an error says (see `crate::service::said`), by the field
        // at fault or, without one, by the error's code.
        ("name", "token_name", "トークン名は1〜64文字の印字可能な文字にしてください"),
        ("name", "printable", "名前は{min}〜{max}文字の印字可能な文字にしてください"),
        ("name", "no_field", "フォームに name（イメージ名）の欄がありません"),
        ("name", "no_image_name", "イメージに名前を付けてください（例: web、web:1）"),
        ("name", "image_path", "「{value}」には名前とタグだけを書いてください。イメージは {prefix} の下に置かれます"),
        ("name", "image_too_long", "イメージ名「{value}」が正しくありません。イメージの参照全体で255文字を超えています"),
        ("name", "digest", "イメージ名「{value}」が正しくありません。ダイジェストは sha256:<16進数64桁> です"),
        ("name", "tag", "イメージ名「{value}」が正しくありません。タグは英数字・「_」「.」「-」の1〜128文字です"),
        ("name", "path", "イメージ名「{value}」が正しくありません。英小文字と数字を使い、「.」「_」「__」「-」で区切ってください"),
        ("name", "registry_port", "イメージ名「{value}」が正しくありません。レジストリのポートは数字です"),
        ("name", "registry", "イメージ名「{value}」が正しくありません。レジストリが正しいホスト名ではありません"),
        ("current", "too_long", "現在のパスワードが長すぎます"),
        ("current", "wrong", "現在のパスワードが正しくありません"),
        ("status", "unknown", "「{value}」という状態はありません。{choices} のいずれかにしてください"),
        ("stop_reason", "unknown", "「{value}」という停止理由はありません。{choices} のいずれかにしてください"),
        ("backend", "kubernetes_off", "このサーバーでは Kubernetes バックエンドが有効になっていません"),
        ("env", "unclosed", "引用符 {quote} が閉じられていません。閉じるか、前にバックスラッシュを付けてください"),
        ("env", "trailing_backslash", "環境変数の末尾にバックスラッシュがあります"),
        ("env", "shape", "環境変数は、空白で区切った KEY=value の並び（MSG=\"hello world\" のようにシェルと同じく引用できます）か、\"KEY=value\" の文字列の配列で指定してください"),
        ("buildarg", "no_equals", "ビルド引数「{value}」は KEY=value の形ではありません（「=」がありません）"),
        ("buildarg", "no_key", "ビルド引数「{value}」は「=」の前に名前がありません"),
        ("buildarg", "key_too_long", "ビルド引数の名前「{value}」が{max}文字を超えています"),
        ("buildarg", "bad_key", "「{value}」はビルド引数の名前に使えません。英字・数字・「_」を使い、数字で始めないでください"),
        ("buildarg", "value_too_long", "ビルド引数 {key} の値が{max}バイトを超えています"),
        ("buildarg", "value_nul", "ビルド引数 {key} の値に NUL 文字があります"),
        ("buildarg", "reserved", "ビルド引数 {key} はコンソールが設定するため、指定できません"),
        ("ports", "shape", "ポートは、空白で区切ったポート番号の並びか、整数の配列で指定してください"),
        ("image", "egress_invalid", "このイメージは取得できません（{why}）"),
        ("host", "unknown", "「{value}」というホストはありません。すべてのホストに対して行うには指定しないでください"),
        ("path", "part_too_long", "パスの一部が255文字を超えています"),
        ("path", "no_field", "フォームに path（書き込み先のディレクトリ）の欄がありません"),
        ("file", "too_many_parts", "フォームの項目が多すぎます。一度に送れるのはファイル{max}個とほかの項目{fields}個までです"),
        ("file", "empty", "ファイルが空です"),
        ("file", "refused", "このファイルは VM イメージとして使えません（{why}）"),
        ("cmd", "empty", "コマンドが空です"),
        ("cmd", "shape", "コマンドは文字列1つか、文字列の配列で指定してください"),
        ("cmd", "too_long", "コマンドが128 KiB または引数1024個を超えています"),
        ("cmd", "nul", "コマンドに NUL 文字があります"),
        ("cols", "out_of_range", "端末の列数は1〜1000にしてください"),
        ("rows", "out_of_range", "端末の行数は1〜1000にしてください"),
        ("cpus", "not_cpus", "CPU は0.01以上の数で指定してください（例: 0.5、2）"),
        ("cpus", "out_of_range", "CPU は0〜4096で指定してください（-1 は無制限）"),
        ("cpus", "over_max", "1つのコンテナの CPU は{max}個までです"),
        ("memory", "not_a_size", "メモリは 512m や 2g のようなサイズか、バイト数で指定してください"),
        ("memory", "bad_size", "メモリ「{value}」はサイズではありません。512m や 2g のように指定してください"),
        ("memory", "too_little", "コンテナのメモリは16 MiB 以上にしてください"),
        ("memory", "over_max", "1つのコンテナのメモリは{max}までです"),
        ("gpus", "over_max", "1つのコンテナの GPU は{max}個までです"),
        ("containers", "below_minus_one", "コンテナ数は0以上にしてください（-1 は無制限）"),
        ("running", "below_minus_one", "同時に動かせるコンテナ数は0以上にしてください（-1 は無制限）"),
        ("memory_bytes", "below_minus_one", "メモリは0以上にしてください（-1 は無制限）"),
        ("gpus", "below_minus_one", "GPU 数は0以上にしてください（-1 は無制限）"),
        ("ports", "below_minus_one", "ポート数は0以上にしてください（-1 は無制限）"),
        ("builds", "below_minus_one", "同時ビルド数は0以上にしてください（-1 は無制限）"),
        ("storage_bytes", "below_minus_one", "ストレージは0以上にしてください（-1 は無制限）"),
        ("requires", "shape", "ホストラベルは、空白で区切ったラベルの並びか、その配列で指定してください"),
        ("requires", "labels", "ホストラベルは16個まで、英数字・「-」「_」「.」で書いてください"),
        ("requires", "docker_only", "ホストラベルは Docker のホストにだけ使えます"),
        ("host_labels", "shape", "ホストラベルは、空白で区切ったラベルの並びか、その配列で指定してください"),
        ("host_labels", "labels", "ホストラベルは16個まで、英数字・「-」「_」「.」で書いてください"),
        ("expires_at", "not_a_time", "有効期限「{value}」は 2026-03-31T23:59:00+09:00 のような日時ではありません"),
        ("expires_at", "past", "指定された日時はすでに過ぎています"),
        ("course", "not_enrolled", "ID が {id} のコースに登録されていません"),
        ("courses", "not_yours", "ID が {id} のコースはあなたのコースではありません"),
        ("code", "wrong", "入力された参加コードで参加できるコースはありません"),
        ("term", "printable", "学期は{min}〜{max}文字の印字可能な文字にしてください"),
        ("ldap_group", "printable", "LDAP グループは{min}〜{max}文字の印字可能な文字にしてください"),
        ("title", "printable", "コースでの名前は{min}〜{max}文字の印字可能な文字にしてください"),
        ("note", "printable", "メモは{min}〜{max}文字の印字可能な文字にしてください"),
        ("ends_at", "not_future", "終了日時は 2026-07-31T23:59:00+09:00 のような未来の日時にしてください"),
        ("users", "count", "ユーザー名は1〜{max}個にしてください"),
        ("users", "unknown", "{names} という名前のアカウントはありません。ディレクトリのアカウントは、本人が一度ログインすると作られます"),
        ("containers", "choice", "containers=「{value}」は使えません。{keep} か delete にしてください"),
        ("images", "choice", "images=「{value}」は使えません。{keep} か delete にしてください"),
        ("storage", "choice", "storage=「{value}」は使えません。{keep} か delete にしてください"),
        ("since", "not_a_time", "since は 2026-04-01T09:00:00+09:00 のような日時にしてください"),
        ("until", "not_a_time", "until は 2026-04-01T09:00:00+09:00 のような日時にしてください"),
        ("before", "not_a_time", "before は 2026-04-01T09:00:00+09:00 のような日時にしてください"),
        ("actor", "too_long", "actor は256文字以内にしてください"),
        ("action", "too_long", "action は256文字以内にしてください"),
        ("target", "too_long", "target は256文字以内にしてください"),
        ("gitlab_url", "not_http", "GitLab の URL は https://gitlab.example.org のような http(s) のアドレスにしてください"),
        ("gitlab_url", "egress", "GitLab の URL に {host} は使えません（{near}）。ホストのネットワーク内の GitLab は、管理者が名前で許可できます（WM_EGRESS_ALLOWED）"),
        ("token", "runner_token", "ランナートークンは英数字・「-」「_」「.」の1〜256文字です"),
        ("dockerfile", "none", "Dockerfile かコンテキストを送ってください"),
        ("dockerfile", "empty", "Dockerfile が空です"),
        ("dockerfile", "not_an_image", "Dockerfile にある「{value}」はイメージの参照ではありません"),
        ("dockerfile", "add_egress", "ADD {url}: ビルドから {host} には接続できません（{near}）。管理者が名前で許可できます（WM_EGRESS_ALLOWED）"),
        ("dockerfile", "add_unresolvable", "ADD {url}: ホスト名を解決できません"),
        ("dockerfile", "add_url", "ADD {url}: この URL は使えません（{why}）"),
        ("dockerfile", "line", "Dockerfile の{line}行目に誤りがあります（{detail}）"),
        ("dockerfile", "no_from", "Dockerfile に FROM 命令がありません"),
        ("dockerfile", "onbuild", "ステージ {stage} のベースイメージの ONBUILD 命令に誤りがあります（{detail}）"),
        ("context", "not_tar", "コンテキストは tar アーカイブ（gzip 圧縮も可）にしてください"),
        ("context", "not_gzip", "コンテキストが正しい gzip 形式ではありません"),
        ("context", "dockerfile_too_large", "コンテキストの {path} が大きすぎます"),
        ("context", "not_utf8", "コンテキストの {path} が UTF-8 のテキストではありません"),
        ("context", "no_dockerfile", "コンテキストの最上位に Dockerfile がありません"),
        ("context", "dockerfile_not_file", "コンテキストの Dockerfile は通常のファイルにしてください（リンクやディレクトリは使えません）"),
        ("context", "bad_entry", "コンテキストにコンテナエンジンへ送れない項目があります（{why}）"),
        ("invalid_input", "login_too_long", "ユーザー名かパスワードが長すぎます"),
        ("invalid_input", "not_multipart", "フォームが正しい multipart/form-data ではありません（{why}）"),
        ("invalid_input", "one_source", "dockerfile と context はどちらか一方を一度だけ送ってください"),
        ("invalid_input", "unexpected_field", "フォームに「{name}」という項目はありません。送れるのは {expected} です"),
        ("invalid_input", "not_an_object", "本文は JSON のオブジェクトにしてください"),
        ("invalid_input", "shape", "リクエストの内容が正しくありません（{why}）"),
        ("invalid_input", "unknown_operation", "アカウントに対するその操作はありません"),
        ("malformed_json", "syntax", "本文が正しい JSON ではありません（{why}）"),
        ("websocket_required", "websocket", "このアドレスは WebSocket のセッション用です（{why}）"),
        ("policy", "policy", "このサーバーの規則で許可されていません（{why}）"),
        ("unsupported_for_backend", "exec", "Kubernetes のコンテナではコマンドの実行はできません。GET /api/v1/kubeconfig で得た kubeconfig で `{kubectl}` を使ってください"),
        ("unsupported_for_backend", "upload", "Kubernetes のコンテナではファイルのアップロードはできません。GET /api/v1/kubeconfig で得た kubeconfig で `{kubectl}` を使ってください"),
        ("unsupported_for_backend", "download", "Kubernetes のコンテナではファイルのダウンロードはできません。GET /api/v1/kubeconfig で得た kubeconfig で `{kubectl}` を使ってください"),
        ("unsupported_for_backend", "logs", "Kubernetes のコンテナではログの追跡はできません。GET /api/v1/kubeconfig で得た kubeconfig で `{kubectl}` を使ってください"),
        ("unsupported_for_backend", "terminal", "Kubernetes のコンテナでは端末は使えません。GET /api/v1/kubeconfig で得た kubeconfig で `{kubectl}` を使ってください"),
        ("forbidden", "build_token", "このトークンはイメージのビルドにしか使えません"),
        ("forbidden", "admins_only", "この操作は管理者だけができます"),
        ("forbidden", "cross_origin", "別のオリジンからのリクエストは受け付けません"),
        ("forbidden", "disabled", "このアカウントは無効になっています。管理者に相談してください"),
        ("forbidden", "csrf", "フォームのセキュリティトークンがないか、正しくありません。ページを再読み込みしてください"),
        ("forbidden", "teachers_only", "コースを作れるのは教員と管理者だけです"),
        ("forbidden", "teacher_only", "この操作はコースの担当教員だけができます"),
        ("forbidden", "expiry_set_by_other", "{name} の有効期限は {by} さんが設定しました。延長や解除ができるのは本人か管理者だけです"),
        ("forbidden", "other_installation", "このイメージはほかのインストール（または誰のものでもない）と記録されています。削除が必要なら、エンジンの上で直接削除してください"),
        ("forbidden", "public_image", "公開イメージを削除できるのは管理者だけです"),
        ("forbidden", "not_yours", "イメージ {image} はあなたが変更できるものではありません"),
        ("forbidden", "owned_by", "イメージ {image} は {owner} さんのものです。変更できるのは所有者だけです"),
        ("forbidden", "public", "イメージ {image} は公開イメージで、所有者がいません。変更できるのは所有者だけです"),
        ("forbidden", "registry_not_allowed", "このサーバーでは {registry} からは取得できません。取得できるのは {allowed} です"),
        ("forbidden", "built_here", "{prefix}/... はこのサーバーでビルドしたイメージの場所です。別の名前で取得してください"),
        ("forbidden", "policy", "このサーバーの規則で許可されていません（{why}）"),
        ("forbidden", "egress", "{registry} からは取得できません（{near}）。ホストのネットワーク内のレジストリは、管理者が名前で許可できます（WM_EGRESS_ALLOWED）"),
        ("forbidden", "storage_root", "ストレージの最上位は削除できません。中身を削除してください"),
        ("not_found", "container", "コンテナが見つかりません"),
        ("not_found", "container_named", "コンテナ {name} が見つかりません"),
        ("not_found", "page", "ページが見つかりません"),
        ("not_found", "endpoint", "そのエンドポイントはありません"),
        ("not_found", "vm", "VM が見つかりません"),
        ("not_found", "vm_named", "VM {name} が見つかりません"),
        ("not_found", "session", "セッション {id} が見つかりません"),
        ("not_found", "token", "トークン {id} が見つかりません"),
        ("not_found", "user", "ユーザー {name} が見つかりません"),
        ("not_found", "course", "コース {id} が見つかりません"),
        ("not_found", "member", "コース {course} に受講者 {name} はいません"),
        ("not_found", "host", "ホスト {name} が見つかりません"),
        ("image_not_found", "image", "イメージ {image} が見つかりません"),
        ("image_not_found", "course_image", "コース {course} と共有されたイメージ {image} が見つかりません"),
        ("image_not_found", "build_image", "イメージ {image} が見つかりません（ビルドはホストにすでにあるイメージしか読めません。公開イメージなら先に取得してください）"),
        ("image_not_found", "vm_image", "VM イメージ {name} が見つかりません"),
        ("template_not_found", "template", "VM テンプレート {name} が見つかりません"),
        ("backend_unavailable", "kubeconfig", "このサーバーでは Kubernetes バックエンドが有効でないため、kubeconfig はありません"),
        ("file_not_found", "engine", "ファイルが見つかりません（{why}）"),
        ("conflict", "exists", "すでにあります（{what}）"),
        ("conflict", "host_name_taken", "ホストに、あなたのものではない同じ名前のコンテナかネットワークがすでにあります。管理者に相談してください"),
        ("conflict", "directory_password", "あなたのアカウントは学科のディレクトリ（LDAP）のものです。パスワードはここではなく、学科のアカウントサービスで変更してください"),
        ("conflict", "directory_password_of", "{name} はディレクトリ（LDAP）のアカウントです。パスワードは学科のディレクトリで変更します"),
        ("conflict", "directory_role", "{name} はディレクトリ（LDAP）のアカウントです。役割はディレクトリのグループで決まります"),
        ("conflict", "own_account", "管理者は自分のアカウントを無効にしたり、降格したりできません"),
        ("conflict", "delete_own_account", "管理者は自分のアカウントを削除できません"),
        ("conflict", "user_has_containers", "{name} さんにはコンテナが{n}個あります。先にそれらを削除するか、コンテナも削除するよう指定してください"),
        ("conflict", "no_join_code", "使える参加コードが見つかりませんでした。もう一度試してください"),
        ("conflict", "container_taken", "{name} という名前のコンテナはすでにあります"),
        ("conflict", "gone_from_host", "コンテナ {name} はホストからなくなっています。削除してください"),
        ("conflict", "gone_from_cluster", "コンテナ {name} はクラスタからなくなっています。削除してください"),
        ("conflict", "cluster_name_taken", "クラスタには、このリクエストで作ったのではない {name} という名前のオブジェクトがすでにあります。管理者に相談してください"),
        ("conflict", "not_running", "コンテナ {name} は動いていません。先に起動してください"),
        ("conflict", "no_scan", "イメージ {image} には解除するスキャン結果がありません"),
        ("conflict", "pull_failed", "イメージを取得できませんでした（{why}）"),
        ("conflict", "vm_refused", "VM ホストが要求を受け付けませんでした（{why}）"),
        ("conflict", "vm_image_taken", "{name} という名前の VM イメージはすでにあります。先に削除するか、別の名前にしてください"),
        ("conflict", "vm_image_in_use", "VM イメージ {name} は VM が使っています。先にその VM を削除してください"),
        ("conflict", "vm_taken", "{name} という名前の VM はすでにあります"),
        ("conflict", "taken_meanwhile", "その間にほかで使われました（{what}）。もう一度試してください"),
        ("conflict", "vm_console", "VM {name} のコンソールに接続できません（{why}）。先に起動してください"),
        ("ambiguous_name", "owners", "{name} という名前のコンテナが複数のユーザーにあります（所有者: {owners}）。?owner=<名前> で誰のものか指定してください"),
        ("ambiguous_name", "members", "コース {course} の複数の受講者に {name} という名前のコンテナがあります"),
        ("ambiguous_name", "vm_owners", "{name} という名前の VM が複数のユーザーにあります。?owner=<名前> で誰のものか指定してください"),
        ("container_expired", "expired", "コンテナ {name} は {at} に有効期限が切れました。期限を延長しない限り起動できません"),
        ("image_quarantined", "flagged", "イメージ {image} は隔離されています。スキャンで {finding} が見つかりました。削除するか、管理者に解除を依頼してください"),
        ("image_quarantined", "failed", "イメージ {image} は隔離されています。スキャンできませんでした（{finding}）。もう一度取得かビルドをして再スキャンするか、管理者に解除を依頼してください"),
        ("image_scan_pending", "pending", "イメージ {image} はスキャン中です。スキャンが終わってからもう一度試してください"),
        ("payload_too_large", "body", "リクエストの本文が上限の{max}バイトを超えています"),
        ("payload_too_large", "context_unpacked", "ビルドコンテキストを展開すると上限の{max}バイトを超えます（WM_BUILD_CONTEXT_MAX_UNPACKED_BYTES）"),
        ("rate_limited", "logins", "ログインの失敗が多すぎます。{seconds}秒後にもう一度試してください"),
        ("busy", "uploads", "サーバーがほかのアップロードを受け取っています。数秒後にもう一度試してください"),
        ("busy", "terminals", "端末のセッションがすでに{max}個開いています。どれかを閉じてください"),
        ("unavailable", "host", "コンテナのホストを使えません（{why}）。しばらくしてからもう一度試してください"),
        ("unavailable", "exhausted", "ホストに空きがありません（{why}）"),
        ("unavailable", "directory", "学科のディレクトリを使えません。しばらくしてからもう一度試してください（ローカルのアカウントとログイン中のセッションは使えます）"),
        ("unavailable", "directory_refused", "学科のディレクトリが要求を受け付けませんでした。詳細は管理者がログで確認できます"),
        ("unavailable", "runner_image", "ランナーのイメージ {image} がホスト {host} にありません。管理者が取得する必要があります"),
        ("unavailable", "no_host_has", "今 {image} を持っているホストがありません"),
        ("unavailable", "place_taken", "{what} がちょうど使われました。もう一度試してください"),
        ("unavailable", "cluster_unfinished", "クラスタが {name} の作成を終えていません（{why}）。同じリクエストをもう一度送って完了させるか、削除してください"),
        ("unavailable", "built_elsewhere", "{image} はこのサーバーでビルドされたもので、{host} にはありません。持っているホストは今コンテナを受け付けられません。しばらくしてからもう一度試してください"),
        ("unavailable", "pull_onto", "ホスト {host} にイメージを取得できませんでした（{why}）"),
        ("unavailable", "vm_host", "VM のホストを使えません（{why}）。しばらくしてからもう一度試してください"),
        ("unavailable", "no_vm_host", "このサーバーでは今、仮想マシンを提供していません（VM のホストが設定されていないか、応答しません）"),
        ("unavailable", "vm_host_down", "VM のホスト {host} が今は応答しません。しばらくしてからもう一度試してください"),
        ("unavailable", "vm_host_unknown", "VM のホスト {host} はこのコンソールのホストにありません。管理者に問い合わせてください"),
        ("unavailable", "host_down", "ホスト {host} を使えません。しばらくしてからもう一度試してください"),
        ("unavailable", "host_down_why", "ホスト {host} を使えません（{why}）。しばらくしてからもう一度試してください"),
        ("unavailable", "host_unknown", "ホスト {host} はこのコンソールのホストではありません。管理者に相談してください"),
        ("unavailable", "none_answer", "応答するコンテナホストがありません（{why}）。しばらくしてからもう一度試してください"),
        ("unavailable", "no_room", "新しいコンテナを置ける空きのあるホストが今はありません。しばらくしてからもう一度試してください"),
        ("unavailable", "no_room_with", "ラベル {labels} を持ち、新しいコンテナを置ける空きのあるホストが今はありません。しばらくしてからもう一度試してください"),
        ("unavailable", "no_gpus", "空いている GPU が{n}個あるホストが今はありません。しばらくしてからもう一度試してください"),
        ("unavailable", "no_gpus_with", "ラベル {labels} を持ち、空いている GPU が{n}個あるホストが今はありません。しばらくしてからもう一度試してください"),
        ("unavailable", "no_memory", "新しいコンテナに{mib} MiB のメモリを空けられるホストが今はありません。しばらくしてからもう一度試してください"),
        ("unavailable", "no_memory_with", "ラベル {labels} を持ち、新しいコンテナに{mib} MiB のメモリを空けられるホストが今はありません。しばらくしてからもう一度試してください"),
        ("storage_unavailable", "engine", "ストレージを使えません（{why}）"),
        ("storage_unavailable", "host_keeps_none", "ホスト {host} にはユーザーのストレージがありません"),
        ("storage_unavailable", "no_host", "今応答するホストに、ユーザーのストレージを持つものがありません"),
        ("policy", "memory_limit", "メモリの上限は1バイトから{max}バイトまでにしてください"),
        ("policy", "cpu_limit", "CPU の上限は1から{max}ナノ CPU までにしてください"),
        ("policy", "pids_limit", "プロセス数の上限は1から{max}までにしてください"),
        ("policy", "container_name", "コンテナの名前は「<所有者>-<短い名前>」の形でなければなりません"),
        ("policy", "gpu_twice", "GPU「{gpu}」が二度指定されています。一度だけ指定してください"),
        ("policy", "no_gpu", "このホストに GPU「{gpu}」はありません（このホストの GPU: {known}）。そのどれかを指定してください"),
        ("policy", "no_gpu_none", "このホストに GPU「{gpu}」はありません（このホストには GPU がありません）"),
        ("policy", "path_dotdot", "パスに「..」は使えません"),
        ("policy", "path_invalid", "パスが長すぎるか、NUL 文字を含んでいます"),
        ("policy", "path_part_too_long", "パスの一部が255バイトを超えています。短い名前にしてください"),
        ("policy", "name_too_long", "「{path}」に長すぎる名前があります。短い名前にしてください"),
        ("policy", "storage_root", "ストレージの最上位は削除できません。中身を削除してください"),
        ("policy", "namespace_name", "ユーザー名「{user}」は Kubernetes の名前空間の名前にできません（英小文字・数字・「-」だけが使え、「-」で終わることはできません）。管理者に相談してください"),
        ("policy", "system_namespace", "ユーザー名「{user}」はクラスタのシステムの名前空間と同じ名前です。管理者に相談してください"),
        ("policy", "cluster_gpus", "クラスタで {role} が使える GPU は{max}個までです（{asked}個が指定されました）"),
        ("unavailable", "ports_full", "このホストのポートの範囲 {range} に空いているホストポートがありません。管理者に相談してください"),
        ("unavailable", "ports_held", "空いているホストポートが見つかりませんでした。もう一度試してください"),
        ("unavailable", "gpu_in_use", "GPU「{gpu}」はコンテナ{holders}個が使用中です（共有できるのは{share}個まで）。別の GPU を選ぶか、使っているコンテナがなくなってからもう一度試してください"),
        ("unavailable", "no_address_range", "このホストの Docker には、ユーザーのネットワークに使えるアドレスの範囲が残っていません。管理者が WM_NETWORK_POOL（または Docker の default-address-pools）を設定する必要があります"),
        ("unavailable", "network_pool_full", "ネットワークのプール {pool} に、ユーザーのネットワークに使える /{prefix} のサブネットが残っていません。管理者に相談してください"),
        ("unavailable", "build_pids_socket", "このホストではビルドできません。ビルドのプロセス数を制限するには、このマシンのソケットの Docker エンジンが必要ですが、{host} はそうではありません（{setting}）。管理者に相談してください"),
        ("unavailable", "build_pids", "ビルドのプロセス数を制限できるようになるまで、このホストではビルドできません（{why}、{setting}）。管理者に相談してください"),
        ("unavailable", "build_broke", "ビルドの途中でエンジンとの接続が切れました。もう一度試してください"),
        ("unavailable", "storage_disk_full", "ストレージ用のホストのディスクがいっぱいです。管理者に連絡してください"),
        ("unavailable", "engine_timeout", "コンテナのホストの Docker エンジンが{seconds}秒以内に応答しませんでした。しばらくしてからもう一度試してください"),
        ("unavailable", "cluster_timeout", "Kubernetes の API が{seconds}秒以内に応答しませんでした。しばらくしてからもう一度試してください"),
        ("unavailable", "cluster_unreachable", "Kubernetes の API に接続できません。しばらくしてからもう一度試してください"),
        ("unavailable", "no_libvirt", "このホストは仮想マシンを提供していません（エージェントに libvirt がありません）"),
        ("unavailable", "agent_timeout", "ホスト {host} のエージェントが時間内に応答しませんでした。しばらくしてからもう一度試してください"),
        ("unavailable", "agent_unreachable", "ホスト {host} のエージェントに接続できません。しばらくしてからもう一度試してください"),
        ("unavailable", "agent_token", "ホスト {host} のエージェントがコンソールのエージェントトークンを受け付けませんでした。管理者に連絡してください"),
        ("unavailable", "agent_stream_broke", "ホスト {host} のエージェントとの接続が途中で切れました。もう一度試してください"),
        ("storage_unavailable", "storage_off", "このホストにはユーザーのストレージがありません"),
        ("storage_unavailable", "storage_unprepared", "あなたのストレージを準備できませんでした"),
        ("storage_unavailable", "storage_unopenable", "このホストであなたのストレージを開けません。管理者に連絡してください"),
        ("storage_unavailable", "storage_root_missing", "あなたのストレージを準備できませんでした。ホストのストレージ用ディレクトリがないか、使えません。管理者に連絡してください"),
        ("storage_unavailable", "storage_not_given", "あなたのストレージを準備できませんでした。ディレクトリをあなたのものにできません。管理者に連絡してください"),
        ("storage_unavailable", "storage_name_taken", "あなたのストレージを準備できませんでした。ディレクトリではないものが同じ名前を使っています。管理者に連絡してください"),
        ("storage_unavailable", "storage_unmade", "あなたのストレージを準備できませんでした。ディレクトリを作れません。管理者に連絡してください"),
        ("storage_unavailable", "volume_failed", "あなたのストレージを準備できませんでした。ホストがボリュームを作れません。管理者に連絡してください"),
        ("storage_unavailable", "volume_foreign", "あなたのストレージを準備できませんでした。このインストールのものではない同じ名前のボリュームがホストにあります。管理者に連絡してください"),
        ("storage_unavailable", "vm_spool", "アップロードをホストに一時保存できませんでした。管理者に連絡してください"),
        ("file_not_found", "dir_missing", "コンテナにディレクトリ「{dir}」がありません。先に作るか、別のディレクトリを指定してください"),
        ("file_not_found", "path_missing", "コンテナに「{path}」がありません"),
        ("file_not_found", "storage_missing", "あなたのストレージに「{path}」がありません"),
        ("file_not_found", "storage_link", "「{path}」はシンボリックリンクかマウントを通ります。リンクはたどりません"),
        ("file_not_found", "storage_not_dir", "「{path}」の途中にディレクトリでないものがあります"),
        ("file_not_found", "storage_odd", "「{path}」はファイルでもディレクトリでもありません"),
        ("file_not_found", "storage_not_file", "「{path}」は通常のファイルではありません"),
        ("conflict", "build_too_large", "ビルドしたイメージは{size}バイトで、ビルド結果の上限の{max}バイトを超えたため削除しました（WM_BUILD_IMAGE_MAX_BYTES）。イメージを小さくしてください"),
        ("conflict", "storage_in_use", "ストレージは所有者のコンテナが使用中です。先にそのコンテナを削除してください"),
        ("conflict", "storage_is_dir", "「{path}」はディレクトリです"),
        ("conflict", "storage_exists", "「{path}」はすでにあり、ディレクトリではありません"),
        ("conflict", "upload_broke", "「{path}」のアップロードが途中で切れました。もう一度試してください"),
        ("conflict", "vm_not_running", "VM は動いていません。先に起動してください"),
        ("conflict", "serial_unreachable", "今は VM のシリアルコンソールに接続できません。しばらくしてからもう一度試してください"),
        ("file", "image_unreadable", "このファイルは qemu-img が読めるディスクイメージではありません"),
        ("file", "image_format", "このイメージの形式は {format} です。受け付けるのは qcow2 と raw のイメージだけです"),
        ("file", "image_backing_file", "このイメージはバッキングファイルを参照しています。単独で完結したイメージをアップロードしてください（qemu-img convert -O qcow2 in.qcow2 out.qcow2）"),
        ("file", "image_data_file", "このイメージは外部のデータファイルを参照しています。単独で完結したイメージをアップロードしてください"),
        ("file", "image_empty", "このイメージは空です"),
        ("file", "image_not_disk", "このファイルは qcow2 イメージでも raw ディスク（大きさが512バイトの倍数）でもありません"),
        ("file", "image_too_large", "イメージがこのホストの上限の{max}バイトを超えています"),
        ("file", "image_upload_broke", "イメージのアップロードが途中で切れました。もう一度試してください"),
    ],
    back: "戻る",
    error_here: "実行されませんでした:",
    create_dir: "ディレクトリがなければ作成する",
    upload_limit: "合計 {size} まで。",
    upload_too_large: "選んだファイルは合計 {size} で、上限の {limit} を超えています。ファイルを減らすか小さくしてください。",
    files_not_kept: "ファイルをもう一度選んでください（ブラウザはファイルを保持しません）。",
    confirm_image_delete_title: "イメージの削除",
    confirm_image_delete: "このイメージをサーバーから削除しますか？ このイメージからコンテナを作れなくなります。元に戻せません。",
    image_used_by_another: "ほかのユーザーのコンテナ 1 個がこのイメージを使っているため、今は削除できません。",
    image_used_by_others: "ほかのユーザーのコンテナ {n} 個がこのイメージを使っているため、今は削除できません。",
    image_used_by_others_help: "使っているコンテナがなくなれば削除できます。クラスメートに頼むか、そのコンテナが期限切れになるまで待ってください。",
    image_used_shared_help: "共有中です。新しいコンテナが作られないように、イメージ一覧で共有をやめてください。",
    image_used_by_own: "あなたのコンテナがこのイメージを使っています。先にそれらを削除してください。",
    err_user_taken: "この名前のアカウントはすでにあります。",
    err_image_in_use: "このイメージは使用中です。",

    // courses2:
    err_join_code: "参加コードが正しくありません。担当教員に確認してください。",
    join_title: "コースに参加",
    join_code: "参加コード",
    join_button: "参加する",
    join_code_hint: "この参加コードを受講者に伝えてください。コースのページで入力した人が登録されます。",
    join_code_none: "参加コードはありません。受講者を登録できるのは担当教員だけです。",
    join_code_new: "新しい参加コード",
    join_code_off: "参加コードを無効にする",
    notice_joined: "コースに参加しました。",
    notice_join_code: "参加コードを変更しました。",
    course_images: "コースのイメージ",
    no_course_images: "このコースと共有されたイメージはまだありません。",
    course_image_title: "コースでの名前",
    course_image_note: "メモ",
    course_images_hint: "受講しているコースのイメージ（教員による名前とメモ）:",
    course_quota: "受講者のクォータ",
    course_quota_none: "受講者にはロールのクォータが適用されます。",
    cpu_time: "CPU 時間",
    memory_in_use: "使用中のメモリ",
    age: "経過時間",
    view_link: "表示",
    read_only_note: "受講者のコンテナの閲覧専用の表示です。コマンド・端末・ファイル操作はできません。",

    // i18n:
    err_media_type: "本文の形式が違います。JSON なら Content-Type: application/json、フォームなら multipart/form-data で送ってください。",
    err_method: "このアドレスはその HTTP メソッドを受け付けません。",
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

    /// The places of a sentence: the names between braces.
    fn places(template: &str) -> Vec<&str> {
        let mut out: Vec<&str> = template
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Codes whose sentences a function of their own makes rather than a template: a
    /// quota's amounts and an image's users need each language's own words.
    const SAID_BY_FUNCTION: &[&str] = &["quota_exceeded", "image_in_use"];

    /// Every sentence an error can say (`service::said::SAYINGS`) exists in every language:
    /// in English as the error's message, in the others by its key, naming exactly the
    /// values the error gives; and every error code has its heading in every language.
    #[test]
    fn every_saying_has_a_sentence_in_every_language() {
        use crate::service::said::SAYINGS;
        for (code, field, reason, params) in SAYINGS {
            let key = if field.is_empty() { *code } else { *field };
            for lang in Lang::ALL {
                assert!(
                    lang.t().error_known(code).is_some(),
                    "{code} has no heading in {}",
                    lang.code()
                );
                if lang == Lang::En || SAID_BY_FUNCTION.contains(code) {
                    continue;
                }
                let found: Vec<_> = lang
                    .t()
                    .rules
                    .iter()
                    .filter(|(f, r, _)| f == &key && r == reason)
                    .collect();
                assert_eq!(
                    found.len(),
                    1,
                    "({key}, {reason}) has {} sentences in {}",
                    found.len(),
                    lang.code()
                );
                let mut want = params.to_vec();
                want.sort_unstable();
                assert_eq!(
                    places(found[0].2),
                    want,
                    "the places of ({key}, {reason}) in {}",
                    lang.code()
                );
                assert!(
                    !found[0].2.is_ascii(),
                    "({key}, {reason}) is not translated"
                );
            }
        }
        // No sentence without a saying: a removed error takes its sentences with it.
        for lang in Lang::ALL {
            for (key, reason, _) in lang.t().rules {
                assert!(
                    SAYINGS.iter().any(|(c, f, r, _)| r == reason
                        && (f == key || (f.is_empty() && c == key))),
                    "({key}, {reason}) in {} is said by no error",
                    lang.code()
                );
            }
        }
    }

    /// Every reason an address is refused as the host's own (`near`) has its words in
    /// every language but English, whose sentence is the error's message.
    #[test]
    fn every_egress_reason_is_said() {
        for near in wm_docker::egress::Near::ALL {
            for lang in Lang::ALL {
                if lang != Lang::En {
                    let said = lang.word("near", near.code());
                    assert!(
                        said.is_some_and(|w| !w.is_ascii()),
                        "{near:?} in {}",
                        lang.code()
                    );
                }
            }
        }
        let said = Lang::Ja
            .rule_sentence(
                "forbidden",
                "egress",
                &[
                    ("registry", "127.0.0.1:5000".into()),
                    ("near", "loopback".into()),
                ],
            )
            .unwrap();
        assert!(
            said.contains("ループバック") && !said.contains("loopback"),
            "{said}"
        );
    }

    /// A quota's refusal and an image's users are said in Japanese, numbers and all.
    #[test]
    fn quotas_and_image_users_are_said_in_japanese() {
        use crate::service::{images::ImageUsers, Error, QuotaKind};
        let over = Error::Quota {
            kind: QuotaKind::Memory,
            limit: 1 << 30,
            used: 1 << 30,
            asked: 512 << 20,
        };
        let said = Lang::Ja.explain(&over).unwrap();
        assert!(said.contains("1 GiB") && said.contains("512 MiB"), "{said}");
        assert_eq!(Lang::En.explain(&over), None);
        let users = Error::ImageInUse(ImageUsers {
            reference: "x".into(),
            own: 0,
            others: 2,
            shared: false,
        });
        let said = Lang::Ja.explain(&users).unwrap();
        assert!(said.contains('2') && !said.is_ascii(), "{said}");
    }

    /// An error's sentence in Japanese carries its values; English keeps the message.
    #[test]
    fn a_conflict_is_said_in_japanese_with_its_name() {
        let e = crate::service::Error::conflict(
            "container_taken",
            [("name", "web".to_string())],
            "you already have a container named web",
        );
        assert_eq!(e.to_string(), "you already have a container named web");
        assert_eq!(
            Lang::Ja.explain(&e).as_deref(),
            Some("web という名前のコンテナはすでにあります。")
        );
        assert_eq!(Lang::En.explain(&e), None);
    }

    /// A host's own sentence is said by its key, wholly in Japanese; one whose reason this
    /// console does not know (a newer agent's), or without a key (an older agent's), is
    /// said by its code's generic sentence with the host's English in it.
    #[test]
    fn a_hosts_sentence_is_said_by_its_key_or_else_generically() {
        use wm_backend::{why, BackendError, Why};
        let e = crate::service::Error::from(BackendError::Policy(why::no_gpu("3", &["0", "1"])));
        assert_eq!(e.code(), "policy");
        assert_eq!(e.to_string(), "this host has no GPU \"3\" (its GPUs: 0, 1)");
        assert_eq!(
            Lang::Ja.explain(&e).as_deref(),
            Some("このホストに GPU「3」はありません（このホストの GPU: 0, 1）。そのどれかを指定してください。")
        );
        let unknown = Why::new("from_a_newer_agent", [("gpu", "3".into())], "no GPU 3 here");
        for why in [unknown, Why::from("no GPU 3 here")] {
            let e = crate::service::Error::from(BackendError::Policy(why));
            assert_eq!(e.code(), "policy");
            assert_eq!(
                Lang::Ja.explain(&e).as_deref(),
                Some("このサーバーの規則で許可されていません（no GPU 3 here）。")
            );
        }
        // Known under another code only: said generically here too.
        let e = crate::service::Error::from(BackendError::Exhausted(why::memory_limit(5)));
        assert_eq!(e.said().unwrap().1.reason, "exhausted");
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
