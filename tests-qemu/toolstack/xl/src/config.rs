//! xl.cfg (`xl.cfg(5)`, libxlu's `libxlu_cfg_y.y` grammar, the subset this
//! project's PVH domains use): `KEY = VALUE` settings separated by newlines or
//! `;`, `#` comments, values that are numbers, `"double"` (with `\` escapes) or
//! `'single'` quoted strings, or `[ ... ]` lists of those.
//!
//! Keys: `name`, `type` (`"pvh"` only), `kernel`, `ramdisk`, `cmdline` (or the
//! older `extra`), `memory`, `maxmem` (MiB), `vcpus`, `on_poweroff`,
//! `on_reboot`, `on_crash`, `event_channels`, `altp2m`, and this project's
//! `evtchn_fifo` and `evtchn_upcall` (0/1), and the xenstore bug-compatibility
//! option `workaround_old_guests_enumerating_device` (0/1). Anything else — an unknown key, a
//! bad value, a bad quote, a key given twice — is an error naming the file, the
//! line and the key; no domain is created from a file with an error.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// What to do when the guest powers off, reboots or crashes (libxl's
/// `libxl_action_on_shutdown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Destroy,
    Restart,
    Preserve,
    RenameRestart,
    CoredumpDestroy,
    CoredumpRestart,
    SoftReset,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "destroy" => Action::Destroy,
            "restart" => Action::Restart,
            "preserve" => Action::Preserve,
            "rename-restart" => Action::RenameRestart,
            "coredump-destroy" => Action::CoredumpDestroy,
            "coredump-restart" => Action::CoredumpRestart,
            "soft-reset" => Action::SoftReset,
            _ => return None,
        })
    }
}

/// `altp2m` (xl.cfg: `disabled`, `mixed`, `external`, `limited`, or the old
/// boolean form) as `HVM_PARAM_ALTP2M`'s value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Altp2m {
    Disabled = 0,
    Mixed = 1,
    External = 2,
    Limited = 3,
}

/// A parsed domain configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    pub name: String,
    pub kernel: String,
    pub ramdisk: Option<String>,
    pub cmdline: String,
    /// MiB.
    pub memory: u64,
    /// MiB (defaults to `memory`).
    pub maxmem: u64,
    pub vcpus: u32,
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_crash: Action,
    /// `max_evtchn_port` (xl's default 1023).
    pub event_channels: u32,
    pub altp2m: Altp2m,
    pub evtchn_fifo: bool,
    pub evtchn_upcall: bool,
    /// `workaround_old_guests_enumerating_device` (0/1, default 0): a
    /// bug-compatibility workaround for old guests that enumerate `~/device`
    /// and choke on `device/suspend`: libxl's `xend_suspend_evtchn_compat`
    /// (no `device/suspend/event-channel` node, and `~/device` writable by the
    /// guest — the XSA-175 exposure; see docs/xenstore.md).
    pub workaround_old_guests_enumerating_device: bool,
}

/// An error in a config file: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    /// The key concerned, if the error is about one.
    pub key: Option<String>,
    pub why: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{}:{}: key `{}`: {}", self.file, self.line, k, self.why),
            None => write!(f, "{}:{}: {}", self.file, self.line, self.why),
        }
    }
}

