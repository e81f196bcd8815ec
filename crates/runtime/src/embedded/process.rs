//! Pure resolution of a container's process from its config and its image: command line
//! (Kubernetes' Entrypoint/Cmd rules), environment (`TERM` on a terminal), working dir, user
//! and capabilities.

use crate::error::{Result, RuntimeError};
use crate::images::ImageConfig;
use crate::types::{ContainerConfig, SecurityConfig};

/// Docker's (and containerd's) default capability set for unprivileged containers.
pub(crate) const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Capability names in kernel numbering order (`CAP_CHOWN` = 0 ... `CAP_CHECKPOINT_RESTORE` = 40).
pub(crate) const CAP_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Every capability this table knows.
pub(crate) fn all_caps() -> u64 {
    (1u64 << CAP_NAMES.len()) - 1
}

fn cap_bit(name: &str) -> Result<u64> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAP_NAMES
        .iter()
        .position(|n| *n == bare)
        .map(|i| 1u64 << i)
        .ok_or_else(|| RuntimeError::InvalidConfig(format!("unknown capability {name:?}")))
}

/// The capability mask a container keeps: everything when privileged; otherwise Docker's
/// default set minus `drop` (`ALL` empties it) plus `add` (`ALL` fills it), as Kubernetes does.
pub(crate) fn capabilities(sec: &SecurityConfig) -> Result<u64> {
    if sec.privileged {
        return Ok(all_caps());
    }
    let mut mask = 0;
    for name in DEFAULT_CAPS {
        mask |= cap_bit(name)?;
    }
    for name in &sec.capabilities_drop {
        if name.eq_ignore_ascii_case("ALL") {
            mask = 0;
        } else {
            mask &= !cap_bit(name)?;
        }
    }
    for name in &sec.capabilities_add {
        if name.eq_ignore_ascii_case("ALL") {
            mask = all_caps();
        } else {
            mask |= cap_bit(name)?;
        }
    }
    Ok(mask)
}

/// The command line: `command` replaces the Entrypoint (and drops the image's Cmd), `args`
/// replaces the Cmd; the result is Entrypoint + Cmd.
pub(crate) fn argv(config: &ContainerConfig, image: &ImageConfig) -> Result<Vec<String>> {
    let entrypoint: Vec<String> = if config.command.is_empty() {
        image.entrypoint.clone().unwrap_or_default()
    } else {
        config.command.clone()
    };
    let cmd: Vec<String> = if !config.args.is_empty() {
        config.args.clone()
    } else if config.command.is_empty() {
        image.cmd.clone().unwrap_or_default()
    } else {
        Vec::new()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(RuntimeError::InvalidConfig(
            "no command: neither the container nor the image names one".into(),
        ));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(RuntimeError::InvalidConfig(
            "NUL byte in the command".into(),
        ));
    }
    Ok(argv)
}

/// The environment: the image's, overridden by the config's by name, plus a default `PATH` and
/// `HOSTNAME` as Docker and containerd set them.
pub(crate) fn env(config: &ContainerConfig, image: &ImageConfig, hostname: &str) -> Vec<String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match vars.iter_mut().find(|(n, _)| n == k) {
        Some(slot) => slot.1 = v.to_owned(),
        None => vars.push((k.to_owned(), v.to_owned())),
    };
    set(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    set("HOSTNAME", hostname);
    for kv in image.env.iter().flatten() {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v);
    }
    for (k, v) in &config.env {
        set(k, v);
    }
    // As containerd does for a container on a terminal, unless the image or config set one.
    if config.tty && !vars.iter().any(|(k, _)| k == "TERM") {
        vars.push(("TERM".into(), "xterm".into()));
    }
    vars.into_iter()
        .filter(|(k, v)| !k.is_empty() && !k.contains('\0') && !v.contains('\0'))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// The working directory: the config's, else the image's, else `/`. Must be absolute.
pub(crate) fn cwd(config: &ContainerConfig, image: &ImageConfig) -> Result<String> {
    let cwd = config
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| image.working_dir.clone().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') || cwd.contains('\0') {
        return Err(RuntimeError::InvalidConfig(format!(
            "working dir {cwd:?} is not absolute"
        )));
    }
    Ok(cwd)
}

