//! What a Dockerfile reads before it is built: every image it uses (`FROM`,
//! `COPY --from`, the same inside `ONBUILD`) and every `ADD` source that is a URL.
//!
//! The reader follows the classic builder of Docker 20.10 (the one the engine API's
//! `/build` runs): parser directives (`# escape=`), comments, line continuations,
//! case-insensitive instructions, global `ARG`s (before the first `FROM`, their defaults
//! overridden by the build's arguments) substituted into `FROM` and `--from` with the
//! shell rules (`$V`, `${V}`, `${V:-x}`, `${V:+x}`, quotes, the escape character), stage
//! aliases compared case-insensitively, and a stage counting as one only once it is
//! finished (inside its own stage, a stage's name is an image name to the builder).
//!
//! [`Dockerfile::pinned`] writes the file back with every image the build reads replaced
//! by the id it was checked as, and every stage reference as a plain literal, so the
//! builder cannot read anything but what was checked.

use crate::ParseError;
use std::collections::HashMap;

/// A parsed Dockerfile: what it reads, and how to write it back pinned.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// The file as instructions, each with its original text.
    nodes: Vec<Node>,
    images: Vec<String>,
    add_urls: Vec<String>,
    /// Stage names, by index (`None` for a stage without `AS`).
    stages: Vec<Option<String>>,
    /// Each stage's base image, when it is an image.
    bases: Vec<Option<String>>,
    escape: char,
}

/// Where a `FROM` or `--from` points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Scratch,
    /// An earlier, finished stage, written back as its index.
    Stage(usize),
    /// An image reference (any form the engine accepts: name, tag, digest, id).
    Image(String),
}

#[derive(Debug, Clone)]
struct Node {
    /// The instruction as written, continuation lines and comments included, each line
    /// ending with `\n`.
    raw: String,
    rewrite: Option<Rewrite>,
}

#[derive(Debug, Clone)]
struct Rewrite {
    /// `FROM`, `COPY`, or `ONBUILD COPY`.
    keyword: String,
    /// Flags kept as they were (`--platform=...`, `--chown=...`).
    flags: Vec<String>,
    source: Source,
    /// `FROM`: the stage alias; `COPY`: what follows the flags, verbatim.
    rest: String,
    is_from: bool,
}

/// An error on a line of the Dockerfile: the line's number and, in English, what is wrong
/// with it (the instruction's own words are not translated).
fn err(line: usize, message: impl Into<String>) -> ParseError {
    let detail = message.into();
    ParseError::new("dockerfile", format!("Dockerfile line {line}: {detail}"))
        .because("line", [("line", line.to_string()), ("detail", detail)])
}

/// A stage name as the builder allows it.
fn is_stage_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

