//! The host closed to the http transport's sandboxes. Their network (`network.rs`) is a
//! bridge the host is on: without more, code in a sandbox reaches every host service
//! listening on all interfaces (databases, admin ports, sshd) at the bridge's gateway.
//! runbox closes it itself with netfilter rules, tagged as its own, that drop every new
//! connection coming in from the bridge — to the host (`INPUT`) and through it to any
//! other network (`DOCKER-USER`, else `FORWARD`). Connections the host opens to a
//! sandbox (runbox reaching a published agent port) are unaffected: their packets from
//! the sandbox are replies.
//!
//! Each server installs and removes a copy tagged with its instance's name, so that one
//! server stopping never opens the host to another's sandboxes; duplicate DROP rules
//! cost nothing. A rule added by hand (`manual_fix`) carries the plain tag and counts
//! for every server.
//!
//! The rules only work where the bridge is: in this process's network namespace, i.e.
//! a local engine. When they cannot be installed (no privilege, no iptables, a remote
//! engine), runbox says so (`FirewallState::Open`), and `serve` refuses the transport
//! unless `sandbox.allow_host_network_access` accepts it.

use std::path::Path;

use serde::Serialize;
use tokio::process::Command;

use crate::network::SANDBOX_BRIDGE;

/// Marks runbox's rules, so that they are found and removed by it alone: a rule added
/// by hand has it as it is, a server's own has the server's instance before the colon.
const TAG: &str = "runbox: no new connections from http sandboxes";

/// The tag of `instance`'s rule (`None`: the one added by hand).
fn tag(instance: Option<&str>) -> String {
    match instance {
        None => TAG.to_string(),
        Some(instance) => TAG.replacen("runbox:", &format!("runbox {instance}:"), 1),
    }
}

/// The netfilter tools, for IPv4 and IPv6; the second is best effort (the sandbox
/// network has no IPv6, and some hosts have no ip6tables).
const TOOLS: [(&str, bool); 2] = [("iptables", true), ("ip6tables", false)];

/// Whether the host is closed to the sandboxes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FirewallState {
    /// The stdio transport: sandboxes have no network at all.
    NotNeeded,
    /// runbox's rules are in place.
    Closed,
    /// Sandboxes can reach the host; `why` says why, `fix` what to run.
    Open { why: String, fix: String },
}

impl FirewallState {
    pub fn is_open(&self) -> bool {
        matches!(self, FirewallState::Open { .. })
    }
}

/// The commands that close the host by hand (for `runbox doctor` and errors).
pub fn manual_fix() -> String {
    let rule = rule_text();
    format!(
        "as root: iptables -I INPUT {rule} && iptables -I DOCKER-USER {rule} \
         (and the same with ip6tables)"
    )
}

fn rule_text() -> String {
    format!(
        "-i {SANDBOX_BRIDGE} -m conntrack --ctstate NEW,INVALID -m comment --comment '{TAG}' -j DROP"
    )
}

fn rule_args(tag: &str) -> Vec<String> {
    [
        "-i",
        SANDBOX_BRIDGE,
        "-m",
        "conntrack",
        "--ctstate",
        "NEW,INVALID",
        "-m",
        "comment",
        "--comment",
        tag,
        "-j",
        "DROP",
    ]
    .map(str::to_string)
    .to_vec()
}

/// Runs `tool -w args`; Ok(true) when it exited 0, Ok(false) when it ran and refused,
/// Err when it could not run at all.
async fn netfilter(tool: &str, args: &[String]) -> Result<bool, String> {
    let output = Command::new(tool)
        .arg("-w")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|err| format!("cannot run {tool}: {err}"))?;
    Ok(output.status.success())
}

async fn chain_exists(tool: &str, chain: &str) -> bool {
    netfilter(tool, &["-n".into(), "-L".into(), chain.into()])
        .await
        .unwrap_or(false)
}

/// The chains the rules go in: `INPUT`, and `DOCKER-USER` (which Docker evaluates
/// before its own forwarding rules) or, without it, `FORWARD`.
async fn chains(tool: &str) -> [&'static str; 2] {
    if chain_exists(tool, "DOCKER-USER").await {
        ["INPUT", "DOCKER-USER"]
    } else {
        ["INPUT", "FORWARD"]
    }
}

fn with_rule(op: &str, chain: &str, tag: &str) -> Vec<String> {
    let mut args = vec![op.to_string(), chain.to_string()];
    args.extend(rule_args(tag));
    args
}

