//! The SIF v1 container format as github.com/sylabs/sif v2 (`pkg/sif`) writes it: a global
//! header, a table of 48 descriptors at 4096, and the data objects after it. Every field is
//! little-endian and packed as Go's `encoding/binary` writes structs (no padding), so the
//! sizes below are the sums of the field sizes.
//!
//! Only one data object is written: the squashfs root file system as the primary system
//! partition, aligned to 4096 as `sif.NewDescriptorInput` aligns partitions.

use crate::{report, Progress, ProgressFn, SifError};
use std::io::{Read, Write};

/// `#!/usr/bin/env run-singularity\n`, the launch line Apptainer writes, NUL-padded to 32.
const LAUNCH_SCRIPT: &[u8] = b"#!/usr/bin/env run-singularity\n";
const LAUNCH_LEN: usize = 32;
const MAGIC: &[u8; 10] = b"SIF_MAGIC\0";
const VERSION: &[u8; 3] = b"01\0";
/// launch 32 + magic 10 + version 3 + arch 3 + id 16 + 8 int64 fields.
const HEADER_LEN: usize = 32 + 10 + 3 + 3 + 16 + 8 * 8;
const DESCRIPTORS_OFFSET: u64 = 4096;
const DESCRIPTOR_CAPACITY: u64 = 48;
/// datatype 4 + used 1 + id, group, link 3×4 + offset, size, size with padding 3×8
/// + created, modified, uid, gid 4×8 + name 128 + extra 384.
const DESCRIPTOR_LEN: u64 = 4 + 1 + 3 * 4 + 3 * 8 + 4 * 8 + 128 + 384;
const PARTITION_ALIGN: u64 = 4096;

const DATA_PARTITION: i32 = 0x4004;
const FS_SQUASH: i32 = 1;
const PART_PRIM_SYS: i32 = 2;
/// Objects are in group 1 by default; group ids carry this mask on disk.
const GROUP_MASK: u32 = 0xf000_0000;
const DEFAULT_GROUP: u32 = 1;

/// A CPU architecture as SIF codes it, parsed from an image config's `architecture`
/// (Go's `GOARCH` names, which Docker and OCI use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SifArch {
    go: &'static str,
    code: [u8; 3],
}

impl SifArch {
    /// The table of `getSIFArch` in sylabs/sif `pkg/sif/arch.go`.
    const ALL: [(&'static str, &'static [u8; 2]); 12] = [
        ("386", b"01"),
        ("amd64", b"02"),
        ("arm", b"03"),
        ("arm64", b"04"),
        ("ppc64", b"05"),
        ("ppc64le", b"06"),
        ("mips", b"07"),
        ("mipsle", b"08"),
        ("mips64", b"09"),
        ("mips64le", b"10"),
        ("s390x", b"11"),
        ("riscv64", b"12"),
    ];

    /// Parses a `GOARCH` name.
    ///
    /// # Errors
    ///
    /// [`SifError::UnsupportedArchitecture`] for a name SIF has no code for.
    pub fn parse(goarch: &str) -> Result<SifArch, SifError> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == goarch)
            .map(|&(go, code)| SifArch {
                go,
                code: [code[0], code[1], 0],
            })
            .ok_or_else(|| SifError::UnsupportedArchitecture(goarch.to_owned()))
    }

    /// The `GOARCH` name, e.g. `amd64`.
    pub fn as_str(&self) -> &'static str {
        self.go
    }
}

impl std::fmt::Display for SifArch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.go)
    }
}

/// What the header and the descriptor say about the image.
pub(crate) struct Image {
    pub id: uuid::Uuid,
    pub arch: SifArch,
    /// Creation and modification time, Unix seconds.
    pub created: i64,
}

/// Where everything goes, from the partition size.
struct Layout {
    data_offset: u64,
    partition_offset: u64,
    partition_len: u64,
}

impl Layout {
    fn new(partition_len: u64) -> Layout {
        let data_offset = DESCRIPTORS_OFFSET + DESCRIPTOR_CAPACITY * DESCRIPTOR_LEN;
        Layout {
            data_offset,
            partition_offset: data_offset.next_multiple_of(PARTITION_ALIGN),
            partition_len,
        }
    }

    /// The partition with the alignment padding before it, as `SizeWithPadding` counts it.
    fn padded_len(&self) -> u64 {
        self.partition_offset - self.data_offset + self.partition_len
    }

    fn header(&self, image: &Image) -> Vec<u8> {
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(LAUNCH_SCRIPT);
        h.resize(LAUNCH_LEN, 0);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(VERSION);
        h.extend_from_slice(&image.arch.code);
        h.extend_from_slice(image.id.as_bytes());
        for v in [
            image.created,
            image.created,
            to_i64(DESCRIPTOR_CAPACITY - 1), // free descriptors
            to_i64(DESCRIPTOR_CAPACITY),
            to_i64(DESCRIPTORS_OFFSET),
            to_i64(DESCRIPTOR_CAPACITY * DESCRIPTOR_LEN),
            to_i64(self.data_offset),
            to_i64(self.padded_len()),
        ] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        debug_assert_eq!(h.len(), HEADER_LEN);
        h
    }

