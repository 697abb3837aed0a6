//! `runbox run FILE`: sends a file to a running server's /execute, prints its output as
//! it happens, saves the images it drew and exits non-zero when the code failed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use serde_json::{json, Value};

#[derive(Args)]
pub struct RunArgs {
    /// The file to run (`.sh` and `.bash` run as bash, everything else as Python).
    file: PathBuf,
    /// The runbox server.
    #[arg(long, env = "RUNBOX_SERVER", default_value = "http://127.0.0.1:8000")]
    server: String,
    /// Bearer token (a static token or a JWT).
    #[arg(long, env = "RUNBOX_TOKEN", default_value = "")]
    token: String,
    /// python or bash (default: from the file name).
    #[arg(long)]
    language: Option<String>,
    /// Wall-clock limit in seconds (the server caps it).
    #[arg(long)]
    timeout: Option<f64>,
    /// Where drawn images are saved.
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let code = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let language = args
        .language
        .clone()
        .unwrap_or_else(|| language_of(&args.file).to_string());
    let mut body = json!({"code": code, "language": language, "stream": true});
    if let Some(timeout) = args.timeout {
        body["timeout"] = json!(timeout);
    }
    let base = args.server.trim_end_matches('/');
    let client = reqwest::Client::builder().build()?;
    let mut request = client
        .post(format!("{base}/execute"))
        .header("Accept", "text/event-stream")
        .json(&body);
    if !args.token.is_empty() {
        request = request.bearer_auth(&args.token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach runbox at {base}"))?;
    let status = response.status();
    let is_stream = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !status.is_success() || !is_stream {
        let text = response.text().await.unwrap_or_default();
        bail!("runbox answered {status}: {text}");
    }

    let mut result: Option<Value> = None;
    let mut buffer = String::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(
            &chunk.context("the stream broke off")?,
        ));
        while let Some(cut) = buffer.find("\n\n") {
            let block: String = buffer.drain(..cut + 2).collect();
            let (event, data) = parse_event(&block);
            let Ok(payload) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            match event.as_str() {
                "stdout" => print_flush(&mut std::io::stdout(), &payload["data"]),
                "stderr" => print_flush(&mut std::io::stderr(), &payload["data"]),
                "result" => result = Some(payload),
                // runbox itself failed after the stream had started.
                "error" => bail!(
                    "runbox failed ({}): {}",
                    payload["status"],
                    payload["error"].as_str().unwrap_or("unknown error")
                ),
                _ => {}
            }
        }
    }
    let result = result.context("the stream ended without a result")?;
    save_images(&client, &args, &result).await?;
    if !result["value"].is_null() {
        println!("=> {}", result["value"]);
    }
    if result["success"] == json!(true) {
        Ok(())
    } else {
        let error = &result["error"];
        bail!(
            "{}: {}",
            error["kind"].as_str().unwrap_or("failed"),
            error["message"].as_str().unwrap_or("")
        )
    }
}

fn language_of(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("sh" | "bash") => "bash",
        _ => "python",
    }
}

fn parse_event(block: &str) -> (String, String) {
    let mut event = "message".to_string();
    let mut data = String::new();
    for line in block.lines() {
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(part) = line.strip_prefix("data:") {
            data.push_str(part.strip_prefix(' ').unwrap_or(part));
        }
    }
    (event, data)
}

fn print_flush(out: &mut impl Write, text: &Value) {
    if let Some(text) = text.as_str() {
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

async fn save_images(
    client: &reqwest::Client,
    args: &RunArgs,
    result: &Value,
) -> anyhow::Result<()> {
    let Some(images) = result["images"].as_array().filter(|i| !i.is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    for image in images {
        let (Some(name), Some(url)) = (image["name"].as_str(), image["url"].as_str()) else {
            continue;
        };
        // Only the file name: the server's answer must not pick where files go.
        let Some(file_name) = Path::new(name).file_name() else {
            continue;
        };
        let bytes = client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let path = args.out_dir.join(file_name);
        std::fs::write(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("saved {} ({} bytes)", path.display(), bytes.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_with_and_without_a_space() {
        assert_eq!(
            parse_event("event: stdout\ndata: {\"data\":\"hi\"}\n\n"),
            ("stdout".into(), "{\"data\":\"hi\"}".into())
        );
        assert_eq!(parse_event("data:{}\n\n"), ("message".into(), "{}".into()));
    }

    #[test]
    fn shell_files_run_as_bash() {
        assert_eq!(language_of(Path::new("x.sh")), "bash");
        assert_eq!(language_of(Path::new("x.py")), "python");
    }
}