/// Whether the bridge is in this process's network namespace (else rules here would
/// not touch it).
fn bridge_is_here() -> bool {
    Path::new("/sys/class/net").join(SANDBOX_BRIDGE).exists()
}

/// Installs `instance`'s rules unless they are there (idempotent).
pub async fn close(instance: &str) -> FirewallState {
    let tag = tag(Some(instance));
    if !bridge_is_here() {
        return FirewallState::Open {
            why: format!(
                "the sandbox bridge {SANDBOX_BRIDGE} is not in this host's network namespace \
                 (a remote Docker engine?), so runbox cannot close it"
            ),
            fix: format!("on the Docker host, {}", manual_fix()),
        };
    }
    for (tool, required) in TOOLS {
        for chain in chains(tool).await {
            let installed = match netfilter(tool, &with_rule("-C", chain, &tag)).await {
                Ok(true) => Ok(true),
                Ok(false) => netfilter(tool, &with_rule("-I", chain, &tag)).await,
                Err(err) => Err(err),
            };
            match installed {
                Ok(true) => {}
                Ok(false) | Err(_) if !required => {
                    tracing::debug!(tool, chain, "could not add the sandbox rule (optional)");
                }
                Ok(false) => {
                    return FirewallState::Open {
                        why: format!(
                            "{tool} refused to add runbox's rule to {chain} (is runbox root, or \
                             does it have CAP_NET_ADMIN?)"
                        ),
                        fix: manual_fix(),
                    }
                }
                Err(err) => {
                    return FirewallState::Open {
                        why: err,
                        fix: manual_fix(),
                    }
                }
            }
        }
    }
    tracing::info!(
        bridge = SANDBOX_BRIDGE,
        "closed the host to the sandbox network (netfilter rules tagged as runbox's)"
    );
    FirewallState::Closed
}

/// Whether this process may change netfilter rules: CAP_NET_ADMIN in its effective set
/// (root has it) and an `iptables` to run.
pub fn can_install() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let net_admin = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0);
    let iptables = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("iptables").is_file()));
    net_admin && iptables
}

/// Whether the IPv4 rules of `instance` (`None`: the ones added by hand), or the ones
/// added by hand, are (still) in every chain.
pub async fn is_closed(instance: Option<&str>) -> bool {
    if !bridge_is_here() {
        return false;
    }
    let tags: Vec<String> = [Some(tag(None)), instance.map(|i| tag(Some(i)))]
        .into_iter()
        .flatten()
        .collect();
    for chain in chains("iptables").await {
        let mut found = false;
        for tag in &tags {
            if netfilter("iptables", &with_rule("-C", chain, tag)).await == Ok(true) {
                found = true;
                break;
            }
        }
        if !found {
            return false;
        }
    }
    true
}

/// Removes `instance`'s rules (every copy; missing ones are fine). Another server's, and
/// the ones added by hand, stay.
pub async fn reopen(instance: &str) {
    let tag = tag(Some(instance));
    for (tool, _) in TOOLS {
        for chain in ["INPUT", "DOCKER-USER", "FORWARD"] {
            while netfilter(tool, &with_rule("-C", chain, &tag)).await == Ok(true) {
                if netfilter(tool, &with_rule("-D", chain, &tag)).await != Ok(true) {
                    break;
                }
            }
        }
    }
    tracing::info!(
        bridge = SANDBOX_BRIDGE,
        instance,
        "removed this server's netfilter rules"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_drops_only_new_connections_from_the_bridge_and_is_tagged() {
        let args = rule_args(&tag(Some("rb-1"))).join(" ");
        assert!(args.starts_with(&format!("-i {SANDBOX_BRIDGE} ")), "{args}");
        assert!(args.contains("--ctstate NEW,INVALID"), "{args}");
        assert!(
            args.contains("runbox rb-1: no new connections from http sandboxes"),
            "{args}"
        );
        assert!(args.ends_with("-j DROP"), "{args}");
        assert!(manual_fix().contains("DOCKER-USER"));
        assert!(
            manual_fix().contains(TAG),
            "a rule by hand has the plain tag"
        );
    }

    #[test]
    fn only_an_open_host_is_open() {
        assert!(!FirewallState::Closed.is_open());
        assert!(!FirewallState::NotNeeded.is_open());
        assert!(FirewallState::Open {
            why: "x".into(),
            fix: "y".into()
        }
        .is_open());
    }
}
