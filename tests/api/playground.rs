//! The playground page in a real headless Chromium: load it, run the plot example, and
//! check that the drawn image appears. The screenshot is kept under artifacts/.

use crate::harness::{run_browser_check, Server};

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

    run_browser_check(
        &server,
        "playground-check.py",
        "playground.png",
        "the plot did not appear",
    )
    .await;
    server.stop().await;
}
