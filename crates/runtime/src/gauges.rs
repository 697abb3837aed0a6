//! The gauges of `/metrics` that describe the current state (pools, containers, port
//! leases, admitted runs, sessions, stored images, tasks): read when they are scraped.

use crate::runtime::Runtime;

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
    }
}
