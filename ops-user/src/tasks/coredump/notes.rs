//! Metadata from a core's ELF notes, read without gdb.
//!
//! The kernel writes the ELF header, the program headers and then the
//! `PT_NOTE` segment before any memory, so the notes are in the first bytes
//! of the stream: [`NotesPrefix`] keeps just enough of it while the rest of
//! the core streams through.

use object::{
    elf,
    read::elf::{FileHeader as _, ProgramHeader as _},
    Endianness,
};
use serde::{Deserialize, Serialize};

/// The notes are not looked for past this many bytes.
pub const PREFIX_MAX: usize = 16 << 20;

/// What the notes say about the crash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreNotes {
    /// NT_PRSTATUS `pr_cursig`, else NT_SIGINFO `si_signo`.
    pub signal: Option<i32>,
    /// NT_SIGINFO `si_code`.
    pub si_code: Option<i32>,
    /// NT_SIGINFO `si_addr`, for the fault signals (SEGV, BUS, ILL, FPE).
    pub fault_addr: Option<u64>,
    /// Instruction and stack pointers of the thread that took the signal
    /// (the first NT_PRSTATUS, x86_64 `user_regs_struct`).
    pub pc: Option<u64>,
    pub sp: Option<u64>,
    /// NT_PRSTATUS `pr_pid` of that thread.
    pub tid: Option<u32>,
    /// NT_PRPSINFO `pr_fname` and `pr_psargs`.
    pub comm: Option<String>,
    pub args: Option<String>,
    /// Distinct file names of NT_FILE, in mapping order.
    pub mapped_files: Vec<String>,
    /// Threads (NT_PRSTATUS notes).
    pub threads: u32,
}

/// The start of a core stream, kept until its notes are complete.
#[derive(Default)]
pub struct NotesPrefix {
    buf: Vec<u8>,
    /// Bytes needed to see all notes, once known.
    need: Option<usize>,
    /// Not an ELF core we can read: stop buffering.
    given_up: bool,
}

const EHDR_SIZE: usize = size_of::<elf::FileHeader64<Endianness>>();
const PHDR_SIZE: usize = size_of::<elf::ProgramHeader64<Endianness>>();

impl NotesPrefix {
    /// Whether more bytes are still wanted.
    pub fn wants_more(&self) -> bool {
        !self.given_up && self.need.is_none_or(|need| self.buf.len() < need)
    }

    /// The buffered bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Keep what is needed of `chunk` (the stream continues after it).
    pub fn push(&mut self, chunk: &[u8]) {
        if !self.wants_more() {
            return;
        }
        let want = match self.need {
            Some(need) => need - self.buf.len(),
            None => PREFIX_MAX - self.buf.len(),
        };
        self.buf.extend_from_slice(&chunk[..chunk.len().min(want)]);
        self.update_need();
    }

    fn update_need(&mut self) {
        if self.buf.len() < EHDR_SIZE {
            return;
        }
        let Some((phoff, phnum)) = header(&self.buf) else {
            self.given_up = true;
            return;
        };
        let phdrs_end = phoff + phnum * PHDR_SIZE;
        if phdrs_end > PREFIX_MAX {
            self.given_up = true;
            return;
        }
        if self.buf.len() < phdrs_end {
            self.need = Some(phdrs_end);
            return;
        }
        let mut end = phdrs_end;
        for ph in phdrs(&self.buf, phoff, phnum) {
            if ph.p_type(Endianness::Little) == elf::PT_NOTE {
                let seg_end = ph.p_offset(Endianness::Little) as usize
                    + ph.p_filesz(Endianness::Little) as usize;
                end = end.max(seg_end);
            }
        }
        if end > PREFIX_MAX {
            self.given_up = true;
        } else {
            self.need = Some(end);
        }
    }

    /// Parse the notes, if the prefix holds them all.
    pub fn notes(&self) -> Option<CoreNotes> {
        if self.given_up || self.wants_more() {
            return None;
        }
        parse(&self.buf)
    }
}

/// (e_phoff, e_phnum) of a little-endian ELF64 core.
fn header(data: &[u8]) -> Option<(usize, usize)> {
    let hdr = elf::FileHeader64::<Endianness>::parse(data).ok()?;
    let e = hdr.endian().ok()?;
    if e != Endianness::Little || hdr.e_type(e) != elf::ET_CORE {
        return None;
    }
    // PN_XNUM (more than 65534 mappings) keeps the count elsewhere; such
    // cores are stored without note metadata.
    let phnum = hdr.e_phnum(e) as usize;
    if phnum == elf::PN_XNUM as usize || hdr.e_phentsize(e) as usize != PHDR_SIZE {
        return None;
    }
    Some((hdr.e_phoff(e) as usize, phnum))
}

