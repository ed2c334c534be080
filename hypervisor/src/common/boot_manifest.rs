//! The boot manifest (`domains.cfg` in the ramdisk): which domains the hypervisor
//! builds at boot, each with its `xen_domctl_createdomain` configuration, memory,
//! image and command line. Boot-time construction in the manner of Xen's
//! dom0less/hyperlaunch (`xen/arch/arm/domain_build.c`'s device-tree nodes play
//! this role there); the result goes through the same createdomain path as the
//! hypercall (`DomainTable::create_boot_domain`).
//!
//! Format: one domain per line, whitespace-separated `key=value` tokens, `#`
//! starts a comment (outside quotes), blank lines are ignored, boot order is
//! file order. Keys:
//!
//! | key | value | default |
//! | --- | --- | --- |
//! | `name` | text | required |
//! | `image` | ramdisk entry name | required |
//! | `memory_mib` | MiB of guest RAM (GPA 0 up) | required |
//! | `domid` | domain id | picked as createdomain does |
//! | `privileged` | `0` or `1` | `0` |
//! | `vcpus` | `max_vcpus` | `1` |
//! | `flags` | `XEN_DOMCTL_CDF_*` names without prefix, comma-separated | `hvm,hap` |
//! | `emulation` | `XEN_X86_EMU_*` names without prefix (lower case) | `lapic` |
//! | `max_evtchn_port` | number | `1023` |
//! | `altp2m` | `HVM_PARAM_ALTP2M` mode 0..3 | `0` |
//! | `cmdline` | `"quoted text"` (or one bare word) | empty |
//! | `ramdisk` | ramdisk entry handed to the guest as boot module 0 (an initrd) | none |
//! | `paused` | `1`: built but left paused by the system controller, for dom0 to configure and unpause (`XEN_DOMCTL_unpausedomain`) as a toolstack does | `0` |
//!
//! A bad line is an error that names the line and the key.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use xen_public_abi::arch_x86::{
    XEN_X86_EMU_HPET, XEN_X86_EMU_IOAPIC, XEN_X86_EMU_IOMMU, XEN_X86_EMU_LAPIC, XEN_X86_EMU_PIC,
    XEN_X86_EMU_PIT, XEN_X86_EMU_PM, XEN_X86_EMU_RTC, XEN_X86_EMU_USE_PIRQ, XEN_X86_EMU_VGA,
    XEN_X86_EMU_VPCI,
};
use xen_public_abi::domctl::{
    xen_domctl_createdomain, XEN_DOMCTL_CDF_evtchn_fifo, XEN_DOMCTL_CDF_evtchn_upcall,
    XEN_DOMCTL_CDF_hap, XEN_DOMCTL_CDF_hvm, XEN_DOMCTL_CDF_iommu, XEN_DOMCTL_CDF_nested_virt,
    XEN_DOMCTL_CDF_oos_off, XEN_DOMCTL_CDF_s3_integrity, XEN_DOMCTL_CDF_vpmu,
    XEN_DOMCTL_CDF_xs_domain,
};
use xen_public_abi::xen::domid_t;
use zerocopy::FromZeros;

/// `XEN_DOMCTL_CDF_*` by the name the manifest uses.
const CDF_NAMES: &[(&str, u32)] = &[
    ("hvm", XEN_DOMCTL_CDF_hvm),
    ("hap", XEN_DOMCTL_CDF_hap),
    ("s3_integrity", XEN_DOMCTL_CDF_s3_integrity),
    ("oos_off", XEN_DOMCTL_CDF_oos_off),
    ("xs_domain", XEN_DOMCTL_CDF_xs_domain),
    ("iommu", XEN_DOMCTL_CDF_iommu),
    ("nested_virt", XEN_DOMCTL_CDF_nested_virt),
    ("vpmu", XEN_DOMCTL_CDF_vpmu),
    ("evtchn_fifo", XEN_DOMCTL_CDF_evtchn_fifo),
    ("evtchn_upcall", XEN_DOMCTL_CDF_evtchn_upcall),
];

