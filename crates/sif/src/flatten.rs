//! Flattening the layers of an image into one tree, as Docker applies layers
//! (`pkg/archive` `UnpackLayer`), in two passes over the layer tars so that no file data is
//! staged:
//!
//! 1. [`plan`] reads the headers, lowest layer first, and keeps for every path the entry that
//!    survives. `.wh.<name>` removes `<name>` and everything under it; `.wh..wh..opq` hides
//!    what lower layers have in its directory; anything but a directory replacing a directory
//!    removes the directory's contents; a directory over a directory merges.
//! 2. [`emit`] reads the layers again and writes the survivors, with their data, to a tar
//!    stream, followed by the runtime layout as a last, synthetic layer.
//!
//! An entry is known by its layer and its position in the layer's tar, which both passes see
//! alike. A hard link is tied to the entry it links to: if that entry is later deleted or
//! replaced, the first surviving link takes its content (as the inode outlives a name in
//! Docker) and the other links point at it.

use crate::runtime::{Synthetic, SyntheticKind};
use crate::{report, Progress, ProgressFn, SifError};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

/// An entry: its layer (the synthetic layer comes last) and its position in the layer.
type EntryId = (usize, usize);

/// What a surviving path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    /// A hard link to the regular file entry given.
    HardLink(EntryId),
}

#[derive(Debug, Clone, Copy)]
struct Node {
    id: EntryId,
    kind: Kind,
}

/// The flattened tree while pass 1 builds it.
#[derive(Default)]
struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
}

impl Tree {
    /// Removes everything strictly under `dir`, except, with `keep`, what that layer added.
    fn remove_below(&mut self, dir: &Path, keep: Option<usize>) {
        // Paths order by component, so everything under `dir` directly follows it.
        let doomed: Vec<PathBuf> = self
            .nodes
            .range::<Path, _>((Bound::Excluded(dir), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(dir))
            .filter(|(_, n)| Some(n.id.0) != keep)
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.nodes.remove(&p);
        }
    }

    fn remove(&mut self, path: &Path) {
        self.nodes.remove(path);
        self.remove_below(path, None);
    }

    fn put(&mut self, path: PathBuf, node: Node) {
        // A file, link or symlink where a directory is needed gives way to the directory.
        for parent in path.ancestors().skip(1) {
            if self.nodes.get(parent).is_some_and(|n| n.kind != Kind::Dir) {
                self.nodes.remove(parent);
            }
        }
        if node.kind != Kind::Dir {
            self.remove_below(&path, None);
        }
        self.nodes.insert(path, node);
    }

    /// The regular file entry a hard link to `target` shares its inode with.
    fn link_source(&self, target: &Path) -> Option<EntryId> {
        match self.nodes.get(target)?.kind {
            Kind::File => Some(self.nodes[target].id),
            Kind::HardLink(source) => Some(source),
            Kind::Dir | Kind::Symlink => None,
        }
    }

    fn apply(&mut self, id: EntryId, change: Change) {
        match change {
            Change::Whiteout(path) | Change::Remove(path) => self.remove(&path),
            Change::Opaque(dir) => self.remove_below(&dir, Some(id.0)),
            Change::Put(path, kind) => self.put(path, Node { id, kind }),
            Change::Link(path, target) => match self.link_source(&target) {
                Some(source) => self.put(
                    path,
                    Node {
                        id,
                        kind: Kind::HardLink(source),
                    },
                ),
                None => self.remove(&path),
            },
            Change::Skip => {}
        }
    }
}

/// What one layer entry does to the tree.
#[derive(Debug, PartialEq)]
enum Change {
    Whiteout(PathBuf),
    Opaque(PathBuf),
    Put(PathBuf, Kind),
    Link(PathBuf, PathBuf),
    /// Something left out (a device, FIFO, socket) still replaces what was there.
    Remove(PathBuf),
    Skip,
}

/// A path inside the image, relative to its root; `None` for the root itself and for paths
/// that climb out of it.
fn image_path(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn classify<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Change, SifError> {
    let err = SifError::io("reading a layer");
    let Some(path) = image_path(&entry.path().map_err(err)?) else {
        return Ok(Change::Skip);
    };
    let name = path.file_name().map_or(&[][..], |n| n.as_bytes());
    let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
    if name == b".wh..wh..opq" {
        return Ok(Change::Opaque(parent));
    }
    if name.starts_with(b".wh..wh.") {
        // aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`), never content.
        return Ok(Change::Skip);
    }
    if let Some(hidden) = name.strip_prefix(b".wh.") {
        return Ok(Change::Whiteout(
            parent.join(std::ffi::OsStr::from_bytes(hidden)),
        ));
    }
    let kind = entry.header().entry_type();
    Ok(match kind {
        EntryType::Regular | EntryType::Continuous => Change::Put(path, Kind::File),
        EntryType::Directory => Change::Put(path, Kind::Dir),
        EntryType::Symlink => Change::Put(path, Kind::Symlink),
        EntryType::Link => {
            let target = entry
                .link_name()
                .map_err(SifError::io("reading a layer"))?
                .as_deref()
                .and_then(image_path);
            match target {
                Some(target) => Change::Link(path, target),
                None => Change::Remove(path),
            }
        }
        EntryType::XGlobalHeader | EntryType::XHeader => Change::Skip,
        _ => Change::Remove(path),
    })
}

/// How pass 2 writes an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Emit {
    /// The entry survives at this path.
    Entry(PathBuf),
    /// The entry is gone, but a hard link to it survives at this path and takes its data.
    Materialize(PathBuf),
    /// A hard link at `path` to what is written at `target`.
    Link { path: PathBuf, target: PathBuf },
}

