//! An nftables table as data, and the `nft` script that turns one version of it into another
//! by changing only what differs (chains, sets and their elements, map elements). Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Which table a script is for: its family (`ip`, `inet`) and name, and the comment a table
/// written from scratch carries. Displays as `family name`, as `nft` commands name tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table<'a> {
    /// `ip`, `inet`, `bridge`, ...
    pub family: &'a str,
    /// The table's name.
    pub name: &'a str,
    /// What the table is, for `nft list ruleset` readers.
    pub comment: &'a str,
}

impl<'a> Table<'a> {
    /// An `ip` family table.
    pub const fn ip(name: &'a str, comment: &'a str) -> Self {
        Table {
            family: "ip",
            name,
            comment,
        }
    }

    /// An `inet` family table.
    pub const fn inet(name: &'a str, comment: &'a str) -> Self {
        Table {
            family: "inet",
            name,
            comment,
        }
    }
}

impl std::fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.family, self.name)
    }
}

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

/// The whole table: chains, maps and sets by name. A set's elements are the kernel's (client
/// addresses of session affinity) unless the set is in `set_elements`, whose elements the
/// script keeps as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Verdict maps by name.
    pub maps: BTreeMap<String, Map>,
    /// Sets by name → declaration, without braces.
    pub sets: BTreeMap<String, String>,
    /// The elements of the sets this table owns, by set name, in `nft` syntax.
    pub set_elements: BTreeMap<String, BTreeSet<String>>,
}

/// The script that creates `table` from scratch with `new` (replacing whatever table of that
/// name exists, in the same transaction).
pub fn full(table: &Table<'_>, new: &Ruleset) -> String {
    let mut out = String::new();
    // `add` then `delete` works whether or not the table exists; the whole file is one
    // transaction, so the table never appears half-made.
    let _ = writeln!(out, "add table {table}");
    let _ = writeln!(out, "delete table {table}");
    let _ = writeln!(
        out,
        "add table {table} {{ comment \"{}\" ; }}",
        table.comment
    );
    out.push_str(&diff(table, &Ruleset::default(), new));
    out
}

