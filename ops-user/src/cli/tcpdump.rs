//! `ops tcpdump GROUP [filters] [-w FILE|-]`: start a capture through the
//! API, then follow it with a live progress line, or stream its pcap.
//! Ctrl-C stops the capture, as with tcpdump.

use std::{path::PathBuf, time::Duration};

use serde_json::{json, Map, Value};

use super::{output::field, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// ContainerGroupId.
    group: String,
    /// tcp, udp, icmpv4 (or icmpv6).
    #[arg(long)]
    protocol: Option<String>,
    #[arg(long)]
    source_ip: Option<String>,
    #[arg(long)]
    source_cidr: Option<String>,
    #[arg(long)]
    source_port: Option<u32>,
    #[arg(long)]
    dest_ip: Option<String>,
    #[arg(long)]
    dest_cidr: Option<String>,
    #[arg(long)]
    dest_port: Option<u32>,
    /// Interface inside the group (default eth0).
    #[arg(short = 'i', long)]
    interface: Option<String>,
    /// Bytes kept per packet.
    #[arg(short = 's', long)]
    snaplen: Option<u32>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Stop after this many packets.
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Stop before the file exceeds this many bytes.
    #[arg(long)]
    file_size: Option<u64>,
    /// Stream the capture as it is written: a file, or `-` for stdout
    /// (e.g. `| tshark -r -`).
    #[arg(short = 'w')]
    write: Option<PathBuf>,
    /// Stop the group's running capture instead.
    #[arg(long)]
    stop: bool,
}

impl Args {
    fn ops_value(&self) -> String {
        if self.stop {
            return json!({ "Enable": false }).to_string();
        }
        let mut m = Map::new();
        m.insert("Enable".into(), json!(true));
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        put("Protocol", self.protocol.clone().map(Value::from));
        put("SourceIp", self.source_ip.clone().map(Value::from));
        put("SourceCidr", self.source_cidr.clone().map(Value::from));
        put("SourcePort", self.source_port.map(Value::from));
        put("DestIp", self.dest_ip.clone().map(Value::from));
        put("DestCidr", self.dest_cidr.clone().map(Value::from));
        put("DestPort", self.dest_port.map(Value::from));
        put("IfDeviceName", self.interface.clone().map(Value::from));
        put("Snaplen", self.snaplen.map(Value::from));
        put("Duration", self.duration.map(Value::from));
        put("PacketNum", self.count.map(Value::from));
        put("FileSize", self.file_size.map(Value::from));
        Value::Object(m).to_string()
    }
}

pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let value = args.ops_value();
    let created = ctx
        .client
        .call(
            "CreateInstanceOpsTask",
            &[
                ("ContainerGroupId", &args.group),
                ("OpsType", "tcpdump"),
                ("OpsValue", &value),
            ],
        )
        .await?;
    if args.stop {
        ctx.output
            .print(&created, |v| field(v, "Result").to_owned());
        return Ok(());
    }
    let record = running_record(ctx, &args.group).await?;
    let stop = || async {
        let _ = ctx
            .client
            .call(
                "CreateInstanceOpsTask",
                &[
                    ("ContainerGroupId", &args.group),
                    ("OpsType", "tcpdump"),
                    ("OpsValue", r#"{"Enable": false}"#),
                ],
            )
            .await;
    };

    if let Some(out) = &args.write {
        let path = format!("/stream/{record}");
        let copy = async {
            if out.as_os_str() == "-" {
                ctx.client.download(&path, &mut tokio::io::stdout()).await
            } else {
                let mut f = tokio::fs::File::create(out).await?;
                ctx.client.download(&path, &mut f).await
            }
        };
        tokio::select! {
            r = copy => { r?; }
            _ = tokio::signal::ctrl_c() => {
                stop().await;
            }
        }
        return Ok(());
    }

    // Follow: a live progress line on stderr until the capture ends.
    let last = loop {
        let v = ctx
            .client
            .call("DescribeRecord", &[("RecordId", &record)])
            .await?;
        let status = v["Record"]["OpsStatus"].as_str().unwrap_or("-").to_owned();
        if ctx.output == super::Output::Text {
            let p = &v["Progress"];
            eprint!(
                "\rpackets {:>10}  bytes {:>12}  elapsed {:>6.1}s  drops {:>8}   ",
                p["Captured"].as_u64().unwrap_or(0),
                p["BytesWritten"].as_u64().unwrap_or(0),
                p["ElapsedMs"].as_u64().unwrap_or(0) as f64 / 1000.0,
                p["Lost"].as_u64().unwrap_or(0)
            );
        }
        if status != "Ready" {
            break v;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => { stop().await; }
        }
    };
    if ctx.output == super::Output::Text {
        eprintln!();
    }
    ctx.output.print(&last["Record"], |r| {
        format!(
            "record {} {}\n{}",
            field(r, "RecordId"),
            field(r, "OpsStatus"),
            serde_json::to_string_pretty(&r["Detail"]).unwrap_or_default()
        )
    });
    Ok(())
}

/// The group's capture that is running now.
async fn running_record(ctx: &Ctx, group: &str) -> anyhow::Result<String> {
    let v = ctx
        .client
        .call(
            "ListRecords",
            &[("ContainerGroupId", group), ("OpsType", "tcpdump")],
        )
        .await?;
    v["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|r| r["OpsStatus"] == "Ready")
        .and_then(|r| r["RecordId"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the capture of {group} ended before it could be followed"))
}
