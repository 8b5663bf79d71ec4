use std::path::PathBuf;

use super::{output::field, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List records, newest last.
    List {
        /// Only this container group.
        #[arg(long)]
        group: Option<String>,
        /// Only this OpsType.
        #[arg(long = "type")]
        ops_type: Option<String>,
    },
    /// Show one record with its details.
    Show { id: String },
    /// Write a record's artifact (the pcap, or the uncompressed core).
    Dump {
        id: String,
        /// Output file, or `-` for stdout.
        #[arg(short = 'o', long = "output-file", default_value = "-")]
        file: PathBuf,
    },
}

pub async fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        Command::List { group, ops_type } => {
            let mut params = Vec::new();
            if let Some(g) = &group {
                params.push(("ContainerGroupId", g.as_str()));
            }
            if let Some(t) = &ops_type {
                params.push(("OpsType", t.as_str()));
            }
            let v = ctx.client.call("ListRecords", &params).await?;
            ctx.output.print(&v, |v| {
                let mut s = format!(
                    "{:<36} {:<24} {:<9} {:<8} {}",
                    "RECORD", "GROUP", "TYPE", "STATUS", "CREATED"
                );
                for r in v["Records"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "\n{:<36} {:<24} {:<9} {:<8} {}",
                        field(r, "RecordId"),
                        field(r, "ContainerGroupId"),
                        field(r, "OpsType"),
                        field(r, "OpsStatus"),
                        field(r, "CreateTime")
                    ));
                }
                s
            });
        }
        Command::Show { id } => {
            let v = ctx
                .client
                .call("DescribeRecord", &[("RecordId", &id)])
                .await?;
            ctx.output.print(&v, |v| {
                serde_json::to_string_pretty(&v["Record"]).unwrap_or_default()
            });
        }
        Command::Dump { id, file: output } => {
            let path = format!("/download/{id}");
            let n = if output.as_os_str() == "-" {
                ctx.client.download(&path, &mut tokio::io::stdout()).await?
            } else {
                let mut f = tokio::fs::File::create(&output).await?;
                let n = ctx.client.download(&path, &mut f).await?;
                f.sync_all().await?;
                n
            };
            if output.as_os_str() != "-" {
                ctx.output.print(
                    &serde_json::json!({ "RecordId": id, "File": output, "Bytes": n }),
                    |_| format!("wrote {n} bytes to {}", output.display()),
                );
            }
        }
    }
    Ok(())
}
