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
    /// The same under a runtime with a kernel of its own (gVisor), see `own_kernel`.
    own_kernel_option: Option<String>,
}

impl Seccomp {
    pub fn from_config(config: &Config) -> Result<Seccomp, SandboxError> {
        let setting = config.sandbox.seccomp.trim();
        let text = match setting {
            SECCOMP_DOCKER => {
                return Ok(Seccomp {
                    option: None,
                    own_kernel_option: None,
                })
            }
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
            own_kernel_option: Some(format!("seccomp={}", own_kernel(profile))),
        })
    }

    /// The filter as the engine reads it, for `security_opt`.
    pub fn security_opt(&self) -> Vec<String> {
        let mut options = vec!["no-new-privileges".to_string()];
        options.extend(self.option.clone());
        options
    }

    /// The filter for a container under a runtime with a kernel of its own (gVisor),
    /// which applies the profile inside its sandbox.
    pub fn security_opt_own_kernel(&self) -> Vec<String> {
        let mut options = vec!["no-new-privileges".to_string()];
        options.extend(self.own_kernel_option.clone());
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
fn parse(text: &str) -> Result<Value, String> {
    let profile: Value = serde_json::from_str(text).map_err(|err| err.to_string())?;
    let default_action = profile.get("defaultAction").and_then(Value::as_str);
    if default_action.is_none_or(str::is_empty) {
        return Err("it names no defaultAction".into());
    }
    if !profile.get("syscalls").is_some_and(Value::is_array) {
        return Err("it has no syscalls list".into());
    }
    Ok(profile)
}

/// Signals to a process, a thread, or a pidfd of one: under gVisor, only to a pid other
/// than 1. Linux drops a signal sent from inside a pid namespace to its init when the
/// init has no handler for it, so there the code cannot kill the agent (pid 1); gVisor's
/// kernel delivers it, so there the filter refuses it (EPERM).
const SIGNALS_BY_PID: [&str; 6] = [
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_open",
];

/// The profile for a runtime with a kernel of its own (gVisor), which applies the filter
/// inside its sandbox:
/// - its filter ignores `errnoRet` and answers EPERM, so a rule making clone3 fail with
///   ENOSYS (for libc to fall back to clone) would leave no way to start a thread; clone3
///   is allowed there instead: gVisor's kernel answers it, and a namespace it made would
///   be one of gVisor's, not the host's;
/// - `SIGNALS_BY_PID` are allowed for every pid but 1. pid_t is 32 bits (the kernel reads
///   0x1_0000_0001 as 1), and a filter can only test "equal under a mask", so the allowed
///   set is written as 32 rules on the low 32 bits: even, or with bit k set (k = 1..31).
fn own_kernel(mut profile: Value) -> Value {
    let Some(rules) = profile.get_mut("syscalls").and_then(Value::as_array_mut) else {
        return profile;
    };
    for rule in rules.iter_mut() {
        let only_clone3 = rule
            .get("names")
            .is_some_and(|names| *names == serde_json::json!(["clone3"]));
        let allows = rule.get("action").and_then(Value::as_str) == Some("SCMP_ACT_ALLOW");
        let Some(rule) = rule.as_object_mut() else {
            continue;
        };
        if only_clone3 && !allows {
            rule.insert("action".into(), Value::from("SCMP_ACT_ALLOW"));
            rule.remove("errnoRet");
        }
        if allows && !rule.contains_key("args") {
            if let Some(names) = rule.get_mut("names").and_then(Value::as_array_mut) {
                names.retain(|name| !name.as_str().is_some_and(|n| SIGNALS_BY_PID.contains(&n)));
            }
        }
    }
    let low_bit_clear = (1u64, 0u64);
    let another_bit_set = (1..32).map(|bit| (1u64 << bit, 1u64 << bit));
    for (mask, value) in std::iter::once(low_bit_clear).chain(another_bit_set) {
        rules.push(serde_json::json!({
            "names": SIGNALS_BY_PID,
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
    }
    profile
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
            let conditional = ["clone", "socket", "personality", "mknod", "mknodat"];
            let names = names(std::slice::from_ref(&rule));
            if names.iter().any(|n| conditional.contains(&n.as_str())) {
                assert!(
                    rule["args"].is_array(),
                    "{names:?} allowed without a condition"
                );
            }
        }
    }

    /// Whether an allow rule of `profile` lets `name` through with argument `index` at
    /// `arg` (rules on other arguments are taken as met).
    fn allows(profile: &Value, name: &str, index: u64, arg: u64) -> bool {
        let rules = profile["syscalls"].as_array().expect("syscalls");
        rules.iter().any(|rule| {
            rule["action"] == "SCMP_ACT_ALLOW"
                && names(std::slice::from_ref(rule)).iter().any(|n| n == name)
                && rule["args"].as_array().is_none_or(|args| {
                    args.iter().all(|condition| {
                        let value = condition["value"].as_u64().expect("value");
                        let two = condition["valueTwo"].as_u64().unwrap_or(0);
                        condition["index"] != index
                            || match condition["op"].as_str().expect("op") {
                                "SCMP_CMP_MASKED_EQ" => arg & value == two,
                                "SCMP_CMP_EQ" => arg == value,
                                op => panic!("{op} not expected here"),
                            }
                    })
                })
        })
    }

    fn sent(option: &str) -> Value {
        let profile = option.strip_prefix("seccomp=").expect("inline");
        serde_json::from_str(profile).expect("JSON")
    }

    #[test]
    fn under_gvisor_no_signal_reaches_pid_1() {
        let seccomp = Seccomp::from_config(&Config::defaults()).expect("the profile");
        let standard = sent(&seccomp.security_opt()[1]);
        let gvisor = sent(&seccomp.security_opt_own_kernel()[1]);
        for name in SIGNALS_BY_PID {
            // pid_t is 32 bits: the kernel reads 0x1_0000_0001 as 1.
            for pid in [1, 0x1_0000_0001, 0xffff_ffff_0000_0001] {
                assert!(
                    !allows(&gvisor, name, 0, pid),
                    "{name}({pid:#x}) is allowed"
                );
                assert!(allows(&standard, name, 0, pid), "Linux protects its init");
            }
            for pid in [
                0,
                2,
                3,
                7,
                12345,
                0xffff_ffff,
                0xffff_fffd,
                u64::MAX,
                1 << 31,
            ] {
                assert!(allows(&gvisor, name, 0, pid), "{name}({pid:#x}) is denied");
            }
        }
    }

    #[test]
    fn a_device_node_is_never_made() {
        let profile: Value = serde_json::from_str(RUNBOX_PROFILE).expect("valid JSON");
        for (name, index) in [("mknod", 1), ("mknodat", 2)] {
            for kind in [0o020000, 0o060000] {
                assert!(
                    !allows(&profile, name, index, kind | 0o666),
                    "{name} {kind:o}"
                );
            }
            for kind in [0, 0o100000, 0o010000, 0o140000] {
                assert!(
                    allows(&profile, name, index, kind | 0o644),
                    "{name} {kind:o}"
                );
            }
        }
    }

    #[test]
    fn under_gvisor_clone3_is_left_to_its_kernel() {
        let seccomp = Seccomp::from_config(&Config::defaults()).expect("the profile");
        let gvisor = sent(&seccomp.security_opt_own_kernel()[1]);
        let rules = gvisor["syscalls"].as_array().expect("syscalls");
        let clone3 = rules
            .iter()
            .find(|rule| rule["names"] == serde_json::json!(["clone3"]))
            .expect("a clone3 rule");
        assert_eq!(clone3["action"], "SCMP_ACT_ALLOW");
        assert!(clone3.get("errnoRet").is_none());
    }
}