/// `XEN_X86_EMU_*` by the name the manifest uses.
const EMU_NAMES: &[(&str, u32)] = &[
    ("lapic", XEN_X86_EMU_LAPIC),
    ("hpet", XEN_X86_EMU_HPET),
    ("pm", XEN_X86_EMU_PM),
    ("rtc", XEN_X86_EMU_RTC),
    ("ioapic", XEN_X86_EMU_IOAPIC),
    ("pic", XEN_X86_EMU_PIC),
    ("vga", XEN_X86_EMU_VGA),
    ("iommu", XEN_X86_EMU_IOMMU),
    ("pit", XEN_X86_EMU_PIT),
    ("use_pirq", XEN_X86_EMU_USE_PIRQ),
    ("vpci", XEN_X86_EMU_VPCI),
];

/// The largest guest RAM a manifest may ask for (1 TiB): keeps the page count
/// arithmetic far from overflow; the frame allocator refuses sooner anyway.
pub const MAX_MEMORY_MIB: u64 = 1 << 20;

/// One domain to build at boot.
#[derive(Clone)]
pub struct BootDomain {
    pub name: String,
    /// The ramdisk entry holding the PVH ELF image.
    pub image: String,
    /// The exact id to create, or `None` to pick one.
    pub domid: Option<domid_t>,
    pub privileged: bool,
    /// Guest RAM in MiB, from GPA 0.
    pub memory_mib: u64,
    /// The createdomain configuration (not yet sanitised: createdomain does that).
    pub config: xen_domctl_createdomain,
    /// `HVM_PARAM_ALTP2M` to set before the domain runs.
    pub altp2m: u64,
    pub cmdline: String,
    /// Left paused by the system controller after building (`paused=1`): dom0
    /// configures it (e.g. `XEN_DOMCTL_set_cpu_policy`, allowed until the first
    /// unpause) and unpauses it with `XEN_DOMCTL_unpausedomain`, as a toolstack
    /// does with a domain it created.
    pub paused: bool,
    /// The ramdisk entry given to the guest as its first boot module
    /// (`hvm_start_info`'s module list; xl's `ramdisk=`).
    pub ramdisk: Option<String>,
    /// Ramdisk entries handed to the domain as `hvm_start_info` modules, each
    /// with its name as the module's command line (`modules=a,b`): how dom0's
    /// toolstack gets its xl.cfg files, kernels and scripts.
    pub modules: Vec<String>,
}

impl fmt::Debug for BootDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootDomain")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("domid", &self.domid)
            .field("privileged", &self.privileged)
            .field("memory_mib", &self.memory_mib)
            .field("flags", &self.config.flags)
            .field("max_vcpus", &self.config.max_vcpus)
            .field("emulation_flags", &self.config.arch.emulation_flags)
            .field("max_evtchn_port", &self.config.max_evtchn_port)
            .field("altp2m", &self.altp2m)
            .field("paused", &self.paused)
            .field("cmdline", &self.cmdline)
            .field("ramdisk", &self.ramdisk)
            .field("modules", &self.modules)
            .finish()
    }
}

impl BootDomain {
    /// Guest RAM in 4 KiB pages.
    pub fn memory_pages(&self) -> u64 {
        self.memory_mib << 8
    }
}

/// A manifest that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based line number.
    pub line: usize,
    /// The key at fault, if the problem is one key.
    pub key: Option<String>,
    pub what: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(
                f,
                "domains.cfg line {}: key `{k}`: {}",
                self.line, self.what
            ),
            None => write!(f, "domains.cfg line {}: {}", self.line, self.what),
        }
    }
}

/// Parse the whole manifest: every domain line must be valid, names and explicit
/// ids must not repeat. Returns the domains in file order.
pub fn parse(text: &str) -> Result<Vec<BootDomain>, ManifestError> {
    let mut out: Vec<BootDomain> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let tokens = tokenize(raw).map_err(|what| ManifestError {
            line,
            key: None,
            what,
        })?;
        if tokens.is_empty() {
            continue;
        }
        let d = parse_domain(line, &tokens)?;
        if out.iter().any(|o| o.name == d.name) {
            return Err(err(line, "name", format!("`{}` is used twice", d.name)));
        }
        if let Some(id) = d.domid {
            if out.iter().any(|o| o.domid == Some(id)) {
                return Err(err(line, "domid", format!("{id} is used twice")));
            }
        }
        out.push(d);
    }
    Ok(out)
}