impl Dockerfile {
    /// Reads `text` with the build's arguments.
    ///
    /// # Errors
    /// A sentence naming the line for: no `FROM`; a `FROM` or `--from` whose variables
    /// are not all set by a global `ARG` or a build argument; a stage index that does
    /// not exist yet; `RUN --mount` and other flags the classic builder does not run; an
    /// `ADD` source whose variables are not set in the file.
    pub fn parse(text: &str, build_args: &[(String, String)]) -> Result<Dockerfile, ParseError> {
        let (escape, nodes) = split(text)?;
        let args: HashMap<&str, &str> = build_args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut df = Dockerfile {
            nodes: Vec::new(),
            images: Vec::new(),
            add_urls: Vec::new(),
            stages: Vec::new(),
            bases: Vec::new(),
            escape,
        };
        // Global ARGs: what FROM and --from may use.
        let mut meta: HashMap<String, String> = HashMap::new();
        // Everything set in the file so far, for ADD sources.
        let mut vars: HashMap<String, String> = HashMap::new();
        let mut in_stage = false;
        for (line, raw, logical) in nodes {
            let trimmed = logical.trim();
            let (word, rest) = match trimmed.split_once(|c: char| c.is_whitespace()) {
                Some((w, r)) => (w, r.trim_start()),
                None => (trimmed, ""),
            };
            let instruction = word.to_ascii_uppercase();
            let mut node = Node { raw, rewrite: None };
            match instruction.as_str() {
                "" => {}
                "ARG" => {
                    for (name, default) in arg_pairs(rest, escape, line)? {
                        let lookup = |k: &str| {
                            if in_stage {
                                vars.get(k).cloned()
                            } else {
                                meta.get(k).cloned()
                            }
                        };
                        let default = match default {
                            Some(d) => Some(expand(&d, escape, &lookup).map_err(|v| {
                                err(line, format!("ARG {name}: the variable {v} is not set"))
                            })?),
                            None => None,
                        };
                        let value = args
                            .get(name.as_str())
                            .map(|v| v.to_string())
                            .or(default)
                            .or_else(|| in_stage.then(|| meta.get(&name).cloned()).flatten());
                        if let Some(v) = value {
                            vars.insert(name.clone(), v.clone());
                            if !in_stage {
                                meta.insert(name, v);
                            }
                        } else if !in_stage {
                            meta.remove(&name);
                        }
                    }
                }
                "ENV" => {
                    for (name, value) in env_pairs(rest, escape, line)? {
                        let value = expand(&value, escape, &|k: &str| vars.get(k).cloned())
                            .unwrap_or_default();
                        vars.insert(name, value);
                    }
                }
                "FROM" => {
                    let rewrite = df.from(rest, escape, &meta, line)?;
                    in_stage = true;
                    node.rewrite = Some(rewrite);
                }
                "ONBUILD" => {
                    let (inner, inner_rest) = match rest.split_once(|c: char| c.is_whitespace()) {
                        Some((w, r)) => (w.to_ascii_uppercase(), r.trim_start()),
                        None => (rest.to_ascii_uppercase(), ""),
                    };
                    if let Some(r) = df.instruction_uses(
                        &inner,
                        inner_rest,
                        escape,
                        &meta,
                        &vars,
                        line,
                        Trigger::OwnFile,
                    )? {
                        node.rewrite = Some(Rewrite {
                            keyword: format!("ONBUILD {}", r.keyword),
                            ..r
                        });
                    }
                }
                other => {
                    if !in_stage {
                        return Err(err(
                            line,
                            format!("{other} comes before the first FROM; only ARG may"),
                        ));
                    }
                    node.rewrite = df.instruction_uses(
                        other,
                        rest,
                        escape,
                        &meta,
                        &vars,
                        line,
                        Trigger::Stage(df.stages.len() - 1),
                    )?;
                }
            }
            df.nodes.push(node);
        }
        if df.stages.is_empty() {
            return Err(
                ParseError::new("dockerfile", "the Dockerfile has no FROM instruction")
                    .because("no_from", []),
            );
        }
        Ok(df)
    }

    /// `FROM [--flag=...] image [AS name]`: registers the stage.
    fn from(
        &mut self,
        rest: &str,
        escape: char,
        meta: &HashMap<String, String>,
        line: usize,
    ) -> Result<Rewrite, ParseError> {
        let (flags, args) = split_flags(rest);
        for f in &flags {
            if flag_name(f) != "platform" {
                return Err(err(line, format!("FROM does not take the flag {f}")));
            }
        }
        let words: Vec<&str> = args.split_whitespace().collect();
        let (base, alias) = match words.as_slice() {
            [base] => (*base, None),
            [base, as_, name] if as_.eq_ignore_ascii_case("as") => {
                let name = name.to_ascii_lowercase();
                if !is_stage_name(&name) {
                    return Err(err(line, format!("{name:?} is not a valid stage name")));
                }
                (*base, Some(name))
            }
            _ => {
                return Err(err(
                    line,
                    "FROM takes an image and optionally AS and a stage name",
                ))
            }
        };
        let name = expand(base, escape, &|k: &str| meta.get(k).cloned()).map_err(|v| {
            err(
                line,
                format!(
                    "FROM {base}: the variable {v} is not set by a global ARG or a build argument"
                ),
            )
        })?;
        if name.is_empty() {
            return Err(err(line, format!("FROM {base} names no image")));
        }
        // Only stages finished before this one count, as in the builder.
        let source = match self.stage_by_name(&name) {
            Some(i) => Source::Stage(i),
            None if name == "scratch" => Source::Scratch,
            None => self.image(name),
        };
        if let Some(a) = &alias {
            if self.stage_by_name(a).is_some() {
                return Err(err(line, format!("the stage name {a} is used twice")));
            }
        }
        self.stages.push(alias.clone());
        self.bases.push(match &source {
            Source::Image(name) => Some(name.clone()),
            _ => None,
        });
        Ok(Rewrite {
            keyword: "FROM".into(),
            flags,
            source,
            rest: alias.map(|a| format!("AS {a}")).unwrap_or_default(),
            is_from: true,
        })
    }