/// The outcome of pass 1: what pass 2 writes for each entry.
pub(crate) struct Plan {
    emits: HashMap<EntryId, Emit>,
}

impl Plan {
    fn from_tree(tree: Tree) -> Plan {
        let files: HashMap<EntryId, &PathBuf> = tree
            .nodes
            .iter()
            .filter(|(_, n)| n.kind == Kind::File)
            .map(|(p, n)| (n.id, p))
            .collect();
        let mut materialized: HashMap<EntryId, &PathBuf> = HashMap::new();
        let mut emits = HashMap::new();
        for (path, node) in &tree.nodes {
            let Kind::HardLink(source) = node.kind else {
                emits.insert(node.id, Emit::Entry(path.clone()));
                continue;
            };
            let target = files.get(&source).or_else(|| materialized.get(&source));
            if let Some(target) = target {
                let target = (*target).clone();
                emits.insert(
                    node.id,
                    Emit::Link {
                        path: path.clone(),
                        target,
                    },
                );
            } else {
                materialized.insert(source, path);
                emits.insert(source, Emit::Materialize(path.clone()));
            }
        }
        Plan { emits }
    }
}

/// A layer tar, plain or gzip-compressed, buffered.
enum Layer {
    Plain(BufReader<File>),
    Gzip(Box<flate2::read::MultiGzDecoder<BufReader<File>>>),
}

impl Layer {
    fn open(path: &Path) -> Result<Layer, SifError> {
        let err = || SifError::io("opening a layer");
        let mut file = File::open(path).map_err(err())?;
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(err())?;
        file.seek(SeekFrom::Start(0)).map_err(err())?;
        let file = BufReader::new(file);
        match &magic[..n] {
            [0x1f, 0x8b, ..] => Ok(Layer::Gzip(Box::new(flate2::read::MultiGzDecoder::new(
                file,
            )))),
            // zstd, xz, bzip2
            [0x28, 0xb5, 0x2f, 0xfd] | [0xfd, b'7', b'z', b'X'] | [b'B', b'Z', b'h', _] => {
                Err(SifError::UnsupportedCompression {
                    layer: path.display().to_string(),
                })
            }
            _ => Ok(Layer::Plain(file)),
        }
    }
}

impl Read for Layer {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Layer::Plain(r) => r.read(buf),
            Layer::Gzip(r) => r.read(buf),
        }
    }
}

/// Pass 1 over one layer's entries.
fn scan<R: Read>(
    entries: tar::Entries<'_, R>,
    layer: usize,
    tree: &mut Tree,
) -> Result<(), SifError> {
    for (ordinal, entry) in entries.enumerate() {
        let entry = entry.map_err(SifError::io("reading a layer"))?;
        tree.apply((layer, ordinal), classify(&entry)?);
    }
    Ok(())
}

/// Pass 1: which entry survives where.
pub(crate) fn plan(
    layers: &[PathBuf],
    synthetic: &[Synthetic],
    progress: &mut ProgressFn<'_>,
) -> Result<Plan, SifError> {
    let mut tree = Tree::default();
    for (i, path) in layers.iter().enumerate() {
        report(
            progress,
            Progress::Scanning {
                layer: i + 1,
                layers: layers.len(),
            },
        )?;
        let err = || SifError::io("reading a layer");
        // A plain tar's file data is skipped by seeking, not read.
        match Layer::open(path)? {
            Layer::Plain(r) => scan(
                tar::Archive::new(r).entries_with_seek().map_err(err())?,
                i,
                &mut tree,
            )?,
            gzip => scan(
                tar::Archive::new(gzip).entries().map_err(err())?,
                i,
                &mut tree,
            )?,
        }
    }
    apply_synthetic(&mut tree, layers.len(), synthetic);
    Ok(Plan::from_tree(tree))
}

