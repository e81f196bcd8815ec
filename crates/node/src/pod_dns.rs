//! A pod's `/etc/resolv.conf` and `/etc/hosts`, as the kubelet writes them: the DNS policy
//! (`ClusterFirst`, `ClusterFirstWithHostNet`, `Default`, `None`) applied to the cluster's DNS
//! and the node's own resolv.conf, `dnsConfig` merged in, upstream's limits enforced; the hosts
//! file with the pod's address, hostname and `hostAliases`. Pure; the pod worker writes the files
//! and bind-mounts them into every container.

use k8s_openapi::api::core::v1::Pod;

/// Most nameservers a resolver reads (glibc's `MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// Most search domains (glibc 2.26+, upstream's `MaxDNSSearchPaths`).
pub const MAX_SEARCHES: usize = 32;
/// Longest search line, in characters (upstream's `MaxDNSSearchListChars`).
pub const MAX_SEARCH_CHARS: usize = 2048;

/// The cluster's DNS, as the agent is configured with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterDns {
    /// The cluster DNS Service's addresses (`--cluster-dns`); empty when there is none.
    pub nameservers: Vec<String>,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// The parts of a resolv.conf the kubelet uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` addresses, in order.
    pub nameservers: Vec<String>,
    /// `search` domains (the last `search` or `domain` line wins, as in glibc).
    pub searches: Vec<String>,
    /// `options`, each `name` or `name:value`.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Reads resolv.conf text; comments (`#`, `;`) and unknown lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut out = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => out.nameservers.extend(words.next().map(str::to_owned)),
                Some("search" | "domain") => {
                    // Upstream trims the root dot: "corp.example." and "corp.example" are one.
                    out.searches = words
                        .map(|w| w.trim_end_matches('.').to_owned())
                        .filter(|w| !w.is_empty())
                        .collect();
                }
                Some("options") => out.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        out
    }

    /// The file's text: nameservers, search line, options; empty parts left out.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// What a pod's `dnsPolicy` comes down to (upstream's `podDNSType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Cluster,
    Host,
    None,
}

fn kind(pod: &Pod) -> Kind {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => Kind::None,
        Some("ClusterFirstWithHostNet") => Kind::Cluster,
        Some("Default") => Kind::Host,
        // ClusterFirst (the default): host-network pods fall back to the node's resolvers.
        _ if host_network => Kind::Host,
        _ => Kind::Cluster,
    }
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// Option names override earlier ones of the same name; order of first appearance is kept.
fn merge_options(existing: &[String], pod: &[(String, Option<String>)]) -> Vec<String> {
    let mut merged: Vec<(String, Option<String>)> = Vec::new();
    let split = |o: &str| match o.split_once(':') {
        Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
        None => (o.to_owned(), None),
    };
    for (name, value) in existing.iter().map(|o| split(o)).chain(pod.iter().cloned()) {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => merged.push((name, value)),
        }
    }
    merged
        .into_iter()
        .map(|(n, v)| match v {
            Some(v) if !v.is_empty() => format!("{n}:{v}"),
            _ => n,
        })
        .collect()
}

/// Cuts the search list to [`MAX_SEARCHES`] domains and [`MAX_SEARCH_CHARS`] characters, as
/// the kubelet does (it reports the cut in an event; we log it).
fn fit_searches(searches: &mut Vec<String>) -> bool {
    let mut cut = false;
    if searches.len() > MAX_SEARCHES {
        searches.truncate(MAX_SEARCHES);
        cut = true;
    }
    while searches.join(" ").len() > MAX_SEARCH_CHARS {
        searches.pop();
        cut = true;
    }
    cut
}

/// The resolv.conf of `pod` and whether limits cut anything. `cluster` is `None` (or has no
/// nameservers) when the node knows no cluster DNS: `ClusterFirst` then falls back to the
/// node's resolvers, as the kubelet does.
pub fn resolv_conf(pod: &Pod, cluster: Option<&ClusterDns>, host: &ResolvConf) -> (String, bool) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cluster = cluster.filter(|c| !c.nameservers.is_empty());
    let mut conf = match (kind(pod), cluster) {
        (Kind::None, _) => ResolvConf::default(),
        (Kind::Cluster, Some(c)) => {
            let d = &c.domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            push_unique(&mut searches, host.searches.iter().cloned());
            ResolvConf {
                nameservers: c.nameservers.clone(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        (Kind::Cluster | Kind::Host, _) => host.clone(),
    };
    if let Some(cfg) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        push_unique(
            &mut conf.nameservers,
            cfg.nameservers.iter().flatten().cloned(),
        );
        push_unique(
            &mut conf.searches,
            cfg.searches
                .iter()
                .flatten()
                .map(|s| s.trim_end_matches('.').to_owned()),
        );
        let pod_options: Vec<(String, Option<String>)> = cfg
            .options
            .iter()
            .flatten()
            .filter_map(|o| Some((o.name.clone()?, o.value.clone())))
            .collect();
        conf.options = merge_options(&conf.options, &pod_options);
    }
    let mut cut = conf.nameservers.len() > MAX_NAMESERVERS;
    conf.nameservers.truncate(MAX_NAMESERVERS);
    cut |= fit_searches(&mut conf.searches);
    (conf.render(), cut)
}

/// The pod's `/etc/hosts` (the kubelet's managed hosts file): loopback names, the pod's address
/// with its hostname (fully qualified when the pod has a `subdomain`), then `hostAliases`.
pub fn hosts_file(pod: &Pod, pod_ip: &str, domain: &str) -> String {
    let spec = pod.spec.as_ref();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let hostname = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .unwrap_or(name);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    if !pod_ip.is_empty() {
        match spec
            .and_then(|s| s.subdomain.as_deref())
            .filter(|s| !s.is_empty())
        {
            Some(sub) => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                out.push_str(&format!(
                    "{pod_ip}\t{hostname}.{sub}.{ns}.svc.{domain}\t{hostname}\n"
                ));
            }
            None => out.push_str(&format!("{pod_ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if aliases.is_some_and(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases.into_iter().flatten() {
            let names = alias.hostnames.clone().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    out
}

#[cfg(test)]
mod tests;