    fn stage_by_name(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|s| s.as_deref() == Some(lower.as_str()))
    }

    fn image(&mut self, name: String) -> Source {
        if !self.images.contains(&name) {
            self.images.push(name.clone());
        }
        Source::Image(name)
    }

    /// The images and URLs one instruction (of the file, or an `ONBUILD` trigger) reads;
    /// a rewrite when it names an image or stage with `--from`.
    #[allow(clippy::too_many_arguments)]
    fn instruction_uses(
        &mut self,
        instruction: &str,
        rest: &str,
        escape: char,
        meta: &HashMap<String, String>,
        vars: &HashMap<String, String>,
        line: usize,
        context: Trigger,
    ) -> Result<Option<Rewrite>, ParseError> {
        let (flags, args) = split_flags(rest);
        match instruction {
            "RUN" => {
                if let Some(f) = flags.first() {
                    return Err(err(
                        line,
                        format!(
                            "RUN {f}: RUN flags (--mount, --network, --security) need BuildKit; builds here use the classic builder"
                        ),
                    ));
                }
                Ok(None)
            }
            "ONBUILD" => Err(err(line, "ONBUILD ONBUILD is not allowed")),
            "FROM" | "MAINTAINER" if context == Trigger::OwnFile => Err(err(
                line,
                format!("{instruction} is not allowed in ONBUILD"),
            )),
            "ADD" => {
                for f in &flags {
                    if flag_name(f) != "chown" {
                        return Err(err(
                            line,
                            format!("ADD {f}: only --chown is supported by the classic builder"),
                        ));
                    }
                }
                let mut sources = words(args);
                sources.pop();
                for s in sources {
                    let lookup = |k: &str| vars.get(k).cloned();
                    let value = expand(&s, escape, &lookup).map_err(|v| {
                        err(
                            line,
                            format!("ADD {s}: the variable {v} is not set in the Dockerfile"),
                        )
                    })?;
                    if is_url(&value) && !self.add_urls.contains(&value) {
                        self.add_urls.push(value);
                    }
                }
                Ok(None)
            }
            "COPY" => {
                let mut from = None;
                let mut kept = Vec::new();
                for f in flags {
                    match flag_name(&f) {
                        "from" => {
                            if from.is_some() {
                                return Err(err(line, "COPY takes --from once"));
                            }
                            from = Some(flag_value(&f).unwrap_or_default().to_string());
                        }
                        "chown" => kept.push(f),
                        _ => {
                            return Err(err(
                                line,
                                format!("COPY {f}: only --from and --chown are supported by the classic builder"),
                            ))
                        }
                    }
                }
                let Some(raw) = from else {
                    return Ok(None);
                };
                let value = expand(&raw, escape, &|k: &str| meta.get(k).cloned()).map_err(|v| {
                    err(
                        line,
                        format!("COPY --from={raw}: the variable {v} is not set by a global ARG or a build argument"),
                    )
                })?;
                if value.is_empty() {
                    return Err(err(line, "COPY --from= names nothing"));
                }
                let finished = match context {
                    Trigger::Stage(current) => current,
                    Trigger::OwnFile => {
                        // Where an ONBUILD of this file runs is another build's business:
                        // only an image can be checked here.
                        if value.parse::<usize>().is_ok() || self.stage_by_name(&value).is_some() {
                            return Err(err(
                                line,
                                format!("ONBUILD COPY --from={value}: an ONBUILD step may copy only from an image"),
                            ));
                        }
                        0
                    }
                };
                let source = self.copy_source(value, finished, line)?;
                Ok(Some(Rewrite {
                    keyword: "COPY".into(),
                    flags: kept,
                    source,
                    rest: args.to_string(),
                    is_from: false,
                }))
            }
            _ => Ok(None),
        }
    }

    /// A `--from` value in a stage where `finished` stages are done: an index, the name
    /// of a finished stage, or an image.
    fn copy_source(
        &mut self,
        value: String,
        finished: usize,
        line: usize,
    ) -> Result<Source, ParseError> {
        if let Ok(i) = value.parse::<usize>() {
            return if i < finished {
                Ok(Source::Stage(i))
            } else {
                Err(err(
                    line,
                    format!("--from={value}: there is no finished stage {i}"),
                ))
            };
        }
        match self.stage_by_name(&value) {
            Some(i) if i < finished => Ok(Source::Stage(i)),
            _ => Ok(self.image(value)),
        }
    }

    /// Every image the build reads, as written after substitution (deduplicated).
    pub fn images(&self) -> &[String] {
        &self.images
    }

    /// Every `ADD` source that is a URL (`http://`, `https://`, `git://`, `git@`).
    pub fn add_urls(&self) -> &[String] {
        &self.add_urls
    }

    /// The stages whose base is an image: `(stage index, image as written)`. The base
    /// image's `ONBUILD` triggers run at the start of such a stage.
    pub fn stage_images(&self) -> impl Iterator<Item = (usize, &str)> {
        self.bases
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_deref().map(|b| (i, b)))
    }

    /// What the `ONBUILD` triggers of stage `stage`'s base image read, in that stage:
    /// images (`COPY --from`) and `ADD` URLs. A trigger cannot be pinned (it lives in the
    /// base image), so its images are only checked.
    ///
    /// # Errors
    /// As [`Dockerfile::parse`], for a trigger.
    pub fn trigger_uses(
        &self,
        stage: usize,
        triggers: &[String],
    ) -> Result<(Vec<String>, Vec<String>), ParseError> {
        let mut scratch = Dockerfile {
            nodes: Vec::new(),
            images: Vec::new(),
            add_urls: Vec::new(),
            stages: self.stages.clone(),
            bases: Vec::new(),
            escape: self.escape,
        };
        let empty = HashMap::new();
        for (i, t) in triggers.iter().enumerate() {
            let t = t.trim();
            let (word, rest) = match t.split_once(|c: char| c.is_whitespace()) {
                Some((w, r)) => (w.to_ascii_uppercase(), r.trim_start()),
                None => (t.to_ascii_uppercase(), ""),
            };
            scratch
                .instruction_uses(
                    &word,
                    rest,
                    '\\',
                    &empty,
                    &empty,
                    i + 1,
                    Trigger::Stage(stage),
                )
                .map_err(|e| {
                    ParseError::new(
                        "dockerfile",
                        format!("an ONBUILD step of the base image of stage {stage}: {e}"),
                    )
                    .because(
                        "onbuild",
                        [("stage", stage.to_string()), ("detail", e.to_string())],
                    )
                })?;
        }
        Ok((scratch.images, scratch.add_urls))
    }

    /// The file with each image replaced by `pin(image)` (its id) and each stage
    /// reference by its index, and `after_from` (a whole instruction) inserted after every
    /// `FROM`. Errors when `pin` knows no id for an image.
    pub fn pinned(
        &self,
        pin: &dyn Fn(&str) -> Option<String>,
        after_from: Option<&str>,
    ) -> Result<String, String> {
        let mut out = String::new();
        if self.escape != '\\' {
            out.push_str(&format!("# escape={}\n", self.escape));
        }
        for node in &self.nodes {
            let Some(r) = &node.rewrite else {
                out.push_str(&node.raw);
                continue;
            };
            let source = match &r.source {
                Source::Scratch => "scratch".to_string(),
                Source::Stage(i) => i.to_string(),
                Source::Image(name) => pin(name).ok_or_else(|| name.clone())?,
            };
            let mut line = r.keyword.clone();
            for f in &r.flags {
                line.push(' ');
                line.push_str(f);
            }
            if r.is_from {
                line.push(' ');
                line.push_str(&source);
            } else {
                line.push_str(" --from=");
                line.push_str(&source);
            }
            if !r.rest.is_empty() {
                line.push(' ');
                line.push_str(&r.rest);
            }
            line.push('\n');
            if let (true, Some(extra)) = (r.is_from, after_from) {
                line.push_str(extra);
                line.push('\n');
            }
            out.push_str(&line);
        }
        Ok(out)
    }
}

