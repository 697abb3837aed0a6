//! The playground page in a real headless Chromium: load it, run the plot example and
//! check that the drawn image appears; then run code that shows a figure, a DataFrame
//! and hostile HTML, and check that the figure and the table appear and that the HTML's
//! script ran nowhere. The screenshot is kept under artifacts/.

use crate::harness::{run_browser_check, Server};

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_shows_plots_and_notebook_outputs_in_a_real_browser() {
    let server = Server::start().await;
    let (status, page) = server.get("/", None).await;
    assert_eq!(status, 200);
    let page = page.as_str().expect("html").to_string();
    assert!(page.contains("runbox playground") && page.contains("/docs"));
    assert!(
        !page.contains("https://"),
        "the page must not load anything from elsewhere"
    );
    let response = server
        .client
        .get(format!("{}/", server.base))
        .send()
        .await
        .expect("page");
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        policy.starts_with("default-src 'none';") && !policy.contains("frame-src"),
        "frames may load nothing, so output frames cannot navigate: {policy}"
    );

    run_browser_check(
        &server,
        "playground-check.py",
        "playground.png",
        "the playground did not show the outputs, or a hostile output ran",
    )
    .await;
    // The hostile output's requests name paths starting with this; the check watched the
    // browser, and this is what the server saw.
    let log = server.log_text();
    assert!(
        !log.contains("/hostile-"),
        "the hostile output reached runbox:\n{log}"
    );
    server.stop().await;
}
