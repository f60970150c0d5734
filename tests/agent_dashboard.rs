//! The agent's dashboard in a real browser: `shoal agent` against a real
//! git repository and the real swarm, with one stack in sync and one that
//! does not load; headless Chromium (Debian's `chromium`) driven over the
//! DevTools protocol signs in through the form, reads the DOM, takes a
//! screenshot, and sees a pushed commit appear without a reload.
mod common;

use common::agent::*;
use common::*;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET_VALUE: &str = "dashboard-s3cret-Value-91";
const STATUS_TOKEN: &str = "status-token-for-the-dashboard-test";
const UI_TOKEN: &str = "ui-token-for-the-dashboard-test";
const EVIL_SUBJECT: &str = "add stacks <script>alert(1)</script>";

/// Headless Chromium with the DevTools protocol on a free port; its
/// process group is ended when dropped.
struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = die_with_test(&mut cmd).spawn().expect("start chromium");
        // Chromium writes the port it picked into the profile.
        let active = profile.path().join("DevToolsActivePort");
        let port = poll("chromium's DevTools port", Duration::from_secs(60), || {
            let text = std::fs::read_to_string(&active).ok()?;
            text.lines().next()?.trim().parse::<u16>().ok()
        });
        Browser {
            child,
            port,
            _profile: profile,
        }
    }

    /// A DevTools session on the browser's first page.
    fn page(&self) -> Cdp {
        let url = poll("a page target", Duration::from_secs(30), || {
            let targets = devtools_json(self.port, "/json/list")?;
            targets.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"]
                .as_str()
                .map(str::to_string)
        });
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools websocket");
        Cdp { ws, next: 0 }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser and its helper processes are one process group,
        // whose id is the browser's pid.
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill(2) with a process group id we created.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above; helpers that outlived the browser go too.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A JSON document from Chromium's DevTools HTTP endpoint, which keeps the
/// connection open: read exactly Content-Length bytes.
fn devtools_json(port: u16, path: &str) -> Option<Value> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut r = BufReader::new(s);
    let mut length = 0usize;
    let mut status = String::new();
    r.read_line(&mut status).ok()?;
    if !status.contains(" 200") {
        return None;
    }
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// A minimal DevTools protocol client: one call at a time, events skipped.
struct Cdp {
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(tungstenite::Message::text(msg))
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        loop {
            let m = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("{method}: no answer: {e}"));
            let Ok(text) = m.into_text() else { continue };
            let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    fn eval_str(&mut self, expression: &str) -> String {
        self.eval(expression)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Go to `url` and wait until it loaded.
    fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_loaded(url);
    }

    fn wait_loaded(&mut self, url_start: &str) {
        let check = format!(
            "location.href.startsWith({}) && document.readyState === 'complete'",
            json!(url_start)
        );
        poll(
            &format!("{url_start} loaded"),
            Duration::from_secs(30),
            || (self.eval(&check) == json!(true)).then_some(()),
        );
    }

    fn dom(&mut self) -> String {
        self.eval_str("document.documentElement.outerHTML")
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "a real screenshot"
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// Removes the agent's state records and lease (swarm configs this test's
/// agent created) when dropped.
struct Records(Vec<String>);

impl Drop for Records {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("docker").args(["config", "rm", name]).output();
        }
    }
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http(port, "GET", path, headers, b"").expect("agent answers")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn ok_stack(replicas: u32) -> String {
    format!(
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    command: [\"sleep\", \"3600\"]\n    environment:\n      DB_PASSWORD: ${{DB_PASSWORD}}\n    deploy:\n      replicas: {replicas}\n"
    )
}

fn chromium_available() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "chromium is missing: this test needs Debian's chromium (apt-get install -y chromium; .ci/run installs it)"
    );
    found
}

#[test]
fn the_dashboard_shows_both_stacks_in_a_browser_and_follows_a_push_live() {
    assert!(chromium_available());
    let ok = stack_name("dashok");
    let bad = stack_name("dashbad");
    let lease = format!("shoal-lease-{ok}");
    let _records = Records(vec![
        format!("shoal-state-{ok}"),
        format!("shoal-state-{bad}"),
        lease.clone(),
    ]);
    let _guard = StackGuard::new(&[&ok, &bad]);
    let remote = GitRemote::new();
    remote.write(&format!("stacks/{ok}/stack.yml"), &ok_stack(1));
    remote.write(
        &format!("stacks/{ok}/stack.env"),
        &format!("DB_PASSWORD={SECRET_VALUE}\n"),
    );
    remote.write(
        &format!("stacks/{bad}/stack.yml"),
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n    deploy:\n      replicas: two\n",
    );
    remote.push(EVIL_SUBJECT);

    let tokens = tempfile::tempdir().unwrap();
    let (status_file, ui_file) = (
        tokens.path().join("status-token"),
        tokens.path().join("ui-token"),
    );
    std::fs::write(&status_file, STATUS_TOKEN).unwrap();
    std::fs::write(&ui_file, UI_TOKEN).unwrap();
    eprintln!("step: agent start");
    let agent = Agent::start(
        &remote,
        &lease,
        "2s",
        &[
            "--status-token-file",
            status_file.to_str().unwrap(),
            "--ui-token-file",
            ui_file.to_str().unwrap(),
        ],
    );
    let port = agent.port;
    let read = bearer(STATUS_TOKEN);
    let outcome = |stack: &str| -> Option<String> {
        let (code, body) = get(port, "/status", &[("Authorization", &read)]);
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["stacks"][stack]["outcome"].as_str().map(str::to_string)
    };
    poll("both stacks reported", Duration::from_secs(60), || {
        let (a, b) = (outcome(&ok)?, outcome(&bad)?);
        assert_eq!(b, "load-error", "{}", agent.logs());
        matches!(a.as_str(), "ok" | "no-change").then_some(())
    });

    // Without JavaScript: plain HTML with the same facts, behind the same
    // rule as /status.
    let (code, body) = get(port, "/", &[]);
    assert_eq!(code, 401, "the status token guards the page too");
    assert!(body.contains("<label for=\"token\">"), "{body}");
    let (code, html) = get(port, "/", &[("Authorization", &read)]);
    assert_eq!(code, 200);
    assert!(
        html.contains(&format!("id=\"stack-{ok}\" data-state=\"in-sync\"")),
        "{html}"
    );
    assert!(
        html.contains(&format!("id=\"stack-{bad}\" data-state=\"failed\"")),
        "{html}"
    );
    assert!(!html.contains("Sync now"), "the status token cannot act");
    assert!(!html.contains(SECRET_VALUE));
    let sync = format!("/stacks/{bad}/sync");
    let (code, _) = http(port, "POST", &sync, &[("Authorization", &read)], b"").unwrap();
    assert_eq!(code, 401, "sync needs the UI token");
    let (code, _) = http(
        port,
        "POST",
        &sync,
        &[
            ("Authorization", &bearer(UI_TOKEN)),
            ("Origin", "https://evil.example"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(code, 403, "a cross-site request is refused");

    // The browser signs in through the form (the UI token) ...
    eprintln!("step: browser start");
    let browser = Browser::start();
    eprintln!("step: page session");
    let mut page = browser.page();
    let base = format!("http://127.0.0.1:{port}");
    eprintln!("step: open /");
    page.open(&format!("{base}/"));
    assert!(
        page.dom().contains("id=\"token\""),
        "the sign-in form is shown"
    );
    page.eval(&format!(
        "document.getElementById('token').value = {}; document.querySelector('form[action=\"/login\"]').submit(); true",
        json!(UI_TOKEN)
    ));
    let row = |stack: &str| format!("document.getElementById('stack-{stack}')");
    let deadline = Instant::now() + Duration::from_secs(30);
    while page.eval(&format!("!!{}", row(&ok))) != json!(true) {
        assert!(
            Instant::now() < deadline,
            "not signed in after 30 s; the page: {}",
            page.dom()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let cookie = page.call("Network.getCookies", json!({"urls": [base.clone()]}));
    let cookie = &cookie["cookies"][0];
    assert_eq!(cookie["name"], "shoal_session");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert!(!cookie["value"].as_str().unwrap().contains(UI_TOKEN));

    // ... and sees both stacks with their states, the broken one's error,
    // the commit subject as text, and no secret.
    let state = |page: &mut Cdp, stack: &str| {
        page.eval_str(&format!("{}.getAttribute('data-state')", row(stack)))
    };
    assert_eq!(state(&mut page, &ok), "in-sync");
    assert_eq!(state(&mut page, &bad), "failed");
    let bad_text = page.eval_str(&format!("{}.innerText", row(&bad)));
    assert!(
        bad_text.contains("failed")
            && bad_text.contains("stack.yml")
            && bad_text.contains("replicas"),
        "{bad_text}"
    );
    let ok_text = page.eval_str(&format!("{}.innerText", row(&ok)));
    assert!(
        ok_text.contains("in sync") && ok_text.contains(EVIL_SUBJECT),
        "{ok_text}"
    );
    assert_eq!(
        page.eval("document.querySelectorAll('script').length"),
        json!(1),
        "the subject's <script> is text, not an element"
    );
    assert!(page
        .eval_str("document.body.innerText")
        .contains("applier (holds the lease)"));
    let dom = page.dom();
    assert!(!dom.contains(SECRET_VALUE));
    assert!(
        dom.contains("Sync now"),
        "signed in with the UI token: actions shown"
    );
    eprintln!("step: screenshot");
    let shot = screenshot_path();
    page.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    eprintln!("step: phone");
    // On a phone-sized screen nothing runs off the side.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    page.open(&format!("{base}/"));
    assert_eq!(
        page.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "the page fits a phone's width"
    );
    page.call("Emulation.clearDeviceMetricsOverride", json!({}));

    eprintln!("step: broken page");
    // The broken stack's page: its error and cause chain; "sync now".
    page.open(&format!("{base}/stacks/{bad}"));
    let text = page.eval_str("document.getElementById('live').innerText");
    assert!(
        text.contains("Last error") && text.contains("Cause chain"),
        "{text}"
    );
    assert!(text.contains("replicas"), "{text}");
    page.eval(&format!(
        "document.getElementById('sync-{bad}').click(); true"
    ));
    poll("sync queued", Duration::from_secs(20), || {
        page.eval_str("(document.querySelector('.notice') || {}).innerText || ''")
            .contains("queued")
            .then_some(())
    });

    eprintln!("step: ok page");
    // The stack in sync: the plan that created it, its secret masked.
    page.open(&format!("{base}/stacks/{ok}"));
    let text = page.eval_str("document.getElementById('live').innerText");
    assert!(text.contains(&format!("+ service {ok}_app")), "{text}");
    assert!(text.contains("Env[DB_PASSWORD]: (sensitive"), "{text}");
    assert!(!page.dom().contains(SECRET_VALUE));

    eprintln!("step: push");
    // A push shows up on the open page without a reload: the page's own
    // poll replaces the live region; a reload would lose the marker.
    page.open(&format!("{base}/"));
    page.eval("window.__shoalMarker = 'same page'; true");
    remote.write(&format!("stacks/{ok}/stack.yml"), &ok_stack(2));
    let subject = format!("scale {ok} to 2");
    remote.push(&subject);
    let pushed = Instant::now();
    poll(
        "the new commit on the open page",
        Duration::from_secs(60),
        || {
            let text = page.eval_str(&format!("{}.innerText", row(&ok)));
            (text.contains(&subject) && text.contains("in sync")).then_some(())
        },
    );
    eprintln!("push to page: {:?}", pushed.elapsed());
    assert_eq!(
        page.eval_str("window.__shoalMarker"),
        "same page",
        "no reload"
    );

    // The in-sync stack's page: the plan that applied the push, in the
    // CLI's grammar, the history of both commits, no secret.
    page.open(&format!("{base}/stacks/{ok}"));
    let text = page.eval_str("document.getElementById('live').innerText");
    assert!(
        text.contains("Last plan") && text.contains("History"),
        "{text}"
    );
    assert!(text.contains("Mode.Replicated.Replicas: 1 -> 2"), "{text}");
    assert!(
        text.contains(&subject) && text.contains(EVIL_SUBJECT),
        "{text}"
    );
    assert!(!page.dom().contains(SECRET_VALUE));
}

/// Where the screenshot goes: the build's temporary folder, and
/// `docs/dashboard.png` too with SHOAL_UPDATE_SCREENSHOT=1.
fn screenshot_path() -> PathBuf {
    if std::env::var("SHOAL_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        return PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
    }
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
}