/// Where an instruction runs, for what `--from` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// In the stage of this index (those before it are finished).
    Stage(usize),
    /// An `ONBUILD` of this file: it runs in some later build.
    OwnFile,
}

fn is_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("git://")
        || lower.starts_with("git@")
}

fn flag_name(flag: &str) -> &str {
    let f = flag.trim_start_matches('-');
    f.split_once('=').map_or(f, |(n, _)| n)
}

fn flag_value(flag: &str) -> Option<&str> {
    flag.split_once('=').map(|(_, v)| v)
}

/// The leading `--flag[=value]` words of an instruction's arguments and the rest,
/// verbatim. Quotes inside a flag keep whitespace in it, as in the builder.
fn split_flags(rest: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start();
    loop {
        if !s.starts_with("--") {
            return (flags, s);
        }
        let mut quote = None;
        let mut end = s.len();
        for (i, c) in s.char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None => {}
            }
        }
        let word = &s[..end];
        s = s[end..].trim_start();
        if word == "--" {
            return (flags, s);
        }
        flags.push(word.to_string());
    }
}

/// The arguments of `ADD`/`COPY`: a JSON array, or words separated by whitespace.
fn words(args: &str) -> Vec<String> {
    let t = args.trim();
    if t.starts_with('[') {
        if let Some(list) = json_strings(t) {
            return list;
        }
    }
    t.split_whitespace().map(String::from).collect()
}