/// A value as written.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(String),
    Num(u64),
    List(Vec<Value>),
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    /// Skip blanks and comments, not newlines.
    fn blanks(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }
    /// Skip blanks, comments and newlines (inside lists).
    fn space(&mut self) {
        loop {
            self.blanks();
            if self.peek() == Some(b'\n') {
                self.pos += 1;
                self.line += 1;
            } else {
                break;
            }
        }
    }
    fn ident(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| core::str::from_utf8(&self.s[start..self.pos]).unwrap_or(""))
    }
    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => self.dquoted().map(Value::Str),
            Some(b'\'') => self.squoted().map(Value::Str),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.space();
                    match self.peek() {
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::List(items));
                        }
                        None => return Err("unterminated list".to_string()),
                        _ => {}
                    }
                    items.push(self.value()?);
                    self.space();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {}
                        _ => return Err("expected `,` or `]` in list".to_string()),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.pos += 1;
                }
                let t = core::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                let n = match t.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => t.parse(),
                };
                n.map(Value::Num)
                    .map_err(|_| alloc::format!("bad number `{t}`"))
            }
            Some(b'\n') | None => Err("missing value".to_string()),
            Some(c) => Err(alloc::format!("unexpected `{}`", c as char)),
        }
    }
    fn dquoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => return Err("bad quote: unterminated string".to_string()),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.peek().ok_or("bad quote: `\\` at end of file")?;
                    out.push(match c {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'\\' | b'"' | b'\'' => c,
                        _ => {
                            return Err(alloc::format!(
                                "bad quote: unknown escape `\\{}`",
                                c as char
                            ))
                        }
                    });
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".to_string())
    }
    fn squoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None | Some(b'\n') => return Err("bad quote: unterminated string".to_string()),
                Some(b'\'') => break,
                Some(_) => self.pos += 1,
            }
        }
        let s = core::str::from_utf8(&self.s[start..self.pos])
            .map_err(|_| "string is not UTF-8".to_string())?
            .to_string();
        self.pos += 1;
        Ok(s)
    }
}