fn err(line: usize, key: &str, what: impl Into<String>) -> ManifestError {
    ManifestError {
        line,
        key: Some(key.to_string()),
        what: what.into(),
    }
}

/// Split a line into `(key, value)` tokens: whitespace separates, `"..."` quotes
/// a value (no escapes), `#` outside quotes ends the line.
fn tokenize(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => break,
            _ => {}
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() || c == '#' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("`{key}` is not of the form key=value"));
        }
        if key.is_empty() {
            return Err("a token starts with `=`: the key is missing".to_string());
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == '"' {
                    closed = true;
                    break;
                }
                value.push(c);
            }
            if !closed {
                return Err(format!("`{key}`: the quoted value is not closed"));
            }
            if chars
                .peek()
                .is_some_and(|c| !c.is_whitespace() && *c != '#')
            {
                return Err(format!("`{key}`: text right after the closing quote"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '#' {
                    break;
                }
                if c == '"' {
                    return Err(format!("`{key}`: a quote inside an unquoted value"));
                }
                value.push(c);
                chars.next();
            }
        }
        tokens.push((key, value));
    }
    Ok(tokens)
}

fn number(line: usize, key: &str, v: &str) -> Result<u64, ManifestError> {
    let parsed = if let Some(hex) = v.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        v.parse::<u64>()
    };
    parsed.map_err(|_| err(line, key, format!("`{v}` is not a number")))
}

fn bounded(line: usize, key: &str, v: &str, max: u64) -> Result<u64, ManifestError> {
    let n = number(line, key, v)?;
    if n > max {
        return Err(err(line, key, format!("{n} is larger than {max}")));
    }
    Ok(n)
}

fn names(line: usize, key: &str, v: &str, table: &[(&str, u32)]) -> Result<u32, ManifestError> {
    let mut bits = 0;
    for name in v.split(',').filter(|s| !s.is_empty()) {
        let (_, bit) = table
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| err(line, key, format!("unknown name `{name}`")))?;
        bits |= bit;
    }
    Ok(bits)
}

/// A `0`/`1` value.
fn flag(line: usize, key: &str, v: &str) -> Result<bool, ManifestError> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(err(line, key, format!("`{v}` is neither 0 nor 1"))),
    }
}

fn parse_domain(line: usize, tokens: &[(String, String)]) -> Result<BootDomain, ManifestError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut name = None;
    let mut image = None;
    let mut memory_mib = None;
    let mut domid = None;
    let mut privileged = false;
    let mut altp2m = 0;
    let mut paused = false;
    let mut cmdline = String::new();
    let mut ramdisk = None;
    let mut modules = Vec::new();
    let mut config = xen_domctl_createdomain::new_zeroed();
    config.flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap;
    config.max_vcpus = 1;
    config.max_evtchn_port = 1023;
    config.max_grant_frames = -1;
    config.max_maptrack_frames = -1;
    // Grant table version 1 (XEN_DOMCTL_GRANT_version(1)), as xl's default.
    config.grant_opts = 1;
    config.arch.emulation_flags = XEN_X86_EMU_LAPIC;

    for (key, v) in tokens {
        let key = key.as_str();
        if seen.contains(&key) {
            return Err(err(line, key, "given twice"));
        }
        seen.push(key);
        match key {
            "name" => {
                if v.is_empty() {
                    return Err(err(line, key, "empty"));
                }
                name = Some(v.clone());
            }
            "image" => {
                if v.is_empty() {
                    return Err(err(line, key, "empty"));
                }
                image = Some(v.clone());
            }
            "memory_mib" => {
                let m = bounded(line, key, v, MAX_MEMORY_MIB)?;
                if m == 0 {
                    return Err(err(line, key, "a domain needs some memory"));
                }
                memory_mib = Some(m);
            }
            "domid" => domid = Some(bounded(line, key, v, u64::from(u16::MAX))? as domid_t),
            "privileged" => privileged = flag(line, key, v)?,
            "vcpus" => config.max_vcpus = bounded(line, key, v, u64::from(u32::MAX))? as u32,
            "flags" => config.flags = names(line, key, v, CDF_NAMES)?,
            "emulation" => config.arch.emulation_flags = names(line, key, v, EMU_NAMES)?,
            "max_evtchn_port" => {
                config.max_evtchn_port = bounded(line, key, v, u64::from(u32::MAX))? as u32
            }
            "altp2m" => altp2m = bounded(line, key, v, 3)?,
            "cmdline" => cmdline = v.clone(),
            "paused" => paused = flag(line, key, v)?,
            "ramdisk" => {
                if v.is_empty() {
                    return Err(err(line, key, "empty"));
                }
                ramdisk = Some(v.clone());
            }
            "modules" => {
                modules = v.split(',').map(String::from).collect();
                if modules.iter().any(String::is_empty) || modules.len() > MAX_MODULES {
                    return Err(err(line, key, "empty name or too many modules"));
                }
            }
            _ => return Err(err(line, key, "unknown key")),
        }
    }
    let name = name.ok_or_else(|| err(line, "name", "missing"))?;
    let image = image.ok_or_else(|| err(line, "image", "missing"))?;
    let memory_mib = memory_mib.ok_or_else(|| err(line, "memory_mib", "missing"))?;
    if paused && domid == Some(0) {
        return Err(err(line, "paused", "dom0 has nobody to unpause it"));
    }
    Ok(BootDomain {
        name,
        image,
        domid,
        privileged,
        memory_mib,
        config,
        altp2m,
        cmdline,
        paused,
        ramdisk,
        modules,
    })
}