fn phdrs(data: &[u8], phoff: usize, phnum: usize) -> &[elf::ProgramHeader64<Endianness>] {
    object::pod::slice_from_bytes(&data[phoff..], phnum)
        .map(|(s, _)| s)
        .unwrap_or(&[])
}

const NT_PRSTATUS: u32 = 1;
const NT_PRPSINFO: u32 = 3;
const NT_SIGINFO: u32 = 0x5349_4749;
const NT_FILE: u32 = 0x4649_4c45;

// x86_64 layouts (include/linux/elfcore.h, arch/x86/include/asm/user_64.h).
const PRSTATUS_CURSIG: usize = 12;
const PRSTATUS_PID: usize = 32;
const PRSTATUS_REGS: usize = 112;
const REG_RIP: usize = 16;
const REG_RSP: usize = 19;
const PRPSINFO_FNAME: usize = 40;
const PRPSINFO_PSARGS: usize = 56;
const SIGINFO_ADDR: usize = 16;

fn parse(data: &[u8]) -> Option<CoreNotes> {
    let (phoff, phnum) = header(data)?;
    let e = Endianness::Little;
    let mut notes = CoreNotes::default();
    for ph in phdrs(data, phoff, phnum) {
        let Ok(Some(mut iter)) = ph.notes(e, data) else {
            continue;
        };
        while let Ok(Some(note)) = iter.next() {
            let desc = note.desc();
            match note.n_type(e) {
                NT_PRSTATUS => {
                    notes.threads += 1;
                    if notes.threads == 1 {
                        notes.signal = i16_at(desc, PRSTATUS_CURSIG).map(i32::from);
                        notes.tid = u32_at(desc, PRSTATUS_PID);
                        notes.pc = u64_at(desc, PRSTATUS_REGS + REG_RIP * 8);
                        notes.sp = u64_at(desc, PRSTATUS_REGS + REG_RSP * 8);
                    }
                }
                NT_PRPSINFO => {
                    notes.comm = c_string(desc.get(PRPSINFO_FNAME..PRPSINFO_FNAME + 16));
                    notes.args = c_string(desc.get(PRPSINFO_PSARGS..PRPSINFO_PSARGS + 80));
                }
                NT_SIGINFO => {
                    let signo = u32_at(desc, 0).map(|v| v as i32);
                    notes.signal = notes.signal.filter(|&s| s != 0).or(signo);
                    notes.si_code = u32_at(desc, 8).map(|v| v as i32);
                    if matches!(signo, Some(4 | 7 | 8 | 11)) {
                        notes.fault_addr = u64_at(desc, SIGINFO_ADDR);
                    }
                }
                NT_FILE => notes.mapped_files = nt_file_names(desc),
                _ => {}
            }
        }
    }
    Some(notes)
}

/// NT_FILE: count, page size, `count` (start, end, offset) triples, then
/// `count` NUL-terminated names.
fn nt_file_names(desc: &[u8]) -> Vec<String> {
    let Some(count) = u64_at(desc, 0) else {
        return Vec::new();
    };
    let Some(names) = (count as usize)
        .checked_mul(24)
        .and_then(|n| n.checked_add(16))
        .and_then(|start| desc.get(start..))
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for name in names.split(|&b| b == 0).take(count as usize) {
        let name = String::from_utf8_lossy(name).into_owned();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn i16_at(d: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn c_string(d: Option<&[u8]>) -> Option<String> {
    let d = d?;
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    Some(String::from_utf8_lossy(&d[..end]).trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_elf_streams_give_up_quickly() {
        let mut p = NotesPrefix::default();
        p.push(&[0u8; 100]);
        assert!(!p.wants_more());
        assert_eq!(p.notes(), None);
        assert!(p.bytes().len() <= 100);
    }

    #[test]
    fn nt_file_names_are_deduplicated() {
        let mut d = Vec::new();
        d.extend_from_slice(&3u64.to_le_bytes());
        d.extend_from_slice(&4096u64.to_le_bytes());
        d.extend_from_slice(&[0u8; 72]);
        d.extend_from_slice(b"/bin/a\0/bin/a\0/lib/c.so\0");
        assert_eq!(nt_file_names(&d), ["/bin/a", "/lib/c.so"]);
    }
}
