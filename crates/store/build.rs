// `sqlx::migrate!` embeds the migration files at compile time but cargo does not know
// they are inputs; without this an added or edited migration would not trigger a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
