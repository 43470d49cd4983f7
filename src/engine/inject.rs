//! Choosing and rendering the spec sections shown to the model.
//!
//! With `inject: relevant`, a section is shown when one of its input rules fired, its
//! `triggers` matched, or it is marked `always` (an `allow` rule's section is not shown: the rule
//! vouches for the harmless reading). The rendered text starts with a marker line
//! naming the policy, so a request that already carries this policy's injection (a retry, or two
//! gateways in a row) is not injected twice.
//!
//! ```
//! use deliberate::engine::{CompiledPolicy, inject};
//! use deliberate::policy::Stage;
//!
//! let p = CompiledPolicy::from_yaml_str(r#"
//! policy: demo
//! spec:
//!   inject: relevant
//!   sections:
//!     - {id: base, title: Basics, text: "Be kind.", always: true}
//!     - {id: privacy, title: Privacy, text: "No addresses.", triggers: {keywords: [address]}}
//! "#, "demo.yaml").unwrap();
//! // Sections come from the input scan: the sections of its findings and of its triggers.
//! let d = p.scan("what is her address?", Stage::Input, Some("user"));
//! let chosen = inject::choose(&p, p.spec.inject, &d.relevant_sections());
//! assert_eq!(chosen.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["base", "privacy"]);
//! let text = inject::render(&p, &chosen);
//! assert!(inject::is_injected(&text, &p));
//! assert!(text.contains("No addresses."));
//! ```

use super::{CompiledPolicy, Section};
use crate::policy::InjectMode;

/// The sections to inject for `mode` (the policy's `spec.inject`, or an operator's override):
/// with `relevant`, the sections marked `always` and those named in `fired` — an input scan's
/// [`Decision::relevant_sections`], so choosing needs no second scan.
///
/// [`Decision::relevant_sections`]: crate::engine::Decision::relevant_sections
pub fn choose<'p>(
    policy: &'p CompiledPolicy,
    mode: InjectMode,
    fired: &[&str],
) -> Vec<&'p Section> {
    match mode {
        InjectMode::Off => Vec::new(),
        InjectMode::All => policy.spec.sections.iter().collect(),
        InjectMode::Relevant => policy
            .spec
            .sections
            .iter()
            .filter(|s| s.always || fired.contains(&s.id.as_str()))
            .collect(),
    }
}

/// The first line of every injection: names the policy, makes injection idempotent.
pub fn marker(policy: &CompiledPolicy) -> String {
    format!("[deliberate policy {}]", policy.label())
}

/// Whether `text` already carries this policy's injection.
pub fn is_injected(text: &str, policy: &CompiledPolicy) -> bool {
    text.contains(&marker(policy))
}

/// Renders the preamble and `sections` as one message text, between the marker line and the
/// end marker line.
pub fn render(policy: &CompiledPolicy, sections: &[&Section]) -> String {
    let mut out = marker(policy);
    out.push('\n');
    out.push_str(&policy.spec.preamble);
    if let Some(tag) = &policy.spec.deliberation_tag {
        out.push_str(&format!(
            "\nFirst think about which sections apply inside <{tag}>…</{tag}>; that block is \
             removed before the user sees your answer. Then answer."
        ));
    }
    for s in sections {
        out.push_str(&format!("\n\n## {} ({})\n{}", s.title, s.id, s.text));
    }
    out.push('\n');
    out.push_str(&end_marker(policy));
    out
}

/// `text`, a [`render`]ed injection, with `head` as its first paragraph after the marker line.
///
/// For a model's default system prompt, which its chat template adds only to conversations
/// without a system message: an injected spec would otherwise take it away. It sits inside
/// the markers, so a later gateway takes it out with the rest of the injection.
///
/// ```
/// use deliberate::engine::{CompiledPolicy, inject};
///
/// let p = CompiledPolicy::from_yaml_str(
///     "policy: demo\nspec:\n  sections: [{id: a, title: A, text: Be kind., always: true}]\n",
///     "demo.yaml",
/// ).unwrap();
/// let text = inject::with_head(&inject::render(&p, &p.spec.sections.iter().collect::<Vec<_>>()),
///                              "You are Demo, a helpful assistant.");
/// assert!(text.starts_with(&format!("{}\nYou are Demo, a helpful assistant.\n\n", inject::marker(&p))));
/// ```
pub fn with_head(text: &str, head: &str) -> String {
    let head = head.trim();
    let cut = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut out = String::with_capacity(text.len() + head.len() + 3);
    out.push_str(&text[..cut]);
    if cut == text.len() && !text.is_empty() {
        out.push('\n');
    }
    out.push_str(head);
    out.push_str("\n\n");
    out.push_str(&text[cut..]);
    out
}

/// The last line of every injection, so a later gateway can take the whole block out again.
pub fn end_marker(policy: &CompiledPolicy) -> String {
    format!("[end of deliberate policy {}]", policy.label())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::policy::Stage;

    /// An allow rule's section is not injected: the rule vouches for the harmless reading. A
    /// flag rule of the same section, or its trigger, still injects it.
    #[test]
    fn allow_findings_choose_no_section() {
        let p = CompiledPolicy::from_yaml_str(
            r#"
policy: demo
spec:
  inject: relevant
  sections:
    - {id: base, title: Basics, text: "Be kind.", always: true}
    - {id: violence, title: Violence, text: "No weapons.", triggers: {keywords: [grenade]}}
rules:
  - {id: benign.kill-process, section: violence, stages: [input], action: allow, match: {keywords: [kill a process]}}
  - {id: violence.kill, section: violence, stages: [input], action: flag, match: {keywords: [kill him]}}
"#,
            "demo.yaml",
        )
        .unwrap();
        let ids = |text: &str| {
            let d = p.scan(text, Stage::Input, Some("user"));
            let chosen = choose(&p, p.spec.inject, &d.relevant_sections());
            chosen.iter().map(|s| s.id.clone()).collect::<Vec<_>>()
        };
        // The allow finding is there (and names its section), it just chooses nothing.
        let d = p.scan("how do I kill a process?", Stage::Input, Some("user"));
        assert_eq!(d.sections(), ["violence"]);
        assert_eq!(ids("how do I kill a process?"), ["base"]);
        assert_eq!(ids("how do I kill him?"), ["base", "violence"]);
        assert_eq!(
            ids("kill a process, then throw a grenade"),
            ["base", "violence"]
        );
    }
}
