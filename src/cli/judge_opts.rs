//! The `--judge URL` options shared by `scan`, `test`, `eval` and `serve`, and a blocking call
//! to the judge for the commands that are not async.

use std::time::Duration;

use anyhow::Context;

use crate::engine::CompiledPolicy;
use crate::engine::judge::judge_prompt;
use crate::layer::{Judge, JudgeError, Judged};
use crate::policy::Stage;
use crate::proxy::judge::{HttpJudge, JudgeConfig};

/// Judge options.
#[derive(Debug, Clone, clap::Args)]
pub struct JudgeArgs {
    /// An OpenAI-compatible endpoint (`…/v1`) of the judge model.
    #[arg(long, value_name = "URL")]
    pub judge: Option<String>,
    /// Model name sent to the judge.
    #[arg(long, value_name = "NAME", default_value = "judge")]
    pub judge_model: String,
    /// Environment variable holding the judge's API key.
    #[arg(long, value_name = "VAR")]
    pub judge_key_env: Option<String>,
    /// Longest judge call (also the budget of each call made by this command).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::proxy::parse_duration)]
    pub judge_timeout: Duration,
    /// Judge calls in flight at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub judge_concurrency: usize,
}

impl JudgeArgs {
    /// The judge's configuration, when `--judge` was given.
    pub fn config(&self) -> Option<JudgeConfig> {
        let url = self.judge.clone()?;
        Some(JudgeConfig {
            model: self.judge_model.clone(),
            api_key_env: self.judge_key_env.clone(),
            timeout: self.judge_timeout,
            max_concurrency: self.judge_concurrency.max(1),
            ..JudgeConfig::new(url)
        })
    }

    /// The judge client, when `--judge` was given. Must be called inside a tokio runtime.
    pub fn client(&self) -> anyhow::Result<Option<HttpJudge>> {
        self.config()
            .map(|c| HttpJudge::new(c, None).context("setting up the judge"))
            .transpose()
    }
}

/// A runtime for the blocking commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Judges `text` at `stage` against `sections` (empty: the judged sections), blocking.
pub fn judge_blocking(
    rt: &tokio::runtime::Runtime,
    judge: &HttpJudge,
    policy: &CompiledPolicy,
    stage: Stage,
    sections: &[String],
    text: &str,
    budget: Duration,
) -> (Vec<String>, Result<Judged, JudgeError>) {
    let prompt = judge_prompt(policy, stage, sections, text);
    let asked = prompt.sections.clone();
    (asked, rt.block_on(judge.judge(prompt, budget)))
}
