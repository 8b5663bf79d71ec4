//! The official Python SDK (PyPI `alibabacloud-eci20180808`) as a test
//! client: a venv under `target/` is created once, then `sdk/sdk_call.py`
//! runs the calls and reports bodies or the SDK's exception codes.

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
    sync::Mutex,
};

use serde_json::{json, Value};

/// Versions the protocol was checked against.
const PACKAGES: [&str; 2] = [
    "alibabacloud-eci20180808==2.1.0",
    "alibabacloud-tea-openapi==0.4.6",
];

fn target_dir() -> PathBuf {
    // tests run from target/<profile>/deps/<binary>.
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// The venv's python, creating the venv on first use.
pub fn python() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let venv = target_dir().join("sdk-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".ops-packages");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&PACKAGES.join(" ")) {
        return python;
    }
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    assert!(
        ok(Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)),
        "python3 -m venv failed: Python 3 with venv is needed for the SDK tests"
    );
    assert!(
        ok(Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(PACKAGES)),
        "pip install of the Alibaba Cloud SDK failed"
    );
    std::fs::write(&marker, PACKAGES.join(" ")).unwrap();
    python
}

/// One SDK client configuration.
pub struct Sdk {
    pub endpoint: String,
    pub ak: String,
    pub secret: String,
    pub region: String,
}

impl Sdk {
    /// Run `calls` (`{"action", "args"}` objects) and return one result each.
    pub fn run(&self, calls: Vec<Value>) -> Vec<Value> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk/sdk_call.py");
        let spec = json!({
            "endpoint": self.endpoint, "ak": self.ak, "secret": self.secret,
            "region": self.region, "calls": calls,
        });
        let mut child = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the SDK");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "SDK script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("SDK output")
    }

    /// CreateInstanceOpsTask.
    pub fn create(&self, group: &str, ops_type: &str, value: &str) -> Value {
        let args = json!({
            "region_id": self.region, "container_group_id": group,
            "ops_type": ops_type, "ops_value": value,
        });
        self.run(vec![json!({"action": "create", "args": args})])
            .remove(0)
    }

    /// DescribeInstanceOpsRecords.
    pub fn describe(&self, group: &str, ops_type: Option<&str>) -> Value {
        let mut args = json!({ "region_id": self.region, "container_group_id": group });
        if let Some(t) = ops_type {
            args["ops_type"] = json!(t);
        }
        self.run(vec![json!({"action": "describe", "args": args})])
            .remove(0)
    }
}

/// The error code of an SDK result, or panic with the success body.
pub fn code(result: &Value) -> &str {
    result["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {result}"))
}
