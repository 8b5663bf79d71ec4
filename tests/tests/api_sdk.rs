//! The daemon's API as the official Python SDK calls it: a real `ops serve`
//! with a signed TCP listener, every documented error with its real
//! trigger, signature rejections, and the local CLI over the socket.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
};

use ops_tests::{
    daemon::{Daemon, AK, SECRET},
    privileged,
    sdk::code,
    TestNetns,
};
use ops_user::api::signature::{sign, SignedRequest};
use serde_json::Value;

fn cli_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.cli(args);
    assert!(
        out.status.success(),
        "ops {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn request_level_errors_carry_the_documented_codes() {
    if !privileged("request_level_errors_carry_the_documented_codes") {
        return;
    }
    let d = Daemon::start("api-errors", &[]);
    let sdk = d.sdk();
    let ns = TestNetns::new("api-err");
    cli_ok(&d, &["instance", "add", "g-net", "--netns", &ns.name]);
    cli_ok(&d, &["instance", "add", "g-cg", "--cgroup", "/"]);
    cli_ok(
        &d,
        &[
            "instance",
            "add",
            "g-gone",
            "--netns",
            "opst-no-such-netns",
            "--cgroup",
            "opst-no-such-cgroup",
        ],
    );

    let r = sdk.create("eci-unknown", "tcpdump", r#"{"Enable": true}"#);
    assert_eq!(code(&r), "InvalidInstanceId.NotFound");
    assert_eq!(r["status"], 400);
    assert!(r["message"]
        .as_str()
        .unwrap()
        .contains("The specified instanceId does not exist"));
    assert_eq!(
        code(&sdk.create("g-net", "strace", "x")),
        "Ops.TypeNotSupport"
    );

    let mut other = d.sdk();
    other.region = "cn-beijing".into();
    assert_eq!(
        code(&other.create("g-net", "tcpdump", r#"{"Enable": true}"#)),
        "Ops.RegionNotSupport"
    );
    assert_eq!(
        code(&other.create("g-cg", "coredump", "enable")),
        "Coredump.RegionNotSupport"
    );

    // Groups that lack what the task needs, or are not running.
    assert_eq!(
        code(&sdk.create("g-cg", "tcpdump", r#"{"Enable": true}"#)),
        "Ops.InstanceNotSupport"
    );
    assert_eq!(
        code(&sdk.create("g-net", "coredump", "enable")),
        "Ops.InstanceNotSupport"
    );
    assert_eq!(
        code(&sdk.create("g-gone", "tcpdump", r#"{"Enable": true}"#)),
        "Ops.InstanceNotSupport"
    );
    assert_eq!(
        code(&sdk.create("g-gone", "coredump", "enable")),
        "Ops.InstanceNotSupport"
    );

    // Missing parameters: MissingXxx, before anything else is looked at.
    let missing = sdk.run(vec![serde_json::json!({
        "action": "create",
        "args": {"region_id": "cn-hangzhou", "ops_type": "tcpdump", "ops_value": "{}"}
    })]);
    assert_eq!(code(&missing[0]), "MissingContainerGroupId");
    let missing = sdk.run(vec![serde_json::json!({
        "action": "create",
        "args": {"region_id": "cn-hangzhou", "container_group_id": "g-net", "ops_type": "tcpdump"}
    })]);
    assert_eq!(code(&missing[0]), "MissingOpsValue");

    assert_eq!(
        code(&sdk.describe("eci-unknown", None)),
        "InvalidInstanceId.NotFound"
    );
    let ok = sdk.describe("g-net", Some("tcpdump"));
    assert_eq!(ok["ok"]["Records"], Value::Array(vec![]), "{ok}");
    assert!(ok["ok"]["RequestId"]
        .as_str()
        .is_some_and(|s| s.len() == 36));
}

#[test]
fn signatures_are_enforced() {
    if !privileged("signatures_are_enforced") {
        return;
    }
    let d = Daemon::start("api-sig", &[]);
    let mut wrong = d.sdk();
    wrong.secret = "not-the-secret".into();
    let r = wrong.describe("g", None);
    assert_eq!(code(&r), "SignatureDoesNotMatch");
    assert_eq!(r["status"], 403);
    let mut unknown = d.sdk();
    unknown.ak = "nobody".into();
    assert_eq!(
        code(&unknown.describe("g", None)),
        "InvalidAccessKeyId.NotFound"
    );

    // Raw requests, signed here the way the SDK signs them.
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let fresh = now.format(fmt).unwrap();
    let stale = (now - time::Duration::hours(2)).format(fmt).unwrap();
    let nonce = format!("opst-nonce-{}", std::process::id());
    let first = raw_signed(&d, &fresh, &nonce, AK, SECRET);
    assert_eq!(
        first["Code"], "InvalidInstanceId.NotFound",
        "a valid signature passes: {first}"
    );
    assert_eq!(
        raw_signed(&d, &fresh, &nonce, AK, SECRET)["Code"],
        "SignatureNonceUsed"
    );
    assert_eq!(
        raw_signed(&d, &stale, "opst-other-nonce", AK, SECRET)["Code"],
        "InvalidTimeStamp.Expired"
    );
    let unsigned = raw(&d, "POST /?Action=DescribeInstanceOpsRecords&Version=2018-08-08&RegionId=cn-hangzhou&ContainerGroupId=g HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(unsigned.0, 403);
    assert_eq!(unsigned.1["Code"], "SignatureDoesNotMatch");
}

/// A DescribeInstanceOpsRecords request for an unknown group, signed with
/// (`ak`, `secret`) at `date` with `nonce`.
fn raw_signed(d: &Daemon, date: &str, nonce: &str, ak: &str, secret: &str) -> Value {
    let query: Vec<(String, String)> = [
        ("ContainerGroupId", "eci-none"),
        ("RegionId", "cn-hangzhou"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let host = format!("127.0.0.1:{}", d.port);
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let headers: Vec<(String, String)> = [
        ("host", host.as_str()),
        ("x-acs-action", "DescribeInstanceOpsRecords"),
        ("x-acs-content-sha256", empty),
        ("x-acs-date", date),
        ("x-acs-signature-nonce", nonce),
        ("x-acs-version", "2018-08-08"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let req = SignedRequest {
        method: "POST",
        path: "/",
        query: &query,
        headers: &headers,
        body: b"",
    };
    let signature = sign(&req, &names, secret).unwrap();
    let mut text = "POST /?ContainerGroupId=eci-none&RegionId=cn-hangzhou HTTP/1.1\r\n".to_owned();
    for (n, v) in &headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str(&format!(
        "authorization: ACS3-HMAC-SHA256 Credential={ak},SignedHeaders={},Signature={signature}\r\ncontent-length: 0\r\n\r\n",
        names.join(";")
    ));
    raw(d, &text).1
}

/// Send a raw HTTP/1.1 request; (status, JSON body).
fn raw(d: &Daemon, text: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(
        text.replace("HTTP/1.1\r\n", "HTTP/1.1\r\nconnection: close\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    (
        status,
        serde_json::from_str(body.trim()).unwrap_or_else(|_| panic!("not JSON: {out}")),
    )
}

#[test]
fn cli_manages_groups_and_reports_api_errors() {
    if !privileged("cli_manages_groups_and_reports_api_errors") {
        return;
    }
    let mut d = Daemon::start("api-cli", &[]);
    // Ids end up in paths: nothing but [A-Za-z0-9-]{1,64} passes.
    for bad in ["../x", "a/b", ""] {
        let out = d.cli(&["instance", "add", bad, "--netns", "x"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("InvalidParameter") || err.contains("MissingContainerGroupId"),
            "{err}"
        );
    }
    cli_ok(
        &d,
        &[
            "instance", "add", "eci-a", "--netns", "nsa", "--cgroup", "/opst/a",
        ],
    );
    cli_ok(&d, &["instance", "add", "eci-b", "--netns", "nsb"]);
    // The registry is in the database: it survives a restart.
    d.restart();
    let list: Value =
        serde_json::from_str(&cli_ok(&d, &["--output", "json", "instance", "list"])).unwrap();
    let ids: Vec<&str> = list["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["eci-a", "eci-b"]);
    cli_ok(&d, &["instance", "rm", "eci-b"]);
    let out = d.cli(&["instance", "rm", "eci-b"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidInstanceId.NotFound"));
    let out = d.cli(&["task", "eci-zzz", "tcpdump", r#"{"Enable":true}"#]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("InvalidInstanceId.NotFound: The specified instanceId does not exist"));
    // Node administration is not reachable from the network.
    let sdk = d.sdk();
    let r = sdk.run(vec![serde_json::json!({"action": "describe", "args": {"region_id": "cn-hangzhou", "container_group_id": "eci-a"}})]);
    assert!(r[0]["ok"].is_object());
}