/// A JSON array of strings, read without a JSON library (the domain crate has none).
fn json_strings(s: &str) -> Option<Vec<String>> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some('"') => {}
            Some(_) => return None,
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => item.push('\n'),
                    't' => item.push('\t'),
                    c => item.push(c),
                },
                c => item.push(c),
            }
        }
        out.push(item);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// `ARG a b=1 c="x y"`: names with optional defaults (not yet substituted).
fn arg_pairs(
    rest: &str,
    escape: char,
    line: usize,
) -> Result<Vec<(String, Option<String>)>, ParseError> {
    let mut out = Vec::new();
    for w in shell_words(rest, escape) {
        let (name, value) = match w.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (w.clone(), None),
        };
        if name.is_empty() {
            return Err(err(line, "ARG needs a name"));
        }
        out.push((name, value));
    }
    if out.is_empty() {
        return Err(err(line, "ARG needs a name"));
    }
    Ok(out)
}

/// `ENV a=1 b=2` or `ENV a 1`.
fn env_pairs(rest: &str, escape: char, line: usize) -> Result<Vec<(String, String)>, ParseError> {
    let words = shell_words(rest, escape);
    if words.first().is_some_and(|w| !w.contains('=')) {
        let (name, value) = rest
            .trim()
            .split_once(|c: char| c.is_whitespace())
            .ok_or_else(|| err(line, "ENV needs a name and a value"))?;
        return Ok(vec![(name.to_string(), value.trim().to_string())]);
    }
    Ok(words
        .into_iter()
        .filter_map(|w| {
            w.split_once('=')
                .map(|(n, v)| (n.to_string(), v.to_string()))
        })
        .collect())
}

/// Words separated by unquoted whitespace; quotes and escapes are kept for [`expand`].
fn shell_words(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) if c == escape => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            Some(_) => cur.push(c),
            None if c == escape => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One word with the builder's shell rules: quotes removed, the escape character,
