//! The `xl` command line: one command per line (an `xl` script, or dom0's
//! console): `create FILE`, `list`, `destroy NAME|ID`, `pause`, `unpause`,
//! `shutdown`, `console`, `info`, `help`, plus the script's `wait-console`
//! and `check-free-pages` (the `xl`
//! scenario's leak check). Blank lines and `#` comments are skipped.

use alloc::string::{String, ToString};

/// A domain named by name or id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Id(u16),
    Name(String),
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verb {
    Create(String),
    List,
    Destroy(Target),
    Pause(Target),
    Unpause(Target),
    Shutdown(Target),
    Info,
    Help,
    /// `xl console DOM`: attach dom0's console to the domain's (Ctrl-]
    /// detaches); in a script, until the domain shuts down.
    Console(Target),
    /// Script only: serve consoles until DOM's console printed something.
    WaitConsole(Target),
    /// Remember physinfo's free_pages (`mark`) or check it equals the mark.
    FreePagesMark,
    FreePagesCheck,
}

/// What `help` prints.
pub const HELP: &str = "xl commands: create FILE | list | destroy DOM | pause DOM | unpause DOM | shutdown DOM | console DOM | info | help";

fn target(s: &str) -> Target {
    match s.parse::<u16>() {
        Ok(id) => Target::Id(id),
        Err(_) => Target::Name(s.to_string()),
    }
}

/// Parse one line: `Ok(None)` for blank lines and comments.
pub fn parse(line: &str) -> Result<Option<Verb>, String> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let mut w = line.split_whitespace();
    let cmd = w.next().unwrap_or("");
    let arg = w.next();
    if w.next().is_some() {
        return Err(alloc::format!("{cmd}: too many arguments"));
    }
    let need = |what: &str| {
        arg.map(ToString::to_string)
            .ok_or_else(|| alloc::format!("{cmd}: missing {what}"))
    };
    let none = |v: Verb| match arg {
        Some(_) => Err(alloc::format!("{cmd}: takes no argument")),
        None => Ok(Some(v)),
    };
    match cmd {
        "create" => Ok(Some(Verb::Create(need("FILE")?))),
        "list" => none(Verb::List),
        "destroy" => Ok(Some(Verb::Destroy(target(&need("DOM")?)))),
        "pause" => Ok(Some(Verb::Pause(target(&need("DOM")?)))),
        "unpause" => Ok(Some(Verb::Unpause(target(&need("DOM")?)))),
        "shutdown" => Ok(Some(Verb::Shutdown(target(&need("DOM")?)))),
        "console" => Ok(Some(Verb::Console(target(&need("DOM")?)))),
        "wait-console" => Ok(Some(Verb::WaitConsole(target(&need("DOM")?)))),
        "info" => none(Verb::Info),
        "help" => none(Verb::Help),
        "mark-free-pages" => none(Verb::FreePagesMark),
        "check-free-pages" => none(Verb::FreePagesCheck),
        _ => Err(alloc::format!("unknown command `{cmd}` ({HELP})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs() {
        assert_eq!(parse("  # nothing"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(
            parse("create a.cfg"),
            Ok(Some(Verb::Create("a.cfg".into())))
        );
        assert_eq!(parse("list  # all"), Ok(Some(Verb::List)));
        assert_eq!(parse("pause 3"), Ok(Some(Verb::Pause(Target::Id(3)))));
        assert_eq!(
            parse("destroy web"),
            Ok(Some(Verb::Destroy(Target::Name("web".into()))))
        );
        assert_eq!(parse("console 1"), Ok(Some(Verb::Console(Target::Id(1)))));
        assert_eq!(
            parse("wait-console web"),
            Ok(Some(Verb::WaitConsole(Target::Name("web".into()))))
        );
        assert!(parse("console").unwrap_err().contains("missing DOM"));
        assert!(parse("create").unwrap_err().contains("missing FILE"));
        assert!(parse("list x").unwrap_err().contains("takes no argument"));
        assert!(parse("pause a b").unwrap_err().contains("too many"));
        assert!(parse("reboot x").unwrap_err().contains("unknown command"));
    }
}
