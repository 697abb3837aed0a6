//! `runbox doctor` on PostgreSQL: the registry of replicas, each replica's state, and
//! that the address it registered answers `/health` as that replica (its peers send it
//! requests there).

use std::time::Duration;

use chrono::{DateTime, Utc};
use runbox_core::Config;
use runbox_store::{ReplicaRecord, Store};

/// How long a replica's `/health` may take to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// What `/health` said at a replica's address.
#[derive(Debug, PartialEq)]
enum Answer {
    /// It answered with this replica id (`cluster.replica`), and this HTTP status.
    Replica { id: String, status: u16 },
    /// It answered, but not as a runbox replica.
    Other(String),
    /// It did not answer.
    Silent(String),
}

/// What the doctor says about the registry or one replica.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    Ok(String),
    Warn(String),
    Fail(String, &'static str),
}

/// What the doctor says about the cluster: each line's subject and verdict.
pub(super) async fn check(config: &Config, store: &Store) -> Vec<(String, Verdict)> {
    let cluster = "cluster".to_string();
    let replicas = match store.replicas().await {
        Ok(replicas) => replicas,
        Err(err) => {
            let fix = "check the database; the replicas register there";
            return vec![(cluster, Verdict::Fail(err.to_string(), fix))];
        }
    };
    if replicas.is_empty() {
        let none = "no replica is registered (none runs now)".to_string();
        return vec![(cluster, Verdict::Ok(none))];
    }
    let dead_after = config.cluster.dead_after.get();
    let alive = replicas
        .iter()
        .filter(|r| age(r, Utc::now()) <= dead_after)
        .count();
    let mut said = vec![(
        cluster.clone(),
        Verdict::Ok(format!(
            "{} replica(s) registered, {alive} with a fresh heartbeat",
            replicas.len()
        )),
    )];
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(HEALTH_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            let fix = "this host cannot make HTTP requests";
            said.push((cluster, Verdict::Fail(err.to_string(), fix)));
            return said;
        }
    };
    let asks = replicas
        .iter()
        .map(|replica| ask(&client, &replica.address));
    let answers = futures::future::join_all(asks).await;
    for (replica, answer) in replicas.iter().zip(answers) {
        let verdict = verdict(replica, &answer, dead_after, Utc::now());
        said.push((format!("replica {}", replica.id), verdict));
    }
    said
}

async fn ask(client: &reqwest::Client, address: &str) -> Answer {
    let response = match client.get(format!("{address}/health")).send().await {
        Ok(response) => response,
        Err(err) => return Answer::Silent(err.without_url().to_string()),
    };
    let status = response.status().as_u16();
    match response.json::<serde_json::Value>().await {
        Ok(body) => match body["cluster"]["replica"].as_str() {
            Some(id) => Answer::Replica {
                id: id.to_string(),
                status,
            },
            None => Answer::Other(format!("HTTP {status}, not a runbox replica's /health")),
        },
        Err(_) => Answer::Other(format!("HTTP {status}, not a runbox replica's /health")),
    }
}

fn age(replica: &ReplicaRecord, now: DateTime<Utc>) -> Duration {
    (now - replica.heartbeat_at).to_std().unwrap_or_default()
}

fn verdict(
    replica: &ReplicaRecord,
    answer: &Answer,
    dead_after: Duration,
    now: DateTime<Utc>,
) -> Verdict {
    let age = age(replica, now).as_secs();
    let at = &replica.address;
    if age > dead_after.as_secs() {
        return Verdict::Warn(format!(
            "dead: no heartbeat for {age} s (cluster.dead_after {} s); its peers take over \
             its work and remove it from the registry",
            dead_after.as_secs()
        ));
    }
    let load = format!("{} of {} runs", replica.running, replica.capacity);
    match answer {
        Answer::Replica { id, .. } if *id != replica.id => Verdict::Fail(
            format!("its address {at} answers as replica {id}: peers would send it the wrong replica's work"),
            "give each replica its own cluster.advertise_url (or server.public_url), reaching it directly",
        ),
        Answer::Replica { .. } if !replica.available => Verdict::Warn(format!(
            "unavailable: its engine does not answer; it takes no work and forwards its \
             runs to its peers ({at} answers)"
        )),
        Answer::Replica { status, .. } => Verdict::Ok(format!(
            "alive at {at} ({load}; /health {status}, heartbeat {age} s ago)"
        )),
        Answer::Other(what) | Answer::Silent(what) => Verdict::Fail(
            format!("alive, but its address {at} does not answer /health: {what}"),
            "set cluster.advertise_url to where the other replicas reach it (the replica \
             itself, not the load balancer), and let them through any firewall",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: &str, heartbeat_age: i64, available: bool) -> ReplicaRecord {
        let now = Utc::now();
        ReplicaRecord {
            id: id.into(),
            address: format!("http://{id}:8000"),
            instance: "i".into(),
            capacity: 8,
            running: 3,
            available,
            started_at: now,
            heartbeat_at: now - chrono::Duration::seconds(heartbeat_age),
        }
    }

    fn answers(id: &str) -> Answer {
        Answer::Replica {
            id: id.into(),
            status: 200,
        }
    }

    #[test]
    fn each_replica_is_judged_by_its_heartbeat_engine_and_address() {
        let dead_after = Duration::from_secs(15);
        let now = Utc::now();
        let judge = |r: &ReplicaRecord, a: &Answer| verdict(r, a, dead_after, now);
        assert!(
            matches!(judge(&replica("a", 2, true), &answers("a")), Verdict::Ok(d) if d.contains("3 of 8 runs"))
        );
        assert!(
            matches!(judge(&replica("a", 2, false), &answers("a")), Verdict::Warn(d) if d.starts_with("unavailable"))
        );
        assert!(
            matches!(judge(&replica("a", 60, true), &Answer::Silent("refused".into())), Verdict::Warn(d) if d.starts_with("dead"))
        );
        assert!(
            matches!(judge(&replica("a", 2, true), &Answer::Silent("refused".into())), Verdict::Fail(d, _) if d.contains("does not answer"))
        );
        assert!(matches!(
            judge(&replica("a", 2, true), &Answer::Other("HTTP 404".into())),
            Verdict::Fail(..)
        ));
        assert!(
            matches!(judge(&replica("a", 2, true), &answers("b")), Verdict::Fail(d, _) if d.contains("answers as replica b"))
        );
    }
}