/// uid and gid: `runAsUser`/`runAsGroup` win; else the image's `USER` (`user[:group]`, each a
/// number or a name looked up in the image's `/etc/passwd` and `/etc/group`, which `read`
/// returns). A name the image does not define is an error unless `runAsUser`/`runAsGroup`
/// overrides it, as runc refuses to start such a container.
pub(crate) fn user(
    sec: &SecurityConfig,
    image: &ImageConfig,
    read: &dyn Fn(&str) -> Option<String>,
) -> Result<(u32, u32)> {
    let (mut uid, mut gid) = (0, 0);
    if let Some(u) = image.user.as_deref().filter(|u| !u.is_empty()) {
        let (user, group) = u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)));
        let passwd = read("etc/passwd").unwrap_or_default();
        let entry = passwd_entry(&passwd, user);
        match (user.parse::<u32>(), entry) {
            (Ok(n), entry) => {
                uid = n;
                gid = entry.map_or(0, |(_, g)| g);
            }
            (Err(_), Some((u, g))) => (uid, gid) = (u, g),
            (Err(_), None) if sec.run_as_user.is_some() => {}
            (Err(_), None) => {
                return Err(RuntimeError::InvalidConfig(format!(
                    "unable to find user {user}: no matching entries in passwd file"
                )));
            }
        }
        if let Some(g) = group {
            let groups = read("etc/group").unwrap_or_default();
            match (g.parse::<u32>(), group_id(&groups, g)) {
                (Ok(n), _) | (Err(_), Some(n)) => gid = n,
                (Err(_), None) if sec.run_as_group.is_some() => {}
                (Err(_), None) => {
                    return Err(RuntimeError::InvalidConfig(format!(
                        "unable to find group {g}: no matching entries in group file"
                    )));
                }
            }
        }
    }
    Ok((
        sec.run_as_user.unwrap_or(uid),
        sec.run_as_group.unwrap_or(gid),
    ))
}

/// uid and primary gid of `user` (a name or a uid) in a passwd file.
fn passwd_entry(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || line.starts_with('#') {
            return None;
        }
        let (uid, gid) = (f[2].parse().ok()?, f[3].parse().ok()?);
        (f[0] == user || f[2] == user).then_some((uid, gid))
    })
}

/// gid of `group` (a name) in a group file.
fn group_id(groups: &str, group: &str) -> Option<u32> {
    groups.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == group).then(|| f[2].parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(ep: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        ImageConfig {
            entrypoint: ep.map(v),
            cmd: cmd.map(v),
            ..Default::default()
        }
    }

    fn config(command: &[&str], args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn command_line_rules() {
        let img = image(Some(&["/ep"]), Some(&["c1"]));
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &[], &["/ep", "c1"]),
            (&[], &["a"], &["/ep", "a"]),
            (&["/x"], &[], &["/x"]),
            (&["/x"], &["a"], &["/x", "a"]),
        ];
        for (command, args, want) in cases {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(argv(&config(command, args), &img).ok(), Some(want));
        }
        assert!(argv(&config(&[], &[]), &image(None, None)).is_err());
    }

    #[test]
    fn env_overrides_by_name() {
        let img = ImageConfig {
            env: Some(vec!["PATH=/img".into(), "A=1".into()]),
            ..Default::default()
        };
        let mut cfg = config(&[], &[]);
        cfg.env = vec![("A".into(), "2".into()), ("B".into(), "x=y".into())];
        assert_eq!(
            env(&cfg, &img, "h"),
            vec!["PATH=/img", "HOSTNAME=h", "A=2", "B=x=y"]
        );
        cfg.tty = true;
        assert_eq!(
            env(&cfg, &img, "h").last().map(String::as_str),
            Some("TERM=xterm")
        );
        cfg.env.push(("TERM".into(), "dumb".into()));
        assert_eq!(
            env(&cfg, &img, "h").last().map(String::as_str),
            Some("TERM=dumb")
        );
    }

    #[test]
    fn users_and_caps() {
        let img = ImageConfig {
            user: Some("1000:1001".into()),
            ..Default::default()
        };
        let mut sec = SecurityConfig::default();
        let files = |name: &str| match name {
            "etc/passwd" => Some(
                "root:x:0:0:root:/root:/bin/sh\n# comment\nnginx:x:101:102:nginx:/:/sbin/nologin\n"
                    .to_owned(),
            ),
            "etc/group" => Some("root:x:0:\nwww:x:33:nginx\n".to_owned()),
            _ => None,
        };
        assert_eq!(user(&sec, &img, &files).ok(), Some((1000, 1001)));
        sec.run_as_user = Some(5);
        assert_eq!(user(&sec, &img, &files).ok(), Some((5, 1001)));
        let named = |u: &str| ImageConfig {
            user: Some(u.into()),
            ..Default::default()
        };
        let none = SecurityConfig::default();
        let cases: &[(&str, Option<(u32, u32)>)] = &[
            ("nginx", Some((101, 102))),
            ("101", Some((101, 102))),
            ("nginx:www", Some((101, 33))),
            ("nginx:7", Some((101, 7))),
            ("4242", Some((4242, 0))),
            ("ghost", None),
            ("nginx:ghosts", None),
        ];
        for (u, want) in cases {
            assert_eq!(user(&none, &named(u), &files).ok(), *want, "{u}");
        }
        let over = SecurityConfig {
            run_as_user: Some(9),
            ..Default::default()
        };
        assert_eq!(user(&over, &named("ghost"), &files).ok(), Some((9, 0)));

        let default = capabilities(&sec).unwrap_or(0);
        assert_eq!(default.count_ones() as usize, DEFAULT_CAPS.len());
        sec.capabilities_drop = vec!["ALL".into()];
        sec.capabilities_add = vec!["cap_net_admin".into()];
        assert_eq!(capabilities(&sec).ok(), Some(1 << 12));
        sec.capabilities_add = vec!["BOGUS".into()];
        assert!(capabilities(&sec).is_err());
        sec.privileged = true;
        assert_eq!(capabilities(&sec).ok(), Some(all_caps()));
    }
}