/// `$V`, `${V}`, `${V:-word}`, `${V:+word}`. A variable that is not set is an error
/// (its name), never an empty string.
pub(crate) fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                out.push(n);
                i += 2;
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == escape
                    && matches!(chars.get(i + 1), Some(&n) if n == '"' || n == '$' || n == escape)
                {
                    out.push(chars[i + 1]);
                    i += 2;
                } else if chars[i] == '$' {
                    i = dollar(&chars, i, escape, lookup, &mut out)?;
                } else {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            i += 1;
        } else if c == '$' {
            i = dollar(&chars, i, escape, lookup, &mut out)?;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// Expands the `$...` at `chars[i]`; returns the index after it.
fn dollar(
    chars: &[char],
    i: usize,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<usize, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut j = i + 1;
    if chars.get(j) == Some(&'{') {
        j += 1;
        let start = j;
        while j < chars.len() && is_name(chars[j]) {
            j += 1;
        }
        let name: String = chars[start..j].iter().collect();
        if name.is_empty() {
            return Err("${}".into());
        }
        match chars.get(j) {
            Some('}') => {
                out.push_str(&lookup(&name).ok_or(name)?);
                Ok(j + 1)
            }
            Some(':') => {
                let op = chars.get(j + 1).copied();
                let mut k = j + 2;
                let mut depth = 0;
                let wstart = k;
                while k < chars.len() && !(chars[k] == '}' && depth == 0) {
                    if chars[k] == '{' {
                        depth += 1;
                    } else if chars[k] == '}' {
                        depth -= 1;
                    }
                    k += 1;
                }
                if k >= chars.len() {
                    return Err(name);
                }
                let word: String = chars[wstart..k].iter().collect();
                let value = lookup(&name).filter(|v| !v.is_empty());
                match op {
                    Some('-') => match value {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&expand(&word, escape, lookup)?),
                    },
                    Some('+') => {
                        if value.is_some() {
                            out.push_str(&expand(&word, escape, lookup)?);
                        }
                    }
                    _ => return Err(format!("{name} (unsupported modifier)")),
                }
                Ok(k + 1)
            }
            _ => Err(name),
        }
    } else {
        let start = j;
        while j < chars.len() && is_name(chars[j]) {
            j += 1;
        }
        if start == j {
            out.push('$');
            return Ok(i + 1);
        }
        let name: String = chars[start..j].iter().collect();
        out.push_str(&lookup(&name).ok_or(name)?);
        Ok(j)
    }
}

/// The file as instructions: `(first line number, original text, logical line)`, after
/// directives, comments and continuations; the escape character.
#[allow(clippy::type_complexity)]
fn split(text: &str) -> Result<(char, Vec<(usize, String, String)>), ParseError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut escape = '\\';
    let mut i = 0;
    let mut nodes = Vec::new();
    // Parser directives: `# name=value` lines at the very top.
    let mut directives = String::new();
    while i < lines.len() {
        let Some(d) = directive(lines[i]) else { break };
        if d.0 == "escape" {
            escape = match d.1.as_str() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(err(
                        i + 1,
                        format!("the escape character must be \\ or `, not {other:?}"),
                    ))
                }
            };
        }
        directives.push_str(lines[i]);
        if !lines[i].ends_with('\n') {
            directives.push('\n');
        }
        i += 1;
    }
    if !directives.is_empty() {
        // Written back by `pinned` (the escape one) or dropped (`syntax`, ignored by the
        // classic builder).
        nodes.push((1, String::new(), String::new()));
    }
    while i < lines.len() {
        let first = i + 1;
        let mut raw = String::new();
        let mut logical = String::new();
        loop {
            let line = lines[i];
            raw.push_str(line);
            i += 1;
            let body = line.trim_end_matches(['\n', '\r']);
            let stripped = body.trim_start();
            if stripped.starts_with('#') {
                if logical.is_empty() {
                    break;
                }
                if i >= lines.len() {
                    break;
                }
                continue;
            }
            let t = body.trim_end();
            if let Some(before) = t.strip_suffix(escape) {
                logical.push_str(before);
                if i >= lines.len() {
                    break;
                }
                continue;
            }
            if t.trim().is_empty() && !logical.is_empty() && i < lines.len() {
                // An empty line inside a continuation is skipped.
                continue;
            }
            logical.push_str(t);
            break;
        }
        if !raw.ends_with('\n') {
            raw.push('\n');
        }
        nodes.push((first, raw, logical));
    }
    Ok((escape, nodes))
}

