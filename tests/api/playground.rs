//! The playground page in a real headless Chromium: load it, run the plot example, and
//! check that the drawn image appears. The screenshot is kept under artifacts/.

use crate::harness::{Server, TOKEN};

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_runs_a_plot_in_a_real_browser() {
    let server = Server::start().await;
    let (status, page) = server.get("/", None).await;
    assert_eq!(status, 200);
    let page = page.as_str().expect("html").to_string();
    assert!(page.contains("runbox playground") && page.contains("/docs"));
    assert!(
        !page.contains("https://"),
        "the page must not load anything from elsewhere"
    );

    let root = env!("CARGO_MANIFEST_DIR");
    let screenshot = format!("{root}/artifacts/playground.png");
    let output = tokio::process::Command::new("python3")
        .arg(format!("{root}/scripts/playground-check.py"))
        .args([
            "--url",
            &server.base,
            "--token",
            TOKEN,
            "--screenshot",
            &screenshot,
        ])
        .output()
        .await
        .expect("python3 runs the check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(2),
        "headless Chromium is needed for this test (Debian: apt-get install chromium): {stderr}"
    );
    assert!(
        output.status.success(),
        "the plot did not appear:\n{stdout}\n{stderr}"
    );
    server.stop().await;
}