/// Every setting of a file: (line, key, value).
fn settings(file: &str, text: &str) -> Result<Vec<(usize, String, Value)>, ConfigError> {
    let mut lx = Lexer {
        s: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let err = |line, key: Option<&str>, why: String| ConfigError {
        file: file.to_string(),
        line,
        key: key.map(ToString::to_string),
        why,
    };
    let mut out = Vec::new();
    loop {
        lx.space();
        while lx.peek() == Some(b';') {
            lx.pos += 1;
            lx.space();
        }
        if lx.peek().is_none() {
            return Ok(out);
        }
        let line = lx.line;
        let key = lx
            .ident()
            .ok_or_else(|| err(line, None, "expected a key".to_string()))?;
        lx.blanks();
        if lx.peek() != Some(b'=') {
            return Err(err(line, Some(key), "expected `=`".to_string()));
        }
        lx.pos += 1;
        lx.blanks();
        let v = lx.value().map_err(|why| err(line, Some(key), why))?;
        lx.blanks();
        match lx.peek() {
            None | Some(b'\n') | Some(b';') => {}
            Some(c) => {
                return Err(err(
                    line,
                    Some(key),
                    alloc::format!("unexpected `{}` after the value", c as char),
                ))
            }
        }
        out.push((line, key.to_string(), v));
    }
}

/// Parse xl.cfg `text` (from `file`, for error messages).
pub fn parse(file: &str, text: &str) -> Result<DomainConfig, ConfigError> {
    let all = settings(file, text)?;
    let err = |line, key: &str, why: &str| ConfigError {
        file: file.to_string(),
        line,
        key: Some(key.to_string()),
        why: why.to_string(),
    };
    let mut c = DomainConfig {
        name: String::new(),
        kernel: String::new(),
        ramdisk: None,
        cmdline: String::new(),
        memory: 128,
        maxmem: 0,
        vcpus: 1,
        on_poweroff: Action::Destroy,
        on_reboot: Action::Restart,
        on_crash: Action::Destroy,
        event_channels: 1023,
        altp2m: Altp2m::Disabled,
        evtchn_fifo: false,
        evtchn_upcall: false,
        workaround_old_guests_enumerating_device: false,
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut has_type = false;
    for (line, key, v) in &all {
        let line = *line;
        let key = key.as_str();
        // `extra` and `cmdline` are the same setting.
        let canon = if key == "extra" { "cmdline" } else { key };
        if seen.contains(&canon) {
            return Err(err(line, key, "given twice"));
        }
        seen.push(canon);
        let s = || match v {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(err(line, key, "expected a quoted string")),
        };
        let n = |min: u64, max: u64| match v {
            Value::Num(n) if (min..=max).contains(n) => Ok(*n),
            Value::Num(_) => Err(err(
                line,
                key,
                &alloc::format!("out of range {min}..={max}"),
            )),
            _ => Err(err(line, key, "expected a number")),
        };
        let flag = || match v {
            Value::Num(0) => Ok(false),
            Value::Num(1) => Ok(true),
            _ => Err(err(line, key, "expected 0 or 1")),
        };
        let action = || {
            let s = s()?;
            Action::parse(&s).ok_or_else(|| err(line, key, "unknown action"))
        };
        match key {
            "name" => {
                let s = s()?;
                if s.is_empty() || s.len() > 64 || s.bytes().any(|b| b.is_ascii_whitespace()) {
                    return Err(err(line, key, "must be 1..64 characters without spaces"));
                }
                c.name = s;
            }
            "type" => {
                let s = s()?;
                if s != "pvh" {
                    return Err(err(line, key, "only \"pvh\" is supported"));
                }
                has_type = true;
            }
            "kernel" => c.kernel = s()?,
            "ramdisk" => c.ramdisk = Some(s()?),
            "cmdline" | "extra" => c.cmdline = s()?,
            "memory" => c.memory = n(1, 1 << 20)?,
            "maxmem" => c.maxmem = n(1, 1 << 20)?,
            "vcpus" => c.vcpus = n(1, 128)? as u32,
            "on_poweroff" => c.on_poweroff = action()?,
            "on_reboot" => c.on_reboot = action()?,
            "on_crash" => c.on_crash = action()?,
            "event_channels" => c.event_channels = n(1, 0x7fff_ffff)? as u32,
            "altp2m" => {
                c.altp2m = match v {
                    Value::Num(0) => Altp2m::Disabled,
                    Value::Num(1) => Altp2m::Mixed,
                    Value::Str(s) => match s.as_str() {
                        "disabled" => Altp2m::Disabled,
                        "mixed" => Altp2m::Mixed,
                        "external" => Altp2m::External,
                        "limited" => Altp2m::Limited,
                        _ => return Err(err(line, key, "unknown altp2m mode")),
                    },
                    _ => return Err(err(line, key, "expected 0, 1 or a mode name")),
                }
            }
            "evtchn_fifo" => c.evtchn_fifo = flag()?,
            "evtchn_upcall" => c.evtchn_upcall = flag()?,
            "workaround_old_guests_enumerating_device" => {
                c.workaround_old_guests_enumerating_device = flag()?
            }
            _ => return Err(err(line, key, "unknown key")),
        }
    }
    let last = all.last().map_or(1, |s| s.0);
    for (k, missing) in [
        ("name", c.name.is_empty()),
        ("kernel", c.kernel.is_empty()),
        ("type", !has_type),
    ] {
        if missing {
            return Err(err(last, k, "required"));
        }
    }
    if c.maxmem == 0 {
        c.maxmem = c.memory;
    }
    if c.maxmem < c.memory {
        return Err(err(last, "maxmem", "smaller than memory"));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"# a PVH domU
name = "demo"
type = "pvh"
kernel = "testguest"   # a ramdisk entry / dom0 module
ramdisk = 'initrd'
cmdline = "role=hello-domu \"q\" x\\y"
memory = 16 ; maxmem = 0x20
vcpus = 2
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "preserve"
event_channels = 2047
altp2m = "external"
evtchn_fifo = 1
evtchn_upcall = 0
"#;

    #[test]
    fn a_full_file() {
        let c = parse("demo.cfg", GOOD).unwrap();
        assert_eq!(c.name, "demo");
        assert_eq!(c.kernel, "testguest");
        assert_eq!(c.ramdisk.as_deref(), Some("initrd"));
        assert_eq!(c.cmdline, "role=hello-domu \"q\" x\\y");
        assert_eq!((c.memory, c.maxmem, c.vcpus), (16, 32, 2));
        assert_eq!(
            (c.on_poweroff, c.on_reboot, c.on_crash),
            (Action::Destroy, Action::Restart, Action::Preserve)
        );
        assert_eq!((c.event_channels, c.altp2m), (2047, Altp2m::External));
        assert!(c.evtchn_fifo && !c.evtchn_upcall);
        assert!(
            !c.workaround_old_guests_enumerating_device,
            "off by default"
        );
    }

    #[test]
    fn old_guest_device_workaround() {
        let base = "name='m'\ntype='pvh'\nkernel='k'\n";
        let on = alloc::format!("{base}workaround_old_guests_enumerating_device = 1\n");
        assert!(
            parse("m.cfg", &on)
                .unwrap()
                .workaround_old_guests_enumerating_device
        );
        let bad = alloc::format!("{base}workaround_old_guests_enumerating_device = 2\n");
        assert!(parse("m.cfg", &bad).is_err());
    }

    #[test]
    fn defaults_as_xl() {
        let c = parse("m.cfg", "name='m'\ntype='pvh'\nkernel='k'\nextra=\"a b\"\n").unwrap();
        assert_eq!(
            (c.memory, c.maxmem, c.vcpus, c.event_channels),
            (128, 128, 1, 1023)
        );
        assert_eq!(c.cmdline, "a b", "extra is cmdline");
        assert_eq!(
            (c.on_poweroff, c.on_reboot, c.on_crash),
            (Action::Destroy, Action::Restart, Action::Destroy)
        );
    }

    /// Each error names file, line and key.
    #[test]
    fn errors_name_file_line_and_key() {
        let base = "name = \"d\"\ntype = \"pvh\"\nkernel = \"k\"\n";
        let rows: &[(&str, usize, Option<&str>, &str)] = &[
            ("colour = \"red\"\n", 4, Some("colour"), "unknown key"),
            ("memory = \"16\"\n", 4, Some("memory"), "expected a number"),
            ("memory = 16x\n", 4, Some("memory"), "bad number"),
            ("vcpus = 0\n", 4, Some("vcpus"), "out of range"),
            ("vcpus = 129\n", 4, Some("vcpus"), "out of range"),
            ("cmdline = \"open\n", 4, Some("cmdline"), "bad quote"),
            ("cmdline = 'open\n", 4, Some("cmdline"), "bad quote"),
            ("cmdline = \"a\\q\"\n", 4, Some("cmdline"), "bad quote"),
            (
                "on_crash = \"explode\"\n",
                4,
                Some("on_crash"),
                "unknown action",
            ),
            (
                "evtchn_fifo = 2\n",
                4,
                Some("evtchn_fifo"),
                "expected 0 or 1",
            ),
            (
                "altp2m = \"sideways\"\n",
                4,
                Some("altp2m"),
                "unknown altp2m mode",
            ),
            (
                "memory = 64\nmaxmem = 32\n",
                5,
                Some("maxmem"),
                "smaller than memory",
            ),
            ("name = \"again\"\n", 4, Some("name"), "given twice"),
            (
                "extra = \"x\"\ncmdline = \"y\"\n",
                5,
                Some("cmdline"),
                "given twice",
            ),
            ("memory 16\n", 4, Some("memory"), "expected `=`"),
            ("memory = 16 17\n", 4, Some("memory"), "after the value"),
            ("memory =\n", 4, Some("memory"), "missing value"),
            ("= 3\n", 4, None, "expected a key"),
            ("\n\n# c\nvcpus = [1, 2\n", 7, Some("vcpus"), "list"),
        ];
        for (extra, line, key, why) in rows {
            let text = alloc::format!("{base}{extra}");
            let e = parse("bad.cfg", &text).expect_err(extra);
            assert_eq!(e.file, "bad.cfg");
            assert_eq!(e.line, *line, "{extra:?}: {e}");
            assert_eq!(e.key.as_deref(), *key, "{extra:?}: {e}");
            assert!(e.why.contains(why), "{extra:?}: {e}");
        }
        let e = parse("t.cfg", "name = \"d\"\ntype = \"hvm\"\nkernel = \"k\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (2, Some("type")));
        let e = parse("t.cfg", "name = \"d\"\nkernel = \"k\"\n").unwrap_err();
        assert_eq!(
            (e.key.as_deref(), e.why.as_str()),
            (Some("type"), "required")
        );
        let e = parse("t.cfg", "type = \"pvh\"\nkernel = \"k\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("name"));
        assert_eq!(
            alloc::format!("{}", parse("f.cfg", "x = 1").unwrap_err()),
            "f.cfg:1: key `x`: unknown key"
        );
    }

    #[test]
    fn lists_parse_but_no_key_takes_one() {
        let e = parse(
            "l.cfg",
            "name='a'\ntype='pvh'\nkernel='k'\nvcpus = [ 1,\n 2 ]\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.why.as_str()), (4, "expected a number"));
    }
}
