//! Just enough of a BTF reader to find a struct member's offset in the
//! running kernel (`/sys/kernel/btf/vmlinux`).
//!
//! The exit tracepoint reads `task_struct->exit_code`, which no tracepoint
//! carries; its offset differs between kernels and configs, so it is looked
//! up here and handed to the program as a global. aya parses BTF too, but
//! keeps its type lookups crate-private.
//!
//! Format: Documentation/bpf/btf.rst ("BTF Type Encoding").

use std::{fs, io, path::Path};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("not BTF data (bad magic or truncated header)")]
    BadHeader,
    #[error("truncated BTF type section")]
    Truncated,
    #[error("unknown BTF kind {0}")]
    UnknownKind(u32),
    #[error("no struct `{0}` in BTF")]
    NoStruct(String),
    #[error("struct `{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
}

/// Byte offset of `member` in `struct strukt`, as described by the BTF blob
/// at `path`.
pub fn member_offset_in(path: &Path, strukt: &str, member: &str) -> Result<u32, BtfError> {
    let data = fs::read(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })?;
    member_offset(&data, strukt, member)
}

/// Byte offset of `member` in `struct strukt` (only direct members; the
/// kernel members we need are not inside anonymous structs).
pub fn member_offset(data: &[u8], strukt: &str, member: &str) -> Result<u32, BtfError> {
    let u16_at = |off: usize| -> Option<u16> {
        Some(u16::from_le_bytes(data.get(off..off + 2)?.try_into().ok()?))
    };
    let u32_at = |off: usize| -> Option<u32> {
        Some(u32::from_le_bytes(data.get(off..off + 4)?.try_into().ok()?))
    };
    if u16_at(0) != Some(MAGIC) {
        return Err(BtfError::BadHeader);
    }
    let header = || -> Option<(usize, usize, usize, usize)> {
        let hdr_len = u32_at(4)? as usize;
        Some((
            hdr_len + u32_at(8)? as usize,
            u32_at(12)? as usize,
            hdr_len + u32_at(16)? as usize,
            u32_at(20)? as usize,
        ))
    };
    let (type_off, type_len, str_off, str_len) = header().ok_or(BtfError::BadHeader)?;
    let strings = data
        .get(str_off..str_off + str_len)
        .ok_or(BtfError::BadHeader)?;
    let name_at = |off: u32| -> &[u8] {
        let rest = strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    };

    let end = type_off + type_len;
    let mut pos = type_off;
    while pos < end {
        let (name_off, info) = (
            u32_at(pos).ok_or(BtfError::Truncated)?,
            u32_at(pos + 4).ok_or(BtfError::Truncated)?,
        );
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let kind_flag = info >> 31 == 1;
        pos += 12;
        let trailing = match kind {
            // INT, VAR, DECL_TAG carry one u32.
            1 | 14 | 17 => 4,
            // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG.
            2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0,
            // ARRAY: type, index_type, nelems.
            3 => 12,
            // STRUCT/UNION members, DATASEC vars, ENUM64 values: 12 bytes each.
            4 | 5 | 15 | 19 => 12 * vlen,
            // ENUM values, FUNC_PROTO params: 8 bytes each.
            6 | 13 => 8 * vlen,
            other => return Err(BtfError::UnknownKind(other)),
        };
        if (kind == KIND_STRUCT || kind == KIND_UNION) && name_at(name_off) == strukt.as_bytes() {
            for m in 0..vlen {
                let at = pos + 12 * m;
                let m_name = u32_at(at).ok_or(BtfError::Truncated)?;
                if name_at(m_name) == member.as_bytes() {
                    let raw = u32_at(at + 8).ok_or(BtfError::Truncated)?;
                    // With kind_flag the low 24 bits are the bit offset and
                    // the high 8 the bitfield size.
                    let bits = if kind_flag { raw & 0x00ff_ffff } else { raw };
                    return Ok(bits / 8);
                }
            }
            return Err(BtfError::NoMember {
                strukt: strukt.into(),
                member: member.into(),
            });
        }
        pos += trailing;
    }
    Err(BtfError::NoStruct(strukt.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built blob: `struct s { int a; int b; }` with b at byte 4.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0";
        let mut types = Vec::new();
        let push = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
        // [1] INT "int" size 4, encoding: signed, 32 bits.
        push(&mut types, 1);
        push(&mut types, 1 << 24);
        push(&mut types, 4);
        push(&mut types, (1 << 24) | 32);
        // [2] STRUCT "s" size 8, two members.
        push(&mut types, 5);
        push(&mut types, (4 << 24) | 2);
        push(&mut types, 8);
        for (name, bit_off) in [(7, 0), (9, 32)] {
            push(&mut types, name);
            push(&mut types, 1);
            push(&mut types, bit_off);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        push(&mut out, 24);
        push(&mut out, 0);
        push(&mut out, types.len() as u32);
        push(&mut out, types.len() as u32);
        push(&mut out, strings.len() as u32);
        out.extend_from_slice(&types);
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn finds_member_offsets() {
        let b = blob();
        assert_eq!(member_offset(&b, "s", "a").unwrap(), 0);
        assert_eq!(member_offset(&b, "s", "b").unwrap(), 4);
        assert!(matches!(
            member_offset(&b, "s", "c"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            member_offset(&b, "t", "a"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(matches!(
            member_offset(b"", "s", "a"),
            Err(BtfError::BadHeader)
        ));
        let mut b = blob();
        b.truncate(40);
        assert!(member_offset(&b, "s", "b").is_err());
    }

    #[test]
    fn reads_the_running_kernel_when_it_has_btf() {
        let path = Path::new(VMLINUX);
        if !path.exists() {
            // Only a developer's kernel without BTF may skip; CI runs on one
            // that has it.
            assert!(std::env::var_os("CI").is_none(), "no {VMLINUX} under CI");
            return;
        }
        let off = member_offset_in(path, "task_struct", "exit_code").unwrap();
        assert!(off > 0, "exit_code is not the first member of task_struct");
    }
}