/// A parser directive line: `# name = value`.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim_end_matches(['\n', '\r']).trim();
    let rest = body.strip_prefix('#')?.trim();
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Dockerfile {
        Dockerfile::parse(text, &[]).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn images(text: &str) -> Vec<String> {
        read(text).images().to_vec()
    }

    fn refused(text: &str, args: &[(&str, &str)]) -> String {
        let args: Vec<(String, String)> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Dockerfile::parse(text, &args).expect_err(text).message
    }

    #[test]
    fn finds_every_image_a_build_reads() {
        assert_eq!(images("FROM busybox\n"), ["busybox"]);
        assert_eq!(images("from wm/a/x:1 as Build\nFROM build\n"), ["wm/a/x:1"]);
        assert_eq!(
            images("FROM scratch\nCOPY --from=wm/a/secret:1 /s /s\n"),
            ["wm/a/secret:1"]
        );
        let id = format!("sha256:{}", "a".repeat(64));
        assert_eq!(images(&format!("FROM {id}\n")), [id.as_str()]);
        assert_eq!(images("FROM abc123\n"), ["abc123"]);
        assert_eq!(
            images("FROM x@sha256:0000\nFROM scratch\n"),
            ["x@sha256:0000"]
        );
        // Comments, blank lines, continuations and lower case.
        assert_eq!(
            images("# a comment\n\nfrom \\\n  wm/a/x:1\n# c\ncopy \\\n# inside\n --from=wm/b/y /a /b\n"),
            ["wm/a/x:1", "wm/b/y"]
        );
    }

    #[test]
    fn stages_are_stages_only_once_finished() {
        // Index and name of an earlier stage: no image.
        assert_eq!(
            images(
                "FROM busybox AS one\nFROM scratch\nCOPY --from=0 /a /a\nCOPY --from=ONE /b /b\n"
            ),
            ["busybox"]
        );
        // Inside its own stage, the stage's name is an image name to the builder.
        assert_eq!(
            images("FROM busybox AS abc123\nCOPY --from=abc123 /a /a\n"),
            ["busybox", "abc123"]
        );
        // A stage named later is not one yet.
        assert_eq!(
            images("FROM wm/a/secret AS later\nFROM later\n"),
            ["wm/a/secret"]
        );
        assert!(refused("FROM busybox\nCOPY --from=0 /a /a\n", &[]).contains("no finished stage"));
        assert!(refused("FROM busybox AS a\nFROM scratch AS A\n", &[]).contains("twice"));
    }

    #[test]
    fn substitutes_global_args() {
        let text = "ARG BASE=busybox\nARG TAG\nFROM ${BASE}:${TAG:-1}\nARG LATE=x\nFROM $BASE\n";
        assert_eq!(images(text), ["busybox:1", "busybox"]);
        let args = vec![("BASE".to_string(), "wm/a/secret".to_string())];
        let df = Dockerfile::parse(text, &args).unwrap();
        assert_eq!(df.images(), ["wm/a/secret:1", "wm/a/secret"]);
        // A build argument not declared by a global ARG does not reach FROM.
        assert!(refused("FROM $X\n", &[("X", "busybox")]).contains("variable X"));
        // An ARG declared after FROM is no global one.
        assert!(refused("FROM busybox\nARG B=x\nFROM $B\n", &[]).contains("variable B"));
        // Declared without a default and not given: unresolved, never empty.
        assert!(refused("ARG B\nFROM ${B}\n", &[]).contains("variable B"));
        assert!(refused("ARG B=x\nFROM ${B}\nCOPY --from=$NOPE /a /a\n", &[]).contains("NOPE"));
        assert_eq!(
            Dockerfile::parse(
                "ARG B\nFROM ${B:+wm/a/x}busybox\n",
                &[("B".into(), "1".into())]
            )
            .unwrap()
            .images(),
            ["wm/a/xbusybox"]
        );
        // Quotes and escapes.
        assert_eq!(images("FROM \"busybox\"\n"), ["busybox"]);
        assert_eq!(images("ARG A=1\nFROM 'x$A'\n"), ["x$A"]);
        assert_eq!(images("ARG A=1\nFROM x\\$A\n"), ["x$A"]);
        assert_eq!(images("ARG A=bb\nARG B=${A}x\nFROM $B\n"), ["bbx"]);
        assert_eq!(images("ARG A=\"b b\" C=d\nFROM $C\n"), ["d"]);
    }

    #[test]
    fn escape_directive() {
        let text = "# escape=`\nFROM `\n  wm/a/x:1\nRUN echo c:\\path\n";
        let df = read(text);
        assert_eq!(df.images(), ["wm/a/x:1"]);
        let pinned = df.pinned(&|_| Some("sha256:ff".into()), None).unwrap();
        assert!(
            pinned.starts_with("# escape=`\nFROM sha256:ff\n"),
            "{pinned}"
        );
        assert!(pinned.contains("RUN echo c:\\path\n"));
        // Not a directive once an instruction was seen.
        assert_eq!(
            images("FROM busybox\n# escape=`\nFROM \\\n y\n"),
            ["busybox", "y"]
        );
        assert!(refused("# escape=x\nFROM a\n", &[]).contains("escape"));
    }

    #[test]
    fn refuses_what_the_classic_builder_would_read_unchecked() {
        assert!(refused(
            "FROM busybox\nRUN --mount=type=bind,from=wm/a/s,target=/s cat /s/x\n",
            &[]
        )
        .contains("BuildKit"));
        assert!(refused("RUN true\nFROM busybox\n", &[]).contains("before the first FROM"));
        assert!(refused("# nothing\n", &[]).contains("no FROM"));
        assert!(refused("FROM busybox\nCOPY --from=a --from=b /x /x\n", &[]).contains("once"));
        assert!(refused("FROM busybox\nONBUILD COPY --from=0 /x /x\n", &[])
            .contains("only from an image"));
        assert!(refused("FROM busybox\nADD $HOST/x /x\n", &[]).contains("HOST"));
    }

    #[test]
    fn onbuild_and_add() {
        let df = read(
            "FROM busybox\nONBUILD COPY --from=wm/a/s:1 /s /s\nARG H=http://127.0.0.1:9\nADD ${H}/x /x\nADD [\"https://e.org/y\", \"/d/\"]\nADD local /l\n",
        );
        assert_eq!(df.images(), ["busybox", "wm/a/s:1"]);
        assert_eq!(df.add_urls(), ["http://127.0.0.1:9/x", "https://e.org/y"]);
        let df = read("FROM busybox\nADD http://127.0.0.1:9/x https://e.org/y /d/\nADD git@github.com:a/b.git /g\n");
        assert_eq!(
            df.add_urls(),
            [
                "http://127.0.0.1:9/x",
                "https://e.org/y",
                "git@github.com:a/b.git"
            ]
        );
        let pinned = read("FROM busybox\nONBUILD copy --from=wm/a/s:1 /s /s\n")
            .pinned(&|i| Some(format!("sha256:{}", i.len())), None)
            .unwrap();
        assert_eq!(
            pinned,
            "FROM sha256:7\nONBUILD COPY --from=sha256:8 /s /s\n"
        );
        // A base image's triggers, read in the stage they run in.
        let df = read("FROM busybox AS one\nFROM base\nFROM one\n");
        assert_eq!(
            df.stage_images().collect::<Vec<_>>(),
            [(0, "busybox"), (1, "base")]
        );
        let (imgs, urls) = df
            .trigger_uses(
                1,
                &[
                    "COPY --from=one /a /a".into(),
                    "COPY --from=wm/a/s /a /a".into(),
                    "ADD http://x/y /y".into(),
                    "RUN true".into(),
                ],
            )
            .unwrap();
        assert_eq!(
            (imgs, urls),
            (vec!["wm/a/s".to_string()], vec!["http://x/y".to_string()])
        );
        assert!(df.trigger_uses(1, &["COPY --from=1 /a /a".into()]).is_err());
    }

    #[test]
    fn pins_every_image_and_stage() {
        let df = read(
            "ARG B=busybox\nFROM --platform=linux/amd64 $B AS Build\nRUN echo \\\n  hi\nFROM scratch\nCOPY --chown=1:1 --from=build [\"/a\", \"/b\"]\nCOPY --from=wm/a/x:1 /c /c\n",
        );
        let pinned = df
            .pinned(&|i| Some(format!("sha256:{}", i.replace('/', "-"))), None)
            .unwrap();
        assert_eq!(
            pinned,
            "ARG B=busybox\nFROM --platform=linux/amd64 sha256:busybox AS build\nRUN echo \\\n  hi\nFROM scratch\nCOPY --chown=1:1 --from=0 [\"/a\", \"/b\"]\nCOPY --from=sha256:wm-a-x:1 /c /c\n"
        );
        assert_eq!(df.pinned(&|_| None, None).unwrap_err(), "busybox");
        let marked = df
            .pinned(&|_| Some("sha256:ab".into()), Some("ARG OWNER"))
            .unwrap();
        assert_eq!(
            marked.matches("ARG OWNER\n").count(),
            marked.matches("FROM ").count(),
            "{marked}"
        );
    }
}
