//! The proxy's nftables table as data, and the `nft` script that turns one version of it into
//! another by changing only what differs (chains, sets, map elements). Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One chain: a base chain's hook declaration (`type nat hook prerouting priority dstnat;`) or
/// `None` for a regular chain, and its rules in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// The base-chain declaration, without braces.
    pub hook: Option<String>,
    /// The rules, in `nft` syntax.
    pub rules: Vec<String>,
}

/// A verdict map: its declaration (`type ipv4_addr . inet_proto . inet_service : verdict`) and
/// elements, key → verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Map {
    /// The declaration, without braces.
    pub decl: String,
    /// Key → value, in `nft` syntax.
    pub elements: BTreeMap<String, String>,
}

/// The whole table: chains, maps and sets by name. Sets are declared only (their elements are
/// the kernel's: client addresses of session affinity).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Verdict maps by name.
    pub maps: BTreeMap<String, Map>,
    /// Sets by name → declaration, without braces.
    pub sets: BTreeMap<String, String>,
}

/// The script that creates `table` from scratch with `new` (replacing whatever table of that
/// name exists, in the same transaction).
pub fn full(table: &str, new: &Ruleset) -> String {
    let mut out = String::new();
    // `add` then `delete` works whether or not the table exists; the whole file is one
    // transaction, so the table never appears half-made.
    let _ = writeln!(out, "add table ip {table}");
    let _ = writeln!(out, "delete table ip {table}");
    let _ = writeln!(
        out,
        "add table ip {table} {{ comment \"rudder service proxy\" ; }}"
    );
    out.push_str(&diff(table, &Ruleset::default(), new));
    out
}

