//! Notebook outputs (API.md "Notebook outputs"): what a new user's plotting and
//! DataFrame code shows comes back as Jupyter MIME bundles on `/execute`, in sessions,
//! from function calls and in streams, with raster images stored and served by URL;
//! `/runcode` answers exactly as before.

use serde_json::{json, Value};

use crate::harness::{Options, Server, TOKEN};
use crate::sse::open_stream;

async fn execute(server: &Server, path: &str, body: Value) -> Value {
    let (status, result) = server.post(path, Some(TOKEN), &body).await;
    assert_eq!(status, 200, "{body} → {result}");
    result
}

fn outputs(result: &Value) -> &Vec<Value> {
    result["outputs"]
        .as_array()
        .unwrap_or_else(|| panic!("no outputs in {result}"))
}

fn mime_types(item: &Value) -> Vec<String> {
    item["data"]
        .as_object()
        .map(|data| data.keys().cloned().collect())
        .unwrap_or_default()
}

/// The stored image an item's `image/png` refers to, fetched: its bytes are a PNG.
async fn fetch_png(server: &Server, item: &Value) -> usize {
    let image = &item["data"]["image/png"];
    let url = image["url"].as_str().unwrap_or_else(|| panic!("{item}"));
    assert_eq!(image["mime"], "image/png");
    let response = server.client.get(url).send().await.expect("image");
    assert_eq!(response.status(), 200, "{url}");
    let bytes = response.bytes().await.expect("bytes");
    assert!(bytes.starts_with(b"\x89PNG"), "{url} is a PNG");
    assert_eq!(image["bytes"], bytes.len());
    bytes.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_new_user_shows_comes_back_as_bundles() {
    let server = Server::start().await;

    // plt.show(): the figure is an item (it used to be lost), once, and nothing on stderr.
    let result = execute(
        &server,
        "/execute",
        json!({"code": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"}),
    )
    .await;
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["stderr"], "", "{result}");
    assert_eq!(result["images"], json!([]), "no file was saved");
    let items = outputs(&result);
    assert_eq!(items.len(), 1, "{result}");
    assert_eq!(items[0]["type"], "display_data");
    assert!(items[0]["data"]["text/plain"]
        .as_str()
        .is_some_and(|t| t.starts_with("<Figure")));
    fetch_png(&server, &items[0]).await;

    // A figure left open is shown at the end; two figures, two items.
    let result = execute(
        &server,
        "/execute",
        json!({"code": "import matplotlib.pyplot as plt\nplt.figure(); plt.plot([1])\nplt.figure(); plt.plot([2])\nNone"}),
    )
    .await;
    assert_eq!(outputs(&result).len(), 2, "{result}");

    // A DataFrame as the last expression: its text table and its HTML table, and
    // `value` as it always was.
    let result = execute(
        &server,
        "/execute",
        json!({"code": "import pandas as pd\npd.DataFrame({'a': [1, 2]})"}),
    )
    .await;
    assert_eq!(result["value"], json!({"a": {"0": 1, "1": 2}}), "{result}");
    let items = outputs(&result);
    assert_eq!(items.len(), 1, "{result}");
    assert_eq!(items[0]["type"], "execute_result");
    assert!(items[0]["data"]["text/html"]
        .as_str()
        .is_some_and(|html| html.contains("<table")));
    assert!(items[0]["data"]["text/plain"].as_str().is_some());

    // display() is a builtin; IPython.display works too, with its rich types.
    let result = execute(
        &server,
        "/execute",
        json!({"code": "import pandas as pd\ndisplay(pd.DataFrame({'a': [1]}))\nfrom IPython.display import display as show, HTML, Markdown, SVG, JSON, Latex\nshow(HTML('<b>hi</b>'))\nshow(Markdown('*m*'))\nshow(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"/>'))\nshow(JSON({'k': [1, 2]}))\nshow(Latex('$x$'))"}),
    )
    .await;
    assert_eq!(result["success"], true, "{result}");
    let kinds: Vec<Vec<String>> = outputs(&result).iter().map(mime_types).collect();
    let wanted = [
        "text/html",
        "text/html",
        "text/markdown",
        "image/svg+xml",
        "application/json",
        "text/latex",
    ];
    assert_eq!(kinds.len(), wanted.len(), "{result}");
    for (types, wanted) in kinds.iter().zip(wanted) {
        assert!(
            types.iter().any(|t| t == wanted) && types.iter().any(|t| t == "text/plain"),
            "{types:?} should have {wanted} and text/plain"
        );
    }
    assert_eq!(
        outputs(&result)[4]["data"]["application/json"],
        json!({"k": [1, 2]})
    );

    // A PIL image as the value is a PNG.
    let result = execute(
        &server,
        "/execute",
        json!({"code": "from PIL import Image\nImage.new('RGB', (4, 4), 'red')"}),
    )
    .await;
    let items = outputs(&result);
    assert_eq!(items.len(), 1, "{result}");
    fetch_png(&server, &items[0]).await;

    // bash makes no outputs, and says so with an empty list.
    let result = execute(
        &server,
        "/execute",
        json!({"code": "echo hi", "language": "bash"}),
    )
    .await;
    assert_eq!(result["outputs"], json!([]), "{result}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runcode_is_unchanged_by_outputs() {
    let server = Server::start().await;
    let (status, body) = server
        .runcode(
            "python",
            "import matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()\nprint('ok')",
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"output": "ok\n"}),
        "no images, no outputs field"
    );
    let (_, body) = server.runcode("python", "display(1)", json!({})).await;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("NameError")),
        "display is not a builtin of /runcode: {body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_shows_each_figure_once() {
    let server = Server::start().await;
    let (status, session) = server.post("/sessions", Some(TOKEN), &json!({})).await;
    assert_eq!(status, 201, "{session}");
    let path = format!("/sessions/{}/execute", session["id"].as_str().expect("id"));
    let first = execute(
        &server,
        &path,
        json!({"code": "import matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1, 2])\nimport pandas as pd\ndf = pd.DataFrame({'a': [1]})\nNone"}),
    )
    .await;
    assert_eq!(outputs(&first).len(), 1, "the open figure: {first}");
    let second = execute(&server, &path, json!({"code": "df"})).await;
    let items = outputs(&second);
    assert_eq!(
        items.len(),
        1,
        "the value only, not the figure again: {second}"
    );
    assert_eq!(items[0]["type"], "execute_result");
    assert!(items[0]["data"]["text/html"].as_str().is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_sends_display_events_in_order() {
    let server = Server::start().await;
    let body = json!({"code": "print('before', flush=True)\nimport matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()\nprint('after', flush=True)\ndisplay({'x': 1})"});
    let events = open_stream(&server, "/execute", TOKEN, &body)
        .await
        .collect()
        .await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| e.name.as_str())
        .filter(|name| *name != "image")
        .collect();
    assert_eq!(
        names,
        ["stdout", "display", "stdout", "display", "result"],
        "{events:?}"
    );
    let result = &events.last().expect("result").data;
    let shown: Vec<&Value> = events
        .iter()
        .filter(|e| e.name == "display")
        .map(|e| &e.data)
        .collect();
    assert_eq!(outputs(result).len(), 2);
    for (event, item) in shown.iter().zip(outputs(result)) {
        assert_eq!(*event, item, "the events' items are the result's");
    }
    fetch_png(&server, shown[0]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_s_value_is_shown_and_caps_cut_outputs() {
    let server = Server::start_with(Options {
        limits_yaml: "outputs_bytes: 2k".into(),
        ..Options::default()
    })
    .await;
    let (status, stored) = server
        .post(
            "/functions",
            Some(TOKEN),
            &json!({"name": "table", "code": "import pandas as pd\ndef table(n: int):\n    return pd.DataFrame({'a': list(range(n))})\n"}),
        )
        .await;
    assert_eq!(status, 201, "{stored}");
    let result = execute(&server, "/functions/table/call", json!({"args": {"n": 2}})).await;
    let items = outputs(&result);
    assert_eq!(items.len(), 1, "{result}");
    assert_eq!(items[0]["type"], "execute_result");
    assert!(items[0]["data"]["text/html"].as_str().is_some(), "{result}");

    // Far more text than outputs_bytes: the items are cut and say so; nothing grows.
    let result = execute(
        &server,
        "/execute",
        json!({"code": "for i in range(50):\n    display('x' * 500)"}),
    )
    .await;
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["truncated"], true, "{result}");
    let text: usize = outputs(&result)
        .iter()
        .map(|item| item["data"]["text/plain"].as_str().map_or(0, str::len))
        .sum();
    assert!(text <= 2048, "{text} bytes of text kept");
    assert!(
        outputs(&result)
            .iter()
            .any(|item| item["truncated"] == true),
        "{result}"
    );
    server.stop().await;
}
