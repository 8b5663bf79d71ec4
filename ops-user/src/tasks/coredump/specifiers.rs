//! `core_pattern` `%` specifiers (Documentation/admin-guide/sysctl/kernel.rst):
//! validation of a per-group pattern and expansion for chained handlers.

/// What the specifiers expand to, for one crashing process.
#[derive(Clone, Debug, Default)]
pub struct Specifiers {
    /// %p: pid in the process's own pid namespace.
    pub pid_ns: u32,
    /// %P: pid in the initial pid namespace.
    pub pid: u32,
    /// %i / %I: tid (own namespace / initial namespace).
    pub tid_ns: u32,
    pub tid: u32,
    /// %u / %g: real uid and gid.
    pub uid: u32,
    pub gid: u32,
    /// %d: dump mode (the process's `PR_GET_DUMPABLE`).
    pub dump_mode: u32,
    /// %s: signal number.
    pub signal: i32,
    /// %t: time of the dump, seconds since the epoch.
    pub time: u64,
    /// %h: host name.
    pub hostname: String,
    /// %e: command name (comm).
    pub comm: String,
    /// %f: executable file name; %E: its path with `/` replaced by `!`.
    pub exe: String,
    /// %c: soft RLIMIT_CORE, `u64::MAX` for unlimited.
    pub core_limit: u64,
}

/// Specifiers [`expand`] understands: the kernel's, but `%C` (the CPU the
/// task ran on) and `%F` (a pidfd), which only the kernel can provide.
pub const KNOWN: &str = "%pPiIugdsthefEc";

/// Whether every `%x` in `pattern` is one we can expand.
pub fn check(pattern: &str) -> Result<(), String> {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(x) if KNOWN.contains(x) => {}
                Some(x) => return Err(format!("unknown specifier %{x}")),
                None => return Err("a lone % at the end".into()),
            }
        }
    }
    Ok(())
}

/// Expand `pattern` as the kernel would. As in the kernel, an unknown
/// specifier expands to nothing.
pub fn expand(pattern: &str, s: &Specifiers) -> String {
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('p') => out.push_str(&s.pid_ns.to_string()),
            Some('P') => out.push_str(&s.pid.to_string()),
            Some('i') => out.push_str(&s.tid_ns.to_string()),
            Some('I') => out.push_str(&s.tid.to_string()),
            Some('u') => out.push_str(&s.uid.to_string()),
            Some('g') => out.push_str(&s.gid.to_string()),
            Some('d') => out.push_str(&s.dump_mode.to_string()),
            Some('s') => out.push_str(&s.signal.to_string()),
            Some('t') => out.push_str(&s.time.to_string()),
            Some('h') => out.push_str(&s.hostname),
            // The kernel replaces '/' in names it puts into a path.
            Some('e') => out.push_str(&s.comm.replace('/', "!")),
            Some('f') => out.push_str(
                &s.exe
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .replace('/', "!"),
            ),
            Some('E') => out.push_str(&s.exe.replace('/', "!")),
            Some('c') => {
                if s.core_limit == u64::MAX {
                    out.push_str("18446744073709551615");
                } else {
                    out.push_str(&s.core_limit.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_the_kernel() {
        let s = Specifiers {
            pid_ns: 7,
            pid: 1007,
            signal: 11,
            time: 42,
            comm: "a/b".into(),
            exe: "/usr/bin/crash".into(),
            core_limit: u64::MAX,
            ..Default::default()
        };
        assert_eq!(
            expand("/c/core.%e.%p.%P.%s.%t.%f.%E.%%.%c.%Z", &s),
            "/c/core.a!b.7.1007.11.42.crash.!usr!bin!crash.%.18446744073709551615."
        );
    }

    #[test]
    fn check_rejects_unknown_and_dangling() {
        assert!(check("/c/core.%e.%p").is_ok());
        assert!(check("/c/core.%C").unwrap_err().contains("%C"));
        assert!(check("/c/core.%").is_err());
    }
}