fn apply_synthetic(tree: &mut Tree, layer: usize, synthetic: &[Synthetic]) {
    for (ordinal, s) in synthetic.iter().enumerate() {
        let path = PathBuf::from(s.path);
        let kind = match s.kind {
            SyntheticKind::Dir => Kind::Dir,
            SyntheticKind::File(_) => Kind::File,
            SyntheticKind::Symlink(_) => Kind::Symlink,
        };
        if kind == Kind::File || !tree.nodes.contains_key(&path) {
            tree.apply((layer, ordinal), Change::Put(path, kind));
        }
    }
}

/// Owner, mode and time of an entry, PAX records taking precedence over the header.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<Meta> {
        let h = entry.header();
        let mut meta = Meta {
            mode: h.mode()? & 0o7777,
            uid: h.uid()?,
            gid: h.gid()?,
            mtime: h.mtime()?,
        };
        if let Some(records) = entry.pax_extensions()? {
            for record in records {
                let record = record?;
                // PAX times may carry a fraction; uid and gid never do.
                let value = record
                    .value()
                    .ok()
                    .and_then(|v| v.split('.').next())
                    .and_then(|v| v.parse::<u64>().ok());
                match (record.key(), value) {
                    (Ok("uid"), Some(v)) => meta.uid = v,
                    (Ok("gid"), Some(v)) => meta.gid = v,
                    (Ok("mtime"), Some(v)) => meta.mtime = v,
                    _ => {}
                }
            }
        }
        Ok(meta)
    }

    fn header(&self, kind: EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(self.mode);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h.set_mtime(self.mtime);
        h.set_size(size);
        h
    }
}

/// Squashing progress is reported at most this often within a layer.
const REPORT_EVERY: u64 = 16 << 20;

