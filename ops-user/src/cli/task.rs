use super::{output::field, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// ContainerGroupId.
    group: String,
    /// OpsType: coredump or tcpdump.
    ops_type: String,
    /// OpsValue: `enable`/`disable` for coredump, a JSON object for tcpdump.
    ops_value: String,
    /// RegionId (default: the node's).
    #[arg(long)]
    region: Option<String>,
}

pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let mut params = vec![
        ("ContainerGroupId", args.group.as_str()),
        ("OpsType", args.ops_type.as_str()),
        ("OpsValue", args.ops_value.as_str()),
    ];
    if let Some(r) = &args.region {
        params.push(("RegionId", r));
    }
    let v = ctx.client.call("CreateInstanceOpsTask", &params).await?;
    ctx.output.print(&v, |v| field(v, "Result").to_owned());
    Ok(())
}
