//! `deliberate playground --policy FILE… [--listen ADDR] [--allow-remote]`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::playground::Playground;

/// Arguments of `deliberate playground`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy files (or directories of them) the page shows; edits in the page stay in the page.
    #[arg(long = "policy", value_name = "FILE", required = true, num_args = 1..)]
    pub policies: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8088")]
    pub listen: String,
    /// Allow listening on an address other than loopback (anyone who reaches it can run
    /// policies on this machine and read the policy files named here).
    #[arg(long)]
    pub allow_remote: bool,
}

/// Runs `deliberate playground`.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let files = super::policy_files(&a.policies)?;
    if files.is_empty() {
        anyhow::bail!("no policy files found in {:?}", a.policies);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && !a.allow_remote {
            anyhow::bail!(
                "{addr} is not a loopback address: the playground runs any policy it is sent; \
                 pass --allow-remote to serve it there anyway"
            );
        }
        eprintln!(
            "deliberate playground: listening on http://{addr}/playground ({} policy file(s))",
            files.len()
        );
        crate::playground::serve(listener, Playground::new(files), shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