/// The script that changes `table` from `old` to `new`: chains whose rules changed are flushed
/// and refilled, new ones added, gone ones deleted; map elements are added and deleted one by
/// one. Empty when nothing changed. Ordered so that nothing is referenced before it exists or
/// deleted while referenced.
pub fn diff(table: &str, old: &Ruleset, new: &Ruleset) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    // 1. Declarations of what is new (empty chains, sets, maps), so rules and elements below
    // can refer to any of them.
    for (name, chain) in &new.chains {
        if old.chains.get(name).is_none_or(|o| o.hook != chain.hook) {
            if old.chains.contains_key(name) {
                line(format!("delete chain ip {table} {name}"));
            }
            match &chain.hook {
                Some(hook) => line(format!("add chain ip {table} {name} {{ {hook} ; }}")),
                None => line(format!("add chain ip {table} {name}")),
            }
        }
    }
    for (name, decl) in &new.sets {
        if !old.sets.contains_key(name) {
            line(format!("add set ip {table} {name} {{ {decl} ; }}"));
        }
    }
    for (name, map) in &new.maps {
        if old.maps.get(name).is_none_or(|o| o.decl != map.decl) {
            line(format!("add map ip {table} {name} {{ {} ; }}", map.decl));
        }
    }
    // 2. Rules of new and changed chains.
    for (name, chain) in &new.chains {
        let before = old.chains.get(name).filter(|o| o.hook == chain.hook);
        if before.is_some_and(|o| o.rules == chain.rules) {
            continue;
        }
        if before.is_some() {
            line(format!("flush chain ip {table} {name}"));
        }
        for rule in &chain.rules {
            line(format!("add rule ip {table} {name} {rule}"));
        }
    }
    // 3. Map elements: deletions (gone or changed) before additions.
    for (name, map) in &new.maps {
        let before = old.maps.get(name).filter(|o| o.decl == map.decl);
        let Some(before) = before else {
            for (k, v) in &map.elements {
                line(format!("add element ip {table} {name} {{ {k} : {v} }}"));
            }
            continue;
        };
        for (k, v) in &before.elements {
            if map.elements.get(k) != Some(v) {
                line(format!("delete element ip {table} {name} {{ {k} }}"));
            }
        }
        for (k, v) in &map.elements {
            if before.elements.get(k) != Some(v) {
                line(format!("add element ip {table} {name} {{ {k} : {v} }}"));
            }
        }
    }
    // 4. What is gone: chains are emptied first (they may jump to each other), then deleted;
    // sets last, once no rule refers to them.
    let gone: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    for name in &gone {
        line(format!("flush chain ip {table} {name}"));
    }
    for name in &gone {
        line(format!("delete chain ip {table} {name}"));
    }
    for name in old.maps.keys().filter(|n| !new.maps.contains_key(*n)) {
        line(format!("delete map ip {table} {name}"));
    }
    for name in old.sets.keys().filter(|n| !new.sets.contains_key(*n)) {
        line(format!("delete set ip {table} {name}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(rules: &[&str]) -> Chain {
        Chain {
            hook: None,
            rules: rules.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn map(elements: &[(&str, &str)]) -> Map {
        Map {
            decl: "type inet_proto . inet_service : verdict".into(),
            elements: elements
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn ruleset(chains: &[(&str, Chain)], elements: &[(&str, &str)], sets: &[&str]) -> Ruleset {
        Ruleset {
            chains: chains
                .iter()
                .map(|(n, c)| ((*n).to_owned(), c.clone()))
                .collect(),
            maps: BTreeMap::from([("m".to_owned(), map(elements))]),
            sets: sets
                .iter()
                .map(|s| ((*s).to_owned(), "type ipv4_addr".to_owned()))
                .collect(),
        }
    }

    #[test]
    fn diffs() {
        let base = ruleset(
            &[("a", chain(&["goto b"])), ("b", chain(&["drop"]))],
            &[("tcp . 80", "goto a")],
            &["s1"],
        );
        let cases: Vec<(&str, Ruleset, &str)> = vec![
            ("nothing changed", base.clone(), ""),
            (
                "one rule changed: only that chain is rewritten",
                ruleset(
                    &[("a", chain(&["goto b"])), ("b", chain(&["accept"]))],
                    &[("tcp . 80", "goto a")],
                    &["s1"],
                ),
                "flush chain ip t b\nadd rule ip t b accept\n",
            ),
            (
                "a chain and an element added",
                ruleset(
                    &[
                        ("a", chain(&["goto b"])),
                        ("b", chain(&["drop"])),
                        ("c", chain(&["reject"])),
                    ],
                    &[("tcp . 80", "goto a"), ("udp . 53", "goto c")],
                    &["s1"],
                ),
                "add chain ip t c\nadd rule ip t c reject\nadd element ip t m { udp . 53 : goto c }\n",
            ),
            (
                "an element points elsewhere and a chain goes: element first, chain after",
                ruleset(
                    &[("b", chain(&["drop"]))],
                    &[("tcp . 80", "goto b")],
                    &["s1"],
                ),
                "delete element ip t m { tcp . 80 }\nadd element ip t m { tcp . 80 : goto b }\nflush chain ip t a\ndelete chain ip t a\n",
            ),
            (
                "a set replaced: new declared before rules, old deleted last",
                ruleset(
                    &[
                        ("a", chain(&["ip saddr @s2 goto b"])),
                        ("b", chain(&["drop"])),
                    ],
                    &[("tcp . 80", "goto a")],
                    &["s2"],
                ),
                "add set ip t s2 { type ipv4_addr ; }\nflush chain ip t a\nadd rule ip t a ip saddr @s2 goto b\ndelete set ip t s1\n",
            ),
        ];
        for (what, new, want) in cases {
            assert_eq!(diff("t", &base, &new), want, "{what}");
        }
    }

    #[test]
    fn base_chain_hook_change_recreates_it() {
        let mut old = Ruleset::default();
        old.chains.insert(
            "pre".into(),
            Chain {
                hook: Some("type nat hook prerouting priority dstnat".into()),
                rules: vec!["jump x".into()],
            },
        );
        let mut new = old.clone();
        if let Some(c) = new.chains.get_mut("pre") {
            c.hook = Some("type nat hook prerouting priority -100".into());
        }
        assert_eq!(
            diff("t", &old, &new),
            "delete chain ip t pre\nadd chain ip t pre { type nat hook prerouting priority -100 ; }\nadd rule ip t pre jump x\n"
        );
    }

    #[test]
    fn full_replaces_the_table() {
        let new = ruleset(&[("a", chain(&["drop"]))], &[("tcp . 80", "goto a")], &[]);
        let script = full("t", &new);
        assert!(script.starts_with("add table ip t\ndelete table ip t\nadd table ip t"));
        let order: Vec<usize> = [
            "add chain ip t a",
            "add map ip t m",
            "add rule ip t a drop",
            "add element",
        ]
        .iter()
        .map(|s| {
            script
                .find(s)
                .unwrap_or_else(|| panic!("{s} missing in {script}"))
        })
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{script}");
    }
}
