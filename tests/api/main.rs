//! Black-box tests: the real binary, real Docker, a real database (SQLite, or
//! PostgreSQL when RUNBOX_TEST_POSTGRES_URL is set), a real HTTP client.

mod docker_proxy;
mod harness;
mod proxy;
mod sse;

mod auth;
mod bench;
mod cluster_forward;
mod cluster_hosts;
mod cluster_tasks;
mod compat;
mod exactness;
mod execute;
mod forgery;
mod functions;
mod host_firewall;
mod hostile_code;
mod hostile_requests;
mod infrastructure;
mod isolation;
mod lifecycle;
mod mcp;
mod openapi;
mod ops;
mod outputs;
mod playground;
mod pool;
mod seccomp;
mod sessions;
mod several_engines;
mod tasks;