/// Pass 2: writes the surviving entries, then the synthetic layer, to `out`.
pub(crate) fn emit<W: Write>(
    plan: &Plan,
    layers: &[PathBuf],
    synthetic: &[Synthetic],
    mtime: u64,
    out: &mut tar::Builder<W>,
    progress: &mut ProgressFn<'_>,
) -> Result<(), SifError> {
    let read = || SifError::io("reading a layer");
    let write = || SifError::io("writing to mksquashfs");
    let mut bytes = 0u64;
    let mut reported = 0u64;
    for (i, path) in layers.iter().enumerate() {
        let squashing = |bytes| Progress::Squashing {
            layer: i + 1,
            layers: layers.len(),
            bytes,
        };
        report(progress, squashing(bytes))?;
        let mut archive = tar::Archive::new(Layer::open(path)?);
        for (ordinal, entry) in archive.entries().map_err(read())?.enumerate() {
            let mut entry = entry.map_err(read())?;
            let Some(emit) = plan.emits.get(&(i, ordinal)) else {
                continue;
            };
            let meta = Meta::of(&mut entry).map_err(read())?;
            match emit {
                Emit::Entry(path) if entry.header().entry_type().is_dir() => {
                    let mut h = meta.header(EntryType::Directory, 0);
                    out.append_data(&mut h, path, std::io::empty())
                        .map_err(write())?;
                }
                Emit::Entry(path) if entry.header().entry_type().is_symlink() => {
                    let target = entry.link_name().map_err(read())?.unwrap_or_default();
                    let mut h = meta.header(EntryType::Symlink, 0);
                    out.append_link(&mut h, path, target).map_err(write())?;
                }
                Emit::Entry(path) | Emit::Materialize(path) => {
                    let size = entry.size();
                    let mut h = meta.header(EntryType::Regular, size);
                    out.append_data(&mut h, path, &mut entry).map_err(write())?;
                    bytes += size;
                }
                Emit::Link { path, target } => {
                    let mut h = meta.header(EntryType::Link, 0);
                    out.append_link(&mut h, path, target).map_err(write())?;
                }
            }
            if bytes - reported >= REPORT_EVERY {
                reported = bytes;
                report(progress, squashing(bytes))?;
            }
        }
    }
    let layer = layers.len();
    for (ordinal, s) in synthetic.iter().enumerate() {
        let Some(Emit::Entry(path)) = plan.emits.get(&(layer, ordinal)) else {
            continue;
        };
        let meta = Meta {
            mode: s.mode,
            uid: 0,
            gid: 0,
            mtime,
        };
        match &s.kind {
            SyntheticKind::Dir => {
                let mut h = meta.header(EntryType::Directory, 0);
                out.append_data(&mut h, path, std::io::empty())
            }
            SyntheticKind::File(data) => {
                let mut h = meta.header(EntryType::Regular, data.len() as u64);
                out.append_data(&mut h, path, data.as_slice())
            }
            SyntheticKind::Symlink(target) => {
                let mut h = meta.header(EntryType::Symlink, 0);
                out.append_link(&mut h, path, target)
            }
        }
        .map_err(write())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::ops::ControlFlow;

    /// One entry of a synthetic layer.
    enum E {
        Dir(&'static str),
        File(&'static str, &'static str),
        Link(&'static str, &'static str),
        Sym(&'static str, &'static str),
        Fifo(&'static str),
    }

    fn layer(dir: &Path, name: &str, entries: &[E], gzip: bool) -> PathBuf {
        let path = dir.join(name);
        let file = File::create(&path).unwrap();
        let w: Box<dyn Write> = if gzip {
            Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(file)
        };
        let mut b = tar::Builder::new(w);
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_mtime(1_000_000);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(0);
            match *e {
                E::Dir(p) => {
                    h.set_entry_type(EntryType::Directory);
                    h.set_mode(0o755);
                    b.append_data(&mut h, p, std::io::empty()).unwrap();
                }
                E::File(p, data) => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, p, data.as_bytes()).unwrap();
                }
                E::Link(p, t) => {
                    h.set_entry_type(EntryType::Link);
                    b.append_link(&mut h, p, t).unwrap();
                }
                E::Sym(p, t) => {
                    h.set_entry_type(EntryType::Symlink);
                    b.append_link(&mut h, p, t).unwrap();
                }
                E::Fifo(p) => {
                    h.set_entry_type(EntryType::Fifo);
                    b.append_data(&mut h, p, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap().flush().unwrap();
        path
    }

    /// Flattens `layers` and reads back the stream: path → description.
    fn flatten(layers: &[PathBuf]) -> BTreeMap<String, String> {
        let mut go = |_: Progress| ControlFlow::Continue(());
        let plan = plan(layers, &[], &mut go).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        emit(&plan, layers, &[], 0, &mut b, &mut go).unwrap();
        let data = b.into_inner().unwrap();
        let mut out = BTreeMap::new();
        for e in tar::Archive::new(data.as_slice()).entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            let what = match e.header().entry_type() {
                EntryType::Directory => "dir".to_string(),
                EntryType::Symlink => format!("-> {}", link.unwrap()),
                EntryType::Link => format!("link {}", link.unwrap()),
                _ => {
                    let mut s = String::new();
                    e.read_to_string(&mut s).unwrap();
                    format!("file {s}")
                }
            };
            assert!(out.insert(path, what).is_none(), "a path written twice");
        }
        out
    }

    fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(p, w)| (p.to_string(), w.to_string()))
            .collect()
    }

    #[test]
    fn whiteouts_and_opaque_directories() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = layer(
            dir.path(),
            "1",
            &[
                E::Dir("a"),
                E::File("a/gone", "1"),
                E::File("a/kept", "1"),
                E::Dir("a/sub"),
                E::File("a/sub/deep", "1"),
                E::Dir("opq"),
                E::File("opq/old", "1"),
                E::Dir("opq/olddir"),
                E::File("opq/olddir/x", "1"),
                E::Dir("becomes-file"),
                E::File("becomes-file/child", "1"),
                E::File("dev-here", "1"),
            ],
            false,
        );
        let l2 = layer(
            dir.path(),
            "2",
            &[
                E::Dir("a"),
                E::File("a/.wh.gone", ""),
                E::File("a/.wh.sub", ""),
                E::Dir("opq"),
                // The new content comes before the marker, as Docker may write it.
                E::File("opq/new", "2"),
                E::File("opq/.wh..wh..opq", ""),
                E::File("becomes-file", "2"),
                E::Fifo("dev-here"),
                E::Dir(".wh..wh.plnk"),
            ],
            true,
        );
        assert_eq!(
            flatten(&[l1, l2]),
            expect(&[
                ("a", "dir"),
                ("a/kept", "file 1"),
                ("becomes-file", "file 2"),
                ("opq", "dir"),
                ("opq/new", "file 2"),
            ])
        );
    }

    #[test]
    fn recreated_after_whiteout_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = layer(
            dir.path(),
            "1",
            &[
                E::Dir("d"),
                E::File("d/f", "one"),
                E::File("orig", "shared"),
                E::Link("l1", "orig"),
                E::Link("l2", "./orig"),
                E::Sym("s", "/d/f"),
            ],
            false,
        );
        // `orig` goes: its links keep the content, the first becomes the file.
        let l2 = layer(
            dir.path(),
            "2",
            &[E::File(".wh.orig", ""), E::File(".wh.d", "")],
            false,
        );
        let l3 = layer(
            dir.path(),
            "3",
            &[E::Dir("d"), E::File("d/g", "two")],
            false,
        );
        assert_eq!(
            flatten(&[l1, l2, l3]),
            expect(&[
                ("d", "dir"),
                ("d/g", "file two"),
                ("l1", "file shared"),
                ("l2", "link l1"),
                ("s", "-> /d/f"),
            ])
        );
    }
}
