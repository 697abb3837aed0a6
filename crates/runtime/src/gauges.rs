//! The gauges of `/metrics` that describe the current state (pools, containers, port
//! leases, admitted runs, sessions, stored images, tasks): read when they are scraped.

use crate::runtime::Runtime;

impl Runtime {
    /// Sets every state gauge through the `metrics` facade; the surface renders them.
    pub async fn record_gauges(&self) {
        let engine = self.runner.sandboxes.status();
        for pool in &engine.pools {
            metrics::gauge!("runbox_pool_ready", "image" => pool.image.clone())
                .set(pool.ready as f64);
            metrics::gauge!("runbox_pool_target", "image" => pool.image.clone())
                .set(pool.target as f64);
            metrics::gauge!("runbox_pool_starting", "image" => pool.image.clone())
                .set(pool.starting as f64);
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
