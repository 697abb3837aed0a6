//! The seccomp profile of every container runbox creates (`sandbox.seccomp`): runbox's
//! own (seccomp/runbox.json, explained in SECURITY.md), the engine's default, or an
//! operator's file. The engine takes a profile inline in `SecurityOpt`, so runbox reads
//! it once at start and sends it with each container it creates.

use runbox_core::config::{Config, SECCOMP_DOCKER, SECCOMP_RUNBOX};
use serde_json::Value;

use crate::SandboxError;

/// runbox's own profile, in Docker's format.
pub const RUNBOX_PROFILE: &str = include_str!("../seccomp/runbox.json");

/// The security options of a container: no-new-privileges, and the profile unless the
/// engine's default is wanted.
#[derive(Clone, Debug)]
pub struct Seccomp {
    /// `seccomp=<profile as compact JSON>`; `None`: the engine's default profile.
    option: Option<String>,
}

impl Seccomp {
    pub fn from_config(config: &Config) -> Result<Seccomp, SandboxError> {
        let setting = config.sandbox.seccomp.trim();
        let text = match setting {
            SECCOMP_DOCKER => return Ok(Seccomp { option: None }),
            SECCOMP_RUNBOX => RUNBOX_PROFILE.to_string(),
            path => std::fs::read_to_string(path).map_err(|err| {
                SandboxError::Seccomp(format!("cannot read the profile {path}: {err}"))
            })?,
        };
        let profile = parse(&text).map_err(|why| {
            SandboxError::Seccomp(format!("the profile {setting} is not usable: {why}"))
        })?;
        Ok(Seccomp {
            option: Some(format!("seccomp={profile}")),
        })
    }

    /// The filter as the engine reads it, for `security_opt`.
    pub fn security_opt(&self) -> Vec<String> {
        let mut options = vec!["no-new-privileges".to_string()];
        options.extend(self.option.clone());
        options
    }

    /// What `runbox doctor` says about it.
    pub fn describe(&self) -> String {
        match &self.option {
            None => "the engine's default profile".to_string(),
            Some(option) => format!("a profile of {} bytes", option.len() - "seccomp=".len()),
        }
    }
}

/// The profile as one line of JSON: the engine takes it inside a security option, with
/// every container. The engine runs a container unconfined when a profile names no
/// default action and no syscalls, so a profile without a default action is refused
/// rather than sent.
fn parse(text: &str) -> Result<String, String> {
    let profile: Value = serde_json::from_str(text).map_err(|err| err.to_string())?;
    let default_action = profile.get("defaultAction").and_then(Value::as_str);
    if default_action.is_none_or(str::is_empty) {
        return Err("it names no defaultAction".into());
    }
    if !profile.get("syscalls").is_some_and(Value::is_array) {
        return Err("it has no syscalls list".into());
    }
    Ok(profile.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(setting: &str) -> Result<Seccomp, SandboxError> {
        let mut config = Config::defaults();
        config.sandbox.seccomp = setting.into();
        Seccomp::from_config(&config)
    }

    /// The syscalls the profile names with `action`, and the rules of each.
    fn rules(action: &str) -> Vec<Value> {
        let profile: Value = serde_json::from_str(RUNBOX_PROFILE).expect("valid JSON");
        profile["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .filter(|rule| rule["action"] == action)
            .cloned()
            .collect()
    }

    fn names(rules: &[Value]) -> Vec<String> {
        rules
            .iter()
            .flat_map(|rule| rule["names"].as_array().expect("names").clone())
            .map(|name| name.as_str().expect("a name").to_string())
            .collect()
    }

    #[test]
    fn runbox_s_profile_is_the_default_and_sent_inline() {
        let seccomp = Seccomp::from_config(&Config::defaults()).expect("embedded profile");
        let options = seccomp.security_opt();
        assert_eq!(options[0], "no-new-privileges");
        let profile = options[1].strip_prefix("seccomp=").expect("inline profile");
        let parsed: Value = serde_json::from_str(profile).expect("JSON");
        assert_eq!(parsed["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(!profile.contains('\n'), "compact");
    }

    #[test]
    fn docker_leaves_the_engine_s_default() {
        let seccomp = with("docker").expect("docker");
        assert_eq!(seccomp.security_opt(), ["no-new-privileges"]);
    }

    #[test]
    fn a_profile_file_is_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("runbox-seccomp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).expect("a scratch dir");
        let good = dir.join("good.json");
        std::fs::write(
            &good,
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}"#,
        )
        .expect("write");
        let seccomp = with(good.to_str().expect("utf-8")).expect("a good profile");
        assert_eq!(
            seccomp.security_opt()[1],
            r#"seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}"#
        );
        let unconfining = dir.join("empty.json");
        std::fs::write(&unconfining, "{}").expect("write");
        for (path, why) in [
            (unconfining, "defaultAction"),
            (dir.join("missing.json"), "cannot read"),
        ] {
            let err = with(path.to_str().expect("utf-8")).expect_err("refused");
            assert!(err.to_string().contains(why), "{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The profile is an allowlist, and what SECURITY.md says it denies it denies.
    #[test]
    fn the_profile_denies_by_default_and_by_name() {
        let profile: Value = serde_json::from_str(RUNBOX_PROFILE).expect("valid JSON");
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(profile["defaultErrnoRet"], 1, "EPERM");
        let allowed = names(&rules("SCMP_ACT_ALLOW"));
        let errors = rules("SCMP_ACT_ERRNO");
        let denied = names(&errors);
        for name in [
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "keyctl",
            "add_key",
            "request_key",
            "mount",
            "umount2",
            "fsopen",
            "fsconfig",
            "fsmount",
            "move_mount",
            "open_tree",
            "pivot_root",
            "unshare",
            "setns",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "acct",
            "swapon",
            "swapoff",
            "reboot",
            "settimeofday",
            "clock_settime",
            "adjtimex",
            "quotactl",
            "lookup_dcookie",
            "open_by_handle_at",
            "name_to_handle_at",
            "iopl",
            "ioperm",
            "kcmp",
            "pidfd_getfd",
            "fanotify_init",
            "mbind",
            "move_pages",
            "set_mempolicy",
            "syslog",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
            "nfsservctl",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "vhangup",
        ] {
            assert!(denied.contains(&name.to_string()), "{name} is not denied");
            assert!(!allowed.contains(&name.to_string()), "{name} is allowed");
        }
        let clone3 = errors
            .iter()
            .find(|rule| rule["names"] == serde_json::json!(["clone3"]))
            .expect("a clone3 rule");
        assert_eq!(
            clone3["errnoRet"], 38,
            "ENOSYS, so that glibc falls back to clone"
        );
        for rule in rules("SCMP_ACT_ALLOW") {
            let conditional = ["clone", "socket", "personality"];
            let names = names(std::slice::from_ref(&rule));
            if names.iter().any(|n| conditional.contains(&n.as_str())) {
                assert!(
                    rule["args"].is_array(),
                    "{names:?} allowed without a condition"
                );
            }
        }
    }
}