/// The script that changes `table` from `old` to `new`: chains whose rules changed are flushed
/// and refilled, new ones added, gone ones deleted; map elements are added and deleted one by
/// one, and so are the elements of owned sets — except in interval sets, which are flushed and
/// refilled when they change (the kernel refuses an interval overlapping one not yet deleted).
/// Empty when nothing changed. Ordered so that nothing is referenced before it exists or
/// deleted while referenced.
pub fn diff(table: &Table<'_>, old: &Ruleset, new: &Ruleset) -> String {
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
                line(format!("delete chain {table} {name}"));
            }
            match &chain.hook {
                Some(hook) => line(format!("add chain {table} {name} {{ {hook} ; }}")),
                None => line(format!("add chain {table} {name}")),
            }
        }
    }
    for (name, decl) in &new.sets {
        if !old.sets.contains_key(name) {
            line(format!("add set {table} {name} {{ {decl} ; }}"));
        }
    }
    for (name, map) in &new.maps {
        if old.maps.get(name).is_none_or(|o| o.decl != map.decl) {
            line(format!("add map {table} {name} {{ {} ; }}", map.decl));
        }
    }
    // 2. Rules of new and changed chains.
    for (name, chain) in &new.chains {
        let before = old.chains.get(name).filter(|o| o.hook == chain.hook);
        if before.is_some_and(|o| o.rules == chain.rules) {
            continue;
        }
        if before.is_some() {
            line(format!("flush chain {table} {name}"));
        }
        for rule in &chain.rules {
            line(format!("add rule {table} {name} {rule}"));
        }
    }
    // 3. Map elements: deletions (gone or changed) before additions.
    for (name, map) in &new.maps {
        let before = old.maps.get(name).filter(|o| o.decl == map.decl);
        let Some(before) = before else {
            for (k, v) in &map.elements {
                line(format!("add element {table} {name} {{ {k} : {v} }}"));
            }
            continue;
        };
        for (k, v) in &before.elements {
            if map.elements.get(k) != Some(v) {
                line(format!("delete element {table} {name} {{ {k} }}"));
            }
        }
        for (k, v) in &map.elements {
            if before.elements.get(k) != Some(v) {
                line(format!("add element {table} {name} {{ {k} : {v} }}"));
            }
        }
    }
    // 3b. Elements of owned sets, the same way; interval sets are refilled as a whole.
    for (name, elements) in &new.set_elements {
        let before = old
            .set_elements
            .get(name)
            .filter(|_| old.sets.get(name) == new.sets.get(name));
        let interval = new.sets.get(name).is_some_and(|d| d.contains("interval"));
        match before {
            Some(b) if b == elements => {}
            Some(b) if !interval => {
                for e in b.difference(elements) {
                    line(format!("delete element {table} {name} {{ {e} }}"));
                }
                for e in elements.difference(b) {
                    line(format!("add element {table} {name} {{ {e} }}"));
                }
            }
            _ => {
                if before.is_some() || old.sets.contains_key(name) {
                    line(format!("flush set {table} {name}"));
                }
                for e in elements {
                    line(format!("add element {table} {name} {{ {e} }}"));
                }
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
        line(format!("flush chain {table} {name}"));
    }
    for name in &gone {
        line(format!("delete chain {table} {name}"));
    }
    for name in old.maps.keys().filter(|n| !new.maps.contains_key(*n)) {
        line(format!("delete map {table} {name}"));
    }
    for name in old.sets.keys().filter(|n| !new.sets.contains_key(*n)) {
        line(format!("delete set {table} {name}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Table<'static> = Table::ip("t", "test");

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
            set_elements: BTreeMap::new(),
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
            assert_eq!(diff(&T, &base, &new), want, "{what}");
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
            diff(&T, &old, &new),
            "delete chain ip t pre\nadd chain ip t pre { type nat hook prerouting priority -100 ; }\nadd rule ip t pre jump x\n"
        );
    }

    #[test]
    fn full_replaces_the_table() {
        let new = ruleset(&[("a", chain(&["drop"]))], &[("tcp . 80", "goto a")], &[]);
        let script = full(&T, &new);
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

    fn owned(sets: &[(&str, &str, &[&str])]) -> Ruleset {
        Ruleset {
            sets: sets
                .iter()
                .map(|(n, d, _)| ((*n).to_owned(), (*d).to_owned()))
                .collect(),
            set_elements: sets
                .iter()
                .map(|(n, _, e)| ((*n).to_owned(), e.iter().map(|x| (*x).to_owned()).collect()))
                .collect(),
            ..Ruleset::default()
        }
    }

    #[test]
    fn owned_set_elements() {
        const PLAIN: &str = "type ipv4_addr";
        const INTERVAL: &str = "type ipv4_addr ; flags interval";
        let t = Table::inet("t", "test");
        let base = owned(&[
            ("p", PLAIN, &["10.0.0.1", "10.0.0.2"]),
            ("b", INTERVAL, &["10.1.0.0/16"]),
        ]);
        let cases: Vec<(&str, Ruleset, &str)> = vec![
            ("nothing changed", base.clone(), ""),
            (
                "a plain set changes element by element",
                owned(&[
                    ("p", PLAIN, &["10.0.0.2", "10.0.0.3"]),
                    ("b", INTERVAL, &["10.1.0.0/16"]),
                ]),
                "delete element inet t p { 10.0.0.1 }\nadd element inet t p { 10.0.0.3 }\n",
            ),
            (
                "an interval set is refilled",
                owned(&[
                    ("p", PLAIN, &["10.0.0.1", "10.0.0.2"]),
                    ("b", INTERVAL, &["10.0.0.0/8"]),
                ]),
                "flush set inet t b\nadd element inet t b { 10.0.0.0/8 }\n",
            ),
            (
                "a new set is declared and filled, a gone one deleted",
                owned(&[
                    ("p", PLAIN, &["10.0.0.1", "10.0.0.2"]),
                    ("c", PLAIN, &["10.2.0.1"]),
                ]),
                "add set inet t c { type ipv4_addr ; }\nadd element inet t c { 10.2.0.1 }\ndelete set inet t b\n",
            ),
        ];
        for (what, new, want) in cases {
            assert_eq!(diff(&t, &base, &new), want, "{what}");
        }
    }
}