/// The most modules a domain line may list.
pub const MAX_MODULES: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::domain::{validate_createdomain, HostCaps};
    use crate::common::test_support::baseline;
    use zerocopy::IntoBytes;

    const SAMPLE: &str = r#"
# dom0: the test orchestrator
name=dom0 image=dom0.elf domid=0 privileged=1 memory_mib=16 vcpus=2 cmdline="scenario=events n=100"
name=fifo image=domu.elf domid=1 memory_mib=8 flags=hvm,hap,evtchn_fifo,evtchn_upcall max_evtchn_port=4095   # trailing comment
name=plain image=domu.elf memory_mib=0x4 emulation=lapic altp2m=2 cmdline=solo ramdisk=initrd.cpio modules=a.cfg,k
"#;

    #[test]
    fn sample_parses_in_file_order() {
        let ds = parse(SAMPLE).unwrap();
        assert_eq!(ds.len(), 3);
        let d0 = &ds[0];
        assert_eq!(d0.name, "dom0");
        assert_eq!(d0.image, "dom0.elf");
        assert_eq!(d0.domid, Some(0));
        assert!(d0.privileged);
        assert_eq!(d0.memory_mib, 16);
        assert_eq!(d0.memory_pages(), 4096);
        assert_eq!(d0.config.max_vcpus, 2);
        assert_eq!(d0.cmdline, "scenario=events n=100");
        assert!(d0.modules.is_empty());
        assert_eq!(ds[2].modules, ["a.cfg", "k"]);
        assert_eq!(d0.config.flags, XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap);

        let f = &ds[1];
        assert_eq!(
            f.config.flags,
            XEN_DOMCTL_CDF_hvm
                | XEN_DOMCTL_CDF_hap
                | XEN_DOMCTL_CDF_evtchn_fifo
                | XEN_DOMCTL_CDF_evtchn_upcall
        );
        assert_eq!(f.config.max_evtchn_port, 4095);
        assert!(!f.privileged);

        let p = &ds[2];
        assert_eq!(p.domid, None);
        assert_eq!(p.memory_mib, 4);
        assert_eq!(p.altp2m, 2);
        assert_eq!(p.cmdline, "solo");
        assert_eq!(p.ramdisk.as_deref(), Some("initrd.cpio"));
        assert_eq!(ds[0].ramdisk, None);
    }

    /// The defaults are the project's baseline createdomain config, which Xen
    /// 4.17's sanitisation accepts.
    #[test]
    fn defaults_are_the_baseline_and_valid() {
        let ds = parse("name=a image=a.elf memory_mib=1").unwrap();
        assert_eq!(ds[0].config.as_bytes(), baseline().as_bytes());
        let caps = HostCaps::THIS_HYPERVISOR;
        assert!(validate_createdomain(1, false, &ds[0].config, &caps).is_ok());
    }

    #[test]
    fn empty_and_comment_only_manifests_have_no_domains() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("  # nothing\n\n\t# here\n").unwrap().is_empty());
    }

    fn fails(text: &str) -> ManifestError {
        parse(text).expect_err(text)
    }

    #[test]
    fn paused() {
        let d = parse("name=a image=a.elf memory_mib=1\nname=b image=b.elf memory_mib=1 paused=1")
            .expect("valid");
        assert!(!d[0].paused, "unpaused at boot by default");
        assert!(d[1].paused);
        assert!(!parse("name=a image=a.elf memory_mib=1 paused=0").unwrap()[0].paused);
        for bad in ["paused=2", "paused=yes", "domid=0 paused=1"] {
            let e = parse(&format!("name=a image=a.elf memory_mib=1 {bad}")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("paused"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn errors_name_line_and_key() {
        let base = "name=a image=a.elf memory_mib=1";
        let cases: &[(&str, usize, Option<&str>)] = &[
            ("name=a image=a.elf", 1, Some("memory_mib")),
            ("image=a.elf memory_mib=1", 1, Some("name")),
            ("name=a memory_mib=1", 1, Some("image")),
            ("name=a image=a.elf memory_mib=0", 1, Some("memory_mib")),
            ("name=a image=a.elf memory_mib=lots", 1, Some("memory_mib")),
            (
                "name=a image=a.elf memory_mib=1048577",
                1,
                Some("memory_mib"),
            ),
            (
                "name=a image=a.elf memory_mib=1 colour=blue",
                1,
                Some("colour"),
            ),
            (
                "name=a image=a.elf memory_mib=1 flags=hvm,warp",
                1,
                Some("flags"),
            ),
            (
                "name=a image=a.elf memory_mib=1 emulation=lapic,x",
                1,
                Some("emulation"),
            ),
            (
                "name=a image=a.elf memory_mib=1 privileged=yes",
                1,
                Some("privileged"),
            ),
            (
                "name=a image=a.elf memory_mib=1 altp2m=4",
                1,
                Some("altp2m"),
            ),
            (
                "name=a image=a.elf memory_mib=1 domid=65536",
                1,
                Some("domid"),
            ),
            (
                "name=a image=a.elf memory_mib=1 vcpus=1 vcpus=2",
                1,
                Some("vcpus"),
            ),
            (
                "name=a image=a.elf memory_mib=1 ramdisk=",
                1,
                Some("ramdisk"),
            ),
            ("name=a image=a.elf memory_mib=1 cmdline=\"open", 1, None),
            ("name=a image=a.elf memory_mib=1 stray", 1, None),
            ("name=a image=a.elf memory_mib=1 =x", 1, None),
            ("name=a image=a.elf memory_mib=1 cmdline=\"a\"b", 1, None),
        ];
        for (text, line, key) in cases {
            let e = fails(text);
            assert_eq!(e.line, *line, "{text}");
            assert_eq!(e.key.as_deref(), *key, "{text}: {e}");
        }
        let e = fails(&format!(
            "{base}\n\n{base} domid=3\nname=b image=b memory_mib=2 domid=3"
        ));
        assert_eq!(e.line, 3, "{e}");
        assert_eq!(e.key.as_deref(), Some("name"));
        let e = fails(&format!(
            "{base} domid=3\nname=b image=b memory_mib=2 domid=3"
        ));
        assert_eq!((e.line, e.key.as_deref()), (2, Some("domid")));
        let text = alloc::format!("{e}");
        assert!(
            text.contains("line 2") && text.contains("`domid`"),
            "{text}"
        );
    }

    #[test]
    fn every_flag_and_emulation_name_maps_to_its_bit() {
        for (n, bit) in CDF_NAMES {
            let d = parse(&format!("name=a image=a memory_mib=1 flags={n}")).unwrap();
            assert_eq!(d[0].config.flags, *bit, "{n}");
        }
        for (n, bit) in EMU_NAMES {
            let d = parse(&format!("name=a image=a memory_mib=1 emulation={n}")).unwrap();
            assert_eq!(d[0].config.arch.emulation_flags, *bit, "{n}");
        }
    }

    proptest::proptest! {
        /// No input makes the parser panic.
        #[test]
        fn never_panics(s in "[ -~\t\n]{0,200}") {
            let _ = parse(&s);
        }
    }
}