    /// The whole descriptor table: the partition's descriptor, then unused (zero) ones.
    fn descriptors(&self, image: &Image) -> Vec<u8> {
        let mut d = Vec::with_capacity(to_usize(DESCRIPTOR_CAPACITY * DESCRIPTOR_LEN));
        d.extend_from_slice(&DATA_PARTITION.to_le_bytes());
        d.push(1); // used
        d.extend_from_slice(&1u32.to_le_bytes()); // id
        d.extend_from_slice(&(DEFAULT_GROUP | GROUP_MASK).to_le_bytes());
        d.extend_from_slice(&0u32.to_le_bytes()); // linked id: none
        for v in [
            to_i64(self.partition_offset),
            to_i64(self.partition_len),
            to_i64(self.padded_len()),
            image.created,
            image.created,
            0, // uid, deprecated
            0, // gid, deprecated
        ] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.resize(d.len() + 128, 0); // no name, as Apptainer leaves it
        let extra = d.len();
        d.extend_from_slice(&FS_SQUASH.to_le_bytes());
        d.extend_from_slice(&PART_PRIM_SYS.to_le_bytes());
        d.extend_from_slice(&image.arch.code);
        d.resize(extra + 384, 0);
        debug_assert_eq!(d.len() as u64, DESCRIPTOR_LEN);
        d.resize(to_usize(DESCRIPTOR_CAPACITY * DESCRIPTOR_LEN), 0);
        d
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Writes a SIF holding `squashfs` (`len` bytes) as its primary partition; returns the bytes
/// written.
pub(crate) fn write(
    out: &mut impl Write,
    squashfs: &mut impl Read,
    len: u64,
    image: &Image,
    progress: &mut ProgressFn<'_>,
) -> Result<u64, SifError> {
    let layout = Layout::new(len);
    let mut head = layout.header(image);
    head.resize(to_usize(DESCRIPTORS_OFFSET), 0);
    head.extend_from_slice(&layout.descriptors(image));
    head.resize(to_usize(layout.partition_offset), 0);
    out.write_all(&head)
        .map_err(SifError::io("writing the SIF output"))?;

    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    report(
        progress,
        Progress::Writing {
            bytes: 0,
            total: len,
        },
    )?;
    while copied < len {
        let n = squashfs
            .read(&mut buf)
            .map_err(SifError::io("reading the squashfs"))?;
        if n == 0 {
            return Err(SifError::Io {
                context: "reading the squashfs",
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        out.write_all(&buf[..n])
            .map_err(SifError::io("writing the SIF output"))?;
        copied += n as u64;
        report(
            progress,
            Progress::Writing {
                bytes: copied,
                total: len,
            },
        )?;
    }
    out.flush()
        .map_err(SifError::io("writing the SIF output"))?;
    Ok(layout.partition_offset + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i64_at(b: &[u8], at: usize) -> i64 {
        i64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn offsets_follow_sylabs_sif() {
        // 4096 + 48 × 585 = 32176; the partition is aligned up to 32768, the historical
        // `DataStartOffset` of sylabs/sif.
        let layout = Layout::new(1000);
        assert_eq!(DESCRIPTOR_LEN, 585);
        assert_eq!(layout.data_offset, 32176);
        assert_eq!(layout.partition_offset, 32768);
        assert_eq!(layout.padded_len(), 592 + 1000);

        let image = Image {
            id: uuid::Uuid::nil(),
            arch: SifArch::parse("arm64").unwrap(),
            created: 1_700_000_000,
        };
        let h = layout.header(&image);
        assert_eq!(h.len(), 128);
        assert_eq!(&h[32..42], b"SIF_MAGIC\0");
        assert_eq!(&h[42..48], &[b'0', b'1', 0, b'0', b'4', 0]);
        assert_eq!(i64_at(&h, 64), 1_700_000_000);
        assert_eq!(i64_at(&h, 80), 47);
        assert_eq!(i64_at(&h, 88), 48);
        assert_eq!(i64_at(&h, 96), 4096);
        assert_eq!(i64_at(&h, 104), 48 * 585);
        assert_eq!(i64_at(&h, 112), 32176);
        assert_eq!(i64_at(&h, 120), 1592);

        let d = layout.descriptors(&image);
        assert_eq!(d.len(), 48 * 585);
        assert_eq!(&d[0..4], &0x4004i32.to_le_bytes());
        assert_eq!(i64_at(&d, 17), 32768);
        assert_eq!(i64_at(&d, 25), 1000);
        // extra: fstype, parttype, arch
        assert_eq!(&d[201..212], &[1, 0, 0, 0, 2, 0, 0, 0, b'0', b'4', 0]);
        assert!(d[585..].iter().all(|&b| b == 0));
    }

    #[test]
    fn architectures() {
        assert_eq!(SifArch::parse("amd64").unwrap().code, *b"02\0");
        assert_eq!(SifArch::parse("riscv64").unwrap().as_str(), "riscv64");
        assert!(matches!(
            SifArch::parse("x86_64"),
            Err(SifError::UnsupportedArchitecture(a)) if a == "x86_64"
        ));
    }
}
