//! Black-box tests: the real binary, real Docker, a real database (SQLite, or
//! PostgreSQL when RUNBOX_TEST_POSTGRES_URL is set), a real HTTP client.

mod docker_proxy;
mod harness;

mod auth;
mod compat;
mod lifecycle;
mod pool;
