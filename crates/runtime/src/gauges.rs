//! The gauges of `/metrics` that describe the current state (pools, containers, port
//! leases, admitted runs, sessions, stored images, tasks, this replica and the
//! cluster's): read when they are scraped.

use crate::replica::ReplicaView;
use crate::runtime::Runtime;

/// The states a replica of the registry is in, as `/health` names them.
const REPLICA_STATES: [&str; 3] = ["alive", "unavailable", "dead"];

impl Runtime {
    /// Sets every state gauge through the `metrics` facade; the surface renders them.
    pub async fn record_gauges(&self) {
        let engine = self.runner.sandboxes.status();
        for pool in &engine.pools {
            let labels = [
                ("image", pool.image.clone()),
                ("engine", pool.engine.clone()),
            ];
            metrics::gauge!("runbox_pool_ready", &labels).set(pool.ready as f64);
            metrics::gauge!("runbox_pool_target", &labels).set(pool.target as f64);
            metrics::gauge!("runbox_pool_starting", &labels).set(pool.starting as f64);
        }
        for load in self.runner.sandboxes.engine_loads() {
            let labels = [("engine", load.name)];
            metrics::gauge!("runbox_engine_sandboxes_in_use", &labels).set(load.in_use as f64);
            if let Some(capacity) = load.capacity {
                metrics::gauge!("runbox_engine_capacity", &labels).set(capacity as f64);
            }
            metrics::gauge!("runbox_engine_reachable", &labels).set(if load.reachable {
                1.0
            } else {
                0.0
            });
        }
        metrics::gauge!("runbox_sandboxes_in_use").set(engine.in_use as f64);
        metrics::gauge!("runbox_port_leases").set(engine.port_leases as f64);
        metrics::gauge!("runbox_containers_live").set(engine.live_containers as f64);
        metrics::gauge!("runbox_runs_admitted").set(self.runner.admission.running() as f64);
        metrics::gauge!("runbox_sessions_live").set(self.sessions.live() as f64);
        let store = &self.runner.store;
        if let Ok(bytes) = store.image_bytes_total().await {
            metrics::gauge!("runbox_image_bytes_stored").set(bytes as f64);
        }
        if let Ok(counts) = store.count_tasks_by_status().await {
            for status in runbox_store::TaskStatus::ALL {
                let count = counts
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("runbox_tasks", "status" => status.as_str()).set(count as f64);
            }
        }
        self.record_cluster_gauges().await;
    }

    /// Which replica answers the scrape (its id, so that figures from several replicas
    /// can be told apart), and the registry as this replica sees it: replicas by state,
    /// and the capacity and load of those that take work.
    async fn record_cluster_gauges(&self) {
        metrics::gauge!(
            "runbox_replica_info",
            "replica" => self.replica.id.clone(),
            "address" => self.replica.address.clone()
        )
        .set(1.0);
        let Ok(records) = self.runner.store.replicas().await else {
            return;
        };
        let dead_after = self.runner.config.cluster.dead_after.get();
        let views: Vec<ReplicaView> = records
            .iter()
            .map(|record| ReplicaView::of(record, &self.replica.id, dead_after))
            .collect();
        for state in REPLICA_STATES {
            let count = views.iter().filter(|view| view.state == state).count();
            metrics::gauge!("runbox_cluster_replicas", "state" => state).set(count as f64);
        }
        let alive = views.iter().filter(|view| view.state == "alive");
        let (capacity, running) =
            alive.fold((0, 0), |(c, r), view| (c + view.capacity, r + view.running));
        metrics::gauge!("runbox_cluster_capacity").set(capacity as f64);
        metrics::gauge!("runbox_cluster_running").set(running as f64);
    }
}
