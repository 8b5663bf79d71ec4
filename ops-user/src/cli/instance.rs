use super::{output::field, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Register a container group (or update it).
    Add {
        /// ContainerGroupId: 1-64 letters, digits or '-'.
        id: String,
        /// Network namespace: an `ip netns` name or a path.
        #[arg(long)]
        netns: Option<String>,
        /// cgroup v2 path of the group.
        #[arg(long)]
        cgroup: Option<String>,
    },
    /// List container groups.
    List,
    /// Forget a container group.
    Rm { id: String },
}

pub async fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<()> {
    let v = match &cmd {
        Command::Add { id, netns, cgroup } => {
            ctx.client
                .call(
                    "AddInstance",
                    &[
                        ("ContainerGroupId", id),
                        ("Netns", netns.as_deref().unwrap_or("")),
                        ("Cgroup", cgroup.as_deref().unwrap_or("")),
                    ],
                )
                .await?
        }
        Command::List => ctx.client.call("ListInstances", &[]).await?,
        Command::Rm { id } => {
            ctx.client
                .call("RemoveInstance", &[("ContainerGroupId", id)])
                .await?
        }
    };
    ctx.output.print(&v, |v| match cmd {
        Command::List => {
            let mut s = format!("{:<40} {:<30} {}", "ID", "NETNS", "CGROUP");
            for i in v["Instances"].as_array().into_iter().flatten() {
                s.push_str(&format!(
                    "\n{:<40} {:<30} {}",
                    field(i, "id"),
                    field(i, "netns"),
                    field(i, "cgroup")
                ));
            }
            s
        }
        _ => field(v, "Result").to_owned(),
    });
    Ok(())
}
